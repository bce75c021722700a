"""Figures of the Approximation page, unit-tested without a UI.

* :func:`error_vs_params` - log-log error vs parameters, one curve per format, Pareto front marked.
* :func:`heatmaps` / :func:`residual_heatmap` - target and reconstructions side by side; a residual.
* :func:`convergence` - relative error per ALS sweep (TT-SVD: one direct point).
* :func:`advice_front` - every candidate of :func:`btcore.suggest_formats`, its front and the suggestion.

The analysis behind them (Pareto front, teaching text) is :mod:`app.approximation.analysis`.
"""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from btcore import decompose as dec

from .analysis import pareto_front
from app.charts import FORMAT_COLORS, YOUR_MARKERS, value_axis

__all__ = ["error_vs_params", "heatmaps", "grey_images", "panel_titles", "residual_heatmap", "convergence", "advice_front", "decade_axis", "PARETO_TRACE",
           "SUGGESTED_TRACE"]

#: Floor for plotting errors on a log axis (an exact 0 is drawn here).
_FLOOR = 1e-16
PARETO_TRACE = "Pareto front"
SUGGESTED_TRACE = "suggested"
_MARKERS = {"BT": "circle", "TT": "square", "Tucker": "diamond", "CP": "triangle-up", "TR": "hexagon"}


# ----------------------------------------------------------------------------------------------
# Figures
# ----------------------------------------------------------------------------------------------

def _clip(e):
    return None if e is None else max(float(e), _FLOOR)


_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def decade_axis(axis: dict, values) -> dict:
    """``axis`` (plotly axis settings) with a log axis's decades labelled "10⁻²" in full-size text.

    Plotly's ``exponentformat="power"`` draws the exponent at 70% of the tick font (10.5 px at 15 px),
    unreadable on a projector; the labels here are written with Unicode superscripts at the tick font's
    size. Other axes are returned unchanged.
    """
    vals = [v for v in (_clip(x) for x in values) if v is not None]
    if axis.get("type") != "log" or not vals:
        return axis
    first, last = math.floor(math.log10(min(vals))), math.ceil(math.log10(max(vals)))
    step = int(axis.get("dtick", 1) or 1)
    ks = list(range(first, last + 1, step))
    out = {k: v for k, v in axis.items() if k != "exponentformat"}
    return out | {"tickmode": "array", "tickvals": [10.0 ** k for k in ks], "ticktext": [f"10{str(k).translate(_SUPERSCRIPT)}" for k in ks]}


def error_vs_params(sweep: list, *, main: list | None = None, dense: int | None = None,
                    reference: bool = False, height: int = 430) -> go.Figure:
    """Relative error vs parameters, both axes log: one line per format from the sweep points.

    ``sweep``: :class:`~app.approximation.run.SweepPoint` records (``format``, ``params``,
    ``rel_error`` (None: skipped), ``label``). The Pareto front
    over all points is a black dashed step line through ringed markers (trace ``"Pareto front"``).
    ``main``: the main fits (:class:`~app.approximation.run.MainRow`), drawn as stars. ``dense``: draws a vertical line at I·J.
    ``reference``: adds the curve √(1 − P/IJ) of keeping P entries exactly (needs ``dense``).
    The region below 1e-8 (float64 precision) is shaded when any error falls there.
    """
    fig = go.Figure()
    pts = [p for p in sweep if p.rel_error is not None]
    for fmt in [f for f in dec.FORMATS if any(p.format == f for p in pts)] + \
               sorted({p.format for p in pts} - set(dec.FORMATS)):
        mine = sorted((p for p in pts if p.format == fmt), key=lambda p: p.params)
        fig.add_scatter(
            x=[p.params for p in mine], y=[_clip(p.rel_error) for p in mine], mode="lines+markers", name=fmt,
            line={"color": FORMAT_COLORS.get(fmt, "#999"), "width": 2.5},
            marker={"symbol": _MARKERS.get(fmt, "circle"), "size": 9},
            customdata=[[p.label or fmt] for p in mine],
            hovertemplate="%{customdata[0]}<br>%{x:,} parameters<br>relative error %{y:.3g}<extra></extra>",
        )
    front = pareto_front([(p.params, p.rel_error) for p in pts])
    if front:
        fp = [pts[i] for i in front]
        xs, ys = [], []
        for k, p in enumerate(fp):  # step line: the best error available at each parameter count
            if k:
                xs.append(p.params)
                ys.append(_clip(fp[k - 1].rel_error))
            xs.append(p.params)
            ys.append(_clip(p.rel_error))
        fig.add_scatter(x=xs, y=ys, mode="lines", name=PARETO_TRACE, line={"color": "black", "dash": "dash", "width": 1.5},
                        hoverinfo="skip", legendgroup="pareto")
        fig.add_scatter(x=[p.params for p in fp], y=[_clip(p.rel_error) for p in fp], mode="markers",
                        name="on the front", showlegend=False, legendgroup="pareto",
                        marker={"size": 17, "color": "rgba(0,0,0,0)", "line": {"color": "black", "width": 2}},
                        customdata=[[p.format] for p in fp],
                        hovertemplate="Pareto: %{customdata[0]}<br>%{x:,} parameters, error %{y:.3g}<extra></extra>")
    # "your size" markers: distinct shapes drawn largest first, so near-equal points stay visible
    for r in sorted((r for r in main or [] if r.rel_error is not None),
                    key=lambda r: -YOUR_MARKERS.get(r.format, {"size": 12})["size"]):
        style = YOUR_MARKERS.get(r.format, {"symbol": "star", "size": 12})
        fig.add_scatter(x=[r.params], y=[_clip(r.rel_error)], mode="markers", name=f"your {r.format}",
                        showlegend=True, legendgroup="yours",
                        marker={**style, "color": FORMAT_COLORS.get(r.format, "#999")},
                        hovertemplate=f"your {r.format}<br>%{{x:,}} parameters<br>error %{{y:.3g}}<extra></extra>")
    if reference and dense and pts:
        lo = min(p.params for p in pts)
        hi = max(p.params for p in pts)
        xs = np.geomspace(lo, hi, 30)
        fig.add_scatter(x=xs.tolist(), y=[math.sqrt(max(0.0, 1 - x / dense)) for x in xs], mode="lines",
                        name="keep P entries", line={"color": "#7f7f7f", "dash": "dot"},
                        hovertemplate="keep %{x:,.0f} entries exactly<br>error %{y:.3f}<extra></extra>")
    if pts and min(_clip(p.rel_error) for p in pts) < dec.AT_PRECISION:
        fig.add_hrect(y0=_FLOOR, y1=dec.AT_PRECISION, fillcolor="#bbbbbb", opacity=0.25, line_width=0,
                      annotation_text="numerical precision", annotation_position="bottom left",
                      annotation_font_size=12)
    xs_all = [p.params for p in pts] + [r.params for r in (main or []) if r.rel_error is not None]
    ticks = _ticks_125(min(xs_all), max(xs_all)) if xs_all else []
    fig.update_xaxes(type="log", title="parameters" + (f" (dense: {dense:,})" if dense else ""),
                     tickvals=ticks, ticktext=[_si(t) for t in ticks], showgrid=True)
    ys = [_clip(p.rel_error) for p in pts] + [_clip(r.rel_error) for r in (main or []) if r.rel_error is not None]
    fig.update_yaxes(title="relative error ‖W − Ŵ‖ / ‖W‖", **decade_axis(value_axis(ys), ys))
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


def panel_titles(recons, errors: dict[str, str] | None) -> list[str]:
    """Subplot titles: "target W", then each format with its error on a second line, so titles of
    narrow panels side by side never run into each other."""
    return ["target W"] + [k + (f"<br>error {errors[k]}" if errors and k in errors else "") for k in recons]


#: Linear black-to-white: a pixel's grey level is its value (plotly's "gray" is not linear).
GREY = [[0.0, "rgb(0, 0, 0)"], [1.0, "rgb(255, 255, 255)"]]
#: Top margin of the side-by-side panels: room for two-line titles.
_TITLES_TOP = 64


def grey_images(target: np.ndarray, recons: dict[str, np.ndarray], *, shape: tuple[int, int] | None = None,
                errors: dict[str, str] | None = None, height: int = 360) -> go.Figure:
    """A picture and each format's reconstruction beside it, as grey images on one scale.

    Black is 0 and white 1 (the pictures' range; a reconstruction's overshoot is clipped by the scale),
    every panel has equal aspect (one pixel is square) and no smoothing between pixels.
    ``errors`` as in :func:`heatmaps`.
    """
    items = list(zip(panel_titles(recons, errors), [np.asarray(target)] + [np.asarray(v) for v in recons.values()]))
    n = len(items)
    fig = make_subplots(rows=1, cols=n, subplot_titles=[t for t, _ in items], horizontal_spacing=0.03)
    shape = shape or np.asarray(target).shape
    for k, (title, A) in enumerate(items):
        x, y = _axes(shape, A.shape)
        fig.add_trace(go.Heatmap(z=A, x=x, y=y, zmin=0.0, zmax=1.0, colorscale=GREY, showscale=False,
                                 zsmooth=False, name=title.split("<br>")[0],
                                 hovertemplate="row %{y:.0f}, col %{x:.0f}<br>%{z:.3f}<extra></extra>"),
                      row=1, col=k + 1)
        axis = "x" if k == 0 else f"x{k + 1}"
        fig.update_yaxes(autorange="reversed", scaleanchor=axis, scaleratio=1, constrain="domain",
                         showticklabels=False, row=1, col=k + 1)
        fig.update_xaxes(showticklabels=False, constrain="domain", row=1, col=k + 1)
    fig.update_annotations(font_size=12)
    fig.update_layout(height=height, margin={"t": _TITLES_TOP, "b": 10, "l": 10, "r": 10},
                      plot_bgcolor="white")
    return fig


def heatmaps(target: np.ndarray, recons: dict[str, np.ndarray], *, shape: tuple[int, int] | None = None,
             errors: dict[str, str] | None = None, height: int = 330) -> go.Figure:
    """The target and each reconstruction side by side, one colour scale: the target's 0.5-99.5
    percentile range (diverging and symmetric around 0 for signed data, else Viridis).

    Arrays are already downsampled for display; ``shape`` is the full matrix's (I, J), used for the
    axis coordinates. ``errors`` (format -> the fit's ``FitInfo.error_text``) adds each format's relative
    error to its subplot title.
    """
    items = list(zip(panel_titles(recons, errors), [np.asarray(target)] + [np.asarray(v) for v in recons.values()]))
    n = len(items)
    fig = make_subplots(rows=1, cols=n, subplot_titles=[t for t, _ in items], horizontal_spacing=0.03)
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
                                 name=title.split("<br>")[0] if k else "target",
                                 colorbar={"thickness": 12, "len": 0.9},
                                 hovertemplate="row %{y:.0f}, col %{x:.0f}<br>%{z:.3g}<extra></extra>"),
                      row=1, col=k + 1)
        fig.update_yaxes(autorange="reversed", row=1, col=k + 1, showticklabels=k == 0, scaleanchor=None)
        fig.update_xaxes(showticklabels=False, row=1, col=k + 1)
    fig.update_annotations(font_size=12)
    fig.update_layout(height=height, margin={"t": _TITLES_TOP, "b": 10, "l": 10, "r": 10})
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


#: How the convergence chart names the phases of a fit.
PHASE_NAMES = {"ALS": "ALS sweeps", "NLS": "Gauss-Newton (NLS)"}
_PHASE_FILL = {"NLS": "rgba(255, 127, 14, 0.13)"}


def convergence(histories: dict[str, list[float]], *, phases: dict[str, list] | None = None,
                height: int = 330) -> go.Figure:
    """Relative error per iteration of the kept run, log y. A one-entry history (TT-SVD) is a marker.

    ``phases`` (format -> FitInfo.phases, ``(method, first, last)``) shades the iterations a
    non-ALS phase (Gauss-Newton) made, for the first format that has more than one phase, and
    labels each shaded band with the phase's method.
    """
    fig = go.Figure()
    shaded = next((f for f, ph in (phases or {}).items() if len(ph) > 1 and histories.get(f)), None)
    for method, first, last in (phases or {}).get(shaded, []):
        if method in _PHASE_FILL:
            fig.add_vrect(x0=first, x1=max(last, first + 0.5), fillcolor=_PHASE_FILL[method], line_width=0,
                          layer="below", annotation_text=f"{shaded}: {PHASE_NAMES.get(method, method)}",
                          annotation_position="top left", annotation_font_size=12)
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
    all_errs = [e for errs in histories.values() for e in (errs or [])]
    fig.update_yaxes(title="relative error", minor={"showgrid": True, "gridcolor": "#f0f0f0"},
                     **decade_axis({"type": "log", "dtick": 1}, all_errs))
    fig.update_xaxes(title="iteration of the kept start (ALS sweep or Gauss-Newton step)" if shaded else
                     "ALS sweep (kept start)")
    fig.update_layout(title="Convergence" if shaded else "ALS convergence", height=height, margin={"t": 40, "b": 10, "l": 10, "r": 10},
                      legend={"orientation": "h", "y": -0.25})
    return fig


def advice_front(df, *, height: int = 420) -> go.Figure:
    """Every candidate of :func:`btcore.suggest_formats` (faint, by format), the Pareto front (a step
    line) and the suggested one (``df.attrs["recommended"]``, a large ringed star): log-x parameters,
    errors on :func:`~app.charts.value_axis`."""
    fig = go.Figure()
    text = lambda r: (f"{r.format} {'x'.join(map(str, r.in_modes))} → {'x'.join(map(str, r.out_modes))}, "  # noqa: E731
                      f"ranks {'-'.join(map(str, r.ranks))}" + ("" if r.blocks is None else f", N={r.blocks}"))
    for fmt in [f for f in dec.FORMATS if (df["format"] == f).any()]:
        mine = df[df["format"] == fmt]
        fig.add_scatter(x=list(mine["params"]), y=[_clip(e) for e in mine["error"]], mode="markers", name=fmt,
                        marker={"symbol": _MARKERS.get(fmt, "circle"), "size": 7, "opacity": 0.45,
                                "color": FORMAT_COLORS.get(fmt, "#999")},
                        customdata=[[text(r)] for r in mine.itertuples()],
                        hovertemplate="%{customdata[0]}<br>%{x:,} parameters, error %{y:.4g}<extra></extra>")
    front = df[df["pareto"]]
    if len(front):
        xs, ys = [], []
        for k, (p, e) in enumerate(zip(front["params"], front["error"])):
            if k:
                xs.append(p)
                ys.append(ys[-1])
            xs.append(p)
            ys.append(_clip(e))
        fig.add_scatter(x=xs, y=ys, mode="lines", name=PARETO_TRACE, hoverinfo="skip",
                        line={"color": "black", "dash": "dash", "width": 1.5})
    idx = df.attrs.get("recommended")
    if idx is not None:
        r = df.loc[idx]
        fig.add_scatter(x=[int(r["params"])], y=[_clip(r["error"])], mode="markers", name=SUGGESTED_TRACE,
                        marker={"symbol": "star", "size": 22, "color": FORMAT_COLORS.get(r["format"], "#999"),
                                "line": {"width": 2, "color": "black"}},
                        hovertemplate=f"suggested: {text(r)}<br>%{{x:,}} parameters, error %{{y:.4g}}<extra></extra>")
    xs_all = list(df["params"])
    ticks = _ticks_125(min(xs_all), max(xs_all)) if xs_all else []
    budget = df.attrs.get("budget")
    fig.update_xaxes(type="log", title="parameters" + (f" (budget {budget:,})" if budget else ""), tickvals=ticks,
                     ticktext=[_si(t) for t in ticks], showgrid=True)
    fig.update_yaxes(title="relative error", **value_axis([_clip(e) for e in df["error"]]))
    fig.update_layout(title="Suggest: every candidate and the front", height=height,
                      margin={"t": 40, "b": 10, "l": 10, "r": 10}, legend={"orientation": "h", "y": -0.18})
    return fig
