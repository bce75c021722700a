"""Tucker and CP fits as tensorly's ``tucker`` (HOOI) and ``parafac`` (CP-ALS) make them, as BT matrices.

Both run on the interleaved float64 numpy tensor T (normalised to unit norm) and return a
:class:`~btcore.BTMatrix` (Tucker: one block; CP: ``rank`` blocks of Tucker rank 1) with a
:class:`~btcore.decompose.FitInfo` of the same meaning as :func:`~btcore.decompose.fit_bt`'s.

* CP is tensorly's ``parafac`` itself (with its line search), from tensorly's SVD start.
* Tucker is tensorly's HOOI (the same start, update order and stopping test; its iterates to
  rounding, which the tests check) written here with a two-level dimension tree: an iteration
  passes over T twice where tensorly's ``tucker`` passes d + 1 times, and the leading singular
  vectors of wide unfoldings come from their Gram matrices. That makes an iteration 3-5x cheaper,
  which pays for a tighter tolerance (lower errors, honest "converged") and the gradient of the
  status test.

Threads: tensorly dispatches every call to the backend of the calling thread
(``BackendManager._THREAD_LOCAL_DATA``, a ``threading.local``), falling back to the process-wide one,
which is numpy unless someone calls ``tensorly.set_backend``; btcore never does. ``parafac`` and
``cp_to_tensor`` are pure functions of their numpy arguments (no module state is written), so fits
in several worker threads at once are safe. Where the calling thread's backend is not numpy, this
thread alone is switched to numpy for the call (``set_backend(..., local_threadsafe=True)``) and back
afterwards; the process-wide backend is never changed (``tensorly.backend_context`` would reset it
on exit).
"""

from __future__ import annotations

import math
import time
import warnings
from contextlib import contextmanager
from typing import Callable

import numpy as np
import torch

from ..formats import BTSpec, normalize_ranks
from ..matrices import BTMatrix
from ..memory import check_allocation
from ..shapes import check_positive_int
from .als import als_memory_bytes
from .bt import cap_bt_ranks
from .fitinfo import AT_PRECISION, EXACT_BELOW, FitInfo, StopCheck
from .inputs import as_matrix, check_seed, fit_modes, interleave, out_dtype, scale_of
from .settings import STOPPING, FitSettings, for_format

__all__ = ["fit_tucker", "fit_cp"]


def fit_tucker(W, in_modes, out_modes, rank, *, settings: FitSettings | None = None, seed: int | None = 0,
               dtype=None, progress: Callable[[int, float], None] | None = None,
               should_stop: Callable[[], bool] | None = None, warn: bool = True,
               **options) -> tuple[BTMatrix, FitInfo]:
    """Tucker fit of Tucker rank ``rank``: HOOI from the truncated-HOSVD start, as tensorly's ``tucker``.

    The iterates are those of tensorly's ``tucker(T, rank, init="svd")`` on the interleaved tensor T
    (the same start, the same Gauss-Seidel order of the factor updates, the same stopping test), up
    to rounding; each iteration here passes over T twice (the factors of the leading modes share
    T's projection on the trailing ones, and the other way round) where tensorly's passes d + 1
    times, which also pays for the gradient of the status test. The result is a BT matrix with one
    block.

    Parameters
    ----------
    W : numpy array or torch tensor, shape (I, J)
        The matrix (finite; any scale).
    in_modes, out_modes : sequence of int
        I = prod(in_modes), J = prod(out_modes), same order d.
    rank : int or sequence of int
        Tucker rank (or per-mode ranks), capped as :func:`~btcore.decompose.cap_bt_ranks` caps them.
    settings : FitSettings, optional
        Adapted by :func:`~btcore.decompose.settings.for_format`. Of its fields HOOI reads
        ``max_iter`` (iterations), ``tol`` (the run ends when an iteration changes the relative error
        by less than ``tol``, absolute, from the third iteration on: tensorly's test), ``gtol`` and
        ``time_limit``.
    seed, dtype, progress, should_stop, warn
        As in :func:`~btcore.decompose.fit_bt` (HOOI from the HOSVD start draws nothing at random).
    **options
        Any field of :class:`FitSettings`, overriding ``settings``.

    Returns
    -------
    (BTMatrix, FitInfo)
        ``info.status`` is "converged" only when the stopping test passed with the error no longer
        falling and the gradient below ``gtol`` (or the error is at numerical precision).
    """
    job = _Job("Tucker", W, in_modes, out_modes, rank, 1, for_format(settings, "Tucker").replace(**options),
               seed, dtype, progress, should_stop, warn)
    if job.norm == 0:
        return job.zero()
    T, ranks, s = job.T, job.ranks, job.s
    d = T.ndim
    lead, trail = list(range(max(1, d // 2))), list(range(max(1, d // 2), d))
    U = [_leading(_unfold(T, k), r)[0] for k, r in enumerate(ranks)]  # the truncated HOSVD
    B = _project(T, U, lead)
    core = _project(B, U, trail)
    hist = [_tucker_error(core)]
    job.report(hist[-1])
    reason = ""
    for it in range(s.max_iter):
        if job.stop():
            reason = "stopped"
            break
        A = _project(T, U, trail)
        for k in lead:
            U[k] = _leading(_unfold(_project(A, U, [j for j in lead if j != k]), k), ranks[k])[0]
        B = _project(T, U, lead)
        for k in trail:
            U[k] = _leading(_unfold(_project(B, U, [j for j in trail if j != k]), k), ranks[k])[0]
        core = _project(B, U, trail)
        hist.append(_tucker_error(core))
        job.report(hist[-1])
        if hist[-1] < AT_PRECISION * 1e-3:
            reason = "at numerical precision"
            break
        if it > 1 and abs(hist[-2] - hist[-1]) < s.tol:  # tensorly's test, from its third iteration
            reason = "converged"
            break
    err = hist[-1]
    if err < EXACT_BELOW * 10:  # the Gram formula loses small errors to cancellation
        err = float(np.linalg.norm(T - _expand(core, U)))
    grad = (_tucker_gradient(T, core, U, B, lead, trail) if reason == "converged" and err >= AT_PRECISION
            else math.nan)
    return job.finish([u[None] for u in U], core[None], hist, err, reason, grad, ["hosvd"])


def fit_cp(W, in_modes, out_modes, rank, *, settings: FitSettings | None = None, seed: int | None = 0,
           dtype=None, progress: Callable[[int, float], None] | None = None,
           should_stop: Callable[[], bool] | None = None, warn: bool = True,
           **options) -> tuple[BTMatrix, FitInfo]:
    """CP fit of rank ``rank``: tensorly's ``parafac`` (CP-ALS with its line search, from the SVD start).

    ``parafac(T, rank, init="svd", linesearch=True)`` on the interleaved tensor T (the start's
    singular vectors from Gram matrices, see :func:`_leading`), as a BT matrix with
    ``rank`` blocks of Tucker rank 1 (unit-norm factor vectors, the weights in the cores). The line
    search (an extrapolation tried every other iteration) reaches lower errors than plain CP-ALS at
    the same number of iterations on photos and the digits (``bench/fairness.py``).

    Parameters
    ----------
    rank : int
        CP rank (the number of rank-one terms).
    settings : FitSettings, optional
        Adapted by :func:`~btcore.decompose.settings.for_format`. CP-ALS reads ``max_iter``
        (iterations), ``tol`` (the run ends when an iteration changes the relative error by less than
        ``tol``, absolute: tensorly's test), ``gtol`` and ``time_limit``.
    W, in_modes, out_modes, seed, dtype, progress, should_stop, warn, **options
        As in :func:`fit_tucker`. ``seed`` is tensorly's ``random_state``: it fills the start's
        columns beyond a mode's size.

    Returns
    -------
    (BTMatrix, FitInfo)
        As :func:`fit_tucker`'s. ``info.errors`` has the start and the iterations whose error tensorly
        measures (not the extrapolation steps of its line search).
    """
    rank = check_positive_int(rank, "rank")
    job = _Job("CP", W, in_modes, out_modes, 1, rank, for_format(settings, "CP").replace(**options),
               seed, dtype, progress, should_stop, warn)
    from tensorly.decomposition import parafac
    from tensorly.cp_tensor import cp_to_tensor

    T, s = job.T, job.s
    if job.norm == 0:
        return job.zero()
    if T.ndim == 1:  # a vector is its own rank-one term (tensorly's CP-ALS needs two modes)
        job.report(0.0)
        lam = np.zeros(rank)
        lam[0] = 1.0
        return job.finish([np.tile(T, (rank, 1))[:, :, None]], lam.reshape(rank, 1), [0.0], 0.0,
                          "at numerical precision", math.nan, ["svd"])
    calls = []

    def callback(_cp, err):
        calls.append(float(err))
        job.report(calls[-1])
        # numerical precision ends the run (tensorly would go on until a step gains less than tol)
        return job.stop() or calls[-1] < AT_PRECISION * 1e-3

    with _numpy_backend(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # rank above a mode size: tensorly fills columns at random and says so
        (weights, A), errs = parafac(T, rank, n_iter_max=s.max_iter, init=(None, _cp_start(T, rank, job.rs)),
                                     tol=s.tol, linesearch=True,
                                     random_state=job.rs, return_errors=True, callback=callback)
        hist = [calls[0]] + [float(e) for e in errs]
        A = [np.asarray(a) for a in A]
        # exact, and the final model's: the last iteration may have been an unrecorded line-search one
        err = float(np.linalg.norm(T - cp_to_tensor((weights, A))))
        last = len(calls) - 2  # index of the last iteration (tensorly's line-search test)
        if last > 5 and last % 2 == 0:
            hist.append(err)
        # the stopping test: tensorly's, or numerical precision
        passed = len(errs) >= 2 and abs(errs[-2] - errs[-1]) < s.tol
        reason = ("stopped" if job.stopped else "at numerical precision" if err < AT_PRECISION * 1e-3
                  else "converged" if passed else "")
        norms = [np.linalg.norm(a, axis=0) for a in A]
        lam = np.asarray(weights) * np.prod(norms, axis=0)
        A = [a / np.where(n > 0, n, 1.0) for a, n in zip(A, norms)]
        grad = _cp_gradient(T, lam, A) if reason == "converged" and err >= AT_PRECISION else math.nan
    factors = [a.T[:, :, None] for a in A]  # (rank, I_k J_k, 1)
    core = lam.reshape((rank,) + (1,) * T.ndim)
    return job.finish(factors, core, hist, err, reason, grad, ["svd"])


# ----------------------------------------------------------------------------------------------
# The checked inputs, the hooks and the record
# ----------------------------------------------------------------------------------------------

class _Job(StopCheck):
    """One Tucker or CP fit: the checked inputs, the unit-norm numpy tensor T, the settings, the
    progress / stop hooks and the work and wall-clock counters."""

    def __init__(self, kind, W, in_modes, out_modes, rank, blocks, s: FitSettings, seed, dtype, progress,
                 should_stop, warn):
        self.t0 = time.perf_counter()
        self.kind, self.s = kind, s
        seed = check_seed(seed)
        self.rs = 0 if seed is None else seed % 2**32  # numpy's RandomState takes 32-bit seeds
        for name, fn in (("progress", progress), ("should_stop", should_stop)):
            if fn is not None and not callable(fn):
                raise ValueError(f"{name} must be a callable or None, got {fn!r}")
        self.progress = progress
        StopCheck.__init__(self, should_stop, s.time_limit, self.t0)
        self.out_dtype = out_dtype(W, dtype)
        Wt = as_matrix(W)
        self.im, self.om = fit_modes(Wt, in_modes, out_modes)
        self.N = blocks
        self.requested = normalize_ranks(rank, len(self.im))
        self.ranks, self.notes = cap_bt_ranks(self.im, self.om, self.requested)
        self.notes = list(self.notes)
        if self.notes and warn:
            warnings.warn("; ".join(self.notes), UserWarning, stacklevel=3)  # _Job <- fit_* <- the caller
        self.spec = BTSpec(self.im, self.om, self.ranks, blocks, max_bytes=None)
        sizes = tuple(i * j for i, j in zip(self.im, self.om))
        check_allocation(als_memory_bytes(sizes, self.ranks, blocks),
                         f"fitting {kind} to a {Wt.shape[0]:,} x {Wt.shape[1]:,} matrix",
                         "use a lower rank or a smaller matrix", Wt.device)
        # W / max|W| first, so that the norm neither overflows nor underflows
        self.scale = scale_of(Wt)
        Ws = (Wt / self.scale if self.scale > 0 else Wt).detach().cpu().numpy()
        self.norm = float(np.linalg.norm(Ws))
        T = interleave(Ws, self.im, self.om)
        self.T = T / self.norm if self.norm > 0 else T
        self.total = -1  # total: iterations (the start is -1)

    def report(self, err: float) -> None:
        self.total += 1
        if self.progress is not None:
            self.progress(self.total, err)

    def status(self, hist: list, err: float, reason: str, grad: float) -> tuple[str, str]:
        """(status, reason) by the rules of :func:`~btcore.decompose.fit_bt`: "converged" needs the
        error at numerical precision, or the stopping test passed with the error no longer falling and
        the gradient below ``gtol``; a run cut by its budget is "max_iter"."""
        if self.timed_out:
            return "time_limit", "time_limit"
        if self.stopped:
            return "stopped", "stopped"
        if err < AT_PRECISION:
            return "converged", "at numerical precision"
        if reason != "converged":
            return "max_iter", "max_iter"
        flat = len(hist) > 1 and hist[-2] - hist[-1] <= STOPPING.flat_fall * hist[-2]
        if flat and grad <= self.s.gtol:
            return "converged", "first-order"
        self.notes.append(f"the fit ended on its stopping test (an iteration gained less than tol = {self.s.tol:g}) "
                          f"with the error still falling or the gradient ({grad:.1e}) above gtol = {self.s.gtol:g}: "
                          "not a first-order point")
        return "stalled", "stalled"

    def zero(self) -> tuple[BTMatrix, FitInfo]:
        """W = 0: zero cores are exact (any orthonormal factors); no iteration runs."""
        sizes = [i * o for i, o in zip(self.im, self.om)]
        factors = [np.tile(np.eye(m, r), (self.N, 1, 1)) for m, r in zip(sizes, self.ranks)]
        core = np.zeros((self.N,) + tuple(self.ranks))
        self.report(0.0)
        return self.finish(factors, core, [0.0], 0.0, "at numerical precision", math.nan, ["hosvd"])

    def finish(self, factors: list, core: np.ndarray, hist: list, err: float, reason: str, grad: float,
               kinds: list) -> tuple[BTMatrix, FitInfo]:
        """The BTMatrix (factors (N, I_k J_k, R_k) and cores of the unit-norm T) and its FitInfo."""
        hist = [float(e) for e in hist]
        hist[-1] = float(err)
        for i in range(len(hist) - 2, -1, -1):  # Gram-formula rounding must not show an increase
            hist[i] = max(hist[i], hist[i + 1])
        status, reason = self.status(hist, err, reason, grad)
        odt, N = self.out_dtype, self.N
        U = [torch.from_numpy(np.ascontiguousarray(f)).reshape(N, i, o, -1).to(odt)
             for f, i, o in zip(factors, self.im, self.om)]
        # scale back in two steps (norm, then max|W|): each stays in range where their product might not
        C = torch.from_numpy((np.asarray(core) * self.norm) * self.scale).to(odt)
        M = BTMatrix(U, C.contiguous())
        info = FitInfo(
            format=self.spec.kind, method="ALS", relative_error=float(err), errors=hist,
            iterations=len(hist) - 1, total_iterations=max(self.total, 0),
            seconds=time.perf_counter() - self.t0, converged=status == "converged", status=status,
            reason=reason, at_precision=err < AT_PRECISION, ranks=self.ranks, blocks=N, params=M.num_params,
            requested_ranks=self.requested, notes=self.notes, start_kinds=kinds, start_errors=[hist[-1]],
            chosen_start=0, spec=self.spec, phases=[("ALS", 0, len(hist) - 1)], grad_norm=float(grad),
            reproducible=not self.timed_out)
        return M, info


@contextmanager
def _numpy_backend():
    """tensorly's numpy backend for this thread while the block runs; the process-wide one untouched."""
    import tensorly as tl

    old = tl.get_backend()
    if old == "numpy":
        yield
        return
    tl.set_backend("numpy", local_threadsafe=True)
    try:
        yield
    finally:
        tl.set_backend(old, local_threadsafe=True)


# ----------------------------------------------------------------------------------------------
# numpy helpers: unfolding, errors, gradients
# ----------------------------------------------------------------------------------------------

def _unfold(T: np.ndarray, k: int) -> np.ndarray:
    """Mode-k unfolding (tensorly's convention: the other modes in order, C order)."""
    return np.moveaxis(T, k, 0).reshape(T.shape[k], -1)


def _tucker_error(core: np.ndarray) -> float:
    """||T - core x U|| for a unit-norm T, orthonormal U and core = T x U^T (tensorly's formula)."""
    return math.sqrt(abs(1.0 - float(np.sum(core * core))))


def _leading(M: np.ndarray, r: int) -> tuple[np.ndarray, np.ndarray]:
    """(the min(r, rows) leading left singular vectors, their singular values) of an unfolding M.

    A wide M (at least twice as many columns as rows: the unfoldings of T, and those of its
    projections but where ranks are near the mode sizes) goes through the eigenvectors of its Gram
    matrix M M^T, an order of magnitude cheaper than its SVD. Only the leading subspace is used, and
    the fit's error is stationary in it: its rounding (eps ||M||^2 / gap) moves the error by its
    square.
    """
    if M.shape[1] < 2 * M.shape[0]:
        u, sv, _ = np.linalg.svd(M, full_matrices=False)
        return np.ascontiguousarray(u[:, :r]), sv[:r]
    w, v = np.linalg.eigh(M @ M.T)
    return np.ascontiguousarray(v[:, ::-1][:, :r]), np.sqrt(np.clip(w[::-1][:r], 0.0, None))


def _cp_start(T: np.ndarray, rank: int, random_state: int) -> list:
    """tensorly's ``initialize_cp(init="svd")``, with :func:`_leading` for the SVDs: per mode the
    leading left singular vectors of its unfolding (mode 1 scaled by the singular values), columns
    beyond a mode's size drawn uniformly from ``random_state``."""
    rng = np.random.RandomState(random_state)
    factors = []
    for k in range(T.ndim):
        U, sv = _leading(_unfold(T, k), rank)
        if k == 0:
            U = U * sv
        if U.shape[1] < rank:
            U = np.concatenate([U, rng.random_sample((U.shape[0], rank - U.shape[1]))], axis=1)
        factors.append(U)
    return factors


def _project(X: np.ndarray, U: list, modes) -> np.ndarray:
    """X x_k U_k^T over ``modes``, each one matrix product on a C-ordered view (no transposed copies)."""
    for k in modes:
        u, shape = U[k], X.shape
        p, m, q = math.prod(shape[:k]), shape[k], math.prod(shape[k + 1:])
        if q == 1:
            Y = X.reshape(p, m) @ u
        elif p == 1:
            Y = u.T @ X.reshape(m, q)
        else:
            Y = np.matmul(u.T, X.reshape(p, m, q))
        X = Y.reshape(shape[:k] + (u.shape[1],) + shape[k + 1:])
    return X


def _expand(core: np.ndarray, U: list) -> np.ndarray:
    """core x_k U_k over all modes (the Tucker tensor)."""
    X = core
    for k, u in enumerate(U):
        X = np.moveaxis(np.tensordot(X, u, axes=([k], [1])), -1, k)
    return X


def _tucker_gradient(T: np.ndarray, core: np.ndarray, U: list, B: np.ndarray, lead: list, trail: list) -> float:
    """||gradient of 0.5 ||T - core x U||^2|| over the factors, with core = T x U^T (its own gradient
    is then zero): per mode (Y_(k) - U_k C_(k)) C_(k)^T with Y = T x_{j != k} U_j^T. ``B`` is T
    projected on the leading modes' final factors (the trailing modes' Y come from it); the leading
    modes' Y need one more pass over T."""
    total = 0.0
    for half, base in ((lead, _project(T, U, trail)), (trail, B)):
        for k in half:
            Y = _project(base, U, [j for j in half if j != k])
            Ck = _unfold(core, k)
            g = (_unfold(Y, k) - U[k] @ Ck) @ Ck.T
            total += float(np.sum(g * g))
    return math.sqrt(total)


def _cp_gradient(T: np.ndarray, lam: np.ndarray, A: list) -> float:
    """||gradient of 0.5 ||T - sum_n lam_n a_1^n o .. o a_d^n||^2|| over unit-norm factor vectors and
    the weights (the parametrisation of the returned BT matrix: Tucker rank 1, weights in the cores)."""
    from tensorly.tenalg import unfolding_dot_khatri_rao

    grams = [a.T @ a for a in A]
    ones = np.ones_like(lam)
    total = 0.0
    for k in range(T.ndim):
        H = np.prod([g for j, g in enumerate(grams) if j != k], axis=0) if T.ndim > 1 else np.ones_like(grams[0])
        # the residual's MTTKRP: T_(k) KR(A_j, j != k) minus the model's, A_k diag(lam) H
        G = unfolding_dot_khatri_rao(T, (ones, A), k) - A[k] @ (lam[:, None] * H)
        total += float(np.sum((G * lam) ** 2))
        if k == 0:
            total += float(np.sum(np.einsum("in,in->n", A[0], G) ** 2))
    return math.sqrt(total)
