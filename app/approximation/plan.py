"""The Approximation page's inputs as a validated plan of fits (:func:`build_spec`), no Streamlit.

A :class:`RunSpec` lists the fits of one run: the main ones (at the user's budget or ranks) and
those of the sweep over budgets, each a :class:`PlannedFit` around a :class:`btcore.decompose.FitTask`.
Candidates at a budget come from :func:`btcore.decompose.budget_tasks`, the same planning
:func:`btcore.decompose.compare_formats` uses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

import btcore
from btcore import decompose as dec
from btcore.decompose.settings import for_format, tr_options
from btcore.decompose.tr import cap_tr_ranks
from btcore.shapes import MAX_ORDER, format_ints, parse_ints, parse_rank, prod

__all__ = ["MAX_ENTRIES", "MAX_CP_RANK", "EFFORT", "TARGETS", "SpecInputs", "PlannedFit", "RunSpec", "build_spec",
           "candidates", "sweep_budgets", "fit_bytes", "effort_kwargs", "effort_help", "fit_cost"]

#: Largest target fitted here (entries): 4M entries = 32 MiB in float64; fits stay interactive.
MAX_ENTRIES = 1 << 22
MAX_CP_RANK = 2000
#: The fit settings per effort (presets of :class:`btcore.decompose.FitSettings`, by name).
EFFORT = dec.EFFORTS
TARGETS = {
    "bt": "Exact BT (N=2, R=3) + noise",
    "tt": "Exact TT (ranks 4) + noise",
    "kernel": "Smooth kernel",
    "gaussian": "Gaussian random",
    "image": "Image",
    "photo": "Real photo (scikit-image)",
    "digits": "Digits data matrix (scikit-learn, 1,792 x 64)",
    "trained": "Trained model: input-to-hidden weights",
    "upload": "Upload a matrix (.npy / .pt)",
}


#: The formats this page has rank controls for, BT first: the budget sweeps' formats.
PAGE_FORMATS = tuple(f for f in ("BT", "TT", "Tucker", "CP", "TR") if f in dec.FORMATS)

@dataclass
class SpecInputs:
    """What the page's widgets say (texts as typed; parsed and checked by :func:`build_spec`)."""

    in_modes: str
    out_modes: str
    formats: Sequence[str] = PAGE_FORMATS
    mode: str = "parameter budget"     # or "explicit ranks"
    budget: int = 1000
    bt_rank: str = "3"
    blocks: int = 2
    tt_ranks: str = "4"
    tr_ranks: str = "3"
    tucker_rank: str = "3"
    cp_rank: int = 8
    sweep_points: int = 5
    effort: str = "quick"
    bt_choices: int = 2
    target: str = "bt"
    seed: int = 0
    target_kwargs: dict = field(default_factory=dict)
    target_extra: tuple = ()          # what identifies a given matrix (trained run, upload hash)
    explain_as: str | None = None     # the kind of target the teaching text describes
    target_label: str | None = None   # what names this target in the results (an image, a file, a run)


@dataclass(frozen=True)
class PlannedFit:
    """One fit of a run: its role ("main" or "sweep"), the task and its label ("R=3, N=2")."""

    role: str
    task: dec.FitTask
    label: str

    @property
    def budget(self) -> int | None:
        return self.task.budget


@dataclass
class RunSpec:
    """A validated run: the target, its modes, the fits and the keys its results are cached under."""

    key: tuple
    target_key: tuple
    target: str
    explain_as: str
    target_kwargs: dict
    seed: int
    in_modes: tuple
    out_modes: tuple
    tasks: list
    effort: str
    desc: str
    budgets: list
    peak_bytes: int

    def fit_key(self, task: dec.FitTask) -> tuple:
        """The key of one fit in the session's fit cache: target, task, effort and seed."""
        return (self.target_key,) + task.key + (self.effort, self.seed)

    @property
    def main(self) -> list:
        return [t for t in self.tasks if t.role == "main"]


def effort_kwargs(effort: str, fmt: str) -> dict:
    """fit_bt keywords of an effort; Tucker keeps its one (HOSVD) start at either effort."""
    settings = EFFORT[effort]
    return {"settings": settings.replace(restarts=1) if fmt == "Tucker" else settings}


def effort_help() -> str:
    """What each effort does per format, read from the settings the fits really run (the Effort help)."""
    parts = []
    for name, s in EFFORT.items():
        cp, tr = for_format(s, "CP"), tr_options(s)
        bt = (f"BT {s.restarts} start{'s' if s.restarts > 1 else ''}, up to {s.max_iter} ALS sweeps, then up to "
              f"{s.nls_budget} Gauss-Newton iterations where ALS stalls"
              + (f" and up to {s.extra_starts} further starts while it stays stalled" if s.extra_starts else ""))
        parts.append(f"**{name}**: {bt}; CP up to {cp.max_iter} iterations; TR {tr['max_starts']} starts, up to "
                     f"{tr['max_iter']} sweeps each ({tr['sweep_budget']} in all).")
    tucker = {for_format(s, "Tucker").max_iter for s in EFFORT.values()}
    same = (f"Either effort: TT by TT-SVD (direct); Tucker by HOOI from the truncated HOSVD, up to "
            f"{max(tucker)} iterations." if len(tucker) == 1 else "TT by TT-SVD (direct) at either effort.")
    return " ".join(parts) + " " + same + " Every budget counts iterations, so results do not depend on the machine."


#: Seconds per iteration on one thread, measured on 256 x 256 targets: ``overhead + per_entry_rank x (entries x
#: d x the rank factor)``, the rank factor being N R (BT), R (Tucker, CP), r^2 (TR) or r (TT's one SVD). The page
#: rescales them by the times of the fits already done, so only their ratios must hold.
_COST = {"BT": (1e-3, 4.5e-9), "Tucker": (5e-4, 3e-10), "CP": (7e-4, 2.7e-10), "TR": (2e-3, 2e-10),
         "TT": (1e-3, 3e-10)}


def fit_cost(task: dec.FitTask, in_modes, out_modes, effort: str) -> tuple[float, int]:
    """``(seconds, iterations)``: the expected time of one fit on one thread and the iterations it was budgeted.

    A model for the progress bar and its time left, from the work counts: iterations the effort allows
    (BT: screening, ALS and Gauss-Newton; CP and TR their caps; Tucker about 20, as HOOI converges early;
    TT one SVD) times the cost of one on a tensor of this size at these ranks.
    """
    s = EFFORT[effort]
    n, d = prod(in_modes) * prod(out_modes), len(in_modes)
    r = float(np.mean(task.ranks[1:-1] if task.format == "TT" else task.ranks))
    if task.format == "BT":
        its = (s.restarts - 1) * s.screen_iter + s.max_iter + s.nls_budget
        factor = (task.blocks or 1) * r
    elif task.format == "CP":
        its, factor = for_format(s, "CP").max_iter, float(task.blocks)
    elif task.format == "TR":
        its, factor = tr_options(s)["sweep_budget"], r * r
    elif task.format == "Tucker":
        its, factor = 20, r
    else:
        its, factor = 1, r
    overhead, per = _COST.get(task.format, _COST["BT"])
    return its * (overhead + per * n * d * factor), its


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


def fit_bytes(in_modes, out_modes, tasks: Sequence[dec.FitTask]) -> int:
    """Peak float64 bytes of a run's fits on the (prod(in_modes) x prod(out_modes)) matrix.

    The largest of btcore's own estimate for each fit in ``tasks`` (the check each fit makes before
    allocating) and three dense matrices (the page's target, one reconstruction and its residual).
    """
    sizes = tuple(i * j for i, j in zip(in_modes, out_modes))
    # The same estimate each fit checks, so the page refuses exactly what a fit would, before the worker starts.
    fits = [dec.fit_memory_bytes(in_modes, out_modes, t) for t in tasks]
    return max([8 * 3 * prod(sizes)] + fits)


def candidates(in_modes, out_modes, budget: int, role: str, formats, bt_choices: int) -> list[PlannedFit]:
    """Fits for the formats closest to ``budget``: ``bt_choices`` BT candidates, one of each other format.

    The selection is btcore's (:func:`btcore.decompose.budget_tasks`). The page does not call
    ``compare_formats`` itself: it fits a candidate shared by several budgets once, reuses the
    session's fit cache, and reports progress over the whole run.
    """
    tasks = dec.budget_tasks(in_modes, out_modes, budget, formats=tuple(formats), bt_choices=int(bt_choices))
    return [PlannedFit(role, t, t.label(in_modes, out_modes)) for t in tasks]


def _modes(inp: SpecInputs, W_shape) -> tuple[tuple, tuple]:
    """The parsed modes, checked against the order limit, a given matrix and the page's size limit."""
    im = parse_ints(inp.in_modes, "input modes")
    om = parse_ints(inp.out_modes, "output modes")
    if len(im) != len(om):
        raise ValueError(f"input modes have {len(im)} entries but output modes {len(om)}; both need the same order d")
    if len(im) > MAX_ORDER:
        raise ValueError(f"order d = {len(im)} is above the supported maximum {MAX_ORDER}")
    I, J = prod(im), prod(om)
    if W_shape is not None and tuple(W_shape) != (I, J):
        raise ValueError(f"the matrix is {W_shape[0]:,} x {W_shape[1]:,} but the modes give {I:,} x {J:,}; "
                         "choose modes whose products are the matrix's sizes (button below)")
    if I * J > MAX_ENTRIES:
        raise ValueError(f"{I:,} x {J:,} = {I * J:,} entries ({btcore.format_bytes(8 * I * J)} in float64) is above "
                         f"this page's limit of {MAX_ENTRIES:,} entries, which keeps fits interactive; choose smaller "
                         "modes, or call btcore.fit_bt from a script for larger matrices")
    if not inp.formats:
        raise ValueError("choose at least one format")
    bonded = [f for f in ("TT", "TR") if f in inp.formats]
    if len(im) == 1 and bonded:
        raise ValueError(f"order d = 1 is a plain matrix: {' and '.join(bonded)} need"
                         f"{'s' if len(bonded) == 1 else ''} at least 2 modes; use d >= 2")
    return im, om


def _explicit_tasks(inp: SpecInputs, im, om) -> list[PlannedFit]:
    """The main fits at the ranks typed in, each checked to compress something."""
    dense = prod(im) * prod(om)
    R = parse_rank(inp.bt_rank, "BT rank")
    tt = parse_rank(inp.tt_ranks, "TT ranks")
    tk = parse_rank(inp.tucker_rank, "Tucker rank")
    ring = parse_rank(inp.tr_ranks, "TR ranks")
    specs = {"BT": lambda: btcore.BTSpec(im, om, R, int(inp.blocks)), "TT": lambda: btcore.TTSpec(im, om, tt),
             "Tucker": lambda: btcore.tucker_spec(im, om, tk), "CP": lambda: btcore.cp_spec(im, om, int(inp.cp_rank)),
             "TR": lambda: btcore.TRSpec(im, om, cap_tr_ranks(im, om, ring)[0])}
    out = []
    for fmt in inp.formats:
        try:
            s = specs[fmt]()
        except ValueError as exc:
            raise ValueError(f"{fmt}: {exc}") from None
        if s.params >= dense:
            raise ValueError(f"{fmt} with these ranks has {s.params:,} parameters, not fewer than the dense "
                             f"{dense:,}: the ranks are too large to compress anything; lower them")
        if fmt == "TT":
            ranks, n_blocks = dec.cap_tt_ranks(im, om, tt)[0], None
        elif fmt == "TR":
            ranks, n_blocks = s.ranks, None
        else:
            ranks, n_blocks = dec.cap_bt_ranks(im, om, s.ranks)[0], s.blocks
        task = dec.FitTask(fmt, tuple(ranks), n_blocks, s.params, compression=dense / s.params)
        out.append(PlannedFit("main", task, task.label(im, om)))
    return out


def build_spec(inp: SpecInputs, W_shape: tuple[int, int] | None = None) -> RunSpec:
    """The run the inputs ask for, or a ValueError that names the field and the fix.

    ``W_shape``: the shape of a given matrix (trained weights, an upload), which the modes must match.
    """
    im, om = _modes(inp, W_shape)
    I, J = prod(im), prod(om)
    dense = I * J
    if inp.mode == "parameter budget":
        center = int(inp.budget)
        if center >= dense:
            raise ValueError(f"a budget of {center:,} parameters is not below the dense {dense:,}; nothing to "
                             "compress. Choose a smaller budget")
        tasks = candidates(im, om, center, "main", inp.formats, inp.bt_choices)
    else:
        tasks = _explicit_tasks(inp, im, om)
        center = int(np.median([t.task.params for t in tasks]))
    budgets = sweep_budgets(center, dense, int(inp.sweep_points))
    if inp.mode == "parameter budget" and budgets and center not in budgets:
        budgets = sorted(budgets + [center])
    for b in budgets:  # fits shared with the main ones are done once (the worker de-duplicates)
        tasks += [t for t in candidates(im, om, b, "sweep", inp.formats, inp.bt_choices)
                  if not (t.task.format == "CP" and t.task.blocks > MAX_CP_RANK)]
    cp_big = [t for t in tasks if t.task.format == "CP" and t.role == "main" and t.task.blocks > MAX_CP_RANK]
    if cp_big:
        raise ValueError(f"CP rank {cp_big[0].task.blocks:,} is above {MAX_CP_RANK:,} (CP at large rank is slow); "
                         "lower the budget or drop CP")
    peak = fit_bytes(im, om, [t.task for t in tasks])
    btcore.check_allocation(peak, f"fitting a {I:,} x {J:,} matrix", "choose smaller modes or a smaller budget")
    target_key = (inp.target, int(inp.seed), im, om, tuple(sorted(inp.target_kwargs.items())), inp.target_extra)
    size_desc = (f"budget {center:,}" if inp.mode == "parameter budget" else
                 "ranks " + ", ".join(f"{t.task.format} {t.label}" for t in tasks if t.role == "main"))
    what = TARGETS[inp.target] + (f": {inp.target_label}" if inp.target_label else "")
    desc = f"{what}, {I:,} x {J:,} ({format_ints(im)} -> {format_ints(om)}), {size_desc}"
    key = (target_key, tuple(inp.formats), inp.mode, int(inp.bt_choices),
           tuple(t.task.key + (t.role,) for t in tasks), tuple(budgets), inp.effort, inp.target_label)
    return RunSpec(key=key, target_key=target_key, target=inp.target, explain_as=inp.explain_as or inp.target,
                   target_kwargs=dict(inp.target_kwargs), seed=int(inp.seed), in_modes=im, out_modes=om, tasks=tasks,
                   effort=inp.effort, desc=desc, budgets=budgets, peak_bytes=peak)
