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
(a Gauss-Newton one in ``btcore.bt_nls``) can take the chosen run from there.
"""

from __future__ import annotations

import math
import time
import warnings
from typing import Callable

import torch

from ..formats import BTSpec, normalize_ranks
from ..shapes import check_choice, check_modes, check_positive_int, prod
from ..tensors import BTMatrix, check_allocation
from .als import (
    _ALS, _hosvd_start, _mode_order, _project_all, _random_orthonormal, _sketch_bases, als_memory_bytes,
)
from .common import AT_PRECISION, _EXACT_BELOW, FitInfo, _as_matrix, _modes, _out_dtype, interleave

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



def fit_bt(W, in_modes, out_modes, rank, blocks: int = 1, *, seed: int | None = 0, restarts: int = 3,
           init: str = "auto", screen_iter: int = 10, max_iter: int = 60, tol: float = 1e-6,
           ridge: float = 1e-12, cg_iter: int = 6, compress: bool = True, oversample: float = 0.125,
           refine_iter: int = 5, dtype=None,
           progress: Callable[[int, float], None] | None = None,
           should_stop: Callable[[], bool] | None = None,
           warn: bool = True) -> tuple[BTMatrix, FitInfo]:
    """Fit a Block-Term matrix with N = ``blocks`` blocks of Tucker rank ``rank`` to W by joint ALS.

    Parameters
    ----------
    W : numpy array or torch tensor, shape (I, J)
        The matrix (y = x @ W). Must be finite.
    in_modes, out_modes : sequence of int
        I = prod(in_modes), J = prod(out_modes), same order d.
    rank : int or sequence of int
        Tucker rank R (or per-mode ranks). Ranks above a mode's size I_k J_k, or above the product of
        the other modes' ranks, are capped; ``info.notes`` says so (and a ``UserWarning`` if ``warn``).
    blocks : int
        Number of blocks N. ``blocks=1`` is Tucker (HOOI), ``rank=1`` is CP of rank N.
    seed : int or None
        Seeds the random starts; equal seeds give equal results.
    restarts : int
        Number of starts screened: with ``init="auto"`` the first is HOSVD-based and the others random
        orthonormal (a single start is random unless N = 1); ``init="random"`` or ``"hosvd"`` forces the
        kind of the first start.
    screen_iter : int
        Sweeps per start before the best start is chosen (only when ``restarts > 1``).
    max_iter : int
        Largest number of sweeps of the kept run (screening included).
    tol : float
        Stop when a sweep lowers the relative error by less than ``tol`` times its value.
    ridge : float
        Relative Tikhonov term of the least-squares systems (keeps near-singular systems solvable).
    cg_iter : int
        Conjugate-gradient iterations per sweep of the joint core solve (used when N * prod R > 768;
        warm-started, so the solve converges over the sweeps).
    compress : bool
        Fit on a Tucker compression of the tensor to ranks min(I_k J_k, (1 + oversample) N R_k)
        first (when that at least halves it), then refine on the full tensor for up to
        ``refine_iter`` sweeps. The compressed sweeps are cheap; the refinement makes the result a
        fit of W itself.
    oversample : float
        Extra compression rank, as a fraction of N R_k (at least 2).
    refine_iter : int
        Sweeps on the full tensor after the compressed fit.
    dtype : torch dtype, optional
        dtype of the returned tensors; default float32 for float32 input, else float64.
    progress : callable(iteration, rel_error), optional
        Called after every sweep; ``iteration`` counts sweeps over all starts (screening included),
        ``rel_error`` is the error of the run being iterated.
    should_stop : callable() -> bool, optional
        Polled before every sweep; when it returns True the best result so far is returned with
        ``info.reason == "stopped"``.

    Returns
    -------
    (BTMatrix, FitInfo)

    Raises
    ------
    ValueError
        For bad shapes or values, or when the fit's intermediates would not fit in memory.
    """
    fit = _BTFit(seed=seed, restarts=restarts, init=init, screen_iter=screen_iter, max_iter=max_iter, tol=tol,
                 ridge=ridge, cg_iter=cg_iter, compress=compress, oversample=oversample, refine_iter=refine_iter,
                 progress=progress, should_stop=should_stop, warn=warn)
    return fit.run(W, in_modes, out_modes, rank, blocks, dtype)


class _BTFit:
    """One call of :func:`fit_bt`: its settings, and the state its phases hand on to each other.

    ``total`` counts sweeps over all starts; ``stopped`` is set once ``should_stop`` returned True.
    """

    def __init__(self, *, seed, restarts, init, screen_iter, max_iter, tol, ridge, cg_iter, compress, oversample,
                 refine_iter, progress, should_stop, warn):
        self.seed, self.restarts, self.init = seed, restarts, init
        self.screen_iter, self.max_iter, self.tol = screen_iter, max_iter, tol
        self.ridge, self.cg_iter = ridge, cg_iter
        self.compress_on, self.oversample, self.refine_iter = compress, oversample, refine_iter
        self.progress, self.should_stop, self.warn = progress, should_stop, warn
        self.total = 0
        self.stopped = False
        self.start_errors, self.chosen = [], 0

    def run(self, W, in_modes, out_modes, rank, blocks, dtype) -> tuple[BTMatrix, FitInfo]:
        t0 = time.perf_counter()
        self.validate(W, in_modes, out_modes, rank, blocks, dtype)
        self.compress()
        if self.norm == 0.0:
            self.zero_fit()
        else:
            self.screen()
            self.refine()
        return self.finish(t0)

    # -- phase 1: inputs ----------------------------------------------------------------------
    def validate(self, W, in_modes, out_modes, rank, blocks, dtype) -> None:
        """Check every input, cap the ranks and refuse a fit that would not fit in memory."""
        self.out_dtype = _out_dtype(W, dtype)
        self.Wt = _as_matrix(W)
        self.im, self.om = _modes(self.Wt, in_modes, out_modes)
        self.N = check_positive_int(blocks, "blocks")
        self.restarts = check_positive_int(self.restarts, "restarts")
        self.max_iter = max(0, int(self.max_iter))
        self.screen_iter = max(1, int(self.screen_iter))
        check_choice(self.init, ("auto", "random", "hosvd"), "init")
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

        Compression (Tensorlab-style): fit on the core of a Tucker(min(M_k, N R_k)) compression of T
        found by Kronecker-structured random sketches, then refine on T itself.
        """
        N, d = self.N, len(self.im)
        self.norm = float(torch.linalg.norm(self.Wt))
        self.order = _mode_order(self.sizes)
        T = interleave(self.Wt, self.im, self.om, self.order)
        del self.Wt  # T is the only copy the fit needs
        if self.norm > 0:
            T = T / self.norm
        self.T = T
        self.iranks = tuple(self.ranks[k] for k in self.order)
        self.isizes = tuple(self.sizes[k] for k in self.order)
        self.gen = torch.Generator().manual_seed(0 if self.seed is None else int(self.seed))
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
        self.kinds = ["hosvd" if s == 0 and hosvd_ok else "random" for s in range(self.restarts)]

    # -- phase 3: starts ------------------------------------------------------------------------
    def _start(self, kind: str) -> _ALS:
        G = self.G
        if kind == "hosvd":
            U = _hosvd_start(G, self.N, self.iranks, self.gen)
        else:
            U = [_random_orthonormal((self.N, m, r), self.gen, G.dtype, self.device)
                 for m, r in zip(tuple(G.shape), self.iranks)]
        return _ALS(G, U, self.ridge, self.cg_iter, tnorm2=self.tnorm2, offset2=self.offset2)

    def zero_fit(self) -> None:
        """W = 0: any cores of zero are exact; no sweep runs."""
        U = [_random_orthonormal((self.N, m, r), self.gen, self.T.dtype, self.device)
             for m, r in zip(self.isizes, self.iranks)]
        self.best = _ALS(self.T, U, self.ridge, self.cg_iter)
        self.best.error, self.best.exact = 0.0, True
        self.hist, self.reason, self.start_errors = [0.0], "at numerical precision", [0.0]

    def screen(self) -> None:
        """Run each start for a few sweeps (all of ``max_iter`` when there is one) and keep the best."""
        runs = []
        n_sweeps = min(self.screen_iter, self.max_iter) if self.restarts > 1 else self.max_iter
        for kind in self.kinds:
            if self.stopped:
                break
            run = self._start(kind)
            hist = [run.error]
            self._report(run.error)
            reason = self.iterate(run, hist, n_sweeps, self.tol_c)
            runs.append((run, hist, reason))
            if reason == "at numerical precision" and run.error < AT_PRECISION:
                break
        self.start_errors = [r.error for r, _, _ in runs]
        self.chosen = min(range(len(runs)), key=lambda i: runs[i][0].error)
        self.best, self.hist, self.reason = runs[self.chosen]

    # -- phase 4: refinement --------------------------------------------------------------------
    def _report(self, err: float) -> None:
        if self.progress is not None:
            self.progress(self.total, err)

    def iterate(self, run: _ALS, hist: list, n_sweeps: int, tol: float | None = None) -> str:
        """Up to ``n_sweeps`` more ALS sweeps of ``run``, errors appended to ``hist``.

        Returns the stop reason, or '' when the sweeps ran out. A sweep that would increase the error
        is undone and ends the run, so ``hist`` never increases.
        """
        tol = self.tol if tol is None else tol
        for _ in range(n_sweeps):
            if run.exact and run.error < AT_PRECISION * 1e-3:
                return "at numerical precision"
            if self.should_stop is not None and self.should_stop():
                self.stopped = True
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
        """Continue the chosen start up to ``max_iter`` sweeps, then (after a compressed fit) lift it
        to T and refine it there for up to ``refine_iter`` sweeps."""
        if self.reason == "" and not self.stopped:
            self.reason = self.iterate(self.best, self.hist, self.max_iter - (len(self.hist) - 1), self.tol_c)
        if self.V is not None:
            self._lift()
        if self.stopped:
            self.reason = "stopped"
        elif self.reason == "":
            self.reason = "max_iter"

    def _lift(self) -> None:
        """The compressed fit as a fit of T (same model), refined on T unless stopped."""
        best, hist = self.best, self.hist
        U = [(v @ u).contiguous() for v, u in zip(self.V, best.U)]  # orthonormal: V and u are
        # on a large T an exact error costs as much as half a sweep: only near precision
        full = _ALS(self.T, U, self.ridge, self.cg_iter, C=best.C.clone(),
                    exact_below=_EXACT_BELOW if self.T.numel() <= 2**21 else 1e-6)
        hist[-1] = full.error  # the same model, measured on T itself (no offset cancellation)
        self.best = full
        if self.stopped:
            return
        before = len(hist)
        r2 = self.iterate(full, hist, self.refine_iter)
        if r2 == "" and len(hist) >= 2 and len(hist) > before:
            self.notes.append(f"refinement on the full matrix stopped after refine_iter = {self.refine_iter} sweeps "
                              f"with the error still falling by {(hist[-2] - hist[-1]) / hist[-2]:.1e} per sweep; "
                              "raise refine_iter for a little more")
        self.reason = r2 or (self.reason if self.reason else "max_iter")

    # -- phase 5: the result --------------------------------------------------------------------
    def finish(self, t0: float) -> tuple[BTMatrix, FitInfo]:
        """The BTMatrix in the caller's mode order and dtype, and its :class:`FitInfo`."""
        best, hist, N, d = self.best, self.hist, self.N, len(self.im)
        err = best.error
        if not best.exact and err < _EXACT_BELOW * 10:
            err = best.exact_error()  # the reported error is always exact when small
        # The last entry is the exact error. Earlier entries of sweeps on a large tensor are Gram-formula
        # values, accurate to ~1e-12 in the squared error; where that rounding would show an increase
        # the earlier entry is raised, so the record never increases.
        hist[-1] = err
        for i in range(len(hist) - 2, -1, -1):
            hist[i] = max(hist[i], hist[i + 1])
        inv = [self.order.index(k) for k in range(d)]
        factors = [best.U[inv[k]].reshape(N, self.im[k], self.om[k], self.ranks[k]).to(self.out_dtype)
                   for k in range(d)]
        core = (best.C * self.norm).permute([0] + [1 + inv[k] for k in range(d)]).contiguous().to(self.out_dtype)
        M = BTMatrix(factors, core)
        info = FitInfo(
            format=self.spec.kind, method="ALS", relative_error=float(err), errors=[float(e) for e in hist],
            iterations=len(hist) - 1, total_iterations=self.total, seconds=time.perf_counter() - t0,
            converged=self.reason in ("converged", "no further decrease", "at numerical precision"),
            reason=self.reason, at_precision=err < AT_PRECISION, ranks=self.ranks, blocks=N, params=M.num_params,
            requested_ranks=self.requested, notes=self.notes, start_kinds=self.kinds[: len(self.start_errors)],
            start_errors=[float(e) for e in self.start_errors], chosen_start=self.chosen, spec=self.spec,
        )
        return M, info
