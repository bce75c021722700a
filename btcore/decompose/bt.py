"""Block-Term fit (:func:`fit_bt`) by joint ALS, following docs/reference.md ("Fitting a given matrix"):

* Joint ALS over all blocks. One sweep updates the factors of each mode k for all N blocks at once,
  ``(M_k x NR) = T_(k) Z (Z^T Z + ridge)^-1``, where the NR x NR Gram ``Z^T Z`` is assembled from the
  R x R cross-Grams ``U_n^(k)T U_m^(k)`` of the other factors and the cores (the Khatri-Rao-like
  matrix Z is never formed). Each new factor is QR-orthonormalised per block and the triangle is
  folded into the core, then all cores are solved jointly (directly when N * prod R is small, else
  by conjugate gradients warm-started at the current cores; both never increase the error).
* The products ``T x_j U^(j)T`` are organised as a two-level dimension tree: per sweep T is
  contracted twice (once over the trailing modes to update the leading ones, once over the leading
  modes to update the trailing ones); the first contraction of each is one GEMM over all blocks.
* When min(M_k, (1 + oversample) N R_k) at least halves the tensor, the fit runs on the core of a
  Tucker compression whose bases come from Kronecker-structured random sketches (as Tensorlab
  does), with a coarse tolerance, then lifted and refined on T itself until a sweep gains less
  than ``refine_tol`` (on photos 1-4% of the error is gained there).
* Several starts (HOSVD-based, random orthonormal, algebraic) are screened for a few sweeps and the
  best continued; a sweep that would increase the error is undone and ends the run. (Greedy
  deflation, one Tucker block at a time, stalls far above the noise on multi-block data.)
* The error is tracked with Gram formulas; once it is below 1e-6 it is recomputed from the explicit
  residual, because below ~1e-8 the Gram formulas lose everything to float64 cancellation.

The fit is a chain of phases: :func:`_problem` (checked inputs), :func:`_tensor` (the normalised,
possibly compressed tensor), :func:`_screen` (the starts, a :class:`_Track` each), :func:`_refine`,
:func:`_gauss_newton`, :func:`_lift` and :func:`_finish` (the record), sharing a :class:`_Runner`
(settings, iteration count, stop flag, progress; ALS sweeps and Gauss-Newton runs). Settings:
:class:`.settings.FitSettings`; stopping thresholds: :data:`.settings.STOPPING`.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Callable

import torch

from ..formats import BTSpec, normalize_ranks
from ..shapes import check_modes, check_positive_int, prod
from ..matrices import BTMatrix
from ..memory import check_allocation
from .als import (
    ALSRun, als_memory_bytes, hosvd_start, mode_order, project_all, random_orthonormal, sketch_bases,
)
from .algebraic import algebraic_applies, algebraic_start, subspace_applies, subspace_start
from .fitinfo import AT_PRECISION, EXACT_BELOW, FitInfo, StopCheck
from .inputs import as_matrix, check_seed, fit_modes, interleave, out_dtype, scale_of
from .nls import gn_flat, nls_refine
from .settings import DEFAULT, STOPPING, FitSettings, error_fall

__all__ = ["fit_bt", "cap_bt_ranks", "als_memory_bytes"]

def cap_bt_ranks(in_modes, out_modes, rank) -> tuple[tuple[int, ...], list[str]]:
    """Per-mode Tucker ranks capped at the mode size I_k J_k and at the product of the other ranks.

    Returns ``(ranks, notes)``; ``notes`` explains every cap (empty when nothing was capped). Ranks
    above those limits add parameters and no expressive power.
    """
    i = check_modes(in_modes, "in_modes")
    o = check_modes(out_modes, "out_modes")
    sizes = [a * b for a, b in zip(i, o)]
    req = normalize_ranks(rank, len(sizes))
    ranks = [min(r, m) for r, m in zip(req, sizes)]
    notes = [
        f"rank of mode {k + 1} capped from {r} to its size I_{k + 1}*J_{k + 1} = {m}"
        for k, (r, m) in enumerate(zip(req, sizes)) if r > m
    ]
    changed = True
    while changed:
        changed = False
        for k in range(len(ranks)):
            other = prod(ranks[:k] + ranks[k + 1:])
            if ranks[k] > other:
                notes.append(f"rank of mode {k + 1} capped from {ranks[k]} to {other}, the product of the other "
                             "modes' ranks (a Tucker core cannot use more)")
                ranks[k] = other
                changed = True
    return tuple(ranks), notes


def fit_bt(W, in_modes, out_modes, rank, blocks: int = 1, *, settings: FitSettings | None = None,
           seed: int | None = 0, dtype=None, progress: Callable[[int, float], None] | None = None,
           should_stop: Callable[[], bool] | None = None, warn: bool = True,
           **options) -> tuple[BTMatrix, FitInfo]:
    """Fit a Block-Term matrix with N = ``blocks`` blocks of Tucker rank ``rank`` to W.

    Parameters
    ----------
    W : numpy array or torch tensor, shape (I, J)
        The matrix (y = x @ W). Must be finite; any scale (the fit works on W / max|W|).
    in_modes, out_modes : sequence of int
        I = prod(in_modes), J = prod(out_modes), same order d.
    rank : int or sequence of int
        Tucker rank R (or per-mode ranks). Ranks above a mode's size I_k J_k, or above the product of
        the other modes' ranks, are capped; ``info.notes`` says so (and a ``UserWarning`` if ``warn``).
    blocks : int
        Number of blocks N. ``blocks=1`` is Tucker (HOOI), ``rank=1`` is CP of rank N.
    settings : FitSettings, optional
        How to fit (default :data:`btcore.decompose.settings.DEFAULT`); a preset such as
        ``EFFORTS["quick"]``.
    seed : int or None
        Seeds the random starts; equal seeds give equal results.
    dtype : torch dtype or "float32"/"float64", optional
        dtype of the returned tensors; default float32 for float32 input, else float64.
    progress : callable(iteration, rel_error), optional
        Called after every ALS sweep and Gauss-Newton iteration; ``iteration`` counts them over all
        starts, ``rel_error`` is the error of the run being iterated.
    should_stop : callable() -> bool, optional
        Polled before every iteration; when it returns True the best result so far is returned with
        ``info.status == "stopped"``.
    warn : bool
        Warn (``UserWarning``) when ranks are capped.
    **options
        Any field of :class:`FitSettings` (``method``, ``restarts``, ``max_iter``, ``tol``, ``gtol``, ...),
        overriding ``settings``.

    Returns
    -------
    (BTMatrix, FitInfo)
        ``info.status`` / ``info.converged`` are honest (first-order test); ``info.phases`` says which
        method made which part of ``info.errors``.

    Raises
    ------
    ValueError
        For bad shapes or settings (the message names the field), or when the fit's intermediates
        would not fit in memory.
    """
    t0 = time.perf_counter()
    settings = (DEFAULT if settings is None else settings).replace(**options)
    seed = check_seed(seed)
    for name, fn in (("progress", progress), ("should_stop", should_stop)):
        if fn is not None and not callable(fn):
            raise ValueError(f"{name} must be a callable or None, got {fn!r}")
    prob = _problem(W, in_modes, out_modes, rank, blocks, dtype, warn)
    ten = _tensor(prob.Wt, prob, settings, seed)
    prob.Wt = None  # T is the only copy the fit needs
    runner = _Runner(settings, ten, prob.N, seed, progress, should_stop, t0)
    if ten.norm == 0.0:
        tracks, chosen = [_zero_track(runner)], 0
    else:
        tracks, chosen = _screen(runner, _start_kinds(prob.N, ten, settings))
        if settings.method != "nls":
            _refine(runner, tracks[chosen])
        if settings.method != "als":
            chosen = _gauss_newton(runner, tracks, chosen)
        if ten.V is not None:
            _lift(runner, tracks[chosen], prob.notes)
    return _finish(runner, prob, tracks, chosen)


@dataclass
class _Problem:
    """The checked inputs: modes, blocks, ranks (requested and capped), the spec and the output dtype."""

    Wt: torch.Tensor | None
    im: tuple
    om: tuple
    N: int
    requested: tuple
    ranks: tuple
    notes: list
    spec: BTSpec
    sizes: tuple
    out_dtype: torch.dtype


def _problem(W, in_modes, out_modes, rank, blocks, dtype, warn) -> _Problem:
    """Check every input, cap the ranks and refuse a fit that would not fit in memory."""
    odt = out_dtype(W, dtype)
    Wt = as_matrix(W)
    im, om = fit_modes(Wt, in_modes, out_modes)
    N = check_positive_int(blocks, "blocks")
    requested = normalize_ranks(rank, len(im))
    ranks, notes = cap_bt_ranks(im, om, requested)
    if notes and warn:
        # stacklevel 3: _problem <- fit_bt <- the caller
        warnings.warn("; ".join(notes), UserWarning, stacklevel=3)
    spec = BTSpec(im, om, ranks, N, max_bytes=None)  # the capped format (validated; names its kind)
    sizes = tuple(i * j for i, j in zip(im, om))
    check_allocation(als_memory_bytes(sizes, ranks, N),
                     f"fitting BT (N={N}, R={ranks}) to a {Wt.shape[0]:,} x {Wt.shape[1]:,} matrix",
                     "use fewer blocks, a lower rank or a smaller matrix", Wt.device)
    return _Problem(Wt, im, om, N, requested, ranks, list(notes), spec, sizes, odt)


@dataclass
class _Tensor:
    """The normalised interleaved tensor T (internal mode order ``order``), the tensor G the starts
    run on (T itself, or the core of a Tucker compression with bases V), and the numbers that relate
    G's errors to T's: e^2 = offset2 + ||G - model||^2 with ||G||^2 = tnorm2."""

    T: torch.Tensor
    G: torch.Tensor
    V: list | None
    order: list
    iranks: tuple
    isizes: tuple
    norm: float
    scale: float
    tnorm2: float
    offset2: float
    tol_c: float
    gen: torch.Generator


def _tensor(Wt: torch.Tensor, prob: _Problem, s: FitSettings, seed) -> _Tensor:
    """The normalised interleaved tensor T and, where it pays, the core G of a Tucker compression.

    W is divided by max|W| first, so that its norm neither overflows nor underflows. Compression
    (Tensorlab-style): fit on the core of a Tucker(min(M_k, N R_k)) compression of T found by
    Kronecker-structured random sketches, then refine on T itself.
    """
    N, d = prob.N, len(prob.im)
    scale = scale_of(Wt)
    Ws = Wt / scale if scale > 0 else Wt
    norm = float(torch.linalg.norm(Ws))
    order = mode_order(prob.sizes)
    T = interleave(Ws, prob.im, prob.om, order)
    del Ws
    if norm > 0:
        T = T / norm
    iranks = tuple(prob.ranks[k] for k in order)
    isizes = tuple(prob.sizes[k] for k in order)
    gen = torch.Generator().manual_seed(0 if seed is None else seed)
    comp = tuple(min(m, N * r + max(2, math.ceil(s.oversample * N * r))) for m, r in zip(isizes, iranks))
    V, G, tnorm2, offset2 = None, T, 1.0, 0.0
    if s.compress and d > 1 and norm > 0 and 2 * prod(comp) <= T.numel():
        V = sketch_bases(T, comp, gen)
        G = project_all(T, V)
        tnorm2 = float((G * G).sum())
        offset2 = max(0.0, 1.0 - tnorm2)
    # On the compressed core the error cannot fall below the energy outside the compression
    # subspace; crawling towards that floor is wasted work, so switch to the full tensor early.
    tol_c = max(s.tol, STOPPING.compressed_tol) if V is not None else s.tol
    return _Tensor(T, G, V, order, iranks, isizes, norm, scale, tnorm2, offset2, tol_c, gen)


def _start_kinds(N: int, ten: _Tensor, s: FitSettings) -> list[str]:
    """The kinds of the starts to screen, in order."""
    # "auto": a HOSVD start for Tucker, and for BT only next to random starts: alone it is a
    # greedy-like start that stalls far above the noise on genuinely multi-block data
    G = ten.G
    hosvd_ok = s.init == "hosvd" or (s.init == "auto" and (N == 1 or s.restarts > 1)
                                     and G.numel() * sum(G.shape) <= 4e8)
    kinds = ["hosvd" if i == 0 and hosvd_ok else "random" for i in range(s.restarts)]
    extra = None
    if s.method != "als" and s.init == "auto":
        if algebraic_applies(G.shape, ten.iranks, N):
            extra = "algebraic"
        elif subspace_applies(G.shape, ten.iranks, N):
            extra = "subspace"  # one (merged) mode with N R_k <= M_k
    if extra is not None:
        if s.method == "nls":
            kinds = [extra] + kinds
        elif s.restarts > 1:
            kinds[-1] = extra
        else:
            kinds.append(extra)  # tried only when the random start does not reach precision
    return kinds


@dataclass
class _Track:
    """One start's run: the ALS state, its error history, why its last phase ended, and the phases
    (method, index of its first entry in ``hist``)."""

    kind: str
    run: ALSRun
    hist: list = field(default_factory=list)
    reason: str = ""
    marks: list = field(default_factory=list)

    def __post_init__(self):
        self.hist = self.hist or [self.run.error]
        self.marks = self.marks or [("ALS", 0)]

    def mark(self, method: str) -> None:
        if self.marks[-1][0] != method:
            self.marks.append((method, len(self.hist) - 1))


class _Runner(StopCheck):
    """What the phases of one fit share while they run: the settings, the tensor, the random
    generator, the iteration count over all starts (``total``), whether ``should_stop`` said stop
    (``stopped``), and the two local solvers (:meth:`iterate`, :meth:`gauss_newton`)."""

    def __init__(self, s: FitSettings, ten: _Tensor, N: int, seed, progress, should_stop, t0: float):
        self.s, self.ten, self.N, self.seed = s, ten, N, seed
        self.progress, self.t0 = progress, t0
        StopCheck.__init__(self, should_stop, s.time_limit, t0)
        self.total = 0

    def report(self, err: float) -> None:
        if self.progress is not None:
            self.progress(self.total, err)

    def als(self, U, C=None) -> ALSRun:
        """An ALS run on G from factors U (and cores C, else the best cores for U)."""
        ten = self.ten
        return ALSRun(ten.G, U, self.s.ridge, self.s.cg_iter, C=C, tnorm2=ten.tnorm2, offset2=ten.offset2)

    def random_factors(self, sizes) -> list:
        return [random_orthonormal((self.N, m, r), self.ten.gen, self.ten.G.dtype, self.ten.G.device)
                for m, r in zip(sizes, self.ten.iranks)]

    def iterate(self, track: _Track, n_sweeps: int, tol: float | None = None) -> str:
        """Up to ``n_sweeps`` more ALS sweeps of ``track``, errors appended to its history.

        Returns the stop reason, or '' when the sweeps ran out. A sweep that would increase the error
        is undone and ends the run, so the history never increases.
        """
        tol = self.s.tol if tol is None else tol
        run, hist = track.run, track.hist
        track.mark("ALS")
        for _ in range(n_sweeps):
            if run.exact and run.error < AT_PRECISION * 1e-3:
                return "at numerical precision"
            if self.stop():
                return "stopped"
            snap = run.snapshot()
            prev = run.error
            run.sweep()
            self.total += 1
            if not (run.error <= prev):  # also catches NaN
                run.restore(snap)
                self.report(run.error)
                return "no further decrease"
            hist.append(run.error)
            self.report(run.error)
            if run.exact and run.error < AT_PRECISION * 1e-3:
                return "at numerical precision"
            if prev - run.error <= tol * prev:
                return "converged"
        return ""

    def gauss_newton(self, track: _Track, max_iter: int) -> tuple[str, int]:
        """One Gauss-Newton run of up to ``max_iter`` iterations from ``track``'s state (on G); returns
        its status and the iterations it did."""
        run, hist, ten = track.run, track.hist, self.ten
        track.mark("NLS")

        def report(e_g):
            self.total += 1
            hist.append(math.sqrt(ten.offset2 + ten.tnorm2 * e_g * e_g))
            self.report(hist[-1])

        res = nls_refine(run.T, run.U, run.C, max_iter=max_iter, tol=0.1 * self.s.gtol,
                         cg_max_iter=self.s.nls_cg_iter,
                         slow_window=STOPPING.window if self.s.method == "auto" else 0, progress=report,
                         should_stop=self.stop)
        new = self.als([u.contiguous() for u in res.factors], res.cores)
        if new.error <= run.error:
            track.run = new
        hist[-1] = track.run.error  # the kept model's own error (finish keeps the record non-increasing)
        track.reason = {"converged": "first-order", "stopped": "stopped"}.get(res.status, res.status)
        return res.status, res.iterations

    def swamp(self, track: _Track) -> bool:
        """An ALS swamp: the last sweep lowered the error by less than ``swamp_step`` (or ALS ended on
        the tolerance) while the error is far above the floor the compression shows (the energy outside
        its subspace, a lower bound of the noise)."""
        h = track.hist
        slow = (len(h) < 2 or h[-2] - h[-1] < STOPPING.swamp_step * h[-2] or track.reason != ""
                or len(h) > self.s.max_iter)
        return slow and h[-1] ** 2 > STOPPING.swamp_floor * self.ten.offset2

    def unfinished(self, track: _Track) -> bool:
        """A run Gauss-Newton should take over: in a swamp, or :func:`_converging` (ALS's linear tail
        on an exact structure, which Gauss-Newton finishes in a few quadratic steps)."""
        return _converging(track) or self.swamp(track)


def _converging(track: _Track) -> bool:
    """Cut by its budget while its error fell tenfold over the last ``window`` iterations. Its gradient
    may already be small (an ill-conditioned Jacobian), which is no convergence."""
    h = track.hist
    return (track.reason in ("", "max_iter") and len(h) > STOPPING.window
            and error_fall(h) > STOPPING.keep_converging_fall)


# -- phases ---------------------------------------------------------------------------------------

def _start(runner: _Runner, kind: str, n_tracks: int) -> tuple[str, ALSRun | None]:
    """(kind, run) of one start; an algebraic start that fails (its grouping of eigenvectors, on
    noisy data) is replaced by a random one, or skipped where it was an extra start."""
    ten, s, C = runner.ten, runner.s, None
    if kind in ("algebraic", "subspace"):
        make = algebraic_start if kind == "algebraic" else subspace_start
        start = make(ten.G, ten.iranks, runner.N, seed=0 if runner.seed is None else runner.seed)
        if start is None:
            if n_tracks + 1 > s.restarts:
                return kind, None
            kind = "random"
        else:
            U, C = start
    if kind == "hosvd":
        U = hosvd_start(ten.G, runner.N, ten.iranks, ten.gen)
    elif kind == "random":
        U = runner.random_factors(tuple(ten.G.shape))
    return kind, runner.als(U, C)


def _zero_track(runner: _Runner) -> _Track:
    """W = 0: any cores of zero are exact; no sweep runs."""
    ten = runner.ten
    U = [random_orthonormal((runner.N, m, r), ten.gen, ten.T.dtype, ten.T.device)
         for m, r in zip(ten.isizes, ten.iranks)]
    run = ALSRun(ten.T, U, runner.s.ridge, runner.s.cg_iter)
    run.error, run.exact = 0.0, True
    return _Track("random", run, reason="at numerical precision")


def _screen(runner: _Runner, kinds: list[str]) -> tuple[list[_Track], int]:
    """Run each start for a few sweeps (all of ``max_iter`` when there is one); the tracks and the
    index of the best."""
    s = runner.s
    single = s.restarts == 1 and s.method != "nls"
    n_sweeps = s.max_iter if single else min(s.screen_iter, s.max_iter)
    tracks = []
    for kind in kinds:
        if runner.stopped:
            break
        kind, run = _start(runner, kind, len(tracks))
        if run is None:
            continue
        track = _Track(kind, run)
        runner.report(run.error)
        track.reason = runner.iterate(track, n_sweeps, runner.ten.tol_c)
        tracks.append(track)
        if track.reason == "at numerical precision" and run.error < AT_PRECISION:
            break
    return tracks, min(range(len(tracks)), key=lambda i: tracks[i].run.error)


def _refine(runner: _Runner, best: _Track) -> None:
    """Continue the chosen start with ALS up to ``max_iter`` sweeps."""
    if best.reason == "" and not runner.stopped:
        best.reason = runner.iterate(best, runner.s.max_iter - (len(best.hist) - 1), runner.ten.tol_c)


def _gauss_newton(runner: _Runner, tracks: list[_Track], chosen: int) -> int:
    """Gauss-Newton on the kept run unless it meets the first-order test (with "auto": only in a
    swamp); while that stalls, on the other starts (best first), all within ``nls_budget``
    iterations. With "nls", a run that converged above numerical precision (a local minimum,
    possibly) does not end the search either: the lowest error is kept. Returns the index of the
    kept track."""
    s, best = runner.s, tracks[chosen]
    if (runner.stopped or best.run.error < AT_PRECISION
            or (best.run.gradient_norm() <= s.gtol and not _converging(best))
            or (s.method == "auto" and not runner.unfinished(best))):
        return chosen
    # "auto" spends on Gauss-Newton at most as many iterations as ALS did sweeps (at least one run's
    # worth): on targets without the structure (random matrices) it only finds a nearby local minimum
    left = s.nls_budget
    if s.method == "auto":
        left = min(left, max(s.nls_iter, runner.total))
    for track in [best] + sorted((t for t in tracks if t is not best), key=lambda t: t.run.error):
        if left <= 0 or runner.stop():
            break
        status, done = runner.gauss_newton(track, min(s.nls_iter, left))
        left -= max(done, 1)
        if track.run.error < best.run.error:
            best = track
        if best.run.error < AT_PRECISION or (status == "converged" and s.method == "auto"):
            break
    if s.method == "auto":
        _keep_converging(runner, best)
        best = _more_starts(runner, tracks, best)
    return tracks.index(best)


def _keep_converging(runner: _Runner, track: _Track) -> None:
    """"auto": a Gauss-Newton run whose budget ran out while it was still converging fast (its error
    fell tenfold over its last 10 iterations, as on an exact structure) goes on for ``keep_iter``."""
    keep = runner.s.keep_iter
    if (track.reason == "max_iter" and track.run.error >= AT_PRECISION and _converging(track) and keep > 0
            and not runner.stop()):
        runner.gauss_newton(track, keep)


def _more_starts(runner: _Runner, tracks: list[_Track], best: _Track) -> _Track:
    """"auto" in a swamp that Gauss-Newton did not leave: further random starts (ALS, then Gauss-Newton
    where that run also ends in a swamp) until one meets the first-order test or ``extra_starts`` were
    tried. A fit that reached its floor never gets here. Returns the best track."""
    s = runner.s
    for _ in range(s.extra_starts):
        if runner.stop():
            break
        if best.run.error < AT_PRECISION or not runner.swamp(best) or best.run.gradient_norm() <= s.gtol:
            return best
        track = _Track("random", runner.als(runner.random_factors(tuple(runner.ten.G.shape))))
        tracks.append(track)
        track.reason = runner.iterate(track, s.max_iter, runner.ten.tol_c)
        if track.run.error >= AT_PRECISION and runner.unfinished(track) and s.extra_nls_iter > 0:
            runner.gauss_newton(track, s.extra_nls_iter)
            _keep_converging(runner, track)
        if track.run.error < best.run.error:
            best = track
    return best


def _lift(runner: _Runner, best: _Track, notes: list) -> None:
    """The compressed fit as a fit of T (same model), refined on T unless stopped."""
    ten, s = runner.ten, runner.s
    U = [(v @ u).contiguous() for v, u in zip(ten.V, best.run.U)]  # orthonormal: V and u are
    # on a large T an exact error costs as much as half a sweep: only near precision
    full = ALSRun(ten.T, U, s.ridge, s.cg_iter, C=best.run.C.clone(),
                  exact_below=EXACT_BELOW if ten.T.numel() <= 2**21 else 1e-6)
    best.hist[-1] = full.error  # the same model, measured on T itself (no offset cancellation)
    best.run = full
    if runner.stopped or s.refine_iter == 0:
        return
    before = len(best.hist)
    r2 = runner.iterate(best, s.refine_iter, s.refine_tol)
    if r2 == "" and len(best.hist) > before:
        h = best.hist
        notes.append(f"refinement on the full matrix stopped after refine_iter = {s.refine_iter} sweeps "
                     f"with the error still falling by {(h[-2] - h[-1]) / h[-2]:.1e} per sweep; "
                     "raise refine_iter for a little more")
    if r2 not in ("converged", "no further decrease"):
        best.reason = r2 or "max_iter"


def _status(runner: _Runner, best: _Track, err: float) -> tuple[str, str, float]:
    """(status, reason, gradient norm) of the kept run.

    "converged" needs the error at numerical precision, or the run's own stopping test (ALS: a sweep
    gained less than ``tol``; Gauss-Newton: its first-order test with the error no longer falling, or
    no progress) together with the first-order test. A run cut by a budget is "max_iter" however
    small its gradient (a slow crawl through a swamp has a small gradient too).
    """
    if runner.timed_out:
        return "time_limit", "time_limit", math.nan
    if runner.stopped:
        return "stopped", "stopped", math.nan
    if err < AT_PRECISION:
        return "converged", "at numerical precision", math.nan
    grad = best.run.gradient_norm()
    if best.reason in ("", "max_iter"):
        return "max_iter", "max_iter", grad
    h = best.hist
    if best.marks[-1][0] == "NLS":
        flat = gn_flat(h)
    else:  # ALS ended on its own tolerance (or an undone sweep)
        flat = len(h) > 1 and h[-2] - h[-1] <= STOPPING.flat_fall * h[-2]
    if grad <= runner.s.gtol and flat:
        return "converged", "first-order", grad
    return "stalled", "stalled", grad


def _finish(runner: _Runner, prob: _Problem, tracks: list[_Track], chosen: int) -> tuple[BTMatrix, FitInfo]:
    """The BTMatrix in the caller's mode order and dtype, and its :class:`FitInfo`."""
    best, N, d, ten = tracks[chosen], prob.N, len(prob.im), runner.ten
    run, hist = best.run, best.hist
    err = run.error
    if not run.exact and err < EXACT_BELOW * 10:
        err = run.exact_error()  # the reported error is always exact when small
    # The last entry is the exact error. Earlier entries of sweeps on a large tensor are Gram-formula
    # values, accurate to ~1e-12 in the squared error; where that rounding would show an increase
    # the earlier entry is raised, so the record never increases.
    hist[-1] = err
    for i in range(len(hist) - 2, -1, -1):
        hist[i] = max(hist[i], hist[i + 1])
    status, reason, grad = _status(runner, best, err)
    notes = prob.notes
    if status == "stalled":
        notes.append(f"the fit stalled at relative error {err:.3g} without meeting the first-order test "
                     f"(gradient {grad:.1e} > gtol = {runner.s.gtol:g}): a swamp or a poor local "
                     "minimum; more restarts (another seed) or method='nls' may lower it")
    marks = best.marks + [("", len(hist) - 1)]
    phases = [(m, a, b) for (m, a), (_, b) in zip(marks[:-1], marks[1:]) if b > a or len(marks) == 2]
    used = {m for m, _, _ in phases}
    inv = [ten.order.index(k) for k in range(d)]
    factors = [run.U[inv[k]].reshape(N, prob.im[k], prob.om[k], prob.ranks[k]).to(prob.out_dtype)
               for k in range(d)]
    # scale back in two steps (norm, then max|W|): each stays in range where their product might not
    core = ((run.C * ten.norm) * ten.scale).permute([0] + [1 + inv[k] for k in range(d)]).contiguous()
    M = BTMatrix(factors, core.to(prob.out_dtype))
    info = FitInfo(
        format=prob.spec.kind, method="ALS+NLS" if used == {"ALS", "NLS"} else (used.pop() if used else "ALS"),
        relative_error=float(err), errors=[float(e) for e in hist],
        iterations=len(hist) - 1, total_iterations=runner.total, seconds=time.perf_counter() - runner.t0,
        converged=status == "converged", status=status, reason=reason, at_precision=err < AT_PRECISION,
        ranks=prob.ranks, blocks=N, params=M.num_params, requested_ranks=prob.requested, notes=notes,
        start_kinds=[t.kind for t in tracks], start_errors=[float(t.hist[-1]) for t in tracks],
        chosen_start=chosen, spec=prob.spec, phases=phases, grad_norm=float(grad),
        reproducible=not runner.timed_out,
    )
    return M, info
