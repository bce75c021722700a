"""Algebraic start of a Block-Term fit (exact BT structure, N R_k <= M_k in at least two modes).

:func:`algebraic_start` computes an exact BT model of a generic exact BT target directly (HOSVD
compression, a generalised eigenvalue problem of two slice combinations and a grouping of its
eigenvectors per block); on noisy targets it is an approximation for ALS or Gauss-Newton to refine.
"""

from __future__ import annotations

import torch

from .nls import _orthonormalize

__all__ = ["algebraic_start", "algebraic_applies"]


def algebraic_applies(sizes, ranks, N: int) -> bool:
    """True when :func:`algebraic_start` can run: N >= 2 and two modes with N R_k <= M_k and equal ranks."""
    good = [k for k in range(len(sizes)) if N * ranks[k] <= sizes[k]]
    return N >= 2 and any(ranks[a] == ranks[b] for a in good for b in good if a != b)



def _unfold(X: torch.Tensor, k: int) -> torch.Tensor:
    return X.movedim(k, 0).reshape(X.shape[k], -1)


def _leading_basis(X: torch.Tensor, k: int, r: int) -> torch.Tensor:
    """Orthonormal basis of the r dominant left singular vectors of the mode-k unfolding."""
    A = _unfold(X, k)
    if A.shape[1] < 4 * A.shape[0]:
        Uk = torch.linalg.svd(A, full_matrices=False)[0]
    else:
        _, vecs = torch.linalg.eigh(A @ A.T)
        Uk = vecs.flip(1)
    return Uk[:, :r].contiguous()


def algebraic_start(T: torch.Tensor, ranks, N: int, *, seed: int = 0):
    """Factors and cores of an exact BT model of T computed algebraically, or None.

    Needs N R_k <= M_k (and equal ranks) in two modes k, l. T is compressed by a truncated HOSVD to
    multilinear rank min(M_j, N R_j); in the compressed core the mode-k and mode-l factor matrices
    A^(k), A^(l) are square, and every slice combination ``S_a = G x_{j != k,l} a_j`` equals
    ``A^(k) blockdiag(X_an) A^(l)T``. The eigenvectors of ``S_1 S_2^-1`` are then grouped per block
    (the connected components of the pattern of ``E^-1 S_3 S_2^-1 E``), giving each block's mode-k
    subspace; ``G x_k E^-1`` splits into N separate Tucker tensors whose HOSVDs give the other modes'
    factors and the cores. Exact for generic exact BT targets; an approximation (to be refined) for
    noisy ones. Returns ``(U, C)`` or None when the structure does not allow it or grouping fails.
    """
    T = T.detach().to(torch.float64)
    d = T.dim()
    ranks = tuple(int(r) for r in ranks)
    sizes = tuple(T.shape)
    good = [k for k in range(d) if N * ranks[k] <= sizes[k]]
    if len(good) < 2 or N < 2:
        return None
    good.sort(key=lambda k: -sizes[k] / (N * ranks[k]))
    k, l = None, None
    for a in good:
        for b in good:
            if a != b and ranks[a] == ranks[b] and k is None:
                k, l = a, b
    if k is None:
        return None
    gen = torch.Generator().manual_seed(int(seed))
    comp = [min(m, N * r) for m, r in zip(sizes, ranks)]
    V = [_leading_basis(T, j, comp[j]) for j in range(d)]
    G = T
    for j in range(d):
        G = torch.movedim(torch.tensordot(G, V[j], dims=([j], [0])), -1, j)
    others = [j for j in range(d) if j not in (k, l)]

    def slice_combo():
        S = G
        for j in sorted(others, reverse=True):
            a = torch.randn(G.shape[j], generator=gen, dtype=G.dtype)
            S = torch.tensordot(S, a, dims=([j], [0]))
        return S if k < l else S.T  # (n_k, n_l)

    R = ranks[k]
    S1, S2, S3 = slice_combo(), slice_combo(), slice_combo()
    try:
        X = torch.linalg.solve(S2.T, S1.T).T  # S1 S2^-1
        Y = torch.linalg.solve(S2.T, S3.T).T  # S3 S2^-1
        ev, E = torch.linalg.eig(X)
        Wm = torch.linalg.solve(E, Y.to(E.dtype) @ E)
    except RuntimeError:
        return None
    n = E.shape[0]
    A = Wm.abs()
    A = A / A.max()
    # components of the pattern graph, with the threshold the largest that still gives blocks of R
    # eigenvectors of complex-conjugate eigenvalues belong together (real bases)
    conj = torch.zeros((n, n), dtype=torch.bool)
    scale_ev = float(ev.abs().max()) + 1e-300
    for i in range(n):
        if abs(float(ev[i].imag)) > 1e-10 * scale_ev:
            j = int(torch.argmin((ev - ev[i].conj()).abs()))
            conj[i, j] = conj[j, i] = True
    groups = None
    for thr in (1e-10, 1e-8, 1e-6, 1e-4, 1e-3):
        adj = (A > thr) | (A.T > thr) | conj
        seen, comps = [False] * n, []
        for s in range(n):
            if seen[s]:
                continue
            stack, comp_ = [s], []
            seen[s] = True
            while stack:
                i = stack.pop()
                comp_.append(i)
                for j in torch.nonzero(adj[i]).flatten().tolist():
                    if not seen[j]:
                        seen[j] = True
                        stack.append(j)
            comps.append(sorted(comp_))
        if max(map(len, comps)) > R:
            continue
        # components smaller than R (blocks whose pencil splits further) are packed into N groups
        bins = [[] for _ in range(N)]
        for c in sorted(comps, key=len, reverse=True):
            fit = [b for b in bins if len(b) + len(c) <= R]
            if not fit:
                break
            max(fit, key=len).extend(c)
        else:
            if all(len(b) == R for b in bins):
                groups = bins
                break
    if groups is None:
        return None
    # real basis of each block's mode-k subspace (real and imaginary parts of its eigenvectors)
    Ek = []
    for g in groups:
        Z = E[:, g]
        Bm = torch.cat([Z.real, Z.imag], dim=1)
        Ub, s, _ = torch.linalg.svd(Bm, full_matrices=False)
        Ek.append(Ub[:, :R])
    Ecat = torch.cat(Ek, dim=1)  # (n, N R)
    try:
        H = torch.movedim(torch.tensordot(G, torch.linalg.inv(Ecat).T, dims=([k], [0])), -1, k)
    except RuntimeError:
        return None
    U = [[None] * N for _ in range(d)]
    cores = []
    for b in range(N):
        Hb = H.narrow(k, b * R, R)
        Ub = {}
        Cb = Hb
        for j in range(d):
            if j == k:
                continue
            Ub[j] = _leading_basis(Hb, j, ranks[j])
            Cb = torch.movedim(torch.tensordot(Cb, Ub[j], dims=([j], [0])), -1, j)
        for j in range(d):
            U[j][b] = V[j] @ (Ek[b] if j == k else Ub[j])
        cores.append(Cb)
    Uout = [torch.stack(U[j]).contiguous() for j in range(d)]
    Cout = torch.stack(cores).contiguous()
    return _orthonormalize(Uout, Cout)
