"""Fits at parameter budgets: which formats come closest to a budget, and fitting them.

:class:`FitTask` is one planned fit (a format at capped ranks, chosen for a budget or given
explicitly); :func:`fit_task` runs one; :class:`BudgetFit` is its result row. The Approximation page
and :func:`compare_formats` both plan with :func:`budget_tasks` and fit with :func:`fit_task`, so
there is one implementation of "fit at a budget".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..formats import FORMATS as REGISTRY
from ..formats import BTSpec, describe
from ..shapes import check_modes, check_positive_int
from .als import als_memory_bytes
from .bt import cap_bt_ranks, fit_bt
from .fitinfo import FitInfo
from .inputs import as_matrix
from .settings import for_format, tr_options
from .tr import cap_tr_ranks, fit_tr
from .tt import cap_tt_ranks, fit_tt
from .tucker_cp import fit_cp, fit_tucker

__all__ = ["FORMATS", "FitTask", "BudgetFit", "budget_candidates", "budget_tasks", "fit_task", "compare_formats",
           "fit_memory_bytes"]

#: The formats a budget can be spent on: every factorized format of the registry by its label, BT
#: with its special cases Tucker (one block) and CP (Tucker rank 1) after it.
FORMATS = tuple(name for f in REGISTRY.values() if f.factorized
                for name in ((f.label, "Tucker", "CP") if f.key == "bt" else (f.label,)))
#: The registry entry of each name of :data:`FORMATS`.
_ENTRY = {name: REGISTRY["bt" if name in ("Tucker", "CP") else next(k for k, f in REGISTRY.items() if f.label == name)]
          for name in FORMATS}
#: Formats set by one rank per bond (a train or a ring), with their rank caps.
_BONDED = {"TT": cap_tt_ranks, "TR": cap_tr_ranks}


@dataclass(frozen=True)
class FitTask:
    """One planned fit.

    Attributes
    ----------
    format : str
        A name of :data:`FORMATS` ("TT", "BT", "Tucker", "CP", "TR").
    ranks : tuple of int
        Per-mode ranks (capped), or the bond ranks of TT (all d+1) or TR (d, the last closing the ring).
    blocks : int or None
        Blocks N (CP: the CP rank); None for TT and TR.
    params : int
        Parameters of the format.
    rank : int, tuple or None
        The one knob the format was chosen by: R (BT, Tucker; per mode when not uniform), the CP rank
        or the uniform TT / TR rank r; None for a task given by explicit ranks.
    compression : float
        I * J / params.
    budget : int or None
        The budget this task is a candidate for (None: explicit ranks).
    """

    format: str
    ranks: tuple
    blocks: int | None
    params: int
    rank: int | tuple | None = None
    compression: float = 0.0
    budget: int | None = None

    @classmethod
    def from_spec(cls, spec, budget: int | None = None, rank=None) -> "FitTask":
        """The task of a BT/Tucker/CP, TT or TR spec (``rank``: the TT / TR rank it was chosen by)."""
        if isinstance(spec, BTSpec):
            blocks = spec.blocks
            rank = spec.blocks if spec.kind == "CP" else spec.rank
        else:
            blocks = None
        return cls(spec.kind, tuple(spec.ranks), blocks, spec.params, rank, spec.compression, budget)

    @property
    def diff(self) -> int:
        """params - budget (0 without a budget)."""
        return 0 if self.budget is None else self.params - self.budget

    @property
    def key(self) -> tuple:
        """What identifies the fit: (format, ranks, blocks)."""
        return (self.format, self.ranks, self.blocks)

    def spec(self, in_modes, out_modes):
        """The task's format as a spec (no memory limit)."""
        entry = _ENTRY[self.format]
        if self.blocks is None:
            return entry.spec_for(in_modes, out_modes, max_bytes=None, **{entry.controls[0]: self.ranks})
        return entry.spec_for(in_modes, out_modes, max_bytes=None, rank=self.ranks, blocks=self.blocks)

    def label(self, in_modes, out_modes) -> str:
        """The ranks as :func:`btcore.formats.describe` writes them ("R=3, N=2", "ranks 1-4-4-4-1")."""
        return describe(self.spec(in_modes, out_modes))


@dataclass
class BudgetFit:
    """One row of :func:`compare_formats`: the task, the fitted matrix and its :class:`FitInfo`.

    ``info`` and ``matrix`` are None for a skipped task; ``skipped`` then says why.
    """

    task: FitTask
    info: FitInfo | None = None
    matrix: object = None
    skipped: str = ""

    @property
    def format(self) -> str:
        return self.task.format

    @property
    def params(self) -> int:
        return self.task.params if self.info is None else self.info.params

    @property
    def ranks(self) -> tuple:
        return self.task.ranks if self.info is None else self.info.ranks

    @property
    def blocks(self) -> int | None:
        return self.task.blocks if self.info is None else self.info.blocks

    @property
    def rank(self):
        return self.task.rank

    @property
    def compression(self) -> float:
        return self.task.compression

    @property
    def rel_error(self) -> float | None:
        return None if self.info is None else self.info.relative_error

    @property
    def seconds(self) -> float:
        return 0.0 if self.info is None else self.info.seconds

    @property
    def at_precision(self) -> bool:
        return self.info is not None and self.info.at_precision

    @property
    def error_text(self) -> str:
        return self.skipped if self.info is None else self.info.error_text


def _bt_candidates(im, om, budget) -> list[BTSpec]:
    """BT specs (uniform requested rank R, capped per mode) with N blocks around ``budget``."""
    top = max(a * b for a, b in zip(im, om))
    seen = set()
    out = []
    for R in range(1, top + 1):
        ranks, _ = cap_bt_ranks(im, om, R)
        if ranks in seen:
            continue
        seen.add(ranks)
        per = BTSpec(im, om, ranks, 1, max_bytes=None).params  # parameters of one block
        n_lo = max(1, budget // per)
        for N in sorted({n_lo, n_lo + 1}):
            out.append(BTSpec(im, om, ranks, N, max_bytes=None))
        if per > 2 * budget:
            break
    return out



def _bonded_candidates(fmt: str, im, om, budget: int) -> list[FitTask]:
    """TT or TR tasks of uniform rank r = 1, 2, .. (capped per bond) up to twice ``budget``."""
    entry, cap = _ENTRY[fmt], _BONDED[fmt]
    seen, out = set(), []
    for r in range(1, entry.max_uniform_rank(im, om) + 1):
        full, _ = cap(im, om, r)
        if full in seen:
            continue
        seen.add(full)
        spec = entry.spec_for(im, om, max_bytes=None, **{entry.controls[0]: full})
        out.append(FitTask.from_spec(spec, budget, rank=r))
        if spec.params > 2 * budget:
            break
    return out


def budget_candidates(in_modes, out_modes, budget: int, *, formats=FORMATS,
                      per_format: int = 5) -> list[FitTask]:
    """The formats whose parameter counts come closest to ``budget``, for comparisons at equal size.

    For each requested format, up to ``per_format`` candidates sorted by ``|params - budget|``:

    * "BT": all (R, N) pairs with R >= 2 and N >= 2 (ranks capped per mode),
    * "Tucker": N = 1, "CP": R = 1 (rank = N),
    * "TT", "TR": one rank r for every bond (capped where a bond allows less).

    Each :class:`FitTask` has ``format``, ``params``, ``rank`` (R, CP rank or TT rank), ``ranks``
    (per-mode ranks, or all d+1 TT ranks), ``blocks`` (None for TT), ``compression``, ``budget`` and
    ``diff`` (params - budget).
    """
    im = check_modes(in_modes, "in_modes")
    om = check_modes(out_modes, "out_modes")
    if len(im) != len(om):
        raise ValueError(f"in_modes has {len(im)} modes but out_modes has {len(om)}")
    budget = check_positive_int(budget, "budget")
    bad = [f for f in formats if f not in FORMATS]
    if bad:
        raise ValueError(f"formats: unknown {bad}; choose from {sorted(FORMATS)}")
    rows = [FitTask.from_spec(spec, budget) for spec in _bt_candidates(im, om, budget)]
    # Tucker alone at every rank (N = 1), not only near-budget N
    sizes = [a * b for a, b in zip(im, om)]
    for R in range(1, max(sizes) + 1):
        spec = BTSpec(im, om, cap_bt_ranks(im, om, R)[0], 1, max_bytes=None)
        if spec.kind != "Tucker":
            continue
        rows.append(FitTask.from_spec(spec, budget))
        if spec.params > 2 * budget:
            break
    if len(im) > 1:
        for fmt in _BONDED:
            rows += _bonded_candidates(fmt, im, om, budget)
    out = []
    for fmt in formats:
        mine = {}
        for row in rows:
            if row.format == fmt:
                mine[(row.ranks, row.blocks)] = row
        # ties: fewer blocks (larger ranks) first, as in the paper's settings
        out.extend(sorted(mine.values(), key=lambda r: (abs(r.diff), r.blocks or 0, r.params))[:per_format])
    return out


def budget_tasks(in_modes, out_modes, budget: int, *, formats=FORMATS, bt_choices: int = 1) -> list[FitTask]:
    """The fits to run at ``budget``: the ``bt_choices`` BT candidates closest to it and the closest
    one of each other format, in the order of ``formats``."""
    bt_choices = check_positive_int(bt_choices, "bt_choices")
    cands = budget_candidates(in_modes, out_modes, budget, formats=formats, per_format=bt_choices)
    out, taken = [], {f: 0 for f in formats}
    for c in cands:
        if taken[c.format] < (bt_choices if c.format == "BT" else 1):
            taken[c.format] += 1
            out.append(c)
    return out


def fit_memory_bytes(in_modes, out_modes, task: FitTask) -> int:
    """Peak float64 bytes :func:`fit_task` holds for ``task``: the estimate each fit checks before it
    allocates (BT, Tucker, CP: :func:`~btcore.decompose.als.als_memory_bytes`; TR: four copies of the
    tensor, as :func:`~btcore.decompose.tr.fit_tr` checks; TT: three)."""
    sizes = tuple(i * j for i, j in zip(in_modes, out_modes))
    if task.blocks is not None:
        return als_memory_bytes(sizes, tuple(task.ranks), int(task.blocks))
    n = 1
    for m in sizes:
        n *= m
    return 8 * (4 if task.format == "TR" else 3) * n


def fit_task(W, in_modes, out_modes, task: FitTask, *, seed: int = 0, fit_kwargs: dict | None = None,
             progress: Callable[[int, float], None] | None = None,
             should_stop: Callable[[], bool] | None = None):
    """Fit ``task`` to W: TT by TT-SVD, TR by :func:`~btcore.decompose.tr.fit_tr`, Tucker and CP by
    :func:`~btcore.decompose.tucker_cp.fit_tucker` / :func:`~btcore.decompose.tucker_cp.fit_cp`, BT by
    :func:`~btcore.decompose.bt.fit_bt`.

    ``fit_kwargs`` are :func:`fit_bt` keywords (``settings`` and any field of
    :class:`~btcore.decompose.settings.FitSettings`). Tucker and CP run them as
    :func:`~btcore.decompose.settings.for_format` adapts them (HOOI, CP-ALS); TR gets the work budget
    :func:`~btcore.decompose.settings.tr_options` derives from them. ``seed``, ``progress`` and
    ``should_stop`` are passed on. Rank caps are not warned about (the task's ranks are capped
    already). Returns ``(matrix, FitInfo)``.
    """
    if task.format == "TT":
        return fit_tt(W, in_modes, out_modes, task.ranks, warn=False)
    kw = dict(fit_kwargs or {})
    hooks = {"seed": seed, "progress": progress, "should_stop": should_stop, "warn": False}
    if task.format == "Tucker":
        return fit_tucker(W, in_modes, out_modes, task.ranks, **kw, **hooks)
    if task.format == "CP":
        return fit_cp(W, in_modes, out_modes, task.blocks, **kw, **hooks)
    settings = for_format(kw.pop("settings", None), task.format).replace(**kw)
    if task.format == "TR":
        return fit_tr(W, in_modes, out_modes, task.ranks, **tr_options(settings), **hooks)
    return fit_bt(W, in_modes, out_modes, task.ranks, task.blocks, settings=settings, **hooks)


def compare_formats(W, in_modes, out_modes, budget: int, *, formats=FORMATS,
                    seed: int = 0, bt_choices: int = 1, max_cp_rank: int = 2000, fit_kwargs: dict | None = None,
                    progress: Callable[[str, int, float], None] | None = None,
                    should_stop: Callable[[], bool] | None = None) -> list[BudgetFit]:
    """Fit each format at the parameter count closest to ``budget`` and tabulate the results.

    Returns one :class:`BudgetFit` per fit (``format``, ``params``, ``compression``, ``rel_error``,
    ``seconds``, ``rank``, ``ranks``, ``blocks``, ``at_precision``, ``error_text``, ``info``,
    ``matrix``). ``bt_choices`` BT candidates (closest budgets first) are fitted.
    ``progress(format, iteration, rel_error)`` is called during the ALS fits; ``should_stop`` is passed
    on. CP ranks above ``max_cp_rank`` are skipped with a row whose ``rel_error`` is None.
    """
    tasks = budget_tasks(in_modes, out_modes, budget, formats=formats, bt_choices=max(1, bt_choices))
    Wt = as_matrix(W)
    rows = []
    for task in tasks:
        if should_stop is not None and should_stop():
            break
        if task.format == "CP" and task.blocks > max_cp_rank:
            rows.append(BudgetFit(task, skipped=f"skipped: CP rank {task.blocks} > {max_cp_rank}"))
            continue
        cb = None if progress is None else (lambda it, e, _f=task.format: progress(_f, it, e))
        M, info = fit_task(Wt, in_modes, out_modes, task, seed=seed, fit_kwargs=fit_kwargs, progress=cb,
                           should_stop=should_stop)
        rows.append(BudgetFit(task, info, M))
    return rows
