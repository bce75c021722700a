"""Tucker and CP fits as tensorly's ``tucker`` (HOOI) and ``parafac`` (CP-ALS) make them, as BT matrices.

Both run on the interleaved float64 numpy tensor T (normalised to unit norm) and return a
:class:`~btcore.BTMatrix` (Tucker: one block; CP: ``rank`` blocks of Tucker rank 1) with a
:class:`~btcore.decompose.FitInfo` of the same meaning as :func:`~btcore.decompose.fit_bt`'s.

* CP is tensorly's ``parafac`` with its line search, from tensorly's SVD start: its iterates to
  rounding (the tests check them against ``parafac`` itself), with the MTTKRPs through the same
  two-level dimension tree: tensorly forms the Khatri-Rao product of the d - 1 other factors for
  each of the d modes, here T is multiplied once per half by the other half's Khatri-Rao product
  and each mode's MTTKRP follows from that (two passes over T an iteration instead of d; several
  times less time at the large ranks the advisor fits, ``bench/fairness.py``).
* Tucker is tensorly's HOOI (the same start, update order and stopping test; its iterates to
  rounding, which the tests check) written here with a two-level dimension tree: an iteration
  passes over T twice where tensorly's ``tucker`` passes d + 1 times, and the leading singular
  vectors of wide unfoldings come from their Gram matrices. That makes an iteration 3-5x cheaper,
  which pays for a tighter tolerance (lower errors, honest "converged") and the gradient of the
  status test.

Both are pure functions of their numpy arguments (no module state, no tensorly backend is read or
set), so fits in several worker threads at once are safe.
"""

from __future__ import annotations

import math
import time
import warnings
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

    The iterates of ``parafac(T, rank, init="svd", linesearch=True)`` on the interleaved tensor T (the
    start's singular vectors from Gram matrices, see :func:`_leading`; the MTTKRPs through a dimension
    tree, see :func:`_parafac`), as a BT matrix with
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

    def callback(err):
        calls.append(float(err))
        job.report(calls[-1])
        # numerical precision ends the run (tensorly would go on until a step gains less than tol)
        return job.stop() or calls[-1] < AT_PRECISION * 1e-3

    A, errs = _parafac(T, _cp_start(T, rank, job.rs), s.max_iter, s.tol, callback)
    hist = [calls[0]] + [float(e) for e in errs]
    # exact, and the final model's: the last iteration may have been an unrecorded line-search one
    err = _cp_error(T, A)
    last = len(calls) - 2  # index of the last iteration (tensorly's line-search test)
    if last > 5 and last % 2 == 0:
        hist.append(err)
    # the stopping test: tensorly's, or numerical precision
    passed = len(errs) >= 2 and abs(errs[-2] - errs[-1]) < s.tol
    reason = ("stopped" if job.stopped else "at numerical precision" if err < AT_PRECISION * 1e-3
              else "converged" if passed else "")
    norms = [np.linalg.norm(a, axis=0) for a in A]
    lam = np.prod(norms, axis=0)
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
    grams = [a.T @ a for a in A]
    mttkrps = _mttkrps(T, A)
    total = 0.0
    for k in range(T.ndim):
        H = np.prod([g for j, g in enumerate(grams) if j != k], axis=0) if T.ndim > 1 else np.ones_like(grams[0])
        # the residual's MTTKRP: T_(k) KR(A_j, j != k) minus the model's, A_k diag(lam) H
        G = mttkrps[k] - A[k] @ (lam[:, None] * H)
        total += float(np.sum((G * lam) ** 2))
        if k == 0:
            total += float(np.sum(np.einsum("in,in->n", A[0], G) ** 2))
    return math.sqrt(total)


# ----------------------------------------------------------------------------------------------
# CP-ALS with tensorly's line search, its MTTKRPs through a two-level dimension tree
# ----------------------------------------------------------------------------------------------

def _cp_error(T: np.ndarray, A: list) -> float:
    """||T - [[A]]|| (unit weights), the model built from the two halves' Khatri-Rao products."""
    lead, trail = _halves(T.shape)
    T2 = T.reshape(math.prod(T.shape[:len(lead)]), -1)
    return float(np.linalg.norm(T2 - _khatri_rao([A[j] for j in lead]) @ _khatri_rao([A[j] for j in trail]).T))


def _halves(shape) -> tuple[list, list]:
    """The leading and trailing modes of the dimension tree: the split whose larger half is smallest
    (both halves' Khatri-Rao products are formed explicitly)."""
    d = len(shape)
    h = min(range(1, d), key=lambda h: (max(math.prod(shape[:h]), math.prod(shape[h:])), h))
    return list(range(h)), list(range(h, d))


def _khatri_rao(A: list) -> np.ndarray:
    """Column-wise Kronecker product of the matrices ``A`` (the first one's row index slowest),
    shape (prod of rows, rank)."""
    K = A[0]
    for a in A[1:]:
        K = (K[:, None, :] * a[None, :, :]).reshape(-1, K.shape[1])
    return K


def _half_mttkrp(P: np.ndarray, A: list, half: list, k: int) -> np.ndarray:
    """The mode-k MTTKRP from ``P``, T contracted with the other half's factors (shape: the half's
    sizes, then rank): P contracted with this half's factors but k's."""
    i = half.index(k)
    others = [A[j] for j in half if j != k]
    if not others:
        return P
    shape = P.shape
    Pk = np.moveaxis(P, i, 0).reshape(shape[i], -1, shape[-1])
    return np.einsum("mpn,pn->mn", Pk, _khatri_rao(others), optimize=False)


def _mttkrps(T: np.ndarray, A: list) -> list:
    """T_(k) KR(A_j, j != k) for every mode k, all factors fixed (two passes over T)."""
    lead, trail = _halves(T.shape)
    n = math.prod(T.shape[:len(lead)])
    T2 = T.reshape(n, -1)
    sizes = T.shape
    P = (T2 @ _khatri_rao([A[j] for j in trail])).reshape(sizes[:len(lead)] + (-1,))
    Q = (T2.T @ _khatri_rao([A[j] for j in lead])).reshape(sizes[len(lead):] + (-1,))
    return [_half_mttkrp(P, A, lead, k) for k in lead] + [_half_mttkrp(Q, A, trail, k) for k in trail]


def _parafac(T: np.ndarray, factors: list, n_iter_max: int, tol: float, callback) -> tuple[list, list]:
    """tensorly's ``parafac(T, rank, init=(None, factors), tol=tol, linesearch=True)`` (unit weights,
    factors not normalised): the same Gauss-Seidel CP-ALS updates, the same extrapolation every other
    iteration from the eighth on (jump iteration^(1 / acc_pow), accepted when it lowers the error,
    acc_pow raised after 4 failures), the same error formulas and stopping test (an iteration changes
    the relative error by less than ``tol``, absolute), the same callback calls (the start's error,
    then one per iteration: tensorly's, which passes the last recorded error on extrapolation
    iterations; True ends the run).

    Only the MTTKRPs differ: tensorly's forms the Khatri-Rao product of the d - 1 other factors for
    every mode (d products of T's size times the rank per iteration); here the modes split into two
    halves, T is contracted once per half with the other half's Khatri-Rao product (a matrix
    product), and each mode's MTTKRP follows from that partial result. Two passes over T per
    iteration instead of d, equal to rounding. Returns (factors, recorded relative errors).
    """
    A = [np.array(f, dtype=np.float64) for f in factors]
    d = T.ndim
    lead, trail = _halves(T.shape)
    n = math.prod(T.shape[:len(lead)])
    T2 = T.reshape(n, -1)
    lead_shape, trail_shape = T.shape[:len(lead)] + (-1,), T.shape[len(lead):] + (-1,)
    norm_T = float(np.sqrt(np.sum(T * T)))
    acc_pow, acc_fail, max_fail = 2.0, 0, 4

    def gram_error(A, mttkrp):  # tensorly's formula from the last mode's MTTKRP
        G = np.ones((A[0].shape[1],) * 2)
        for a in A:
            G = G * (a.T @ a)
        iprod = float(np.sum(mttkrp * A[-1]))
        return math.sqrt(abs(norm_T ** 2 + float(np.sum(G)) - 2 * iprod))

    rec_errors = []
    rec_error = _cp_error(T, A) / norm_T
    if callback(rec_error):
        return A, rec_errors
    grams = [a.T @ a for a in A]
    for iteration in range(n_iter_max):
        if iteration % 2 == 0:
            last = [a.copy() for a in A]
        for half, other, shape in ((lead, trail, lead_shape), (trail, lead, trail_shape)):
            K = _khatri_rao([A[j] for j in other])
            P = (T2 @ K if half is lead else T2.T @ K).reshape(shape)
            for k in half:
                V = np.ones_like(grams[0])
                for j in range(d):
                    if j != k:
                        V = V * grams[j]
                mttkrp = _half_mttkrp(P, A, half, k)
                A[k] = np.linalg.solve(V.T, mttkrp.T).T
                grams[k] = A[k].T @ A[k]
        line_iter = iteration % 2 == 0 and iteration > 5
        if not line_iter:
            err = gram_error(A, mttkrp)
        else:
            jump = iteration ** (1.0 / acc_pow)
            new = [l + (a - l) * jump for l, a in zip(last, A)]
            new_err = _cp_error(T, new)
            if new_err / norm_T < rec_errors[-1]:
                A, err, acc_fail = new, new_err, 0
                grams = [a.T @ a for a in A]
            else:
                err = gram_error(A, mttkrp)
                acc_fail += 1
                if acc_fail == max_fail:
                    acc_pow, acc_fail = acc_pow + 1.0, 0
        if not line_iter:
            rec_error = err / norm_T
            rec_errors.append(rec_error)
        if callback(rec_error):
            break
        if tol and iteration >= 1 and abs(rec_errors[-2] - rec_errors[-1]) < tol:
            break
    return A, rec_errors
