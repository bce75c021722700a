"""Block-Term fit (:func:`fit_bt`) by joint ALS, following docs/reference.md section 3 ("Decomposition"):

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
  does), with a coarse tolerance, and is then lifted and refined for a few sweeps on T itself.
  Exact structure is already exact after compression; noise and smooth tails gain a little.
* Several starts (a HOSVD-based one and random orthonormal ones) are screened for a few sweeps and
  the best is continued. A sweep that would increase the error is undone and ends the fit, so the
  recorded error never increases.
* The error is tracked with Gram formulas; once it is below 1e-6 it is recomputed from the explicit
  residual, because below ~1e-8 the Gram formulas lose everything to float64 cancellation.

Greedy deflation (one Tucker block at a time) is deliberately not used: it stalls far above the
noise level on genuinely multi-block data.

The fit is a small driver (:class:`_BTFit`) with named phases: validate the inputs, compress the
tensor, screen the starts, refine the chosen one, finish (undo the internal mode order, build the
record). The refine phase's local solver is :meth:`_BTFit.iterate` (ALS sweeps); another solver
(a Gauss-Newton one in ``btcore.decompose.nls``) can take the chosen run from there.
"""

from __future__ import annotations

import math
import time
import warnings
from typing import Callable

import numpy as np
import torch

from ..formats import BTSpec, normalize_ranks
from ..shapes import check_choice, check_modes, check_positive_int, prod
from ..matrices import BTMatrix
from ..memory import check_allocation
from .als import (
    _ALS, _hosvd_start, _mode_order, _project_all, _random_orthonormal, _sketch_bases, als_memory_bytes,
)
from .algebraic import algebraic_applies, algebraic_start, subspace_applies, subspace_start
from .common import (
    AT_PRECISION, _EXACT_BELOW, FitInfo, _as_matrix, _modes, _out_dtype, check_nonneg, check_seed, interleave,
    scale_of,
)
from .nls import _gradient, error_fall, nls_refine

__all__ = ["fit_bt", "cap_bt_ranks", "als_memory_bytes"]

#: "auto" starts further random starts after a swamp only while the whole fit has taken less than this.
AUTO_SECONDS = 3.5


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



def fit_bt(W, in_modes, out_modes, rank, blocks: int = 1, *, method: str = "auto", seed: int | None = 0,
           restarts: int = 3, init: str = "auto", screen_iter: int = 10, max_iter: int = 60, tol: float = 1e-6,
           gtol: float = 1e-5, ridge: float = 1e-12, cg_iter: int = 6, compress: bool = True,
           oversample: float = 0.125, refine_iter: int = 5, nls_iter: int = 100, time_limit: float = 2.0,
           extra_seconds: float = AUTO_SECONDS,
           dtype=None, progress: Callable[[int, float], None] | None = None,
           should_stop: Callable[[], bool] | None = None,
           warn: bool = True) -> tuple[BTMatrix, FitInfo]:
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
    method : {"auto", "als", "nls"}
        "als": joint ALS from ``restarts`` starts. "nls": Gauss-Newton (Levenberg-Marquardt) on all
        factors and cores, from the algebraic start where it applies (N >= 2 and two modes with
        N R_k <= I_k J_k), else from the best of ``restarts`` short ALS starts. "auto": ALS starts (the
        last one algebraic where it applies); a run that ends without meeting the first-order test
        (an ALS swamp: the error creeping down far from its optimum) is handed to Gauss-Newton, and
        other starts are tried while that stalls and ``time_limit`` allows.
    seed : int or None
        Seeds the random starts; equal seeds give equal results.
    restarts : int
        Number of ALS starts screened: with ``init="auto"`` the first is HOSVD-based and the others random
        orthonormal (a single start is random unless N = 1); ``init="random"`` or ``"hosvd"`` forces the
        kind of the first start.
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
        first (when that at least halves it), then refine on the full tensor for up to
        ``refine_iter`` ALS sweeps.
    oversample : float
        Extra compression rank, as a fraction of N R_k (at least 2).
    refine_iter : int
        ALS sweeps on the full tensor after the compressed fit (0 allowed).
    nls_iter : int
        Gauss-Newton iterations per NLS run.
    time_limit : float
        Seconds for all Gauss-Newton runs of the fit together ("auto": at most half the time ALS took,
        at least 0.1 s); a run cut short reports "stalled" (no progress) or "max_iter".
    extra_seconds : float
        "auto": how long (seconds since the fit began) further random starts may run while the best
        run is still in a swamp after Gauss-Newton. It buys exact recoveries on hard shapes; callers
        that fit many small candidates (the advisor, the app's quick effort) pass less.
    dtype : torch dtype or "float32"/"float64", optional
        dtype of the returned tensors; default float32 for float32 input, else float64.
    progress : callable(iteration, rel_error), optional
        Called after every ALS sweep and Gauss-Newton iteration; ``iteration`` counts them over all
        starts, ``rel_error`` is the error of the run being iterated.
    should_stop : callable() -> bool, optional
        Polled before every iteration; when it returns True the best result so far is returned with
        ``info.status == "stopped"``.

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
    fit = _BTFit(method=method, seed=seed, restarts=restarts, init=init, screen_iter=screen_iter,
                 max_iter=max_iter, tol=tol, gtol=gtol, ridge=ridge, cg_iter=cg_iter, compress=compress,
                 oversample=oversample, refine_iter=refine_iter, nls_iter=nls_iter, time_limit=time_limit, extra_seconds=extra_seconds,
                 progress=progress, should_stop=should_stop, warn=warn)
    return fit.run(W, in_modes, out_modes, rank, blocks, dtype)


class _Track:
    """One start's run: the ALS state, its error history, why its last phase ended, and the phases
    (method, index of its first entry in ``hist``)."""

    def __init__(self, kind: str, run: _ALS):
        self.kind, self.run, self.hist, self.reason, self.marks = kind, run, [run.error], "", [("ALS", 0)]

    def mark(self, method: str) -> None:
        if self.marks[-1][0] != method:
            self.marks.append((method, len(self.hist) - 1))


def _run_gradient(run: _ALS) -> float:
    """||J^T r|| of 0.5 ||T - model||^2 for an ALS state (T normalised: relative to ||W||^2)."""
    gU, gC = _gradient(run.dense() - run.T, run.U, run.C)
    return math.sqrt(sum(float((g * g).sum()) for g in gU) + float((gC * gC).sum()))


class _BTFit:
    """One call of :func:`fit_bt`: its settings, and the state its phases hand on to each other.

    ``total`` counts iterations over all starts; ``stopped`` is set once ``should_stop`` returned True.
    """

    def __init__(self, *, method, seed, restarts, init, screen_iter, max_iter, tol, gtol, ridge, cg_iter, compress,
                 oversample, refine_iter, nls_iter, time_limit, extra_seconds, progress, should_stop, warn):
        self.method = check_choice(method, ("auto", "als", "nls"), "method")
        self.init = check_choice(init, ("auto", "random", "hosvd"), "init")
        self.seed = check_seed(seed)
        self.restarts = check_positive_int(restarts, "restarts")
        self.screen_iter = check_positive_int(screen_iter, "screen_iter")
        self.max_iter = check_positive_int(max_iter, "max_iter")
        self.nls_iter = check_positive_int(nls_iter, "nls_iter")
        self.cg_iter = check_positive_int(cg_iter, "cg_iter")
        self.refine_iter = 0 if refine_iter == 0 else check_positive_int(refine_iter, "refine_iter")
        self.tol, self.gtol = check_nonneg(tol, "tol"), check_nonneg(gtol, "gtol")
        self.ridge, self.oversample = check_nonneg(ridge, "ridge"), check_nonneg(oversample, "oversample")
        self.time_limit = check_nonneg(time_limit, "time_limit")
        self.extra_seconds = check_nonneg(extra_seconds, "extra_seconds")
        if not isinstance(compress, (bool, np.bool_)):
            raise ValueError(f"compress must be True or False, got {compress!r}")
        for name, fn in (("progress", progress), ("should_stop", should_stop)):
            if fn is not None and not callable(fn):
                raise ValueError(f"{name} must be a callable or None, got {fn!r}")
        self.compress_on = bool(compress)
        self.progress, self.should_stop, self.warn = progress, should_stop, warn
        self.total = 0
        self.stopped = False
        self.tracks, self.chosen = [], 0
        self.grad = math.nan

    def run(self, W, in_modes, out_modes, rank, blocks, dtype) -> tuple[BTMatrix, FitInfo]:
        t0 = self.t0 = time.perf_counter()
        self.validate(W, in_modes, out_modes, rank, blocks, dtype)
        self.compress()
        if self.norm == 0.0:
            self.zero_fit()
        else:
            self.screen()
            if self.method != "nls":
                self.refine()
            if self.method != "als":
                self.nls_phase()
            if self.V is not None:
                self._lift()
        return self.finish(t0)

    # -- phase 1: inputs ----------------------------------------------------------------------
    def validate(self, W, in_modes, out_modes, rank, blocks, dtype) -> None:
        """Check every input, cap the ranks and refuse a fit that would not fit in memory."""
        self.out_dtype = _out_dtype(W, dtype)
        self.Wt = _as_matrix(W)
        self.im, self.om = _modes(self.Wt, in_modes, out_modes)
        self.N = check_positive_int(blocks, "blocks")
        self.requested = normalize_ranks(rank, len(self.im))
        self.ranks, self.notes = cap_bt_ranks(self.im, self.om, self.requested)
        if self.notes and self.warn:
            # stacklevel 4: validate <- run <- fit_bt <- the caller
            warnings.warn("; ".join(self.notes), UserWarning, stacklevel=4)
        # the capped format (validated; names its kind)
        self.spec = BTSpec(self.im, self.om, self.ranks, self.N, max_bytes=None)
        self.sizes = tuple(i * j for i, j in zip(self.im, self.om))
        self.device = self.Wt.device
        check_allocation(als_memory_bytes(self.sizes, self.ranks, self.N),
                         f"fitting BT (N={self.N}, R={self.ranks}) to a {self.Wt.shape[0]:,} x "
                         f"{self.Wt.shape[1]:,} matrix",
                         "use fewer blocks, a lower rank or a smaller matrix", self.device)

    # -- phase 2: the tensor and its compression -------------------------------------------
    def compress(self) -> None:
        """The normalised interleaved tensor T (internal mode order) and, where it pays, the core G of
        a Tucker compression of T that the starts are screened on.

        W is divided by max|W| first, so that its norm neither overflows nor underflows. Compression
        (Tensorlab-style): fit on the core of a Tucker(min(M_k, N R_k)) compression of T found by
        Kronecker-structured random sketches, then refine on T itself.
        """
        N, d = self.N, len(self.im)
        self.scale = scale_of(self.Wt)
        Ws = self.Wt / self.scale if self.scale > 0 else self.Wt
        del self.Wt
        self.norm = float(torch.linalg.norm(Ws))
        self.order = _mode_order(self.sizes)
        T = interleave(Ws, self.im, self.om, self.order)
        del Ws  # T is the only copy the fit needs
        if self.norm > 0:
            T = T / self.norm
        self.T = T
        self.iranks = tuple(self.ranks[k] for k in self.order)
        self.isizes = tuple(self.sizes[k] for k in self.order)
        self.gen = torch.Generator().manual_seed(0 if self.seed is None else self.seed)
        comp = tuple(min(m, N * r + max(2, math.ceil(self.oversample * N * r)))
                     for m, r in zip(self.isizes, self.iranks))
        self.V = None
        self.G, self.tnorm2, self.offset2 = T, 1.0, 0.0
        if self.compress_on and d > 1 and self.norm > 0 and 2 * prod(comp) <= T.numel():
            self.V = _sketch_bases(T, comp, self.gen)
            self.G = _project_all(T, self.V)
            self.tnorm2 = float((self.G * self.G).sum())
            self.offset2 = max(0.0, 1.0 - self.tnorm2)
        # On the compressed core the error cannot fall below the energy outside the compression
        # subspace; crawling towards that floor is wasted work, so switch to the full tensor early.
        self.tol_c = max(self.tol, 1e-4) if self.V is not None else self.tol
        # "auto": a HOSVD start for Tucker, and for BT only next to random starts: alone it is a
        # greedy-like start that stalls far above the noise on genuinely multi-block data
        hosvd_ok = self.init == "hosvd" or (self.init == "auto" and (N == 1 or self.restarts > 1)
                                            and self.G.numel() * sum(self.G.shape) <= 4e8)
        kinds = ["hosvd" if s == 0 and hosvd_ok else "random" for s in range(self.restarts)]
        extra = None
        if self.method != "als" and self.init == "auto":
            if algebraic_applies(self.G.shape, self.iranks, N):
                extra = "algebraic"
            elif subspace_applies(self.G.shape, self.iranks, N):
                extra = "subspace"  # one (merged) mode with N R_k <= M_k
        if extra is not None:
            if self.method == "nls":
                kinds = [extra] + kinds
            elif self.restarts > 1:
                kinds[-1] = extra
            else:
                kinds.append(extra)  # tried only when the random start does not reach precision
        self.kinds = kinds

    # -- phase 3: starts ------------------------------------------------------------------------
    def _start(self, kind: str) -> tuple[str, _ALS | None]:
        """(kind, run) of one start; an algebraic start that fails (its grouping of eigenvectors, on
        noisy data) is replaced by a random one, or skipped where it was an extra start."""
        G, C = self.G, None
        if kind in ("algebraic", "subspace"):
            make = algebraic_start if kind == "algebraic" else subspace_start
            start = make(G, self.iranks, self.N, seed=0 if self.seed is None else self.seed)
            if start is None:
                if len(self.tracks) + 1 > self.restarts:
                    return kind, None
                kind, start = "random", None
            else:
                U, C = start
        if kind == "hosvd":
            U = _hosvd_start(G, self.N, self.iranks, self.gen)
        elif kind == "random":
            U = [_random_orthonormal((self.N, m, r), self.gen, G.dtype, self.device)
                 for m, r in zip(tuple(G.shape), self.iranks)]
        return kind, _ALS(G, U, self.ridge, self.cg_iter, C=C, tnorm2=self.tnorm2, offset2=self.offset2)

    def zero_fit(self) -> None:
        """W = 0: any cores of zero are exact; no sweep runs."""
        U = [_random_orthonormal((self.N, m, r), self.gen, self.T.dtype, self.device)
             for m, r in zip(self.isizes, self.iranks)]
        run = _ALS(self.T, U, self.ridge, self.cg_iter)
        run.error, run.exact = 0.0, True
        self.best = _Track("random", run)
        self.best.reason = "at numerical precision"
        self.tracks = [self.best]

    def screen(self) -> None:
        """Run each start for a few sweeps (all of ``max_iter`` when there is one) and keep the best."""
        single = self.restarts == 1 and self.method != "nls"
        n_sweeps = self.max_iter if single else min(self.screen_iter, self.max_iter)
        for kind in self.kinds:
            if self.stopped:
                break
            kind, run = self._start(kind)
            if run is None:
                continue
            track = _Track(kind, run)
            self._report(run.error)
            track.reason = self.iterate(track, n_sweeps, self.tol_c)
            self.tracks.append(track)
            if track.reason == "at numerical precision" and run.error < AT_PRECISION:
                break
        self.chosen = min(range(len(self.tracks)), key=lambda i: self.tracks[i].run.error)
        self.best = self.tracks[self.chosen]

    # -- phase 4: refinement --------------------------------------------------------------------
    def _report(self, err: float) -> None:
        if self.progress is not None:
            self.progress(self.total, err)

    def _stop(self) -> bool:
        if not self.stopped and self.should_stop is not None and self.should_stop():
            self.stopped = True
        return self.stopped

    def iterate(self, track: _Track, n_sweeps: int, tol: float | None = None) -> str:
        """Up to ``n_sweeps`` more ALS sweeps of ``track``, errors appended to its history.

        Returns the stop reason, or '' when the sweeps ran out. A sweep that would increase the error
        is undone and ends the run, so the history never increases.
        """
        tol = self.tol if tol is None else tol
        run, hist = track.run, track.hist
        track.mark("ALS")
        for _ in range(n_sweeps):
            if run.exact and run.error < AT_PRECISION * 1e-3:
                return "at numerical precision"
            if self._stop():
                return "stopped"
            snap = run.snapshot()
            prev = run.error
            run.sweep()
            self.total += 1
            if not (run.error <= prev):  # also catches NaN
                run.restore(snap)
                self._report(run.error)
                return "no further decrease"
            hist.append(run.error)
            self._report(run.error)
            if run.exact and run.error < AT_PRECISION * 1e-3:
                return "at numerical precision"
            if prev - run.error <= tol * prev:
                return "converged"
        return ""

    def refine(self) -> None:
        """Continue the chosen start with ALS up to ``max_iter`` sweeps."""
        best = self.best
        if best.reason == "" and not self.stopped:
            best.reason = self.iterate(best, self.max_iter - (len(best.hist) - 1), self.tol_c)

    def _swamp(self, track: _Track) -> bool:
        """An ALS swamp: the last sweep lowered the error by less than 0.1% (or ALS ended on the tolerance)
        while the error is far above
        the floor the compression shows (the energy outside its subspace, a lower bound of the noise)."""
        h = track.hist
        slow = len(h) < 2 or h[-2] - h[-1] < 1e-3 * h[-2] or track.reason != "" or len(h) > self.max_iter
        return slow and h[-1] ** 2 > 2.0 * self.offset2

    def nls_phase(self) -> None:
        """Gauss-Newton on the kept run unless it meets the first-order test (with "auto": only in a
        swamp); while that stalls, on the other starts (best first), all within the time limit. With
        "nls", a run that converged above numerical precision (a local minimum, possibly) does not end
        the search either: the lowest error is kept."""
        best = self.best
        if self.stopped or best.run.error < AT_PRECISION or _run_gradient(best.run) <= self.gtol:
            return
        if self.method == "auto" and not self._swamp(best):
            return
        # "auto" spends on Gauss-Newton at most about half of what ALS took (at least 0.1 s): on targets
        # without the structure (random matrices) it only finds a nearby local minimum
        limit = self.time_limit
        if self.method == "auto":
            limit = min(limit, max(0.1, 0.5 * (time.perf_counter() - self.t0)))
        deadline = time.perf_counter() + limit
        for track in [best] + sorted((t for t in self.tracks if t is not best), key=lambda t: t.run.error):
            left = deadline - time.perf_counter()
            if left <= 0 or self._stop():
                break
            status = self._nls(track, left)
            if track.run.error < self.best.run.error:
                self.best = track
            if self.best.run.error < AT_PRECISION or (status == "converged" and self.method == "auto"):
                break
        if self.method == "auto":
            self._keep_converging(self.best)
            self._more_starts()
        self.chosen = self.tracks.index(self.best)

    def _keep_converging(self, track: _Track) -> None:
        """"auto": a Gauss-Newton run whose share of time ran out while it was still converging fast (its
        error fell tenfold over its last 10 iterations, as on an exact structure) goes on within
        ``extra_seconds``: the outcome must not depend on how loaded the machine was."""
        left = self.extra_seconds - (time.perf_counter() - self.t0)
        if (track.reason == "max_iter" and track.run.error >= AT_PRECISION and len(track.hist) > 10
                and error_fall(track.hist) > 0.9 and left > 0 and not self._stop()):
            self._nls(track, left)

    def _more_starts(self) -> None:
        """"auto" in a swamp that Gauss-Newton did not leave: further random starts (ALS, then Gauss-Newton
        where that run also ends in a swamp) until one meets the first-order test or the fit has taken
        ``extra_seconds``. A fit that reached its floor never gets here."""
        while not self._stop() and time.perf_counter() - self.t0 < self.extra_seconds:
            best = self.best
            if best.run.error < AT_PRECISION or not self._swamp(best) or _run_gradient(best.run) <= self.gtol:
                return
            U = [_random_orthonormal((self.N, m, r), self.gen, self.G.dtype, self.device)
                 for m, r in zip(tuple(self.G.shape), self.iranks)]
            track = _Track("random", _ALS(self.G, U, self.ridge, self.cg_iter, tnorm2=self.tnorm2,
                                          offset2=self.offset2))
            self.tracks.append(track)
            track.reason = self.iterate(track, self.max_iter, self.tol_c)
            left = self.extra_seconds - (time.perf_counter() - self.t0)
            if track.run.error >= AT_PRECISION and self._swamp(track) and left > 0:
                self._nls(track, min(left, 0.5))
                self._keep_converging(track)
            if track.run.error < self.best.run.error:
                self.best = track

    def _nls(self, track: _Track, seconds: float) -> str:
        """One Gauss-Newton run from ``track``'s state (on G); returns its status."""
        run, hist = track.run, track.hist
        track.mark("NLS")

        def report(e_g):
            self.total += 1
            hist.append(math.sqrt(self.offset2 + self.tnorm2 * e_g * e_g))
            self._report(hist[-1])

        res = nls_refine(run.T, run.U, run.C, max_iter=self.nls_iter, tol=0.1 * self.gtol, time_limit=seconds,
                         slow_window=10 if self.method == "auto" else 0, progress=report, should_stop=self._stop)
        new = _ALS(run.T, [u.contiguous() for u in res.factors], self.ridge, self.cg_iter, C=res.cores,
                   tnorm2=self.tnorm2, offset2=self.offset2)
        if new.error <= run.error:
            track.run = new
        hist[-1] = track.run.error  # the kept model's own error (finish keeps the record non-increasing)
        track.reason = {"converged": "first-order", "stopped": "stopped"}.get(res.status, res.status)
        return res.status

    def _lift(self) -> None:
        """The compressed fit as a fit of T (same model), refined on T unless stopped."""
        best = self.best
        U = [(v @ u).contiguous() for v, u in zip(self.V, best.run.U)]  # orthonormal: V and u are
        # on a large T an exact error costs as much as half a sweep: only near precision
        full = _ALS(self.T, U, self.ridge, self.cg_iter, C=best.run.C.clone(),
                    exact_below=_EXACT_BELOW if self.T.numel() <= 2**21 else 1e-6)
        best.hist[-1] = full.error  # the same model, measured on T itself (no offset cancellation)
        best.run = full
        if self.stopped or self.refine_iter == 0:
            return
        before = len(best.hist)
        r2 = self.iterate(best, self.refine_iter)
        if r2 == "" and len(best.hist) > before:
            h = best.hist
            self.notes.append(f"refinement on the full matrix stopped after refine_iter = {self.refine_iter} sweeps "
                              f"with the error still falling by {(h[-2] - h[-1]) / h[-2]:.1e} per sweep; "
                              "raise refine_iter for a little more")
        if r2 not in ("converged", "no further decrease"):
            best.reason = r2 or "max_iter"

    # -- phase 5: the result --------------------------------------------------------------------
    def _status(self, err: float) -> tuple[str, str]:
        """(status, reason) of the kept run: the first-order test decides "converged"."""
        if self.stopped:
            return "stopped", "stopped"
        if err < AT_PRECISION:
            return "converged", "at numerical precision"
        self.grad = _run_gradient(self.best.run)
        # a run cut off by its sweep or time limit while its error still fell by more than 1% over its
        # last 10 iterations has not converged, however small the gradient already is (a slow crawl
        # through a swamp has a small gradient too)
        moving = self.best.reason in ("", "max_iter") and len(self.best.hist) > 10 and error_fall(self.best.hist) > 0.01
        if self.grad <= self.gtol and not moving:
            return "converged", "first-order"
        if self.best.reason in ("", "max_iter"):
            return "max_iter", "max_iter"
        return "stalled", "stalled"

    def finish(self, t0: float) -> tuple[BTMatrix, FitInfo]:
        """The BTMatrix in the caller's mode order and dtype, and its :class:`FitInfo`."""
        best, N, d = self.best, self.N, len(self.im)
        run, hist = best.run, best.hist
        err = run.error
        if not run.exact and err < _EXACT_BELOW * 10:
            err = run.exact_error()  # the reported error is always exact when small
        # The last entry is the exact error. Earlier entries of sweeps on a large tensor are Gram-formula
        # values, accurate to ~1e-12 in the squared error; where that rounding would show an increase
        # the earlier entry is raised, so the record never increases.
        hist[-1] = err
        for i in range(len(hist) - 2, -1, -1):
            hist[i] = max(hist[i], hist[i + 1])
        status, reason = self._status(err)
        if status == "stalled":
            self.notes.append(f"the fit stalled at relative error {err:.3g} without meeting the first-order test "
                              f"(gradient {self.grad:.1e} > gtol = {self.gtol:g}): a swamp or a poor local "
                              "minimum; more restarts (another seed) or method='nls' may lower it")
        marks = best.marks + [("", len(hist) - 1)]
        phases = [(m, a, b) for (m, a), (_, b) in zip(marks[:-1], marks[1:]) if b > a or len(marks) == 2]
        used = {m for m, _, _ in phases}
        inv = [self.order.index(k) for k in range(d)]
        factors = [run.U[inv[k]].reshape(N, self.im[k], self.om[k], self.ranks[k]).to(self.out_dtype)
                   for k in range(d)]
        # scale back in two steps (norm, then max|W|): each stays in range where their product might not
        core = ((run.C * self.norm) * self.scale).permute([0] + [1 + inv[k] for k in range(d)]).contiguous()
        M = BTMatrix(factors, core.to(self.out_dtype))
        info = FitInfo(
            format=self.spec.kind, method="ALS+NLS" if used == {"ALS", "NLS"} else (used.pop() if used else "ALS"),
            relative_error=float(err), errors=[float(e) for e in hist],
            iterations=len(hist) - 1, total_iterations=self.total, seconds=time.perf_counter() - t0,
            converged=status == "converged", status=status, reason=reason, at_precision=err < AT_PRECISION,
            ranks=self.ranks, blocks=N, params=M.num_params, requested_ranks=self.requested, notes=self.notes,
            start_kinds=[t.kind for t in self.tracks], start_errors=[float(t.hist[-1]) for t in self.tracks],
            chosen_start=self.chosen, spec=self.spec, phases=phases, grad_norm=float(self.grad),
        )
        return M, info
