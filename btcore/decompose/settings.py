"""How a Block-Term fit is run: its settings (:class:`FitSettings`), the named effort presets, and the
stopping rules of its solvers (:class:`StoppingRules`) in one place.

A preset is a :class:`FitSettings` instance. The page's efforts (:data:`EFFORTS`), the advisor's
screening and full fits (:data:`ADVISOR_SCREEN`, :data:`ADVISOR_FULL`) and the API's default
(:data:`DEFAULT`) all live here: adding an effort preset means adding one entry to :data:`EFFORTS`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..shapes import check_choice, check_positive_int
from .inputs import check_nonneg

__all__ = ["FitSettings", "StoppingRules", "STOPPING", "DEFAULT", "EFFORTS", "ADVISOR_SCREEN", "ADVISOR_FULL",
           "error_fall", "for_format", "tr_options"]


@dataclass(frozen=True)
class FitSettings:
    """Settings of :func:`~btcore.decompose.fit_bt` (validated on construction; immutable).

    Parameters
    ----------
    method : {"auto", "als", "nls"}
        "als": joint ALS from ``restarts`` starts. "nls": Gauss-Newton (Levenberg-Marquardt) on all
        factors and cores, from the algebraic start where it applies (N >= 2 and two modes with
        N R_k <= I_k J_k), else from the best of ``restarts`` short ALS starts. "auto": ALS starts (the
        last one algebraic where it applies); a run that ends without meeting the first-order test
        (an ALS swamp: the error creeping down far from its optimum) is handed to Gauss-Newton, and
        up to ``extra_starts`` other starts are tried while that stalls.
    restarts : int
        Number of ALS starts screened: with ``init="auto"`` the first is HOSVD-based and the others random
        orthonormal (a single start is random unless N = 1); ``init="random"`` or ``"hosvd"`` forces the
        kind of the first start.
    init : {"auto", "random", "hosvd"}
        The kind of the first start.
    screen_iter : int
        Sweeps per start before the best start is chosen (when there are several starts, or with "nls").
    max_iter : int
        Largest number of ALS sweeps of the kept run (screening included).
    tol : float
        ALS ends a run when a sweep lowers the relative error by less than ``tol`` times its value. This
        alone is not convergence (see ``gtol``).
    gtol : float
        First-order tolerance: the fit is "converged" when the gradient norm of 0.5 ||W - M||^2 is below
        ``gtol * ||W||^2`` (or the error is at numerical precision); otherwise "stalled" or "max_iter".
    ridge : float
        Relative Tikhonov term of the least-squares systems (keeps near-singular systems solvable).
    cg_iter : int
        Conjugate-gradient iterations per sweep of the joint core solve (used when N * prod R > 768).
    compress : bool
        Fit on a Tucker compression of the tensor to ranks min(I_k J_k, (1 + oversample) N R_k)
        first (when that at least halves it), then refine on the full tensor with ALS until a sweep
        lowers the error by less than ``refine_tol`` (relative), for at most ``refine_iter`` sweeps.
    oversample : float
        Extra compression rank, as a fraction of N R_k (at least 2).
    refine_iter : int
        Largest number of ALS sweeps on the full tensor after the compressed fit (0: none).
    refine_tol : float
        The refinement on the full tensor ends when a sweep lowers the relative error by less than
        ``refine_tol`` times its value (the compressed fit's own tolerance is coarse: its floor is the
        energy outside the compression, and on real targets most of the remaining gain is here).
    nls_iter : int
        Gauss-Newton iterations per Gauss-Newton run.
    nls_cg_iter : int
        Conjugate-gradient iterations per Gauss-Newton step (when the Gramian is not assembled). In
        a swamp the damped system is ill-conditioned and CG rarely converges within 25 iterations:
        inexact steps at 10 reached the same exact recoveries on the hard shapes of bench/nls.py at
        1.2-3x less CPU time.
    nls_budget : int
        Gauss-Newton iterations of all runs from the screened starts together ("auto": at most as
        many as the ALS sweeps done before, and at least ``nls_iter``).
    keep_iter : int
        "auto": further Gauss-Newton iterations for a run whose budget ran out while it was still
        converging fast (its error fell tenfold over its last 10 iterations, as on an exact structure).
    extra_starts : int
        "auto": further random starts (ALS, then Gauss-Newton where that also ends in a swamp) while the
        best run is still in a swamp after Gauss-Newton. They buy exact recoveries on hard shapes.
    extra_nls_iter : int
        Gauss-Newton iterations per further start.
    time_limit : float or None
        A wall-clock safety cap in seconds (default None: none). Every other budget counts work, so that
        equal inputs and seeds give bit-identical fits on any machine; a fit cut by this cap ends with
        status "time_limit" and ``info.reproducible`` False.

    Examples
    --------
    >>> FitSettings(restarts=1).replace(max_iter=30).changes()
    {'restarts': 1, 'max_iter': 30}
    """

    method: str = "auto"
    restarts: int = 3
    init: str = "auto"
    screen_iter: int = 10
    max_iter: int = 60
    tol: float = 1e-6
    gtol: float = 1e-5
    ridge: float = 1e-12
    cg_iter: int = 6
    compress: bool = True
    oversample: float = 0.125
    refine_iter: int = 300
    refine_tol: float = 5e-6
    nls_iter: int = 100
    nls_cg_iter: int = 10
    nls_budget: int = 100
    keep_iter: int = 100
    extra_starts: int = 4
    extra_nls_iter: int = 50
    time_limit: float | None = None

    def __post_init__(self):
        put = object.__setattr__  # frozen: the checked values replace the given ones
        put(self, "method", check_choice(self.method, ("auto", "als", "nls"), "method"))
        put(self, "init", check_choice(self.init, ("auto", "random", "hosvd"), "init"))
        for name in ("restarts", "screen_iter", "max_iter", "nls_iter", "cg_iter", "nls_cg_iter"):
            put(self, name, check_positive_int(getattr(self, name), name))
        for name in ("refine_iter", "nls_budget", "keep_iter", "extra_starts", "extra_nls_iter"):
            if getattr(self, name) != 0:  # 0 allowed: none
                put(self, name, check_positive_int(getattr(self, name), name))
        for name in ("tol", "gtol", "ridge", "oversample", "refine_tol"):
            put(self, name, check_nonneg(getattr(self, name), name))
        if self.time_limit is not None:
            put(self, "time_limit", check_nonneg(self.time_limit, "time_limit"))
        if not isinstance(self.compress, (bool, np.bool_)):
            raise ValueError(f"compress must be True or False, got {self.compress!r}")
        put(self, "compress", bool(self.compress))

    def replace(self, **changes) -> "FitSettings":
        """A copy with ``changes`` applied (validated); an unknown name is a TypeError listing the known ones."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise TypeError(f"unknown fit setting(s) {', '.join(map(repr, unknown))}; the settings are "
                            f"{', '.join(sorted(known))}")
        return dataclasses.replace(self, **changes) if changes else self

    def changes(self) -> dict:
        """The settings that differ from the defaults, as keywords of :func:`~btcore.decompose.fit_bt`."""
        base = FitSettings()
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if getattr(self, f.name) != getattr(base, f.name)}


@dataclass(frozen=True)
class StoppingRules:
    """The thresholds that end a run or name its status, for ALS, Gauss-Newton and the fit driver.

    Attributes
    ----------
    window : int
        Iterations over which "still falling" is measured (:func:`error_fall`).
    keep_converging_fall : float
        "auto": a Gauss-Newton run cut by its budget while its error fell by more than this over
        ``window`` (tenfold: converging on an exact structure) goes on.
    swamp_step : float
        An ALS sweep lowering the error by less than this (relative) is a crawl.
    swamp_floor : float
        ...which is a swamp while the squared error is above this many times the compression floor.
    compressed_tol : float
        ALS tolerance on the compressed core (at least this): crawling to its floor is wasted work.
    flat_fall : float
        "No longer falling": the last iteration lowered the error by less than this (relative). The
        first-order tests count only then (with history: never at a run's first iteration), because
        an ill-conditioned Jacobian on an exact structure meets them at errors of 1e-5 while
        Gauss-Newton is still cutting the error manyfold.
    flat_floor : float
        ...or the error is below this (float64 rounding: it cannot fall further).
    window_fall : float
        Gauss-Newton's error no longer falls only when it also fell less than this over the last
        ``window`` iterations: a crawl towards a local minimum has a small gradient too.
    min_gain_ratio : float
        A Gauss-Newton step is accepted when it lowers f and its gain ratio exceeds this.
    no_progress_decrease : float
        An accepted step lowering f by less than this (relative) counts as no progress.
    stall_iter : int
        Iterations in a row without progress after which Gauss-Newton has "stalled".
    slow_fall : float
        Gauss-Newton (with a slow window) has "stalled" once its error fell less than this over it.
    max_damping : float
        Levenberg-Marquardt damping above which Gauss-Newton has "stalled".
    """

    window: int = 10
    keep_converging_fall: float = 0.9
    swamp_step: float = 1e-3
    swamp_floor: float = 2.0
    compressed_tol: float = 1e-4
    flat_fall: float = 1e-3
    flat_floor: float = 1e-13
    window_fall: float = 1e-4
    min_gain_ratio: float = 1e-8
    no_progress_decrease: float = 1e-14
    stall_iter: int = 25
    slow_fall: float = 1e-3
    max_damping: float = 1e30


#: The stopping rules every fit uses.
STOPPING = StoppingRules()


def error_fall(hist: Sequence[float], window: int = STOPPING.window) -> float:
    """The relative fall of an error history over its last ``window`` steps (over all of it when shorter):
    ``(h[-1 - window] - h[-1]) / h[-1 - window]``; NaN for a zero start, so that every test on it is
    False. The stop rules of the Gauss-Newton and ALS runs read it: a run still falling is not
    converged, one that stopped falling has stalled."""
    old = hist[max(0, len(hist) - 1 - window)]
    return (old - hist[-1]) / old if old > 0 else math.nan


# ----------------------------------------------------------------------------------------------
# Presets
# ----------------------------------------------------------------------------------------------

#: The API's settings (:func:`~btcore.decompose.fit_bt` without keywords).
DEFAULT = FitSettings()
#: The efforts the Approximation page offers, by name (the first is its default). "quick" caps
#: Gauss-Newton at 20 iterations a fit, adds no further starts and refines only 5 sweeps on the full
#: tensor: a sweep fits many under-ranked candidates, whose slow ALS tails look like swamps.
#: "thorough" has more sweeps, refines on the full tensor until a sweep gains less than 1e-7 (at
#: most 1,000 sweeps) and tries twice the further starts; the default is within 0.5% of it on the
#: camera photo and the digits (bench/decompose.py --thorough).
EFFORTS = {
    "quick": FitSettings(restarts=1, max_iter=30, nls_budget=20, keep_iter=0, extra_starts=0, refine_iter=5),
    "thorough": FitSettings(restarts=3, max_iter=100, refine_iter=1000, refine_tol=1e-7, extra_starts=8),
}
#: The advisor's short screening fits of BT and CP candidates.
ADVISOR_SCREEN = FitSettings(restarts=2, screen_iter=4, max_iter=12, refine_iter=2, method="als")
#: The advisor's full fits of its finalists: ALS from two starts, up to 80 sweeps (10 of them on the
#: full tensor after the compressed fit). No Gauss-Newton: on photos it gains little after ALS and
#: costs seconds an iteration at 512 x 512; Tucker and CP run as :func:`for_format` adapts this.
ADVISOR_FULL = FitSettings(method="als", restarts=2, max_iter=80, refine_iter=10)


def for_format(settings: FitSettings | None, fmt: str) -> FitSettings:
    """``settings`` (default :data:`DEFAULT`) as a fit of format ``fmt`` ("BT", "Tucker" or "CP") runs them.

    A preset is written for BT. Tucker and CP are fitted by the algorithms of tensorly
    (:func:`~btcore.decompose.fit_tucker`, :func:`~btcore.decompose.fit_cp`), with tensorly's stopping
    test (an iteration changes the relative error by less than ``tol``, absolute):

    * Tucker: HOOI from the truncated-HOSVD start (tensorly's ``tucker``) with at least 100
      iterations and a tolerance of at most 1e-8 (tensorly's 1e-4 stops after 3 iterations; one
      iteration here costs a fraction of tensorly's, so the tighter test still takes less time);
    * CP: CP-ALS with tensorly's line search from the SVD start (``parafac(linesearch=True)``),
      tolerance at most 1e-8 and at least 75 iterations.

    Both are at least as accurate as tensorly's ``tucker`` / ``parafac`` with its defaults, in less
    time, on every target of ``bench/fairness.py``. Of the other fields only ``gtol`` and
    ``time_limit`` apply to them.

    The result is a valid :class:`FitSettings` for :func:`~btcore.decompose.fit_bt` too (one HOSVD
    start, ALS, no compression). Other formats get ``settings`` unchanged.
    """
    s = DEFAULT if settings is None else settings
    if fmt == "Tucker":
        return s.replace(method="als", restarts=1, init="hosvd", compress=False, tol=min(s.tol, 1e-8),
                         max_iter=max(s.max_iter, 100))
    if fmt == "CP":
        return s.replace(method="als", restarts=1, init="hosvd", compress=False, tol=min(s.tol, 1e-8),
                         max_iter=max(s.max_iter, 75))
    return s


def tr_options(settings: FitSettings | None) -> dict:
    """Keywords of :func:`~btcore.decompose.tr.fit_tr` for a preset (default :data:`DEFAULT`).

    The ring is fitted from ``restarts + 1`` starts (the TR-SVD ones first) with ``max_iter`` sweeps
    each and ``2 * max_iter`` sweeps in all: a work budget like the other formats' (without one, all
    d + 3 starts of a target without ring structure run to their stopping rule).
    """
    s = DEFAULT if settings is None else settings
    return {"max_iter": s.max_iter, "tol": s.tol, "gtol": s.gtol, "restarts": s.restarts,
            "max_starts": s.restarts + 1, "sweep_budget": 2 * s.max_iter}
