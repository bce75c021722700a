"""Fitting factorized formats to a given matrix: BT (joint ALS), TT (TT-SVD), Tucker and CP.

All fits work on the interleaved tensor T of order d with mode sizes M_k = I_k * J_k (the pair
(i_k, j_k) maps to i_k * J_k + j_k), in float64, and return ``(matrix, info)``: a
:class:`~btcore.BTMatrix` or :class:`~btcore.TTMatrix` of torch tensors and a :class:`FitInfo`.

Block-Term fit (:func:`fit_bt`), following REFERENCE.md section 3:

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

tensorly is not called here: its backend is process-global and fits run in worker threads. The
TT-SVD below is the same algorithm as tensorly's ``tensor_train_matrix`` (the tests compare them).
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import asdict, dataclass, field
from typing import Callable, Sequence

import numpy as np
import opt_einsum
import torch

from .formats import BTSpec, TTSpec, normalize_ranks, tt_rank_caps
from .shapes import check_choice, check_modes, check_positive_int, pair_modes, prod
from .tensors import BTMatrix, TTMatrix, check_allocation

__all__ = [
    "FitInfo",
    "interleave",
    "fit_bt",
    "fit_tucker",
    "fit_cp",
    "fit_tt",
    "relative_error",
    "cap_bt_ranks",
    "cap_tt_ranks",
    "budget_candidates",
    "compare_formats",
    "AT_PRECISION",
    "als_memory_bytes",
]

#: Relative errors below this are "at numerical precision" (float64): differences between formats
#: there mean nothing.
AT_PRECISION = 1e-8
#: Gram-formula errors below this are recomputed from the explicit residual: the Gram formula
#: ||T||^2 - 2<B, C> + <C, A C> loses about 1e-13 absolute to rounding on tensors of 1e6-1e7 entries.
_EXACT_BELOW = 1e-3
#: Largest N * prod(R) for which the joint core system is solved directly (else CG).
_DIRECT_CORE_MAX = 768

_M = "abcdefgh"   # mode letters M_k
_R = "qrstuvwx"   # rank letters R_k (first block)
_S = "ijklmnop"   # rank letters R_k (second block, Grams)
_N1, _N2 = "z", "y"  # block letters


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
        "ALS", "TT-SVD" or "exact" (:meth:`btcore.BTLinear.from_dense` at full rank: identity factors,
        no fit).
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
        True when the fit stopped on the tolerance (or hit numerical precision), not on
        ``max_iter`` or a stop request.
    reason : str
        "converged", "no further decrease", "at numerical precision", "max_iter", "stopped" or
        "direct" (TT-SVD, and the exact full-rank BT copy).
    at_precision : bool
        ``relative_error`` < :data:`AT_PRECISION`: the fit is exact to float64 precision.
    ranks, blocks, params
        The fitted format (ranks after capping; TT: all d+1 ranks; blocks None for TT).
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
    at_precision: bool = False
    ranks: tuple = ()
    blocks: int | None = None
    params: int = 0
    requested_ranks: tuple = ()
    notes: list = field(default_factory=list)
    start_kinds: list = field(default_factory=list)
    start_errors: list = field(default_factory=list)
    chosen_start: int = 0

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def error_text(self) -> str:
        """The final error for display ("at numerical precision" when below :data:`AT_PRECISION`)."""
        if self.at_precision:
            return f"{self.relative_error:.1e} (at numerical precision)"
        return f"{self.relative_error:.4g}"


# ----------------------------------------------------------------------------------------------
# Inputs
# ----------------------------------------------------------------------------------------------

def _as_matrix(W, what: str = "W") -> torch.Tensor:
    """W as a float64 torch tensor (2-D, finite); numpy arrays and torch tensors accepted."""
    if isinstance(W, torch.Tensor):
        t = W.detach()
        if t.is_complex():
            raise ValueError(f"{what}: complex matrices are not supported; pass the real part")
        t = t.to(torch.float64)
    else:
        a = np.asarray(W)
        if a.dtype.kind not in "biuf":
            raise ValueError(f"{what}: expected a real numeric matrix, got dtype {a.dtype}")
        t = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float64))
    if t.dim() != 2:
        raise ValueError(f"{what}: expected a 2-D matrix (I, J), got shape {tuple(t.shape)}")
    if not bool(torch.isfinite(t).all()):
        bad = int((~torch.isfinite(t)).sum())
        raise ValueError(f"{what}: {bad:,} entries are NaN or infinite; clean or drop them before fitting")
    return t


def _out_dtype(W, dtype) -> torch.dtype:
    if dtype is not None:
        if isinstance(dtype, str):
            dtype = getattr(torch, dtype)
        return dtype
    if isinstance(W, torch.Tensor) and W.dtype == torch.float32:
        return torch.float32
    if isinstance(W, np.ndarray) and W.dtype == np.float32:
        return torch.float32
    return torch.float64


def _modes(W: torch.Tensor, in_modes, out_modes) -> tuple[tuple[int, ...], tuple[int, ...]]:
    i, o = pair_modes(in_modes, out_modes)
    if tuple(W.shape) != (prod(i), prod(o)):
        raise ValueError(
            f"W has shape {tuple(W.shape)} but the modes give {prod(i):,} x {prod(o):,} "
            f"({' x '.join(map(str, i))} -> {' x '.join(map(str, o))}); choose modes whose products are the "
            "matrix's sizes"
        )
    return i, o


def interleave(W, in_modes, out_modes, order=None):
    """W (I, J) as the order-d tensor over merged modes (I_1 J_1, .., I_d J_d).

    The pair (i_k, j_k) maps to index i_k * J_k + j_k of merged mode k; this is the tensor that the
    BT core and the TT cores describe. ``W`` may be a torch tensor (the result is a contiguous torch
    tensor of the same dtype and device) or a numpy array (the result is a numpy array). ``order``
    (a permutation of range(d)) lists the merged modes in another order, e.g. the internal one of
    :func:`fit_bt`.
    """
    in_modes, out_modes = tuple(in_modes), tuple(out_modes)
    d = len(in_modes)
    if len(out_modes) != d:
        raise ValueError(f"in_modes has {d} modes but out_modes has {len(out_modes)}; both need the same order d")
    if tuple(W.shape) != (prod(in_modes), prod(out_modes)):
        raise ValueError(f"W has shape {tuple(W.shape)} but the modes give (I, J) = ({prod(in_modes)}, "
                         f"{prod(out_modes)})")
    order = list(range(d)) if order is None else [int(k) for k in order]
    if sorted(order) != list(range(d)):
        raise ValueError(f"order must be a permutation of range({d}), got {order}")
    perm = [p for k in order for p in (k, d + k)]
    shape = [in_modes[k] * out_modes[k] for k in order]
    x = W.reshape(in_modes + out_modes)
    if isinstance(x, torch.Tensor):
        return x.permute(perm).reshape(shape).contiguous()
    return np.ascontiguousarray(np.transpose(x, perm)).reshape(shape)


def relative_error(W, M) -> float:
    """``||W - M.to_dense()|| / ||W||`` in float64 (Frobenius norms).

    ``M`` may be a :class:`BTMatrix`, a :class:`TTMatrix` or a dense matrix. A zero W gives 0.0 if M is
    zero too, else ``inf``.
    """
    Wt = _as_matrix(W)
    if hasattr(M, "to_dense"):
        Md = M.to(dtype=torch.float64, device=Wt.device).to_dense().detach()
    else:
        Md = _as_matrix(M, "M").to(Wt.device)
    if tuple(Md.shape) != tuple(Wt.shape):
        raise ValueError(f"W has shape {tuple(Wt.shape)} but M has shape {tuple(Md.shape)}")
    den = float(torch.linalg.norm(Wt))
    num = float(torch.linalg.norm(Wt - Md))
    if den == 0.0:
        return 0.0 if num == 0.0 else math.inf
    return num / den


# ----------------------------------------------------------------------------------------------
# Rank capping
# ----------------------------------------------------------------------------------------------

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


def cap_tt_ranks(in_modes, out_modes, ranks) -> tuple[tuple[int, ...], list[str]]:
    """All d+1 TT ranks (r_0 = r_d = 1) with each inner rank capped at min(prod left M, prod right M).

    ``ranks`` is one int, the d-1 inner ranks or all d+1 ranks. Returns ``(ranks, notes)``.
    """
    i = check_modes(in_modes, "in_modes")
    o = check_modes(out_modes, "out_modes")
    inner = normalize_ranks(ranks, len(i), tt=True)
    caps = tt_rank_caps(i, o)
    out = tuple(min(r, c) for r, c in zip(inner, caps))
    notes = [f"TT rank {k + 1} capped from {r} to {c}, the largest useful rank between cores {k + 1} and {k + 2}"
             for k, (r, c) in enumerate(zip(inner, caps)) if r > c]
    return TTSpec(i, o, out, max_bytes=None).ranks, notes


# ----------------------------------------------------------------------------------------------
# ALS machinery
# ----------------------------------------------------------------------------------------------

_EXPR_CACHE: dict = {}


def _einsum(eq: str, *ops: torch.Tensor) -> torch.Tensor:
    """einsum along an opt_einsum path computed once per (equation, shapes)."""
    if len(ops) <= 2:
        return torch.einsum(eq, *ops)
    key = (eq,) + tuple(tuple(o.shape) for o in ops)
    expr = _EXPR_CACHE.get(key)
    if expr is None:
        if len(_EXPR_CACHE) > 2048:
            _EXPR_CACHE.clear()
        expr = opt_einsum.contract_expression(eq, *[tuple(o.shape) for o in ops], optimize="dp")
        _EXPR_CACHE[key] = expr
    return expr(*ops, backend="torch")


def _first_contract(T: torch.Tensor, U: torch.Tensor, j: int) -> tuple[torch.Tensor, str]:
    """T (no block axis) contracted over mode j with all blocks' factors U (N, M_j, R_j) in one GEMM."""
    d = T.dim()
    shape = tuple(T.shape)
    n, m, r = U.shape
    a, b = prod(shape[:j]), prod(shape[j + 1:])
    ucat = U.permute(1, 0, 2).reshape(m, n * r)
    if b == 1:
        x = (T.reshape(a, m) @ ucat).reshape(shape[:j] + (n, r))
    elif a == 1:
        x = (ucat.T @ T.reshape(m, b)).reshape((n, r) + shape[j + 1:])
    else:
        x = torch.matmul(ucat.T, T.reshape(a, m, b)).reshape(shape[:j] + (n, r) + shape[j + 1:])
    labels = _M[:j] + _N1 + _R[j] + _M[j + 1:d]
    return x, labels


def _contract_more(X: torch.Tensor, labels: str, U: torch.Tensor, j: int) -> tuple[torch.Tensor, str]:
    """Contract mode j of X (labels) with each block's own factor U (N, M_j, R_j)."""
    out = labels.replace(_M[j], _R[j])
    if _N1 not in out:
        out = _N1 + out
    return torch.einsum(f"{labels},{_N1}{_M[j]}{_R[j]}->{out}", X, U), out


def _contract(T: torch.Tensor, U: list, modes: Sequence[int]) -> tuple[torch.Tensor, str]:
    """T contracted over ``modes`` with each block's factors; the first step is one GEMM."""
    d = T.dim()
    modes = list(modes)
    if not modes:
        return T, _M[:d]
    if d - 1 in modes:
        first = d - 1
    elif 0 in modes:
        first = 0
    else:
        first = max(modes, key=lambda j: T.shape[j] / U[j].shape[2])
    X, lab = _first_contract(T, U[first], first)
    rest = sorted((j for j in modes if j != first), key=lambda j: -T.shape[j] / U[j].shape[2])
    for j in rest:
        X, lab = _contract_more(X, lab, U[j], j)
    return X, lab


def _mode_products(P: list, C: torch.Tensor, skip: int = -1) -> torch.Tensor:
    """D[n, m] = C_m x_j P[j][n, m] for every mode j != skip: shape (N, N, R_1..R_d).

    Cyclic mode products: each step is one batched GEMM over the N^2 block pairs, (R_j x R_j) times
    (R_j x prod of the other ranks), followed by moving that mode to the back.
    """
    N = C.shape[0]
    ranks = tuple(C.shape[1:])
    NN = N * N
    D = None
    for j, r in enumerate(ranks):
        if D is None:
            if j == skip:
                D = C.unsqueeze(0).expand((N,) + tuple(C.shape)).reshape(NN, r, -1)
            else:
                D = torch.matmul(P[j], C.reshape(1, N, r, -1)).reshape(NN, r, -1)
        elif j != skip:
            D = torch.bmm(P[j].reshape(NN, r, r), D.reshape(NN, r, -1))
        D = D.reshape(NN, r, -1).transpose(1, 2).contiguous()
    return D.reshape((N, N) + ranks)


def _cross_gram(Q: torch.Tensor) -> torch.Tensor:
    """P[n, m] = Q_n^T Q_m for Q (N, M, R): shape (N, N, R, R)."""
    n, m, r = Q.shape
    q = Q.permute(1, 0, 2).reshape(m, n * r)
    return (q.T @ q).reshape(n, r, n, r).permute(0, 2, 1, 3).contiguous()


class _ALS:
    """State of one ALS run: orthonormal factors U[k] (N, M_k, R_k), cores C (N, R...), Grams P[k]."""

    def __init__(self, T: torch.Tensor, U: list, ridge: float, cg_iter: int, C: torch.Tensor | None = None,
                 tnorm2: float = 1.0, offset2: float = 0.0, exact_below: float = _EXACT_BELOW):
        self.T = T
        self.exact_below = exact_below
        self.d = T.dim()
        self.U = U
        self.N = U[0].shape[0]
        self.ranks = tuple(u.shape[2] for u in U)
        self.ridge = ridge
        self.cg_iter = cg_iter
        # ||T||^2, and the energy of the full tensor outside T (T is a compressed core) so that
        # errors are those of the full normalised tensor: e^2 = offset2 + ||T - model||^2
        self.tnorm2 = tnorm2
        self.offset2 = offset2
        self.P = [_cross_gram(u) for u in U]
        h = (self.d + 1) // 2
        self.groups = [g for g in (list(range(h)), list(range(h, self.d))) if g]
        X, lab = _contract(T, U, range(self.d))
        B = self._to_core_layout(X, lab)
        if C is None:
            C = torch.zeros((self.N,) + self.ranks, dtype=T.dtype, device=T.device)
            self.C, AC = self._solve_core(B, C)
        else:
            self.C, AC = C, self._apply(C)
        self.error = self._error(B, AC)
        self.exact = False
        self._maybe_exact()

    # -- helpers ------------------------------------------------------------------------------
    def _rank_labels(self) -> str:
        return _R[: self.d]

    def _to_core_layout(self, X, lab) -> torch.Tensor:
        out = _N1 + self._rank_labels()
        if lab == out:
            return X
        return torch.einsum(f"{lab}->{out}", X).contiguous()

    def _apply(self, C: torch.Tensor) -> torch.Tensor:
        """sum_m C_m x_1 P_nm^(1) .. x_d P_nm^(d), plus nothing else (no ridge)."""
        if self.N == 1:
            return C  # orthonormal factors: P_11 = I
        return _mode_products(self.P, C).sum(1)

    def _solve_core(self, B: torch.Tensor, C0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The cores minimising the error for fixed factors, and A(cores) (reused by the error)."""
        if self.N == 1:
            return B.clone(), B  # orthonormal factors: the system is the identity
        size = B.numel()
        lam = self.ridge  # the diagonal blocks of the system are identities (orthonormal factors)
        if size <= _DIRECT_CORE_MAX:
            d = self.d
            terms = [f"{_N1}{_N2}{_R[j]}{_S[j]}" for j in range(d)]
            eq = ",".join(terms) + f"->{_N1}{_R[:d]}{_N2}{_S[:d]}"
            K = _einsum(eq, *self.P).reshape(size, size)
            x = _spd_solve(K + lam * torch.eye(size, dtype=K.dtype, device=K.device), B.reshape(size, 1))
            return x.reshape(B.shape), (K @ x).reshape(B.shape)
        # conjugate gradients, warm-started: each iterate lowers the (quadratic) fit error
        x = C0.clone()
        Ax = self._apply(x)
        r = B - Ax - lam * x
        bnorm = float(torch.linalg.norm(B))
        if bnorm == 0.0:
            return torch.zeros_like(B), torch.zeros_like(B)
        p = r.clone()
        rs = float((r * r).sum())
        tol2 = (1e-13 * bnorm) ** 2
        for _ in range(self.cg_iter):
            if rs <= tol2:
                break
            Ap0 = self._apply(p)
            Ap = Ap0 + lam * p
            pAp = float((p * Ap).sum())
            if pAp <= 0:
                break
            alpha = rs / pAp
            x = x + alpha * p
            Ax = Ax + alpha * Ap0
            r = r - alpha * Ap
            rs_new = float((r * r).sum())
            p = r + (rs_new / rs) * p
            rs = rs_new
        return x, Ax

    def _error(self, B: torch.Tensor, AC: torch.Tensor) -> float:
        """Relative error from Grams (the full tensor is normalised to norm 1); AC = A(C)."""
        e2 = self.offset2 + self.tnorm2 - 2.0 * float((B * self.C).sum()) + float((self.C * AC).sum())
        return math.sqrt(max(e2, 0.0))

    def dense(self) -> torch.Tensor:
        d = self.d
        eq = f"{_N1}{_R[:d]}," + ",".join(f"{_N1}{_M[k]}{_R[k]}" for k in range(d)) + f"->{_M[:d]}"
        return _einsum(eq, self.C, *self.U)

    def exact_error(self) -> float:
        return math.sqrt(self.offset2 + float(torch.linalg.norm(self.T - self.dense())) ** 2)

    def _maybe_exact(self) -> None:
        if self.error < self.exact_below:
            self.error = self.exact_error()
            self.exact = True
        else:
            self.exact = False

    def snapshot(self):
        return ([u.clone() for u in self.U], self.C.clone(), [p.clone() for p in self.P], self.error, self.exact)

    def restore(self, snap) -> None:
        U, C, P, err, exact = snap
        self.U, self.C, self.P, self.error, self.exact = U, C, P, err, exact

    # -- one sweep ----------------------------------------------------------------------------
    def _update_mode(self, k: int, Xk: torch.Tensor, lab: str) -> None:
        d, N = self.d, self.N
        Rk = self.ranks[k]
        Mk = self.T.shape[k]
        # right-hand side: T_(k) Z for all blocks, (N, M_k, R_k)
        core_lab = _N1 + _R[:k] + _S[k] + _R[k + 1:d]
        F = _einsum(f"{lab},{core_lab}->{_N1}{_M[k]}{_S[k]}", Xk, self.C)
        # Gram Z^T Z (N R_k x N R_k) from the cross-Grams of the other modes and the cores
        D = _mode_products(self.P, self.C, skip=k)  # (N, N, R..): D[n, m] = C_m x_{j!=k} P_nm^(j)
        a, b = prod(self.ranks[:k]), prod(self.ranks[k + 1:])
        G = torch.einsum("narb,nmasb->nrms", self.C.reshape(N, a, Rk, b), D.reshape(N, N, a, Rk, b))
        G = G.reshape(N * Rk, N * Rk)
        G = 0.5 * (G + G.T)
        lam = self.ridge * max(float(torch.diagonal(G).mean()), 1e-300)
        G = G + lam * torch.eye(N * Rk, dtype=G.dtype, device=G.device)
        Fcat = F.permute(1, 0, 2).reshape(Mk, N * Rk)
        Unew = _spd_solve(G, Fcat.T).T  # (M_k, N R_k)
        Unew = Unew.reshape(Mk, N, Rk).permute(1, 0, 2)
        Q, Rt = torch.linalg.qr(Unew)  # (N, M_k, R_k), (N, R_k, R_k)
        # fold the triangle into the cores: C x_k Rt
        cl = _N1 + _R[:d]
        src = cl.replace(_R[k], _S[k])
        self.C = torch.einsum(f"{_N1}{_R[k]}{_S[k]},{src}->{cl}", Rt, self.C)
        self.U[k] = Q.contiguous()
        self.P[k] = _cross_gram(self.U[k])

    def sweep(self) -> None:
        last = None
        for g, group in enumerate(self.groups):
            comp = [j for j in range(self.d) if j not in group]
            X, lab = _contract(self.T, self.U, comp)
            for k in group:
                Xk, labk = X, lab
                for j in sorted((j for j in group if j != k), key=lambda j: -self.T.shape[j] / self.ranks[j]):
                    Xk, labk = _contract_more(Xk, labk, self.U[j], j)
                self._update_mode(k, Xk, labk)
                last = (k, Xk, labk)
        k, Xk, labk = last
        X, lab = _contract_more(Xk, labk, self.U[k], k)
        B = self._to_core_layout(X, lab)
        self.C, AC = self._solve_core(B, self.C)
        self.error = self._error(B, AC)
        self._maybe_exact()


def _spd_solve(G: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    """Solve G X = rhs for symmetric positive (semi)definite G; falls back to lstsq."""
    L, info = torch.linalg.cholesky_ex(G)
    if int(info) == 0:
        return torch.cholesky_solve(rhs, L)
    return torch.linalg.lstsq(G, rhs, driver="gelsd" if G.device.type == "cpu" else None).solution


def _random_orthonormal(shape, gen: torch.Generator, dtype, device) -> torch.Tensor:
    n, m, r = shape
    A = torch.randn((n, m, r), generator=gen, dtype=dtype)
    Q, _ = torch.linalg.qr(A)
    return Q.to(device)


def _mode_gram(T: torch.Tensor, k: int) -> torch.Tensor:
    shape = tuple(T.shape)
    a, m, b = prod(shape[:k]), shape[k], prod(shape[k + 1:])
    if a == 1:
        X = T.reshape(m, b)
        return X @ X.T
    if b == 1:
        X = T.reshape(a, m)
        return X.T @ X
    X = T.reshape(a, m, b)
    return torch.einsum("amb,anb->mn", X, X)


def _hosvd_start(T: torch.Tensor, N: int, ranks, gen: torch.Generator) -> list:
    """Block n takes singular vectors n R_k .. (n+1) R_k - 1 of each unfolding (random when exhausted)."""
    U = []
    for k, r in enumerate(ranks):
        m = T.shape[k]
        G = _mode_gram(T, k)
        _, vecs = torch.linalg.eigh(G)
        vecs = vecs.flip(1)  # descending
        blocks = []
        for n in range(N):
            lo, hi = n * r, (n + 1) * r
            if hi <= m:
                blocks.append(vecs[:, lo:hi])
            else:
                A = torch.randn((m, r), generator=gen, dtype=T.dtype).to(T.device)
                if lo < m:
                    A[:, : m - lo] = vecs[:, lo:m]
                blocks.append(torch.linalg.qr(A)[0])
        U.append(torch.stack(blocks).contiguous())
    return U


def als_memory_bytes(sizes, ranks, N) -> int:
    """Bytes of the largest float64 tensors a BT fit holds at once: the float64 copy of W, the
    interleaved T, a reconstruction for exact errors, the first projection of a half-sweep (and
    copies made by einsum), the direct core system and the Gram work arrays."""
    t = prod(sizes)
    first = max(t // m * N * r for m, r in zip(sizes, ranks)) if len(sizes) > 1 else t * N
    core = N * prod(ranks)
    direct = core * core if core <= _DIRECT_CORE_MAX else 0
    gram = N * N * prod(ranks) * max(ranks)
    return 8 * (3 * t + 3 * first + direct + 4 * gram)


# ----------------------------------------------------------------------------------------------
# Public fits
# ----------------------------------------------------------------------------------------------

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
    t0 = time.perf_counter()
    out_dtype = _out_dtype(W, dtype)
    Wt = _as_matrix(W)
    im, om = _modes(Wt, in_modes, out_modes)
    N = check_positive_int(blocks, "blocks")
    restarts = check_positive_int(restarts, "restarts")
    max_iter = max(0, int(max_iter))
    screen_iter = max(1, int(screen_iter))
    check_choice(init, ("auto", "random", "hosvd"), "init")
    requested = normalize_ranks(rank, len(im))
    ranks, notes = cap_bt_ranks(im, om, requested)
    if notes and warn:
        warnings.warn("; ".join(notes), UserWarning, stacklevel=2)
    spec = BTSpec(im, om, ranks, N, max_bytes=None)  # the capped format (validated; names its kind)
    sizes = tuple(i * j for i, j in zip(im, om))
    device = Wt.device
    check_allocation(als_memory_bytes(sizes, ranks, N),
                     f"fitting BT (N={N}, R={ranks}) to a {Wt.shape[0]:,} x {Wt.shape[1]:,} matrix",
                     "use fewer blocks, a lower rank or a smaller matrix", device)
    fmt = spec.kind
    d = len(im)

    norm = float(torch.linalg.norm(Wt))
    order = _mode_order(sizes)
    T = interleave(Wt, im, om, order)
    del Wt
    if norm > 0:
        T = T / norm
    iranks = tuple(ranks[k] for k in order)
    isizes = tuple(sizes[k] for k in order)
    gen = torch.Generator().manual_seed(0 if seed is None else int(seed))

    # Compression (Tensorlab-style): fit on the core of a Tucker(min(M_k, N R_k)) compression of T
    # found by Kronecker-structured random sketches, then refine on T itself.
    comp = tuple(min(m, N * r + max(2, math.ceil(oversample * N * r))) for m, r in zip(isizes, iranks))
    V = None
    G, tnorm2, offset2 = T, 1.0, 0.0
    if compress and d > 1 and norm > 0 and 2 * prod(comp) <= T.numel():
        V = _sketch_bases(T, comp, gen)
        G = _project_all(T, V)
        tnorm2 = float((G * G).sum())
        offset2 = max(0.0, 1.0 - tnorm2)

    # On the compressed core the error cannot fall below the energy outside the compression
    # subspace; crawling towards that floor is wasted work, so switch to the full tensor early.
    tol_c = max(tol, 1e-4) if V is not None else tol

    kinds = []
    for s in range(restarts):
        # "auto": a HOSVD start for Tucker, and for BT only next to random starts: alone it is a
        # greedy-like start that stalls far above the noise on genuinely multi-block data
        hosvd_ok = init == "hosvd" or (init == "auto" and (N == 1 or restarts > 1)
                                       and G.numel() * sum(G.shape) <= 4e8)
        kinds.append("hosvd" if s == 0 and hosvd_ok else "random")

    total = 0
    stopped = False

    def _report(err):
        if progress is not None:
            progress(total, err)

    def _start(kind):
        gsizes = tuple(G.shape)
        if kind == "hosvd":
            U = _hosvd_start(G, N, iranks, gen)
        else:
            U = [_random_orthonormal((N, m, r), gen, G.dtype, device) for m, r in zip(gsizes, iranks)]
        return _ALS(G, U, ridge, cg_iter, tnorm2=tnorm2, offset2=offset2)

    def _run(run: _ALS, hist: list, n_sweeps: int, tol: float = tol) -> str:
        """Up to n_sweeps more sweeps; returns the stop reason or '' when the budget ran out."""
        nonlocal total, stopped
        for _ in range(n_sweeps):
            if run.exact and run.error < AT_PRECISION * 1e-3:
                return "at numerical precision"
            if should_stop is not None and should_stop():
                stopped = True
                return "stopped"
            snap = run.snapshot()
            prev = run.error
            run.sweep()
            total += 1
            if not (run.error <= prev):  # also catches NaN
                run.restore(snap)
                _report(run.error)
                return "no further decrease"
            hist.append(run.error)
            _report(run.error)
            if run.exact and run.error < AT_PRECISION * 1e-3:
                return "at numerical precision"
            if prev - run.error <= tol * prev:
                return "converged"
        return ""

    runs = []
    start_errors, chosen = [], 0
    if norm == 0.0:
        U = [_random_orthonormal((N, m, r), gen, T.dtype, device) for m, r in zip(isizes, iranks)]
        best = _ALS(T, U, ridge, cg_iter)
        best.error, best.exact = 0.0, True
        hist, reason, start_errors = [0.0], "at numerical precision", [0.0]
    else:
        for s, kind in enumerate(kinds):
            if stopped:
                break
            run = _start(kind)
            hist = [run.error]
            _report(run.error)
            reason = _run(run, hist, min(screen_iter, max_iter) if restarts > 1 else max_iter, tol_c)
            runs.append((run, hist, reason))
            if reason == "at numerical precision" and run.error < AT_PRECISION:
                break
        start_errors = [r.error for r, _, _ in runs]
        chosen = min(range(len(runs)), key=lambda i: runs[i][0].error)
        best, hist, reason = runs[chosen]
        if reason == "" and not stopped:
            reason = _run(best, hist, max_iter - (len(hist) - 1), tol_c)
        if V is not None:
            # lift to the full tensor and refine there (unless stopped)
            U = [(v @ u).contiguous() for v, u in zip(V, best.U)]  # orthonormal: V and u are
            # on a large T an exact error costs as much as half a sweep: only near precision
            full = _ALS(T, U, ridge, cg_iter, C=best.C.clone(),
                        exact_below=_EXACT_BELOW if T.numel() <= 2**21 else 1e-6)
            hist[-1] = full.error  # the same model, measured on T itself (no offset cancellation)
            best = full
            if not stopped:
                before = len(hist)
                r2 = _run(best, hist, refine_iter)
                if r2 == "" and len(hist) >= 2 and len(hist) > before:
                    notes.append(f"refinement on the full matrix stopped after refine_iter = {refine_iter} sweeps "
                                 f"with the error still falling by {(hist[-2] - hist[-1]) / hist[-2]:.1e} per sweep; "
                                 "raise refine_iter for a little more")
                reason = r2 or (reason if reason else "max_iter")
        if stopped:
            reason = "stopped"
        elif reason == "":
            reason = "max_iter"
    # final error from the explicit residual when small
    err = best.error
    if not best.exact and err < _EXACT_BELOW * 10:
        err = best.exact_error()  # the reported error is always exact when small
    # The last entry is the exact error. Earlier entries of sweeps on a large tensor are Gram-formula
    # values, accurate to ~1e-12 in the squared error; where that rounding would show an increase
    # the earlier entry is raised, so the record never increases.
    hist[-1] = err
    for i in range(len(hist) - 2, -1, -1):
        hist[i] = max(hist[i], hist[i + 1])

    inv = [order.index(k) for k in range(d)]
    factors = [best.U[inv[k]].reshape(N, im[k], om[k], ranks[k]).to(out_dtype) for k in range(d)]
    core = (best.C * norm).permute([0] + [1 + inv[k] for k in range(d)]).contiguous().to(out_dtype)
    M = BTMatrix(factors, core)
    info = FitInfo(
        format=fmt, method="ALS", relative_error=float(err), errors=[float(e) for e in hist],
        iterations=len(hist) - 1, total_iterations=total, seconds=time.perf_counter() - t0,
        converged=reason in ("converged", "no further decrease", "at numerical precision"), reason=reason,
        at_precision=err < AT_PRECISION, ranks=ranks, blocks=N, params=M.num_params,
        requested_ranks=requested, notes=notes, start_kinds=kinds[: len(start_errors)],
        start_errors=[float(e) for e in start_errors], chosen_start=chosen,
    )
    return M, info


def _mode_order(sizes) -> list[int]:
    """Internal mode order: the two largest modes at the ends, where the first contraction of each
    half-sweep is one GEMM with the largest reduction."""
    d = len(sizes)
    if d <= 2:
        return list(range(d))
    idx = sorted(range(d), key=lambda k: (-sizes[k], k))
    return [idx[0]] + sorted(idx[2:]) + [idx[1]]


def _unfold_labels(X: torch.Tensor, lab: str, k: int) -> torch.Tensor:
    """X (labels ``lab``) as a matrix with mode k's letter as rows."""
    rest = "".join(c for c in lab if c != _M[k])
    return torch.einsum(f"{lab}->{_M[k]}{rest}", X).reshape(X.shape[lab.index(_M[k])], -1)


def _sketch_bases(T: torch.Tensor, c, gen: torch.Generator, oversample: int = 10) -> list:
    """Orthonormal V_k (M_k x c_k) spanning the dominant columns of each unfolding of T, from
    Kronecker-structured Gaussian sketches T x_{j!=k} Omega_j (two large contractions in all)."""
    d = T.dim()
    sizes = tuple(T.shape)
    need = max(c) + oversample
    q = [min(sizes[j], max(2, math.ceil(need ** (1.0 / (d - 1))))) for j in range(d)]
    omega = [torch.randn((1, sizes[j], q[j]), generator=gen, dtype=T.dtype).to(T.device) for j in range(d)]
    h = (d + 1) // 2
    V = [None] * d
    for group in (list(range(h)), list(range(h, d))):
        todo = [k for k in group if c[k] < sizes[k]]
        for k in group:
            if c[k] >= sizes[k]:
                V[k] = torch.eye(sizes[k], dtype=T.dtype, device=T.device)
        if not todo:
            continue
        X, lab = _contract(T, omega, [j for j in range(d) if j not in group])
        for k in todo:
            Xk, labk = X, lab
            for j in group:
                if j != k:
                    Xk, labk = _contract_more(Xk, labk, omega[j], j)
            Y = _unfold_labels(Xk, labk, k)
            Uy, S, _ = torch.linalg.svd(Y, full_matrices=False)
            keep = min(c[k], int((S > S[0] * 1e-14).sum()) if S.numel() and S[0] > 0 else 0)
            B = Uy[:, :keep]
            if keep < c[k]:
                extra = torch.randn((sizes[k], c[k] - keep), generator=gen, dtype=T.dtype).to(T.device)
                extra = extra - B @ (B.T @ extra)
                B = torch.cat([B, torch.linalg.qr(extra)[0]], dim=1)
                B = torch.linalg.qr(B)[0]
            V[k] = B.contiguous()
    return V


def _project_all(T: torch.Tensor, V: list) -> torch.Tensor:
    """T x_k V_k^T over all modes: the compressed core (c_1..c_d)."""
    d = T.dim()
    X, lab = _contract(T, [v.unsqueeze(0) for v in V], range(d))
    return torch.einsum(f"{lab}->{_N1}{_R[:d]}", X).reshape([v.shape[1] for v in V]).contiguous()


def fit_tucker(W, in_modes, out_modes, rank, **kwargs) -> tuple[BTMatrix, FitInfo]:
    """Tucker fit (HOOI from an HOSVD start): :func:`fit_bt` with one block. ``restarts`` defaults to 1."""
    kwargs.setdefault("restarts", 1)
    return fit_bt(W, in_modes, out_modes, rank, 1, **kwargs)


def fit_cp(W, in_modes, out_modes, rank, **kwargs) -> tuple[BTMatrix, FitInfo]:
    """CP fit of rank ``rank`` (CP-ALS): :func:`fit_bt` with Tucker rank 1 and ``rank`` blocks.

    Unlike tensorly's ``parafac`` this stays fast at large rank (each sweep costs about
    2 * I * J * rank multiply-adds plus a rank x rank solve per mode).
    """
    return fit_bt(W, in_modes, out_modes, 1, check_positive_int(rank, "rank"), **kwargs)


def fit_tt(W, in_modes, out_modes, ranks, *, dtype=None, warn: bool = True) -> tuple[TTMatrix, FitInfo]:
    """TT-matrix fit by TT-SVD (sequential truncated SVDs of the interleaved tensor).

    ``ranks``: one int, the d-1 inner ranks, or all d+1 ranks. Ranks above the largest useful ones
    are capped (``info.notes``). Same algorithm as tensorly's ``tensor_train_matrix``; quasi-optimal
    (error at most sqrt(d-1) times the best TT error) and exact when W has TT structure.
    """
    t0 = time.perf_counter()
    out_dtype = _out_dtype(W, dtype)
    Wt = _as_matrix(W)
    im, om = _modes(Wt, in_modes, out_modes)
    d = len(im)
    requested = (1,) + normalize_ranks(ranks, d, tt=True) + (1,)
    rk, notes = cap_tt_ranks(im, om, ranks)
    if notes and warn:
        warnings.warn("; ".join(notes), UserWarning, stacklevel=2)
    check_allocation(8 * 3 * Wt.numel(), f"TT-SVD of a {Wt.shape[0]:,} x {Wt.shape[1]:,} matrix",
                     "use a smaller matrix", Wt.device)
    norm = float(torch.linalg.norm(Wt))
    T = interleave(Wt, im, om)
    sizes = [i * j for i, j in zip(im, om)]
    cores, r_prev = [], 1
    rest = T.reshape(sizes[0], -1)
    actual = [1]
    discarded = 0.0
    for k in range(d - 1):
        rest = rest.reshape(r_prev * sizes[k], -1)
        U, S, Vh = torch.linalg.svd(rest, full_matrices=False)
        r = min(rk[k + 1], S.shape[0])
        discarded += float((S[r:] ** 2).sum())
        cores.append(U[:, :r].reshape(r_prev, im[k], om[k], r))
        rest = S[:r, None] * Vh[:r]
        r_prev = r
        actual.append(r)
    cores.append(rest.reshape(r_prev, im[-1], om[-1], 1))
    actual.append(1)
    M = TTMatrix([c.to(out_dtype) for c in cores])
    if norm == 0:
        err = 0.0
    else:
        err = math.sqrt(discarded) / norm
        if err < _EXACT_BELOW * 10:
            dense = TTMatrix(cores).to_dense()
            err = float(torch.linalg.norm(Wt - dense)) / norm
    info = FitInfo(format="TT", method="TT-SVD", relative_error=err, errors=[err], iterations=0,
                   total_iterations=0, seconds=time.perf_counter() - t0, converged=True, reason="direct",
                   at_precision=err < AT_PRECISION, ranks=tuple(actual), blocks=None, params=M.num_params,
                   requested_ranks=tuple(requested), notes=notes)
    return M, info


# ----------------------------------------------------------------------------------------------
# Budgets and comparisons
# ----------------------------------------------------------------------------------------------

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


def _candidate_row(spec, budget: int, rank=None) -> dict:
    """One row of :func:`budget_candidates` for a BT/Tucker/CP or TT spec."""
    if isinstance(spec, TTSpec):
        blocks = None
    else:
        blocks = spec.blocks
        rank = spec.blocks if spec.kind == "CP" else spec.rank
    return {"format": spec.kind, "params": spec.params, "rank": rank, "ranks": spec.ranks, "blocks": blocks,
            "compression": spec.compression, "diff": spec.params - budget}


def budget_candidates(in_modes, out_modes, budget: int, *, formats=("BT", "TT", "Tucker", "CP"),
                      per_format: int = 5) -> list[dict]:
    """The formats whose parameter counts come closest to ``budget``, for comparisons at equal size.

    For each requested format, up to ``per_format`` candidates sorted by ``|params - budget|``:

    * "BT": all (R, N) pairs with R >= 2 and N >= 2 (ranks capped per mode),
    * "Tucker": N = 1, "CP": R = 1 (rank = N),
    * "TT": one inner rank r for every bond (capped where a bond allows less).

    Each dict has ``format``, ``params``, ``rank`` (R, CP rank or TT rank), ``ranks`` (per-mode ranks,
    or all d+1 TT ranks), ``blocks`` (None for TT), ``compression`` and ``diff`` (params - budget).
    """
    im = check_modes(in_modes, "in_modes")
    om = check_modes(out_modes, "out_modes")
    if len(im) != len(om):
        raise ValueError(f"in_modes has {len(im)} modes but out_modes has {len(om)}")
    budget = check_positive_int(budget, "budget")
    known = {"BT", "TT", "Tucker", "CP"}
    bad = [f for f in formats if f not in known]
    if bad:
        raise ValueError(f"formats: unknown {bad}; choose from {sorted(known)}")
    rows = [_candidate_row(spec, budget) for spec in _bt_candidates(im, om, budget)]
    # Tucker alone at every rank (N = 1), not only near-budget N
    sizes = [a * b for a, b in zip(im, om)]
    for R in range(1, max(sizes) + 1):
        spec = BTSpec(im, om, cap_bt_ranks(im, om, R)[0], 1, max_bytes=None)
        if spec.kind != "Tucker":
            continue
        rows.append(_candidate_row(spec, budget))
        if spec.params > 2 * budget:
            break
    if len(im) > 1:
        caps = tt_rank_caps(im, om)
        seen = set()
        for r in range(1, max(caps) + 1):
            full, _ = cap_tt_ranks(im, om, r)
            if full in seen:
                continue
            seen.add(full)
            spec = TTSpec(im, om, full, max_bytes=None)
            rows.append(_candidate_row(spec, budget, rank=r))
            if spec.params > 2 * budget:
                break
    out = []
    for fmt in formats:
        mine = {}
        for row in rows:
            if row["format"] == fmt:
                mine[(row["ranks"], row["blocks"])] = row
        # ties: fewer blocks (larger ranks) first, as in the paper's settings
        out.extend(sorted(mine.values(), key=lambda r: (abs(r["diff"]), r["blocks"] or 0, r["params"]))[:per_format])
    return out


def compare_formats(W, in_modes, out_modes, budget: int, *, formats=("BT", "TT", "Tucker", "CP"),
                    seed: int = 0, bt_choices: int = 1, max_cp_rank: int = 2000, fit_kwargs: dict | None = None,
                    progress: Callable[[str, int, float], None] | None = None,
                    should_stop: Callable[[], bool] | None = None) -> list[dict]:
    """Fit each format at the parameter count closest to ``budget`` and tabulate the results.

    Returns one row per fit: ``format``, ``params``, ``compression``, ``rel_error``, ``seconds``,
    ``rank``, ``ranks``, ``blocks``, ``at_precision``, ``error_text`` and ``info`` (the
    :class:`FitInfo`). ``bt_choices`` BT candidates (closest budgets first) are fitted.
    ``progress(format, iteration, rel_error)`` is called during the ALS fits; ``should_stop`` is passed
    on. CP ranks above ``max_cp_rank`` are skipped with a row whose ``rel_error`` is None.
    """
    fit_kwargs = dict(fit_kwargs or {})
    cands = budget_candidates(in_modes, out_modes, budget, formats=formats, per_format=max(1, bt_choices))
    Wt = _as_matrix(W)
    rows = []
    taken = {f: 0 for f in formats}
    for c in cands:
        fmt = c["format"]
        limit = bt_choices if fmt == "BT" else 1
        if taken[fmt] >= limit:
            continue
        taken[fmt] += 1
        if should_stop is not None and should_stop():
            break
        cb = None if progress is None else (lambda it, e, _f=fmt: progress(_f, it, e))
        if fmt == "TT":
            M, info = fit_tt(Wt, in_modes, out_modes, c["ranks"], warn=False)
        elif fmt == "CP" and c["blocks"] > max_cp_rank:
            rows.append({**c, "rel_error": None, "seconds": 0.0, "at_precision": False,
                         "error_text": f"skipped: CP rank {c['blocks']} > {max_cp_rank}", "info": None})
            continue
        else:
            # One start suffices for Tucker (HOSVD); the caller's settings override that default.
            kw = ({"restarts": 1} if fmt == "Tucker" else {}) | fit_kwargs
            M, info = fit_bt(Wt, in_modes, out_modes, c["ranks"], c["blocks"], seed=seed, progress=cb,
                             should_stop=should_stop, warn=False, **kw)
        rows.append({"format": fmt, "params": info.params, "compression": c["compression"],
                     "rel_error": info.relative_error, "seconds": info.seconds, "rank": c["rank"],
                     "ranks": info.ranks, "blocks": info.blocks, "at_precision": info.at_precision,
                     "error_text": info.error_text, "info": info})
    return rows
