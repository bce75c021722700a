"""The record every fit returns (:class:`FitInfo`), its statuses and the error thresholds it reports by.

All fits return ``(matrix, info)``: a :class:`~btcore.BTMatrix` or :class:`~btcore.TTMatrix` of torch
tensors and a :class:`FitInfo`.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

__all__ = ["FitInfo", "AT_PRECISION", "STATUSES", "EXACT_BELOW", "StopCheck"]

#: Values of :attr:`FitInfo.status`.
STATUSES = ("converged", "stalled", "max_iter", "stopped", "time_limit")
#: Relative errors below this are "at numerical precision" (float64): differences between formats
#: there mean nothing.
AT_PRECISION = 1e-8
#: Gram-formula errors below this are recomputed from the explicit residual: the Gram formula
#: ||T||^2 - 2<B, C> + <C, A C> loses about 1e-13 absolute to rounding on tensors of 1e6-1e7 entries.
EXACT_BELOW = 1e-3



# ----------------------------------------------------------------------------------------------
# Result record
# ----------------------------------------------------------------------------------------------

@dataclass
class FitInfo:
    """What a fit did (read its attributes: ``info.relative_error``; :meth:`to_dict` for a plain dict).

    Attributes
    ----------
    format : str
        "BT", "Tucker", "CP" or "TT".
    method : str
        What ran: "ALS", "NLS", "ALS+NLS" (ALS starts handed over to Gauss-Newton), "TT-SVD" or "exact"
        (:meth:`btcore.BTLinear.from_dense` at full rank: identity factors, no fit).
    relative_error : float
        Final ||W - M|| / ||W||, computed from the explicit residual when small.
    errors : list of float
        Relative error per iteration of the kept run; ``errors[0]`` is the start, and the list never
        increases. The last entry equals ``relative_error`` (exact); entries of sweeps on large
        tensors above 1e-6 come from Gram formulas (about 1e-12 absolute in the squared error).
        TT-SVD has one entry.
    iterations : int
        ALS sweeps of the kept run (0 for TT-SVD).
    total_iterations : int
        Sweeps over all starts (screening included).
    seconds : float
        Wall time of the whole fit.
    converged : bool
        ``status == "converged"``: the error is at numerical precision, or the run ended on its own
        stopping test with the error no longer falling and the gradient norm of 0.5 ||W - M||^2 below
        ``gtol`` ||W||^2. Never for a run cut by a budget (sweeps, iterations, time); direct methods
        (TT-SVD) are converged by construction. A first-order point can be a local minimum:
        "converged" says the fit stopped for the right reason, not that no lower error exists.
    status : str
        One of :data:`STATUSES`: "converged"; "stalled" (the error stopped falling while the gradient is
        not small: a swamp or a poor local minimum; more restarts or ``method="nls"`` may help);
        "max_iter" (a budget of sweeps or iterations ended the fit before its stopping test passed);
        "stopped" (``should_stop``); "time_limit" (the wall-clock safety cap ended it: not reproducible).
    reason : str
        The detailed stop reason: "first-order", "at numerical precision", "stalled", "max_iter",
        "stopped", "time_limit" or "direct" (TT-SVD, and the exact full-rank BT copy).
    reproducible : bool
        Equal inputs and seed give a bit-identical result: False only for a fit cut by its
        wall-clock ``time_limit``.
    phases : list of (str, int, int)
        (method, first, last) per phase of the kept run: ``errors[first..last]`` were made by
        ``method`` ("ALS" or "NLS"), ``errors[first]`` being the phase's start.
    grad_norm : float
        ||gradient of 0.5 ||W - M||^2|| / ||W||^2 at the result (NaN when not computed: at numerical
        precision, or a direct method).
    at_precision : bool
        ``relative_error`` < :data:`AT_PRECISION`: the fit is exact to float64 precision.
    ranks, blocks, params
        The fitted format (ranks after capping; TT: all d+1 ranks; blocks None for TT).
    spec : BTSpec or TTSpec or None
        The fitted format as a spec (the same ranks and blocks), for describing the result
        (:func:`btcore.formats.describe`) without rebuilding it; None for a record made by hand.
    requested_ranks : tuple
        The ranks asked for, normalised (per mode for BT; all d+1 for TT) but not capped.
    notes : list of str
        Messages for the user (capped ranks, ...).
    start_kinds, start_errors : list
        The starts that were screened ("hosvd"/"random") and their errors after screening.
    chosen_start : int
        Index of the start that was continued.
    """

    format: str
    method: str
    relative_error: float
    errors: list = field(default_factory=list)
    iterations: int = 0
    total_iterations: int = 0
    seconds: float = 0.0
    converged: bool = False
    reason: str = ""
    status: str = "converged"
    at_precision: bool = False
    ranks: tuple = ()
    blocks: int | None = None
    params: int = 0
    requested_ranks: tuple = ()
    notes: list = field(default_factory=list)
    start_kinds: list = field(default_factory=list)
    start_errors: list = field(default_factory=list)
    chosen_start: int = 0
    spec: object = None
    phases: list = field(default_factory=list)
    grad_norm: float = math.nan
    reproducible: bool = True

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def history(self) -> list:
        """The error per iteration (an alias of :attr:`errors`, aligned with :attr:`phases`)."""
        return self.errors

    @property
    def error_text(self) -> str:
        """The final error for display ("at numerical precision" when below :data:`AT_PRECISION`)."""
        if self.at_precision:
            return f"{self.relative_error:.1e} (at numerical precision)"
        if self.status == "stalled":
            return f"{self.relative_error:.4g} (stalled: more restarts may lower it)"
        return f"{self.relative_error:.4g}"


class StopCheck:
    """Whether a running fit must end: ``should_stop`` said so, or the wall-clock safety cap
    ``time_limit`` (seconds from ``t0``, None for none) passed. Once True it stays True;
    ``timed_out`` tells the cap apart (such a result is not reproducible)."""

    def __init__(self, should_stop: Callable[[], bool] | None, time_limit: float | None, t0: float):
        self.should_stop = should_stop
        self.deadline = None if time_limit is None else t0 + time_limit
        self.stopped = self.timed_out = False

    def stop(self) -> bool:
        """True once ``should_stop`` said so or the wall-clock safety cap (if any) passed."""
        if not self.stopped and self.should_stop is not None and self.should_stop():
            self.stopped = True
        if not self.stopped and self.deadline is not None and time.perf_counter() > self.deadline:
            self.stopped = self.timed_out = True
        return self.stopped
