"""Nonlinear least squares (Gauss-Newton / Levenberg-Marquardt) refinement of a Block-Term model.

Minimises ``f = 0.5 ||T - sum_n C_n x_1 U_n^(1) .. x_d U_n^(d)||^2`` over all factors and cores at
once, as Tensorlab's ``btd_nls`` (Sorber, Van Barel, De Lathauwer, SIAM J. Optim. 23(2), 2013):

* The Jacobian J is never formed. The gradient ``J^T r`` comes from contractions of the residual
  with the factors; the Gramian-vector product ``(J^T J) v`` only from the R x R cross-Grams
  ``U_n^(k)T U_m^(k)``, ``U_n^(k)T dU_m^(k)`` and the cores (each mode product chain is evaluated once
  in "dual numbers": value and first-order perturbation together), so its cost does not depend on
  the size of T.
* The step solves ``(J^T J + lam I) p = -g``: directly (the Gramian assembled from batched products)
  when the number of parameters is small, else by preconditioned CG with a block-Jacobi
  preconditioner (one block per mode holding all blocks' factors, ``Gram (x) I_{M_k}``, and the core
  blocks, which are identities because the factors are kept orthonormal).
* Levenberg-Marquardt damping (Nielsen's update): a step that does not decrease f is rejected and
  the damping raised, so the recorded error never increases.
* Between iterations every factor is QR-orthonormalised and the triangle folded into its core (the
  model is unchanged; this fixes most of the Tucker gauge freedom and keeps the problem well scaled).

Layout (as ``btcore.decompose._ALS``): factors ``U[k]`` of shape (N, M_k, R_k), cores ``C`` of shape
(N, R_1, .., R_d), T of shape (M_1, .., M_d). Everything runs in float64.

The model helpers (dense model, gradient, orthonormalisation) are in :mod:`.btmodel`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch

from .algebraic import algebraic_start
from .btmodel import bt_dense, bt_gradient, lstsq, orthonormalize
from .settings import STOPPING, StoppingRules, error_fall

__all__ = ["NLSResult", "nls_refine", "nls_fit", "random_start", "gn_flat", "NLS_STATUSES"]

NLS_STATUSES = ("converged", "stalled", "max_iter", "stopped", "time_limit")


#: Largest parameter count for which the damped Gramian is assembled and solved directly.
DENSE_MAX = 400


@dataclass
class NLSResult:
    """Outcome of :func:`nls_refine`.

    Attributes
    ----------
    factors : list of tensors (N, M_k, R_k), orthonormal columns per block.
    cores : tensor (N, R_1, .., R_d), in the units of T.
    history : relative errors ||T - model|| / ||T||, the start first; never increases.
    status : "converged" (relative gradient norm or relative step below tol, with the error no longer
        falling), "stalled" (the error stopped decreasing while the gradient is not small), "max_iter"
        (the iteration budget ended the run), "stopped" or "time_limit".
    iterations : Gauss-Newton iterations done (accepted or rejected).
    grad_norm : ||J^T r|| / ||T||^2 at the returned point.
    rel_error : history[-1].
    """

    factors: list
    cores: torch.Tensor
    history: list = field(default_factory=list)
    status: str = "max_iter"
    iterations: int = 0
    grad_norm: float = math.inf
    rel_error: float = math.inf
    accepted: int = 0
    cg_iterations: int = 0


# ----------------------------------------------------------------------------------------------
# Dense model and contractions
# ----------------------------------------------------------------------------------------------

def _cross_gram(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """P[..., n, m] = A_n^T B_m for A (N, M, R), B (..., N, M, R): shape (..., N, N, R, R)."""
    return torch.einsum("nar,...mas->...nmrs", A, B)


# ----------------------------------------------------------------------------------------------
# The Gauss-Newton operator at a fixed point
# ----------------------------------------------------------------------------------------------

class _GN:
    """(J^T J) v at fixed factors U and cores C, from Grams only; v may carry a leading batch axis."""

    def __init__(self, U, C):
        self.U = U
        self.C = C
        self.d = len(U)
        self.N = C.shape[0]
        self.ranks = tuple(C.shape[1:])
        self.sizes = tuple(u.shape[1] for u in U)
        self.P = [_cross_gram(u, u) for u in U]  # (N, N, R, R)
        self.shapes = [(self.N, m, r) for m, r in zip(self.sizes, self.ranks)] + [tuple(C.shape)]
        self.numels = [math.prod(s) for s in self.shapes]
        self.n_params = sum(self.numels)
        # Real parts of the mode-product chains C_m x_{j != skip} P_nm^(j), kept at every step
        # (the dual parts need them); skip = d means "no mode skipped".
        self.chains = self._real_chains()
        # G[k][n, m] (R_k x R_k): (C_m x_{j!=k} P_nm)_(k) C_n(k)^T; the factor-factor blocks of J^T J
        # within one mode are G[k][n, m]^T (x) I_{M_k}... (see apply)
        self.G = []
        for k in range(self.d):
            D = self.chains[k][-1]  # (N, N, R..)
            self.G.append(self._rank_contract(D, k))
        # the same data laid out for plain matrix products in :meth:`apply` (einsum's dispatch cost
        # more than the arithmetic at these sizes): U^(k) as (M_k, N R_k); the factor-factor Grams as
        # (N_m R_k, N_n R_k)
        N, ranks = self.N, self.ranks
        self.Ucat = [u.permute(1, 0, 2).reshape(u.shape[1], -1) for u in U]
        self.Gmat = [g.permute(1, 2, 0, 3).reshape(N * r, N * r) for g, r in zip(self.G, ranks)]

    # -- chains ---------------------------------------------------------------------------------
    def _real_chains(self) -> dict:
        """Per skipped mode (d: none), the real chain's states before each mode step j (cyclic layout)
        and its final value. The chain skipping mode k shares the full chain's states up to step k."""
        N, ranks, d = self.N, self.ranks, self.d
        NN = N * N

        def run(D, start, skip, states):
            for j in range(start, d):
                r = ranks[j]
                D = D.reshape(NN, r, -1)
                states.append(D)
                if j != skip:
                    D = torch.matmul(self.P[j].reshape(NN, r, r), D)
                D = D.transpose(1, 2).contiguous()
            states.append(D.reshape((N, N) + ranks))
            return states

        full = run(self.C.unsqueeze(0).expand((N,) + tuple(self.C.shape)).reshape(NN, ranks[0], -1), 0, d, [])
        chains = {k: run(full[k], k, k, full[:k]) for k in range(d)}
        chains[d] = full
        return chains

    def _rank_contract(self, X, k):
        """A[..., n, m] = X[..., n, m]_(k) C_n(k)^T: contracts all rank modes but k with block n's core.

        X (..., N, N, R..) -> (..., N, N, R_k(m), R_k(n)).
        """
        N, ranks = self.N, self.ranks
        a, b = math.prod(ranks[:k]), math.prod(ranks[k + 1:])
        lead = X.shape[: X.dim() - self.d - 2]
        Xr = X.reshape(lead + (N, N, a, ranks[k], b))
        Cr = self.C.reshape(N, a, ranks[k], b)
        return torch.einsum("...nmaxc,nayc->...nmxy", Xr, Cr)

    # -- vectors --------------------------------------------------------------------------------
    def split(self, v: torch.Tensor):
        """(B, P) -> list of d factor parts (B, N, M_k, R_k) and the core part (B, N, R..)."""
        B = v.shape[0]
        parts, o = [], 0
        for s, n in zip(self.shapes, self.numels):
            parts.append(v[:, o:o + n].reshape((B,) + s))
            o += n
        return parts[:-1], parts[-1]

    @staticmethod
    def join(dU, dC) -> torch.Tensor:
        B = dC.shape[0]
        return torch.cat([x.reshape(B, -1) for x in list(dU) + [dC]], dim=1)

    # -- the product ----------------------------------------------------------------------------
    def apply(self, v: torch.Tensor) -> torch.Tensor:
        """(J^T J) v for v of shape (B, P).

        Each mode product chain ``(C_m + e dC_m) x_{j != skip} (P_nm^(j) + e Q_nm^(j))`` is evaluated
        for its first-order (dual) part along the real chain's states (:meth:`_real_chains`), once with
        no mode skipped (the core part) and once skipping each mode k (its factor part). The chain
        skipping mode k equals the full chain up to step k, so the chains share that prefix, and the
        contractions are plain matrix products: about half the time of one einsum chain per mode.
        """
        dU, dC = self.split(v)
        d, N, ranks, sizes = self.d, self.N, self.ranks, self.sizes
        NN, B = N * N, v.shape[0]
        Q = []  # U_n^(k)T dU_m^(k): (B, N N, R_k, R_k)
        for k, (m, r) in enumerate(zip(sizes, ranks)):
            q = self.Ucat[k].T @ dU[k].permute(2, 0, 1, 3).reshape(m, B * N * r)  # (n r, b m s)
            Q.append(q.reshape(N, r, B, N, r).permute(2, 0, 3, 1, 4).reshape(B, NN, r, r))

        def step(E, j, states):
            r = ranks[j]
            E = torch.matmul(self.P[j].reshape(1, NN, r, r), E) + torch.matmul(Q[j], states[j])
            return E.transpose(2, 3).contiguous()

        full = self.chains[d]
        E = dC.unsqueeze(1).expand((B, N) + tuple(dC.shape[1:])).reshape(B, NN, ranks[0], -1)
        prefix = []  # the dual state before step j: (B, N N, R_j, rest), modes cycled
        for j, r in enumerate(ranks):
            E = E.reshape(B, NN, r, -1)
            prefix.append(E)
            E = step(E, j, full)
        hC = E.reshape((B, N, N) + ranks).sum(2)
        hU = []
        for k, (m, r) in enumerate(zip(sizes, ranks)):
            Ek = prefix[k].transpose(2, 3).contiguous()
            for j in range(k + 1, d):
                Ek = step(Ek.reshape(B, NN, ranks[j], -1), j, self.chains[k])
            A = self._rank_contract(Ek.reshape((B, N, N) + ranks), k).transpose(0, 1)  # (n, b, m, r(m), s(n))
            # h[b, n] = sum_m U_m A[b, n, m] + sum_m dU[b, m] G[n, m]
            h1 = (self.Ucat[k] @ A.permute(2, 3, 1, 0, 4).reshape(N * r, B * N * r)).reshape(m, B, N, r)
            h2 = (dU[k].permute(0, 2, 1, 3).reshape(B * m, N * r) @ self.Gmat[k]).reshape(B, m, N, r)
            hU.append(h1.permute(1, 2, 0, 3) + h2.permute(0, 2, 1, 3))
        return self.join(hU, hC)

    def dense(self, chunk: int = 256) -> torch.Tensor:
        """The Gramian J^T J (P x P), assembled from batched products."""
        P = self.n_params
        eye = torch.eye(P, dtype=self.C.dtype)
        cols = [self.apply(eye[i:i + chunk]) for i in range(0, P, chunk)]
        H = torch.cat(cols, dim=0)
        return 0.5 * (H + H.T)

    # -- block-Jacobi preconditioner --------------------------------------------------------------
    def preconditioner(self, lam: float):
        """Returns z = M^-1 r for r (1, P): per mode, (Gcat^(k) + lam I)^-1 applied to all blocks'
        factors at once (Gcat the N R_k x N R_k Gram of the factor-factor blocks within mode k);
        the core blocks are identities (orthonormal factors) plus lam."""
        N, d = self.N, self.d
        chol = []
        for k in range(d):
            r = self.ranks[k]
            # block (m, n) of the mode-k Gramian acting on (dU_m) is G[k][n, m], arranged as (m r, n s)
            Gc = self.Gmat[k]
            Gc = 0.5 * (Gc + Gc.T) + lam * torch.eye(N * r, dtype=Gc.dtype)
            L, info = torch.linalg.cholesky_ex(Gc)
            if int(info) != 0:
                ev = torch.linalg.eigvalsh(Gc)
                Gc = Gc + (abs(float(ev[0])) + 1e-12 * float(ev[-1]) + 1e-300) * torch.eye(N * r, dtype=Gc.dtype)
                L = torch.linalg.cholesky(Gc)
            chol.append(L)

        def apply(rv: torch.Tensor) -> torch.Tensor:
            rU, rC = self.split(rv)
            zU = []
            for k in range(d):
                B, _, m, r = rU[k].shape
                # x (B, N, M, R) -> rows (m r) per a: solve X Gc = R  (right multiply)
                Xr = rU[k].permute(0, 2, 1, 3).reshape(B * m, N * r)  # (B M, N R)
                Z = torch.cholesky_solve(Xr.T, chol[k]).T
                zU.append(Z.reshape(B, m, N, r).permute(0, 2, 1, 3))
            zC = rC / (1.0 + lam)
            return self.join(zU, zC)

        return apply


def _pcg(op, b: torch.Tensor, precond, tol: float, max_iter: int) -> tuple[torch.Tensor, int]:
    """Preconditioned CG for op(x) = b from x = 0 (each iterate lowers the quadratic model)."""
    x = torch.zeros_like(b)
    r = b.clone()
    z = precond(r)
    p = z.clone()
    rz = float((r * z).sum())
    bnorm = float(torch.linalg.norm(b))
    it = 0
    if bnorm == 0:
        return x, 0
    for it in range(1, max_iter + 1):
        Ap = op(p)
        pAp = float((p * Ap).sum())
        if pAp <= 0:
            break
        alpha = rz / pAp
        x = x + alpha * p
        r = r - alpha * Ap
        if float(torch.linalg.norm(r)) <= tol * bnorm:
            break
        z = precond(r)
        rz_new = float((r * z).sum())
        p = z + (rz_new / rz) * p
        rz = rz_new
    return x, it


# ----------------------------------------------------------------------------------------------
# Public API
# ----------------------------------------------------------------------------------------------

def random_start(sizes, ranks, N: int, *, seed: int = 0, dtype=torch.float64, scale: float = 1.0):
    """Random orthonormal factors (N, M_k, R_k) and Gaussian cores (N, R..) with a model of norm ~scale."""
    g = torch.Generator().manual_seed(int(seed))
    U = [torch.linalg.qr(torch.randn((N, m, r), generator=g, dtype=dtype))[0] for m, r in zip(sizes, ranks)]
    C = torch.randn((N,) + tuple(ranks), generator=g, dtype=dtype)
    C = C * (scale / max(float(torch.linalg.norm(C)), 1e-300))
    return U, C


def _linearize(Rt, U, C, dense_max):
    """The Gauss-Newton operator at (U, C), the gradient J^T r as a (1, P) vector, its norm, and the
    assembled Gramian when the parameter count is at most ``dense_max`` (else None)."""
    op = _GN(U, C)
    gU, gC = bt_gradient(Rt, U, C)
    gvec = op.join([g.unsqueeze(0) for g in gU], gC.unsqueeze(0))
    Hd = op.dense() if op.n_params <= dense_max else None
    return op, gvec, float(torch.linalg.norm(gvec)), Hd


def _step(op, gvec, Hd, lam, cg_tol, cg_max_iter):
    """The damped step p solving (J^T J + lam I) p = -g, (J^T J) p, and the CG iterations used."""
    if Hd is not None:
        A = Hd + lam * torch.eye(Hd.shape[0], dtype=Hd.dtype)
        L, info = torch.linalg.cholesky_ex(A)
        if int(info) == 0:
            pvec = -torch.cholesky_solve(gvec.T, L).T
        else:
            pvec = -lstsq(A, gvec.T).T
        return pvec, pvec @ Hd, 0
    pre = op.preconditioner(lam)
    pvec, nit = _pcg(lambda v: op.apply(v) + lam * v, -gvec, pre, cg_tol, cg_max_iter)
    return pvec, op.apply(pvec), nit


@dataclass
class _GNRun:
    """The state of one Gauss-Newton run on the normalised target Tn: the model (U, C), its residual
    Rt = model - Tn and f = 0.5 ||Rt||^2, the error history, the damping (lam, nu) and the
    linearisation at the current point (op, gvec, gnorm, Hd; stale when ``need_grad``)."""

    Tn: torch.Tensor
    U: list
    C: torch.Tensor
    Rt: torch.Tensor
    f: float
    hist: list
    lam: float | None = None
    nu: float = 2.0
    accepted: int = 0
    cg_total: int = 0
    no_progress: int = 0
    gnorm: float = math.inf
    need_grad: bool = True
    op: object = None
    gvec: torch.Tensor | None = None
    Hd: torch.Tensor | None = None

    def linearize(self, dense_max: int) -> None:
        self.op, self.gvec, self.gnorm, self.Hd = _linearize(self.Rt, self.U, self.C, dense_max)
        self.need_grad = False

    def set_model(self, U, C) -> None:
        self.U, self.C = orthonormalize(U, C)
        self.Rt = bt_dense(self.U, self.C) - self.Tn


def _check_start(T: torch.Tensor, U, C) -> None:
    d = T.dim()
    if len(U) != d:
        raise ValueError(f"need d = {d} factors, got {len(U)}")
    N, ranks = C.shape[0], tuple(C.shape[1:])
    for k in range(d):
        if tuple(U[k].shape) != (N, T.shape[k], ranks[k]):
            raise ValueError(f"U[{k}] has shape {tuple(U[k].shape)}, expected {(N, T.shape[k], ranks[k])}")


def gn_flat(hist: Sequence[float], rules: StoppingRules = STOPPING) -> bool:
    """A Gauss-Newton error history no longer falls: the last iteration gained less than
    ``rules.flat_fall`` and the last ``rules.window`` less than ``rules.window_fall`` (relative), or the
    error is at the rounding floor. Never at a run's start (no history)."""
    if len(hist) < 2:
        return False
    return hist[-1] < rules.flat_floor or (hist[-2] - hist[-1] <= rules.flat_fall * hist[-2]
                                           and error_fall(hist, rules.window) <= rules.window_fall)


def _first_order(run: _GNRun, tol: float, rules: StoppingRules) -> bool:
    """The gradient test, counted only once the error no longer falls: on an exact structure (zero
    residual) an ill-conditioned Jacobian meets it at errors of 1e-5 while Gauss-Newton is still
    cutting the error manyfold; at a noisy target's minimum the error no longer falls."""
    return run.gnorm < tol and gn_flat(run.hist, rules)


def _initial_damping(run: _GNRun, damping: float) -> float:
    """``damping`` times the largest diagonal entry of J^T J (at least 1)."""
    op = run.op
    idx = torch.arange(op.N)
    diag_max = max(max(float(torch.diagonal(G[idx, idx], dim1=-2, dim2=-1).max()) for G in op.G), 1.0)
    return damping * diag_max


def _damped_step(run: _GNRun, tol: float, tol_step: float, cg_tol: float, cg_max_iter: int,
                 rules: StoppingRules) -> str:
    """One Levenberg-Marquardt step: accepted (the model moves, the damping falls) or rejected (the
    damping rises); the history gets one entry either way. Returns the status when an accepted tiny
    step ends the run ("converged" or "stalled"), else ''."""
    op, gvec = run.op, run.gvec
    pvec, Hp, nit = _step(op, gvec, run.Hd, run.lam, cg_tol, cg_max_iter)
    run.cg_total += nit
    pred = -(float((gvec * pvec).sum()) + 0.5 * float((pvec * Hp).sum()))
    dU, dC = op.split(pvec)
    U_new = [u + du[0] for u, du in zip(run.U, dU)]
    C_new = run.C + dC[0]
    R_new = bt_dense(U_new, C_new) - run.Tn
    f, f_new = run.f, 0.5 * float((R_new * R_new).sum())
    rho = (f - f_new) / pred if pred > 0 else -1.0
    xnorm = math.sqrt(sum(float((u * u).sum()) for u in run.U) + float((run.C * run.C).sum()))
    pnorm = float(torch.linalg.norm(pvec))
    if not (f_new < f and rho > rules.min_gain_ratio and math.isfinite(f_new)):
        run.no_progress += 1
        run.lam, run.nu = run.lam * run.nu, run.nu * 2.0
        run.hist.append(run.hist[-1])
        return ""
    rel_dec = (f - f_new) / f if f > 0 else 0.0
    run.no_progress = run.no_progress + 1 if rel_dec < rules.no_progress_decrease else 0
    run.accepted += 1
    run.set_model(U_new, C_new)
    run.f = min(0.5 * float((run.Rt * run.Rt).sum()), f)
    run.lam = run.lam * max(1.0 / 3.0, 1.0 - (2.0 * rho - 1.0) ** 3)  # Nielsen's update
    run.nu, run.need_grad = 2.0, True
    run.hist.append(min(math.sqrt(2 * run.f), run.hist[-1]))
    if pnorm < tol_step * xnorm and gn_flat(run.hist, rules):
        # a tiny step with the error no longer falling; forced by a large damping, it is not convergence
        run.linearize(0)
        return "converged" if run.gnorm < math.sqrt(tol) else "stalled"
    return ""


def _stalled(run: _GNRun, stall_iter: int, slow_window: int, rules: StoppingRules) -> bool:
    """No progress for ``stall_iter`` iterations, a slow window, or a damping that exploded."""
    h = run.hist
    slow = slow_window > 0 and len(h) > slow_window and error_fall(h, slow_window) < rules.slow_fall
    return run.no_progress >= stall_iter or slow or not math.isfinite(run.lam) or run.lam > rules.max_damping


def nls_refine(T: torch.Tensor, U: Sequence[torch.Tensor], C: torch.Tensor, *, max_iter: int = 200,
               tol: float = 1e-12, tol_step: float | None = None, damping: float = 1e-3,
               cg_max_iter: int = 25, cg_tol: float = 1e-6, dense_max: int = DENSE_MAX,
               stall_iter: int = STOPPING.stall_iter, slow_window: int = 0, time_limit: float | None = None,
               progress: Callable[[float], None] | None = None,
               should_stop: Callable[[], bool] | None = None, rules: StoppingRules = STOPPING) -> NLSResult:
    """Refine a BT model of T by Gauss-Newton with Levenberg-Marquardt damping.

    Parameters
    ----------
    T : tensor (M_1, .., M_d)
        The target (any float dtype; the work is in float64).
    U : sequence of d tensors (N, M_k, R_k)
        Start factors (any scaling; they are orthonormalised, the model kept).
    C : tensor (N, R_1, .., R_d)
        Start cores.
    max_iter : int
        Gauss-Newton iterations (accepted and rejected steps).
    tol : float
        First-order tolerance: stop "converged" when ||J^T r|| / ||T||^2 < tol. An accepted step with
        ||p|| / ||x|| < ``tol_step`` (default: tol) ends the run too once the error no longer falls,
        "converged" only when the gradient there is below sqrt(tol) (a tiny step forced by a large
        damping is not convergence: "stalled"). Both tests count only with the error no longer
        falling (``rules.flat_fall``), so never at the first iteration.
    damping : float
        Initial Levenberg-Marquardt damping, relative to the largest diagonal entry of J^T J.
    cg_max_iter, cg_tol : int, float
        Cap and relative residual tolerance of the preconditioned CG solves.
    dense_max : int
        Up to this many parameters the damped Gramian is assembled and solved directly.
    stall_iter : int
        Consecutive iterations without a relative decrease of f above ``rules.no_progress_decrease``
        after which the fit is "stalled" (when the gradient is not below tol).
    slow_window : int
        When > 0: "stalled" once the error fell by less than ``rules.slow_fall`` over the last
        ``slow_window`` iterations (a swamp inside Gauss-Newton; 0 disables the test).
    time_limit : float, optional
        A wall-clock safety cap in seconds: the run ends with status "time_limit" (not reproducible:
        every other budget counts iterations).
    progress : callable(rel_error), optional
        Called once per iteration with the current relative error.
    should_stop : callable() -> bool, optional
        Polled before each iteration; True ends the fit with status "stopped".
    rules : StoppingRules
        The thresholds of the stopping tests.
    """
    t_end = None if time_limit is None else time.perf_counter() + float(time_limit)
    tol_step = tol if tol_step is None else tol_step
    T = T.detach().to(torch.float64)
    _check_start(T, U, C)
    tn = float(torch.linalg.norm(T))
    if tn == 0.0:
        Uo, Co = orthonormalize([u.detach().to(torch.float64) for u in U], torch.zeros_like(C, dtype=torch.float64))
        return NLSResult(Uo, Co, [0.0], "converged", 0, 0.0, 0.0)
    Tn = T / tn
    run = _GNRun(Tn, [], C, Tn, 0.0, [])
    run.set_model([u.detach().to(torch.float64) for u in U], C.detach().to(torch.float64) / tn)
    run.f = 0.5 * float((run.Rt * run.Rt).sum())
    run.hist.append(math.sqrt(2 * run.f))
    status, it = "max_iter", max_iter
    for i in range(1, max_iter + 1):
        if run.need_grad:
            run.linearize(dense_max)
            if _first_order(run, tol, rules):
                status, it = "converged", i - 1
                break
            if run.lam is None:
                run.lam = _initial_damping(run, damping)
        if should_stop is not None and should_stop():
            status, it = "stopped", i - 1
            break
        if t_end is not None and time.perf_counter() > t_end:
            status, it = "time_limit", i - 1
            break
        ended = _damped_step(run, tol, tol_step, cg_tol, cg_max_iter, rules)
        if progress is not None:
            progress(run.hist[-1])
        if ended or _stalled(run, stall_iter, slow_window, rules):
            status, it = ended or "stalled", i
            break
    if run.need_grad:  # the gradient at the returned point (it may have become small on the last step)
        run.linearize(0)
    if status == "stalled" and run.gnorm < tol and gn_flat(run.hist, rules):  # never for a budget cut
        status = "converged"
    run.hist[-1] = min(run.hist[-1], math.sqrt(2 * run.f))  # the last entry is exact for the returned model
    return NLSResult([u.contiguous() for u in run.U], (run.C * tn).contiguous(), [float(h) for h in run.hist],
                     status, it, run.gnorm, float(run.hist[-1]), run.accepted, run.cg_total)


def nls_fit(T: torch.Tensor, ranks, N: int, *, starts: int = 4, seed: int = 0, screen_iter: int = 30,
            max_iter: int = 200, tol: float = 1e-12, good_enough: float = 1e-10,
            progress: Callable[[float], None] | None = None,
            should_stop: Callable[[], bool] | None = None, **kwargs) -> tuple[NLSResult, str]:
    """BT fit of T by NLS from several starts; returns ``(result, start_kind)``.

    The algebraic start (:func:`algebraic_start`, when the ranks allow it) is tried first and kept if
    its refinement reaches ``good_enough``; otherwise ``starts`` random starts are refined for
    ``screen_iter`` iterations each, and the best (also against the algebraic run) is continued up to
    ``max_iter``. ``kwargs`` go to :func:`nls_refine`.

    Limitation: with fewer than two modes of size M_k >= N R_k there is no algebraic start, and
    local NLS from random starts (like ALS) often ends in a local minimum or a degenerate swamp
    (diverging, cancelling cores) on exact targets.
    """
    T = T.detach().to(torch.float64)
    ranks = tuple(int(r) for r in ranks)
    scale = float(torch.linalg.norm(T))
    runs = []
    alg = algebraic_start(T, ranks, N, seed=seed)
    if alg is not None:
        res = nls_refine(T, alg[0], alg[1], max_iter=max_iter, tol=tol, progress=progress,
                         should_stop=should_stop, **kwargs)
        if res.rel_error <= good_enough or res.status == "stopped":
            return res, "algebraic"
        runs.append((res, "algebraic"))
    for s in range(starts):
        if should_stop is not None and should_stop():
            break
        U, C = random_start(T.shape, ranks, N, seed=seed * 1000 + s, scale=scale)
        res = nls_refine(T, U, C, max_iter=screen_iter, tol=tol, progress=progress, should_stop=should_stop,
                         **kwargs)
        runs.append((res, "random"))
        if res.rel_error <= good_enough:
            break
    best, kind = min(runs, key=lambda x: x[0].rel_error)
    if best.status == "max_iter" and not (should_stop is not None and should_stop()):
        more = nls_refine(T, best.factors, best.cores, max_iter=max(0, max_iter - best.iterations), tol=tol,
                          progress=progress, should_stop=should_stop, **kwargs)
        more.history = best.history[:-1] + more.history
        more.iterations += best.iterations
        best = more
    return best, kind
