"""The joint ALS engine of the Block-Term fit: contractions, the run state, starts and sketches.

:class:`ALSRun` holds one run: orthonormal factors U[k] (N, M_k, R_k), cores C (N, R_1..R_d) and the
cross-Grams P[k]; :meth:`ALSRun.sweep` is one sweep of joint ALS over all blocks (see
:mod:`btcore.decompose.bt` for the algorithm). The driver that screens starts, compresses and
refines is :func:`btcore.decompose.bt.fit_bt`.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

from ..shapes import prod
from .btmodel import bt_gradient, cached_einsum, lstsq
from .fitinfo import EXACT_BELOW

__all__ = ["ALSRun", "als_memory_bytes", "hosvd_start", "mode_order", "project_all", "random_orthonormal",
           "sketch_bases"]

#: Largest N * prod(R) for which the joint core system is solved directly (else CG).
_DIRECT_CORE_MAX = 768

_M = "abcdefgh"   # mode letters M_k
_R = "qrstuvwx"   # rank letters R_k (first block)
_S = "ijklmnop"   # rank letters R_k (second block, Grams)
_N1, _N2 = "z", "y"  # block letters


# ----------------------------------------------------------------------------------------------
# Contractions
# ----------------------------------------------------------------------------------------------

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


#: Cost model of the two ways to contract a run of modes (nanoseconds, 1 thread, measured on the
#: shapes of bench/advisor.py and bench/nls.py): a GEMM costs this per multiply-add pair of flops...
_GEMM_NS_PER_FLOP = 0.04
#: ... and a per-block step of the sequential plan (a batched product that permutes its operand) this
#: per element read or written.
_STEP_NS_PER_ELEMENT = 8.0
#: The Kronecker plan is taken only below this fraction of the sequential plan's cost (the model is
#: rough, and the sequential plan is the one that wins on ties).
_KRON_MARGIN = 0.7


def _sequential_plan(T: torch.Tensor, U: list, modes: list) -> tuple[int, list[int], float]:
    """The mode contracted first by one GEMM, the others in order, and the plan's modelled cost."""
    d = T.dim()
    if d - 1 in modes:
        first = d - 1
    elif 0 in modes:
        first = 0
    else:
        first = max(modes, key=lambda j: T.shape[j] / U[j].shape[2])
    rest = sorted((j for j in modes if j != first), key=lambda j: -T.shape[j] / U[j].shape[2])
    n = U[first].shape[0]
    size = T.numel() // T.shape[first] * n * U[first].shape[2]
    cost = _GEMM_NS_PER_FLOP * 2 * T.numel() * n * U[first].shape[2]
    for j in rest:
        after = size // T.shape[j] * U[j].shape[2]
        cost += _STEP_NS_PER_ELEMENT * (size + after)
        size = after
    return first, rest, cost


def _kronecker_contract(T: torch.Tensor, U: list, run: list) -> tuple[torch.Tensor, str]:
    """T contracted over a run of modes at one end of T in one GEMM with each block's Kronecker
    product of their factors (N, prod M, prod R): no intermediate grows with N R_k / M_k."""
    d, k = T.dim(), len(run)
    n = U[run[0]].shape[0]
    m_run = prod(T.shape[j] for j in run)
    eq = ",".join(f"{_N1}{_M[i]}{_R[i]}" for i in range(k)) + f"->{_M[:k]}{_N1}{_R[:k]}"
    K = torch.einsum(eq, *[U[j] for j in run]).reshape(m_run, -1)
    ranks = tuple(U[j].shape[2] for j in run)
    if run[-1] == d - 1:
        head = tuple(T.shape[: run[0]])
        X = (T.reshape(-1, m_run) @ K).reshape(head + (n,) + ranks)
        return X, _M[: run[0]] + _N1 + _R[run[0]:d]
    tail = tuple(T.shape[k:])
    X = (K.T @ T.reshape(m_run, -1)).reshape((n,) + ranks + tail)
    return X, _N1 + _R[:k] + _M[k:d]


def _kronecker_cost(T: torch.Tensor, U: list, modes: list) -> float:
    """Modelled cost of :func:`_kronecker_contract` over ``modes``; inf where it does not apply (not a
    run at one end, one mode, or a Kronecker factor larger than the sequential plan's first product)."""
    d = T.dim()
    if len(modes) < 2 or modes != list(range(modes[0], modes[-1] + 1)) or (modes[0] != 0 and modes[-1] != d - 1):
        return math.inf
    n = U[modes[0]].shape[0]
    cols = n * prod(U[j].shape[2] for j in modes)
    kron = prod(T.shape[j] for j in modes) * cols
    if kron > T.numel() // max(T.shape[j] for j in modes) * n * max(U[j].shape[2] for j in modes):
        return math.inf
    return _GEMM_NS_PER_FLOP * 2 * T.numel() * cols


def _takes_kronecker(T: torch.Tensor, U: list, modes: list) -> bool:
    """Whether :func:`_contract` takes the Kronecker plan over ``modes`` (sorted): the model's rule."""
    return _kronecker_cost(T, U, modes) < _KRON_MARGIN * _sequential_plan(T, U, modes)[2]


def _sequential_contract(T: torch.Tensor, U: list, modes: list) -> tuple[torch.Tensor, str]:
    """T contracted over ``modes`` by the sequential plan: one GEMM, then a per-block product a mode."""
    first, rest, _ = _sequential_plan(T, U, modes)
    X, lab = _first_contract(T, U[first], first)
    for j in rest:
        X, lab = _contract_more(X, lab, U[j], j)
    return X, lab


def _contract(T: torch.Tensor, U: list, modes: Sequence[int]) -> tuple[torch.Tensor, str]:
    """T contracted over ``modes`` with each block's factors: either one GEMM for the first mode and
    a per-block product for each further one, or, for a run of modes at one end where the model says
    it is cheaper (many blocks on small modes), one GEMM with the Kronecker products of the factors.
    The plan depends on the shapes only, so equal inputs give equal results."""
    modes = sorted(modes)
    if not modes:
        return T, _M[:T.dim()]
    if _takes_kronecker(T, U, modes):
        return _kronecker_contract(T, U, modes)
    return _sequential_contract(T, U, modes)


#: Elements of the pair products computed at once (2 MiB of float64, the size of a core's L2 cache):
#: past it the batched products of :func:`_pair_products` slow down several-fold, and memory stays
#: bounded however many blocks there are.
_PAIR_CHUNK = 1 << 18
#: Fewest blocks from which rank-2 pair products run as elementwise products over the pairs: there the
#: 2 x 2 matrix products of a batched GEMM cost more than the data they touch (3-4x slower at N = 60-150,
#: 1 thread); below it the few calls of the GEMM win.
_PAIRWISE_FROM = 16


def _pair_layout(N: int, ranks: tuple) -> tuple[int, bool]:
    """Rows n per chunk of :func:`_pair_products`, and whether they run elementwise over the pairs."""
    return max(1, min(N, _PAIR_CHUNK // max(1, prod(ranks) * N))), N >= _PAIRWISE_FROM and max(ranks) <= 2


def _pair_products(P: list, C: torch.Tensor, skip: int = -1, upper: bool = False):
    """D[n, m] = C_m x_j P[j][n, m] for every mode j != skip, in chunks of rows n.

    Yields ``(n0, n1, m0, D)`` with D of shape (n1 - n0, N - m0, R_1..R_d) (possibly a strided view)
    for the columns m0..N, over consecutive row ranges covering 0..N; a chunk holds about
    :data:`_PAIR_CHUNK` elements. ``upper``: only the columns from the chunk's first row on (m0 = n0),
    the pairs a symmetric result needs (the Grams of :meth:`ALSRun._gram`); else m0 = 0.
    """
    N = C.shape[0]
    rows, pairwise = _pair_layout(N, tuple(C.shape[1:]))
    for n0 in range(0, N, rows):
        n1, m0 = min(N, n0 + rows), n0 if upper else 0
        if pairwise:
            yield n0, n1, m0, _pair_products_elementwise(P, C, skip, n0, n1, m0)
        else:
            yield n0, n1, m0, _pair_products_batched(P, C, skip, n0, n1, m0)


def _pair_products_batched(P: list, C: torch.Tensor, skip: int, n0: int, n1: int, m0: int = 0) -> torch.Tensor:
    """Rows n0..n1, columns m0..N of the pair products by cyclic mode products: each step is one
    batched GEMM over the block pairs, (R_j x R_j) times (R_j x prod of the other ranks), then that
    mode moves to the back."""
    C = C[m0:]
    M = C.shape[0]
    ranks = tuple(C.shape[1:])
    nb = n1 - n0
    NN = nb * M
    D = None
    for j, r in enumerate(ranks):
        if D is None:
            if j == skip:
                D = C.unsqueeze(0).expand((nb,) + tuple(C.shape)).reshape(NN, r, -1)
            else:
                D = torch.matmul(P[j][n0:n1, m0:], C.reshape(1, M, r, -1)).reshape(NN, r, -1)
        elif j != skip:
            D = torch.bmm(P[j][n0:n1, m0:].reshape(NN, r, r), D.reshape(NN, r, -1))
        D = D.reshape(NN, r, -1).transpose(1, 2).contiguous()
    return D.reshape((nb, M) + ranks)


def _pair_products_elementwise(P: list, C: torch.Tensor, skip: int, n0: int, n1: int, m0: int = 0) -> torch.Tensor:
    """Rows n0..n1, columns m0..N of the pair products with the pairs as the last axis: a mode product
    is R_j^2 elementwise multiply-adds over the pairs (for small R_j, cheaper than batched tiny GEMMs)."""
    C = C[m0:]
    M = C.shape[0]
    ranks = tuple(C.shape[1:])
    d, nb = len(ranks), n1 - n0
    D = C.reshape(M, -1).T.reshape(ranks + (1, M)).expand(ranks + (nb, M))
    for j, r in enumerate(ranks):
        if j == skip:
            continue
        a = prod(ranks[:j])
        src = D.reshape(a, r, -1, nb, M)
        Pj = P[j][n0:n1, m0:].permute(2, 3, 0, 1)  # (R_j, R_j, rows, columns)
        out = torch.empty(src.shape, dtype=C.dtype, device=C.device)
        for i in range(r):
            o = out[:, i]
            torch.mul(src[:, 0], Pj[i, 0], out=o)
            for s in range(1, r):
                o.addcmul_(src[:, s], Pj[i, s])
        D = out
    return D.reshape(ranks + (nb, M)).permute(d, d + 1, *range(d))


def _cross_gram(Q: torch.Tensor) -> torch.Tensor:
    """P[n, m] = Q_n^T Q_m for Q (N, M, R): shape (N, N, R, R)."""
    n, m, r = Q.shape
    q = Q.permute(1, 0, 2).reshape(m, n * r)
    return (q.T @ q).reshape(n, r, n, r).permute(0, 2, 1, 3).contiguous()



class ALSRun:
    """State of one ALS run: orthonormal factors U[k] (N, M_k, R_k), cores C (N, R...), Grams P[k]."""

    def __init__(self, T: torch.Tensor, U: list, ridge: float, cg_iter: int, C: torch.Tensor | None = None,
                 tnorm2: float = 1.0, offset2: float = 0.0, exact_below: float = EXACT_BELOW):
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
        out = torch.empty_like(C)
        for n0, n1, _, D in _pair_products(self.P, C):
            out[n0:n1] = D.sum(1)
        return out

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
            K = cached_einsum(eq, *self.P).reshape(size, size)
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
        return cached_einsum(eq, self.C, *self.U)

    def gradient_norm(self) -> float:
        """||J^T r|| of 0.5 ||T - model||^2 (T normalised: relative to ||W||^2)."""
        gU, gC = bt_gradient(self.dense() - self.T, self.U, self.C)
        return math.sqrt(sum(float((g * g).sum()) for g in gU) + float((gC * gC).sum()))

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
    def _gram(self, k: int) -> torch.Tensor:
        """Z^T Z (N R_k x N R_k, symmetric) of mode k's least squares, Z holding every block's mode-k
        design matrix, from the cross-Grams of the other modes and the cores."""
        N, Rk = self.N, self.ranks[k]
        a, b = prod(self.ranks[:k]), prod(self.ranks[k + 1:])
        Cr = self.C.reshape(N, a, Rk, b)
        G = torch.empty((N, Rk, N, Rk), dtype=self.C.dtype, device=self.C.device)
        # G[m, :, n, :] = G[n, :, m, :]^T: each chunk of rows n computes only the columns m from its
        # first row on and mirrors them below (with several chunks, about half the pair products)
        for n0, n1, m0, D in _pair_products(self.P, self.C, skip=k, upper=True):  # D[n, m] = C_m x_{j!=k} P_nm^(j)
            Gc = torch.einsum("narb,nmasb->nrms", Cr[n0:n1], D.reshape(n1 - n0, N - m0, a, Rk, b))
            G[n0:n1, :, m0:] = Gc
            G[n1:, :, n0:n1] = Gc[:, :, n1 - m0:].permute(2, 3, 0, 1)
        G = G.reshape(N * Rk, N * Rk)
        return 0.5 * (G + G.T)

    def _update_mode(self, k: int, Xk: torch.Tensor, lab: str) -> None:
        d, N = self.d, self.N
        Rk = self.ranks[k]
        Mk = self.T.shape[k]
        # right-hand side: T_(k) Z for all blocks, (N, M_k, R_k)
        core_lab = _N1 + _R[:k] + _S[k] + _R[k + 1:d]
        F = cached_einsum(f"{lab},{core_lab}->{_N1}{_M[k]}{_S[k]}", Xk, self.C)
        G = self._gram(k)
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



# ----------------------------------------------------------------------------------------------
# Starts, compression, memory
# ----------------------------------------------------------------------------------------------

def _spd_solve(G: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    """Solve G X = rhs for symmetric positive (semi)definite G; falls back to lstsq."""
    L, info = torch.linalg.cholesky_ex(G)
    if int(info) == 0:
        return torch.cholesky_solve(rhs, L)
    return lstsq(G, rhs)


def random_orthonormal(shape, gen: torch.Generator, dtype, device) -> torch.Tensor:
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


def hosvd_start(T: torch.Tensor, N: int, ranks, gen: torch.Generator) -> list:
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
    copies made by einsum), the direct core system, a factor update's Gram system and a chunk of
    pair products (:func:`_pair_products`) with its copies."""
    t = prod(sizes)
    first = max(t // m * N * r for m, r in zip(sizes, ranks)) if len(sizes) > 1 else t * N
    core = N * prod(ranks)
    direct = core * core if core <= _DIRECT_CORE_MAX else 0
    gram = (N * max(ranks)) ** 2
    chunk = min(N * core, max(_PAIR_CHUNK, core))
    return 8 * (3 * t + 3 * first + direct + 2 * gram + 4 * chunk)


def mode_order(sizes) -> list[int]:
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


def sketch_bases(T: torch.Tensor, c, gen: torch.Generator, oversample: int = 10) -> list:
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


def project_all(T: torch.Tensor, V: list) -> torch.Tensor:
    """T x_k V_k^T over all modes: the compressed core (c_1..c_d)."""
    d = T.dim()
    X, lab = _contract(T, [v.unsqueeze(0) for v in V], range(d))
    return torch.einsum(f"{lab}->{_N1}{_R[:d]}", X).reshape([v.shape[1] for v in V]).contiguous()
