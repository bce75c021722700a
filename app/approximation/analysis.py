"""Reading a run's results: the Pareto front, the noise floor and the page's teaching text.

* :func:`pareto_front` - the points no other point beats on both parameters and error.
* :func:`noise_floor` - the best error expected on a noisy structured target.
* :func:`explain` - the teaching text, built from the numbers of the run being shown.

The records read here are :class:`~app.approximation.run.MainRow` and
:class:`~app.approximation.run.SweepPoint` (any object with their attributes will do).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from btcore import decompose as dec

__all__ = ["pareto_front", "noise_floor", "explain", "precision_text", "TIE", "mode_ranks", "rank_floor",
           "stall_text", "RANK_LIMITED"]

#: A stalled fit within this factor of its format's lowest possible error (:func:`rank_floor`) is limited
#: by its ranks, not by the fit.
RANK_LIMITED = 1.1

#: Relative difference under which two errors are called a tie.
TIE = 0.05
#: Floor for ratios of errors (an exact 0 divides as this).
_FLOOR = 1e-16


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



def _same(a, b) -> bool:
    """Two results tie: both at numerical precision, or errors within :data:`TIE` of each other."""
    if a.at_precision and b.at_precision:
        return True
    return abs(a.rel_error - b.rel_error) <= TIE * max(a.rel_error, b.rel_error)


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


def _structured(target: str, ok: list, noise: float | None) -> list[str]:
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
    mine = next((r for r in ok if r.format == fmt), None)

    def at_floor(r):
        return r.at_precision if not floor else r.rel_error <= 1.5 * floor

    if mine is None:
        out.append(f"**Measured:** {fmt} was not fitted in this run, so it cannot show this.")
    elif mine is best or _same(mine, best):
        ties = [r.format for r in ok if r is not mine and _same(r, mine)]
        verdict = "wins here" if mine is best else "ties for the lowest error"
        s = f"**Measured: {fmt} {verdict}, as expected** ({mine.error_text}"
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
        s = (f"**Measured: {best.format} beats {fmt} here** ({best.error_text} against {mine.error_text}), "
             "unlike the expectation: ")
        if floor is not None and at_floor(mine):
            s += (f"both are at the {'noise floor' if floor else 'numerical precision'}, where what is left is noise "
                  "being fitted, not structure.")
        else:
            s += (f"the size may be too small for the structure ({holder}), or the {fmt} fit stopped in a poorer "
                  "optimum (try the thorough effort).")
        out.append(s)
    return out


def explain(rows: list, sweep: list, target: str, shape: tuple[int, int], *,
            noise: float | None = None) -> str:
    """Markdown that says what this run's numbers show, then what to expect for this kind of target.

    ``rows``: the main fits and ``sweep``: the sweep points, records (:class:`~app.approximation.run.MainRow`,
    :class:`~app.approximation.run.SweepPoint`) with ``format``, ``params``,
    ``rel_error``, ``at_precision`` and ``error_text`` (the fit's :class:`~btcore.decompose.FitInfo`
    fields), the sweep points also ``budget``; ``target``: "gaussian", "bt", "tt", "kernel", "image",
    "trained_dense", "trained_bt", "trained_tt" (weights of a model whose input map is dense, BT or TT)
    or "upload"; ``shape``: (I, J); ``noise``: the relative noise of the "bt" and "tt" targets. For those
    the text states the expectation at that noise level and whether the measured best format agrees.
    """
    ok = sorted((r for r in rows if r.rel_error is not None), key=lambda r: r.rel_error)
    lines = _at_your_setting(ok) + _over_the_sweep(sweep) + _precision_note(rows, sweep)
    if target in _STRUCTURED:
        lines += _structured(target, ok, noise)
    return "\n\n".join(lines + _about_target(target, ok, shape))


def _at_your_setting(ok: list) -> list[str]:
    """The best, the ties and the worst of the main fits (``ok``: sorted by error)."""
    lines = []
    if ok:
        best = ok[0]
        ties = [r.format for r in ok[1:] if _same(r, best)]
        worst = ok[-1]
        s = (f"**At your setting** the lowest error is **{best.format}**: {best.error_text} "
             f"with {best.params:,} parameters")
        if ties:
            s += f"; {', '.join(ties)} tie{'s' if len(ties) == 1 else ''} with it (within {TIE:.0%})"
        if len(ok) > 1 and not _same(worst, best):
            ratio = worst.rel_error / max(best.rel_error, _FLOOR)
            s += f"; {worst.format} is worst at {worst.error_text}"
            if not best.at_precision:
                s += f" ({ratio:,.1f}x the error)" if ratio < 1000 else " (over 1,000x the error)"
        lines.append(s + ".")
    return lines


def _over_the_sweep(sweep: list) -> list[str]:
    """Who wins at each sweep budget, and which formats make the Pareto front."""
    lines = []
    budgets = sorted({p.budget for p in sweep})
    if budgets:
        wins = {}
        for b in budgets:
            pts = [p for p in sweep if p.budget == b and p.rel_error is not None]
            if not pts:
                continue
            low = min(pts, key=lambda p: p.rel_error)
            for p in pts:
                if _same(p, low):
                    wins[p.format] = wins.get(p.format, 0) + 1
        if wins:
            order = sorted(wins, key=lambda f: -wins[f])
            parts = [f"{f} {wins[f]} of {len(budgets)}" for f in order]
            lines.append("**Over the sweep**, best or tied for best at each budget: " + ", ".join(parts) + ".")
        front = pareto_front([(p.params, p.rel_error) for p in sweep])
        fmts = sorted({sweep[i].format for i in front})
        if fmts:
            lines.append(f"The Pareto front (no point has fewer parameters *and* a lower error) is made of "
                         f"{', '.join(fmts)} points.")
    return lines


def precision_text() -> str:
    """The float64 precision limit as the page writes it ("1e-8")."""
    return f"{dec.AT_PRECISION:.0e}".replace("e-0", "e-")


def _precision_note(rows: list, sweep: list) -> list[str]:
    """A note when any error is at float64 precision."""
    lines = []
    if any(r.rel_error is not None and r.at_precision for r in rows + sweep):
        lines.append(f"Errors below {precision_text()} are at float64 precision: differences there mean nothing.")
    return lines


def _about_target(target: str, ok: list, shape: tuple[int, int]) -> list[str]:
    """What this kind of target teaches, and the tall-matrix note."""
    lines = []
    I, J = shape
    tall = max(I, J) >= 8 * min(I, J)
    context = {
        "gaussian": ("**Why nothing fits a random matrix:** i.i.d. entries have no structure; the energy is "
                     "spread evenly over all singular values of every unfolding, so a format with P parameters "
                     "captures little more than a fraction P/(I·J) of it. Keeping P entries exactly would give "
                     "an error of √(1 − P/IJ); every compact format stays close to that, and close to 1. At large "
                     "budgets TT wins or ties (measured on 1024², 69k parameters: BT 0.935, TT 0.940, Tucker 0.957; docs/reference.md)."),
        "kernel": ("**A smooth kernel** has fast-decaying spectra in every unfolding, so every format fits it "
                   "well. On tall matrices BT wins clearly (measured on 57,600 × 256 at ~7k parameters: BT 2.6e-5, "
                   "Tucker 3.3e-4, TT 1.6e-3; docs/reference.md); on square ones TT ties or wins."),
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
        keep = math.sqrt(max(0.0, 1.0 - best.params / max(1, I * J)))
        lines.append(f"Here: keeping {best.params:,} of the {I * J:,} entries exactly gives {keep:.3f}; the best "
                     f"format, {best.format}, reaches {best.error_text}.")
    if tall and target != "kernel":
        lines.append("This matrix is tall (one side ≥ 8x the other): the setting where BT wins most clearly in "
                     "the equal-budget comparisons of docs/reference.md.")
    return lines


# ----------------------------------------------------------------------------------------------
# Stalled fits: the rank's limit or the fit's?
# ----------------------------------------------------------------------------------------------

def mode_ranks(fmt: str, ranks: Sequence[int], blocks: int | None, d: int) -> tuple[int, ...] | None:
    """The largest rank of each mode unfolding (mode k: I_k J_k) a format of these ranks can have.

    Tucker: R_k; BT (a Tucker with a block-diagonal core): N R_k; CP (N rank-one terms): N; TR: the
    product of the two bonds at core k. None for a format without such a bound here (TT).
    """
    if fmt == "Tucker":
        return tuple(int(r) for r in ranks)
    if fmt == "BT":
        return tuple(int(blocks) * int(r) for r in ranks)
    if fmt == "CP":
        return (int(blocks),) * d
    if fmt == "TR":
        r = [int(x) for x in ranks]
        return tuple(r[k - 1] * r[k] for k in range(d))
    return None


def rank_floor(W, in_modes, out_modes, mode_rank: Sequence[int]) -> float:
    """A lower bound on the relative error of any fit whose mode-k unfolding has rank <= ``mode_rank[k]``.

    Mode k of the tensorized W has size I_k J_k; a matrix of rank r is at best the truncated SVD of
    the unfolding, so no fit gets below ``max_k sqrt(sum_{i > r_k} s_i^2) / ||W||`` (Eckart-Young on
    each unfolding). The truncated HOSVD's error is at most sqrt(d) times this bound, so the bound is
    tight up to that factor.
    """
    d = len(in_modes)
    T = np.asarray(W, dtype=np.float64).reshape(tuple(in_modes) + tuple(out_modes))
    T = T.transpose([a for k in range(d) for a in (k, d + k)]).reshape([i * j for i, j in zip(in_modes, out_modes)])
    total = float(np.sum(T * T))
    if total == 0:
        return 0.0
    worst = 0.0
    for k, r in enumerate(mode_rank):
        M = np.moveaxis(T, k, 0).reshape(T.shape[k], -1)
        ev = np.clip(np.linalg.eigvalsh(M @ M.T), 0.0, None)[::-1]  # squared singular values, largest first
        worst = max(worst, float(ev[int(r):].sum()))
    return math.sqrt(worst / total)


#: What the page can change to lower a stalled fit of each format at each effort (controls it has).
_REMEDY = {
    ("BT", "quick"): "The thorough effort (Fit settings: three starts, more iterations) or another seed may lower it.",
    ("BT", "thorough"): "Another seed (other random starts) may lower it.",
    ("TR", "quick"): "The thorough effort (Fit settings: four starts, up to 100 sweeps each) or another seed may "
                     "lower it.",
    ("TR", "thorough"): "Another seed (other random starts) may lower it.",
    ("CP", "quick"): "The thorough effort (Fit settings: up to 100 iterations) may lower it.",
}


def stall_text(fmt: str, error: float, floor: float | None, effort: str, lesson: bool = False) -> str:
    """What the page says about a fit that stopped improving before its first-order test passed.

    ``floor``: :func:`rank_floor` for its ranks (None when not known). Within :data:`RANK_LIMITED` of it
    the ranks are the limit; otherwise the text says what is known and what the page's controls can try,
    without guessing the cause.
    """
    if floor is not None and error <= RANK_LIMITED * floor:
        return (f"{fmt}: the error {error:.4g} is within {RANK_LIMITED - 1:.0%} of the lowest any {fmt} of these "
                f"ranks can reach (at least {floor:.4g}, from the singular values of the mode unfoldings): the ranks "
                f"limit it, not the fit. Larger {fmt} ranks lower it.")
    s = f"{fmt}: the fit stopped improving at {error:.4g} before its first-order test passed"
    s += (f"; any {fmt} of these ranks has an error of at least {floor:.4g}, so part of the gap may be the ranks "
          "and part the fit." if floor is not None else ".")
    remedy = _REMEDY.get((fmt, effort), "")
    if remedy and lesson:  # the seed and Fit settings are hidden there
        remedy += " (The seed and Fit settings are outside the lesson view.)"
    return " ".join(p for p in (s, remedy, "Larger ranks lower it too.") if p)
