"""Figures and small pure helpers for the Approximation page, unit-tested without a UI.

* :func:`pareto_front` - the points no other point beats on both parameters and error.
* :func:`sweep_budgets` - the geometric budgets of the error-vs-parameters sweep.
* :func:`downsample` - block means of a matrix for display (heatmaps stay a few thousand cells).
* :func:`fit_bytes` - peak memory of a run's fits (btcore's own per-fit estimate).
* :func:`explain` - the page's teaching text, built from the numbers of the run being shown
  (:func:`noise_floor`: the best error expected on a noisy structured target).
* :func:`error_vs_params` - log-log error vs parameters, one curve per format, Pareto front marked.
* :func:`heatmaps` / :func:`residual_heatmap` - target and reconstructions side by side; a residual.
* :func:`convergence` - relative error per ALS sweep (TT-SVD: one direct point).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from btcore import decompose as dec
from btcore.shapes import prod

from .charts import FORMAT_COLORS

__all__ = [
    "FORMATS", "pareto_front", "sweep_budgets", "downsample", "fit_bytes", "noise_floor", "explain",
    "error_vs_params", "heatmaps", "residual_heatmap", "convergence", "PARETO_TRACE",
]

FORMATS = ("BT", "TT", "Tucker", "CP")
#: Floor for plotting errors on a log axis (an exact 0 is drawn here).
_FLOOR = 1e-16
PARETO_TRACE = "Pareto front"
_MARKERS = {"BT": "circle", "TT": "square", "Tucker": "diamond", "CP": "triangle-up"}
_TIE = 0.05  # relative difference under which two errors are called a tie


# ----------------------------------------------------------------------------------------------
# Pure helpers
# ----------------------------------------------------------------------------------------------

def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the non-dominated points of ``(params, error)`` pairs, sorted by params.

    A point is dominated when another has at most its parameters and at most its error, and is
    strictly better in one. Points with a missing (None/NaN) error are ignored. Of exact
    duplicates the first is kept.
    """
    good = [(p, e, i) for i, (p, e) in enumerate(points)
            if p is not None and e is not None and not (isinstance(e, float) and math.isnan(e))]
    good.sort(key=lambda t: (t[0], t[1], t[2]))
    front, best = [], math.inf
    for p, e, i in good:
        if e < best:
            front.append(i)
            best = e
    return front


def sweep_budgets(center: int, dense: int, points: int = 5, span: float = 16.0) -> list[int]:
    """``points`` geometric budgets from ``center / sqrt(span)`` to ``center * sqrt(span)``.

    Budgets are kept between 8 and half the dense size ``dense`` (a "compact" format with more
    parameters than that compresses nothing), rounded and de-duplicated; the centre is included
    when ``points`` is odd. ``points <= 0`` gives an empty list, ``points == 1`` the centre alone.
    """
    if points <= 0:
        return []
    hi_cap = max(8, dense // 2)
    center = int(min(max(8, center), hi_cap))
    if points == 1:
        return [center]
    lo = math.log(center / math.sqrt(span))
    hi = math.log(center * math.sqrt(span))
    out = []
    for k in range(points):
        b = int(round(math.exp(lo + (hi - lo) * k / (points - 1))))
        b = min(max(8, b), hi_cap)
        if b not in out:
            out.append(b)
    return sorted(out)


def downsample(A: np.ndarray, max_side: int = 128) -> np.ndarray:
    """Block means of a 2-D array so neither side exceeds ``max_side`` (each side independently).

    Rows (columns) are grouped into ``ceil(n / max_side)`` consecutive ones; a ragged last group is
    averaged over the entries it has. Arrays already small enough are returned as float64 copies.
    """
    A = np.asarray(A, dtype=np.float64)
    if A.ndim != 2:
        raise ValueError(f"downsample needs a 2-D array, got shape {A.shape}")
    out = A
    for axis in (0, 1):
        n = out.shape[axis]
        f = math.ceil(n / max_side) if n > max_side else 1
        if f == 1:
            continue
        m = math.ceil(n / f)
        pad = m * f - n
        x = np.moveaxis(out, axis, 0)
        counts = np.full(m, float(f))
        if pad:
            x = np.concatenate([x, np.zeros((pad,) + x.shape[1:])], axis=0)
            counts[-1] = f - pad
        x = x.reshape(m, f, *x.shape[1:]).sum(axis=1) / counts.reshape(-1, *([1] * (x.ndim - 1)))
        out = np.moveaxis(x, 0, axis)
    return np.array(out, dtype=np.float64, copy=True)


def fit_bytes(in_modes, out_modes, tasks: Sequence[dict]) -> int:
    """Peak float64 bytes of a run's fits on the (prod(in_modes) x prod(out_modes)) matrix.

    The largest of btcore's own estimate for each ALS fit in ``tasks`` (dicts with ``format``,
    ``ranks``, ``blocks``: the check :func:`btcore.decompose.fit_bt` makes before allocating) and three
    dense matrices (TT-SVD's working set; the page's target, one reconstruction and its residual).
    """
    sizes = tuple(i * j for i, j in zip(in_modes, out_modes))
    # The same estimate fit_bt checks, so the page refuses exactly what fit_bt would, before the worker starts.
    als = [dec.als_memory_bytes(sizes, tuple(t["ranks"]), int(t["blocks"])) for t in tasks if t["format"] != "TT"]
    return max([8 * 3 * prod(sizes)] + als)


def _same(a: dict, b: dict) -> bool:
    """Two results tie: both at numerical precision, or errors within :data:`_TIE` of each other."""
    if a["at_precision"] and b["at_precision"]:
        return True
    return abs(a["rel_error"] - b["rel_error"]) <= _TIE * max(a["rel_error"], b["rel_error"])


#: The structured targets: the format built into them, the structure, and what a fit needs to hold it.
_STRUCTURED = {
    "bt": ("BT", "an exact sum of N = 2 Tucker blocks of rank 3", "BT with N ≥ 2, R ≥ 3",
           "Tucker ties once its rank covers N·R (a BT is a Tucker with a block-diagonal core) and CP ties when its "
           "rank covers the blocks' small cores; TT does not contain this structure and should stay far above it."),
    "tt": ("TT", "an exact TT-matrix (ranks 4)", "TT-SVD at ranks ≥ 4",
           "The TT ranks couple neighbouring modes; a Tucker block would need the full mode rank, so Tucker should "
           "stay far off, and BT gets closer only with several blocks."),
}


def noise_floor(noise: float) -> float:
    """About the best relative error on ``W = W_exact + E`` with ``||E|| = noise * ||W_exact||``:
    ``||E|| / ||W|| = noise / sqrt(1 + noise^2)`` for random E (nearly orthogonal to W_exact). A fit
    also absorbs a small part of E, so errors a little below this occur."""
    return noise / math.sqrt(1.0 + noise * noise)


def _structured(target: str, ok: list[dict], noise: float | None) -> list[str]:
    """Expectation for an exact-structure target at this noise level, then whether the run agrees."""
    fmt, structure, holder, others = _STRUCTURED[target]
    if noise is None:
        floor = None
        expect = f"the matrix is {structure} plus noise, so {holder} should reach the noise floor."
    elif noise == 0:
        floor = 0.0
        expect = f"the matrix is {structure} with no noise, so {holder} should be exact (to numerical precision)."
    else:
        floor = noise_floor(noise)
        expect = (f"the matrix is {structure} plus noise of relative size {noise:g}, so {holder} should reach the "
                  f"noise floor (≈ {floor:.2g}).")
    out = [f"**What to expect:** {expect} {others}"]
    if not ok:
        return out
    best = ok[0]
    mine = next((r for r in ok if r["format"] == fmt), None)

    def at_floor(r):
        return r["at_precision"] if not floor else r["rel_error"] <= 1.5 * floor

    if mine is None:
        out.append(f"**Measured:** {fmt} was not fitted in this run, so it cannot show this.")
    elif mine is best or _same(mine, best):
        ties = [r["format"] for r in ok if r is not mine and _same(r, mine)]
        verdict = "wins here" if mine is best else "ties for the lowest error"
        s = f"**Measured: {fmt} {verdict}, as expected** ({mine['error_text']}"
        s += f"; {', '.join(ties)} tie{'s' if len(ties) == 1 else ''} with it)" if ties else ")"
        if floor is None:
            s += "."
        elif at_floor(mine):
            s += ", at the noise floor." if floor else ", at numerical precision."
        else:
            s += (f", but above the {'noise floor' if floor else 'numerical precision it could reach'}: the size may "
                  f"be too small for the structure ({holder}), or the fit stopped early (try the thorough effort).")
        out.append(s)
    else:
        s = (f"**Measured: {best['format']} beats {fmt} here** ({best['error_text']} against {mine['error_text']}), "
             "unlike the expectation: ")
        if floor is not None and at_floor(mine):
            s += (f"both are at the {'noise floor' if floor else 'numerical precision'}, where what is left is noise "
                  "being fitted, not structure.")
        else:
            s += (f"the size may be too small for the structure ({holder}), or the {fmt} fit stopped in a poorer "
                  "optimum (try the thorough effort).")
        out.append(s)
    return out


def explain(rows: list[dict], sweep: list[dict], target: str, shape: tuple[int, int], *,
            noise: float | None = None) -> str:
    """Markdown that says what this run's numbers show, then what to expect for this kind of target.

    ``rows``: the main fits and ``sweep``: the sweep points, dicts with ``format``, ``params``,
    ``rel_error``, ``at_precision`` and ``error_text`` (the fit's :class:`~btcore.decompose.FitInfo`
    fields), the sweep points also ``budget``; ``target``: "gaussian", "bt", "tt", "kernel", "image",
    "trained_dense", "trained_bt", "trained_tt" (weights of a model whose input map is dense, BT or TT)
    or "upload"; ``shape``: (I, J); ``noise``: the relative noise of the "bt" and "tt" targets. For those
    the text states the expectation at that noise level and whether the measured best format agrees.
    """
    lines = []
    ok = sorted((r for r in rows if r.get("rel_error") is not None), key=lambda r: r["rel_error"])
    if ok:
        best = ok[0]
        ties = [r["format"] for r in ok[1:] if _same(r, best)]
        worst = ok[-1]
        s = (f"**At your setting** the lowest error is **{best['format']}**: {best['error_text']} "
             f"with {best['params']:,} parameters")
        if ties:
            s += f"; {', '.join(ties)} tie{'s' if len(ties) == 1 else ''} with it (within {_TIE:.0%})"
        if len(ok) > 1 and not _same(worst, best):
            ratio = worst["rel_error"] / max(best["rel_error"], _FLOOR)
            s += f"; {worst['format']} is worst at {worst['error_text']}"
            if not best["at_precision"]:
                s += f" ({ratio:,.1f}x the error)" if ratio < 1000 else " (over 1,000x the error)"
        lines.append(s + ".")
    budgets = sorted({p["budget"] for p in sweep})
    if budgets:
        wins = {}
        for b in budgets:
            pts = [p for p in sweep if p["budget"] == b and p.get("rel_error") is not None]
            if not pts:
                continue
            low = min(pts, key=lambda p: p["rel_error"])
            for p in pts:
                if _same(p, low):
                    wins[p["format"]] = wins.get(p["format"], 0) + 1
        if wins:
            order = sorted(wins, key=lambda f: -wins[f])
            parts = [f"{f} {wins[f]} of {len(budgets)}" for f in order]
            lines.append("**Over the sweep**, best or tied for best at each budget: " + ", ".join(parts) + ".")
        front = pareto_front([(p["params"], p["rel_error"]) for p in sweep])
        fmts = sorted({sweep[i]["format"] for i in front})
        if fmts:
            lines.append(f"The Pareto front (no point has fewer parameters *and* a lower error) is made of "
                         f"{', '.join(fmts)} points.")
    if any(r.get("rel_error") is not None and r["at_precision"] for r in rows + sweep):
        below = f"{dec.AT_PRECISION:.0e}".replace("e-0", "e-")
        lines.append(f"Errors below {below} are at float64 precision: differences there mean nothing.")

    I, J = shape
    tall = max(I, J) >= 8 * min(I, J)
    if target in _STRUCTURED:
        lines += _structured(target, ok, noise)
    context = {
        "gaussian": ("**Why nothing fits a random matrix:** i.i.d. entries have no structure; the energy is "
                     "spread evenly over all singular values of every unfolding, so a format with P parameters "
                     "captures little more than a fraction P/(I·J) of it. Keeping P entries exactly would give "
                     "an error of √(1 − P/IJ); every compact format stays close to that, and close to 1. At large "
                     "budgets TT wins or ties (REFERENCE: BT 0.935, TT 0.940, Tucker 0.957 at 69k on 1024²)."),
        "kernel": ("**A smooth kernel** has fast-decaying spectra in every unfolding, so every format fits it "
                   "well. On tall matrices BT wins clearly (REFERENCE: 57,600 × 256 at ~7k parameters, BT 2.6e-5, "
                   "Tucker 3.3e-4, TT 1.6e-3); on square ones TT ties or wins."),
        "image": ("**A natural image** has a decaying spectrum but also edges and texture, so errors fall "
                  "slowly with the budget; which format wins depends on the image and the modes."),
        "trained_dense": ("**Trained dense weights** of a small model stay close to their random initialisation "
                          "unless trained long: expect errors like those of a random matrix, unless training built "
                          "structure."),
        "trained_bt": ("**This model's input map is stored in BT format**, so the matrix is an exact BT matrix of the "
                       "model's ranks: BT at those ranks or more can fit it exactly (ALS may need the thorough "
                       "effort to get there), and the other formats show how much of that structure they share."),
        "trained_tt": ("**This model's input map is stored in TT format**, so the matrix is an exact TT-matrix of the "
                       "model's ranks: TT-SVD at those ranks or more recovers it to numerical precision, and the "
                       "other formats show how much of that structure they share."),
        "upload": "**Your matrix:** the numbers above are the whole story; compare them with the shipped targets.",
    }.get(target)
    if context:
        lines.append(context)
    if target == "gaussian" and ok:
        best = ok[0]
        keep = math.sqrt(max(0.0, 1.0 - best["params"] / max(1, I * J)))
        lines.append(f"Here: keeping {best['params']:,} of the {I * J:,} entries exactly gives {keep:.3f}; the best "
                     f"format, {best['format']}, reaches {best['error_text']}.")
    if tall and target != "kernel":
        lines.append("This matrix is tall (one side ≥ 8x the other): the setting where BT wins most clearly in "
                     "REFERENCE.md's comparisons.")
    return "\n\n".join(lines)


# ----------------------------------------------------------------------------------------------
# Figures
# ----------------------------------------------------------------------------------------------

def _clip(e):
    return None if e is None else max(float(e), _FLOOR)


def error_vs_params(sweep: list[dict], *, main: list[dict] | None = None, dense: int | None = None,
                    reference: bool = False, height: int = 430) -> go.Figure:
    """Relative error vs parameters, both axes log: one line per format from the sweep points.

    ``sweep``: dicts with ``format``, ``params``, ``rel_error`` (None: skipped). The Pareto front
    over all points is a black dashed step line through ringed markers (trace ``"Pareto front"``).
    ``main``: the main fits, drawn as stars. ``dense``: draws a vertical line at I·J.
    ``reference``: adds the curve √(1 − P/IJ) of keeping P entries exactly (needs ``dense``).
    The region below 1e-8 (float64 precision) is shaded when any error falls there.
    """
    fig = go.Figure()
    pts = [p for p in sweep if p.get("rel_error") is not None]
    for fmt in [f for f in FORMATS if any(p["format"] == f for p in pts)] + \
               sorted({p["format"] for p in pts} - set(FORMATS)):
        mine = sorted((p for p in pts if p["format"] == fmt), key=lambda p: p["params"])
        fig.add_scatter(
            x=[p["params"] for p in mine], y=[_clip(p["rel_error"]) for p in mine], mode="lines+markers", name=fmt,
            line={"color": FORMAT_COLORS.get(fmt, "#999"), "width": 2.5},
            marker={"symbol": _MARKERS.get(fmt, "circle"), "size": 9},
            customdata=[[p.get("label", fmt)] for p in mine],
            hovertemplate="%{customdata[0]}<br>%{x:,} parameters<br>relative error %{y:.3g}<extra></extra>",
        )
    front = pareto_front([(p["params"], p["rel_error"]) for p in pts])
    if front:
        fp = [pts[i] for i in front]
        xs, ys = [], []
        for k, p in enumerate(fp):  # step line: the best error available at each parameter count
            if k:
                xs.append(p["params"])
                ys.append(_clip(fp[k - 1]["rel_error"]))
            xs.append(p["params"])
            ys.append(_clip(p["rel_error"]))
        fig.add_scatter(x=xs, y=ys, mode="lines", name=PARETO_TRACE, line={"color": "black", "dash": "dash", "width": 1.5},
                        hoverinfo="skip", legendgroup="pareto")
        fig.add_scatter(x=[p["params"] for p in fp], y=[_clip(p["rel_error"]) for p in fp], mode="markers",
                        name="on the front", showlegend=False, legendgroup="pareto",
                        marker={"size": 17, "color": "rgba(0,0,0,0)", "line": {"color": "black", "width": 2}},
                        customdata=[[p["format"]] for p in fp],
                        hovertemplate="Pareto: %{customdata[0]}<br>%{x:,} parameters, error %{y:.3g}<extra></extra>")
    for r in main or []:
        if r.get("rel_error") is None:
            continue
        fig.add_scatter(x=[r["params"]], y=[_clip(r["rel_error"])], mode="markers", name=f"your {r['format']}",
                        showlegend=False,
                        marker={"symbol": "star", "size": 15, "color": FORMAT_COLORS.get(r["format"], "#999"),
                                "line": {"width": 1, "color": "black"}},
                        hovertemplate=f"your {r['format']}<br>%{{x:,}} parameters<br>error %{{y:.3g}}<extra></extra>")
    if reference and dense and pts:
        lo = min(p["params"] for p in pts)
        hi = max(p["params"] for p in pts)
        xs = np.geomspace(lo, hi, 30)
        fig.add_scatter(x=xs.tolist(), y=[math.sqrt(max(0.0, 1 - x / dense)) for x in xs], mode="lines",
                        name="keep P entries", line={"color": "#7f7f7f", "dash": "dot"},
                        hovertemplate="keep %{x:,.0f} entries exactly<br>error %{y:.3f}<extra></extra>")
    if pts and min(_clip(p["rel_error"]) for p in pts) < dec.AT_PRECISION:
        fig.add_hrect(y0=_FLOOR, y1=dec.AT_PRECISION, fillcolor="#bbbbbb", opacity=0.25, line_width=0,
                      annotation_text="numerical precision", annotation_position="bottom left")
    xs_all = [p["params"] for p in pts] + [r["params"] for r in (main or []) if r.get("rel_error") is not None]
    ticks = _ticks_125(min(xs_all), max(xs_all)) if xs_all else []
    fig.update_xaxes(type="log", title="parameters" + (f" (dense: {dense:,})" if dense else ""),
                     tickvals=ticks, ticktext=[_si(t) for t in ticks], showgrid=True)
    fig.update_yaxes(type="log", title="relative error ‖W − Ŵ‖ / ‖W‖", dtick=1, exponentformat="power",
                     minor={"showgrid": True, "gridcolor": "#f0f0f0"})
    fig.update_layout(title="Error vs parameters", height=height, margin={"t": 40, "b": 10, "l": 10, "r": 10},
                      legend={"orientation": "h", "y": -0.18})
    return fig


def _ticks_125(lo: float, hi: float) -> list[float]:
    """1-2-5 tick values covering [lo, hi] (a log axis with a label at every one of them)."""
    out = []
    k = math.floor(math.log10(max(lo, 1e-300)))
    while 10**k <= hi * 10:
        for m in (1, 2, 5):
            v = m * 10**k
            if lo / 1.5 <= v <= hi * 1.5:
                out.append(v)
        k += 1
    return out


def _si(v: float) -> str:
    for div, suf in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if v >= div:
            return f"{v / div:g}{suf}"
    return f"{v:g}"


def _axes(shape, small_shape):
    """Row/column coordinates (in the full matrix) of the downsampled cells' centres."""
    (n, m), (a, b) = shape, small_shape
    return [(i + 0.5) * m / b - 0.5 for i in range(b)], [(i + 0.5) * n / a - 0.5 for i in range(a)]


def heatmaps(target: np.ndarray, recons: dict[str, np.ndarray], *, shape: tuple[int, int] | None = None,
             errors: dict[str, str] | None = None, height: int = 330) -> go.Figure:
    """The target and each reconstruction side by side, one colour scale: the target's 0.5-99.5
    percentile range (diverging and symmetric around 0 for signed data, else Viridis).

    Arrays are already downsampled for display; ``shape`` is the full matrix's (I, J), used for the
    axis coordinates. ``errors`` (format -> the fit's ``FitInfo.error_text``) adds each format's relative
    error to its subplot title.
    """
    items = [("target W", np.asarray(target))] + [
        (f"{k}" + (f" (error {errors[k]})" if errors and k in errors else ""), np.asarray(v))
        for k, v in recons.items()]
    n = len(items)
    fig = make_subplots(rows=1, cols=n, subplot_titles=[t for t, _ in items], horizontal_spacing=0.02)
    t = np.asarray(target, dtype=np.float64)
    zmin, zmax = (float(v) for v in np.percentile(t, [0.5, 99.5]))  # robust: a few outliers keep their colour
    signed = zmin < 0 < zmax
    if signed:  # signed data: diverging colours, symmetric around 0
        zmax = max(-zmin, zmax)
        zmin = -zmax
    if zmin == zmax:
        zmin, zmax = zmin - 1, zmax + 1
    scale = "RdBu_r" if signed else "Viridis"
    shape = shape or t.shape
    for k, (title, A) in enumerate(items):
        x, y = _axes(shape, A.shape)
        fig.add_trace(go.Heatmap(z=A, x=x, y=y, zmin=zmin, zmax=zmax, colorscale=scale, showscale=k == n - 1,
                                 name=title.split(" ")[0] if k else "target",
                                 colorbar={"thickness": 12, "len": 0.9},
                                 hovertemplate="row %{y:.0f}, col %{x:.0f}<br>%{z:.3g}<extra></extra>"),
                      row=1, col=k + 1)
        fig.update_yaxes(autorange="reversed", row=1, col=k + 1, showticklabels=k == 0, scaleanchor=None)
        fig.update_xaxes(showticklabels=False, row=1, col=k + 1)
    fig.update_annotations(font_size=12)
    fig.update_layout(height=height, margin={"t": 40, "b": 10, "l": 10, "r": 10})
    return fig


def residual_heatmap(residual: np.ndarray, fmt: str, *, shape: tuple[int, int] | None = None,
                     height: int = 330) -> go.Figure:
    """The residual W − Ŵ of one format, diverging colours symmetric around 0."""
    R = np.asarray(residual, dtype=np.float64)
    m = float(np.abs(R).max()) or 1.0
    x, y = _axes(shape or R.shape, R.shape)
    fig = go.Figure(go.Heatmap(z=R, x=x, y=y, zmin=-m, zmax=m, colorscale="RdBu_r", zmid=0, name=f"residual {fmt}",
                               colorbar={"thickness": 12},
                               hovertemplate="row %{y:.0f}, col %{x:.0f}<br>%{z:.3g}<extra></extra>"))
    fig.update_yaxes(autorange="reversed", title="row i")
    fig.update_xaxes(title="column j")
    fig.update_layout(title=f"Residual W − Ŵ ({fmt})", height=height, margin={"t": 40, "b": 10, "l": 10, "r": 10})
    return fig


def convergence(histories: dict[str, list[float]], *, height: int = 330) -> go.Figure:
    """Relative error per ALS sweep of the kept run, log y. A one-entry history (TT-SVD) is a marker."""
    fig = go.Figure()
    for fmt, errs in histories.items():
        if not errs:
            continue
        base = fmt.split(" ")[0]
        ys = [_clip(e) for e in errs]
        if len(errs) == 1:
            fig.add_scatter(x=[0], y=ys, mode="markers", name=f"{fmt} (direct, TT-SVD)" if base == "TT" else fmt,
                            marker={"symbol": _MARKERS.get(base, "circle"), "size": 11,
                                    "color": FORMAT_COLORS.get(base, "#999")},
                            hovertemplate=f"{fmt}: %{{y:.3g}}<extra></extra>")
        else:
            fig.add_scatter(x=list(range(len(errs))), y=ys, mode="lines+markers", name=fmt,
                            line={"color": FORMAT_COLORS.get(base, "#999")}, marker={"size": 5},
                            hovertemplate=f"{fmt}: sweep %{{x}}<br>error %{{y:.4g}}<extra></extra>")
    fig.update_yaxes(type="log", title="relative error", exponentformat="power", dtick=1,
                     minor={"showgrid": True, "gridcolor": "#f0f0f0"})
    fig.update_xaxes(title="ALS sweep (kept start)")
    fig.update_layout(title="ALS convergence", height=height, margin={"t": 40, "b": 10, "l": 10, "r": 10},
                      legend={"orientation": "h", "y": -0.25})
    return fig
