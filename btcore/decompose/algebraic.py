"""Algebraic start of a Block-Term fit (exact BT structure, N R_k <= M_k in at least two modes).

:func:`algebraic_start` computes an exact BT model of a generic exact BT target directly (HOSVD
compression, a generalised eigenvalue problem of two slice combinations and a grouping of its
eigenvectors per block); on noisy targets it is an approximation for ALS or Gauss-Newton to refine.
"""

from __future__ import annotations

import itertools
import math

import torch

from .btmodel import lstsq, orthonormalize

__all__ = ["algebraic_start", "algebraic_applies", "subspace_start", "subspace_applies"]


def algebraic_applies(sizes, ranks, N: int) -> bool:
    """True when :func:`algebraic_start` can run: N >= 2 and two modes with N R_k <= M_k and equal ranks."""
    good = [k for k in range(len(sizes)) if N * ranks[k] <= sizes[k]]
    return N >= 2 and any(ranks[a] == ranks[b] for a in good for b in good if a != b)



def _unfold(X: torch.Tensor, k: int) -> torch.Tensor:
    return X.movedim(k, 0).reshape(X.shape[k], -1)


def _left_singular(X: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Left singular vectors and values (descending) of the mode-k unfolding, by the cheaper route."""
    A = _unfold(X, k)
    if A.shape[1] < 4 * A.shape[0]:
        Uk, s, _ = torch.linalg.svd(A, full_matrices=False)
        return Uk, s
    vals, vecs = torch.linalg.eigh(A @ A.T)
    return vecs.flip(1), vals.flip(0).clamp_min(0).sqrt()


def _leading_basis(X: torch.Tensor, k: int, r: int) -> torch.Tensor:
    """Orthonormal basis of the r dominant left singular vectors of the mode-k unfolding."""
    return _left_singular(X, k)[0][:, :r].contiguous()


def _group_eigenvectors(ev: torch.Tensor, Wm: torch.Tensor, R: int, N: int) -> list[list[int]] | None:
    """Indices of the eigenvectors per block: the connected components of the pattern of ``Wm``
    (``E^-1 S_3 S_2^-1 E``), at the largest threshold that still gives N groups of R (components
    smaller than R, from a block whose pencil splits further, are packed together); None if none does.
    """
    n = Wm.shape[0]
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
    return groups


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
    groups = _group_eigenvectors(ev, Wm, R, N)
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
    return orthonormalize(Uout, Cout)


# ----------------------------------------------------------------------------------------------
# Subspace start: one (possibly merged) mode with N R_k <= M_k
# ----------------------------------------------------------------------------------------------

#: Largest tensor the subspace start works on (it forms each block's full tensor once).
SUBSPACE_MAX = 2 ** 21
#: Plans the subspace start tries, best first, before it gives up (a failed plan costs at most
#: ``tries * N`` short searches).
MAX_PLANS = 6


def _subspace_plan(sizes, ranks, N: int):
    """The first of :func:`_subspace_plans`, or None."""
    plans = _subspace_plans(sizes, ranks, N)
    return plans[0] if plans else None


def _subspace_plans(sizes, ranks, N: int) -> list:
    """The plans ``(group, j, rest)`` of the subspace start, best first (possibly none).

    ``group`` is one mode or two merged modes whose block rank ``r_g = min(prod R_group, prod R_other)``
    satisfies ``N r_g <= prod M_group`` (the blocks' factor matrices of the group are then jointly of
    full column rank); ``j`` is a mode outside it whose rank ``R_j`` is below the generic rank of a
    slice (so low rank singles out one block); ``rest`` are the other modes. The plan with the largest
    margin ``prod M_group / (N r_g)`` comes first. A plan can fail where another succeeds (the span
    of a block's slices may hold other low-rank members than the block's own), so the start tries
    them in this order.
    """
    d = len(sizes)
    if N < 2 or d < 3:
        return []
    plans = []
    groups = [(k,) for k in range(d)] + [(a, b) for a in range(d) for b in range(a + 1, d)]
    for g in groups:
        other = [k for k in range(d) if k not in g]
        if len(other) < 2:
            continue
        mg = math.prod(sizes[k] for k in g)
        rg = min(math.prod(ranks[k] for k in g), math.prod(ranks[k] for k in other))
        if N * rg > mg:
            continue
        for j in other:
            rest = [k for k in other if k != j]
            mr = math.prod(sizes[k] for k in rest)
            # a generic combination of the N blocks' slices has rank min(M_j, M_rest, N R_j)
            if min(sizes[j], mr, N * ranks[j]) <= ranks[j]:
                continue
            # a generic R_j-dimensional column space P keeps n - (M_j - R_j) M_rest combinations (the
            # equations that put every column in P); a block's own P keeps its r_g. Only when the
            # generic count is below r_g does keeping r_g single out a block
            if N * rg + ranks[j] * mr - sizes[j] * mr >= rg:
                continue
            plans.append(((mg / (N * rg), min(sizes[j], mr) / ranks[j]), (tuple(g), j, tuple(rest))))
    plans.sort(key=lambda kp: kp[0], reverse=True)  # stable: equal keys keep the enumeration order
    return [p for _, p in plans] + _tucker_plans(sizes, ranks, N)


def _tucker_plans(sizes, ranks, N: int) -> list:
    """The plans ``(group, None, other)`` of the subspace start's Tucker search, best first (possibly none).

    ``group`` (one to three modes, block rank ``r_g``, ``N r_g <= M_g``) as in :func:`_subspace_plans`;
    ``other`` (at least two modes) are all the other modes, and a block's rows, as tensors over them,
    fill one Tucker subspace ``P_1 x .. x P_m`` (dimension ``R_O = prod R_other <= prod R_group``) of the
    ``M_O``-dimensional space. The span of all rows has dimension ``n = N r_g < M_O``; the Tucker
    subspaces meeting it in ``r_g`` dimensions form a subset of codimension
    ``r_g (M_O - n - R_O + r_g)`` (a Schubert condition) of the ``D = sum R_k (M_k - R_k)``-dimensional
    family of Tucker subspaces: only when ``D`` is below that codimension are the blocks' own subspaces
    the only ones (isolated), and the plan has a chance. Larger margin first.
    """
    d = len(sizes)
    if N < 2 or d < 4:
        return []
    plans = []
    for size in (1, 2, 3):
        for g in itertools.combinations(range(d), size):
            other = [k for k in range(d) if k not in g]
            if len(other) < 2:
                continue
            mg, mo = math.prod(sizes[k] for k in g), math.prod(sizes[k] for k in other)
            ro = math.prod(ranks[k] for k in other)
            rg = ro  # a block's rows fill its Tucker subspace only when prod R_group >= R_O
            n = N * rg
            if math.prod(ranks[k] for k in g) < ro or n > mg or n >= mo:
                continue
            family = sum(ranks[k] * (sizes[k] - ranks[k]) for k in other)
            codim = rg * (mo - n)  # r_g (M_O - n - R_O + r_g) with r_g = R_O
            if family >= codim:
                continue
            plans.append(((codim - family) / codim, (g, None, tuple(other))))
    plans.sort(key=lambda kp: kp[0], reverse=True)
    return [p for _, p in plans]


def subspace_applies(sizes, ranks, N: int) -> bool:
    """True when :func:`subspace_start` has a plan for this shape (and the tensor is small enough)."""
    return math.prod(sizes) <= SUBSPACE_MAX and _subspace_plan(tuple(sizes), tuple(ranks), N) is not None


def _low_rank_member(B: torch.Tensor, r: int, c: torch.Tensor, iters: int,
                     avoid: torch.Tensor | None = None) -> tuple[torch.Tensor, float]:
    """A combination ``c`` (unit norm) of the matrices B_i (B: n x p x q) of rank <= r, searched from ``c``.

    Each step takes the rank-r column and row spaces (U, V) of the current combination and picks the
    unit c that minimises the energy of ``(I - U U^T) (sum_i c_i B_i) (I - V V^T)`` (an n x n
    eigenproblem, K). That energy is the combination's distance to the tangent space of the rank-r
    matrices at its own truncation, so the step is a Gauss-Newton step on the rank-r manifold: it
    converges quadratically near an exact member (a few steps), where alternating projections between
    the span and the rank-r matrices converge linearly and take thousands.

    ``avoid`` (n x k, orthonormal) deflates the blocks found before: the step minimises
    ``c^T K c / |c outside span(avoid)|^2`` instead (a Schur complement of K), which is infinite on
    those blocks and still zero on any other exact member. Without it most starts fall back into the
    one block with the largest basin. Returns ``(c, tail)`` with ``tail`` the relative energy beyond
    rank r of the best combination seen (1e-12 or less: exact).
    """
    n = B.shape[0]
    Bf = B.reshape(n, -1)
    if avoid is not None:
        Z = torch.linalg.svd(avoid, full_matrices=True)[0][:, avoid.shape[1]:]  # the complement of avoid
    best_c, best_tail = c, math.inf
    for it in range(iters):
        X = (c @ Bf).reshape(B.shape[1:])
        Uu, s, Vh = torch.linalg.svd(X, full_matrices=False)
        tail = float(s[r:].norm() / (s.norm() + 1e-300))
        if tail < best_tail:
            best_c, best_tail = c, tail
        # on exact targets 97% of the searches that succeed are below 1e-3 within 10 steps; a noisy
        # target stalls at its noise level
        if tail < 1e-12 or (it >= 10 and best_tail > 1e-3):
            break
        Ur, Vr = Uu[:, :r], Vh[:r].T
        PB = B - Ur @ (Ur.T @ B)
        PB = (PB - (PB @ Vr) @ Vr.T).reshape(n, -1)
        K = PB @ PB.T
        if avoid is None:
            c = torch.linalg.eigh(K)[1][:, 0]
            continue
        # c = Z b - avoid F b: the avoid part chosen optimally for each b, then the best b
        Kaa, Kab, Kbb = avoid.T @ K @ avoid, avoid.T @ K @ Z, Z.T @ K @ Z
        F = lstsq(Kaa, Kab)
        S = Kbb - Kab.T @ F
        b = torch.linalg.eigh(0.5 * (S + S.T))[1][:, 0]
        c = Z @ b - avoid @ (F @ b)
        c = c / (c.norm() + 1e-300)
    return best_c, best_tail


def subspace_start(T: torch.Tensor, ranks, N: int, *, seed: int = 0, iters: int = 40, tries: int = 4):
    """Factors and cores of a BT model of T from one mode (or two merged modes) with N R_k <= M_k, or None.

    Where :func:`algebraic_start` needs two such modes, this needs one group g (a mode, or two merged
    modes of block rank r_g) with N r_g <= M_g. Compressed to N r_g in that group, the rows of the
    group's unfolding span the direct sum of the N blocks' row spaces; reshaped as matrices
    (mode j x the other modes), the rows of block n have rank <= R_j, a generic combination more.
    Gauss-Newton steps on the rank-R_j matrices (:func:`_low_rank_member`) from random combinations
    find a low-rank member; the combinations whose matrix keeps its column space form that block's
    subspace (a null space). With all N subspaces, the group's basis change separates the blocks
    (as in :func:`algebraic_start`), and a truncated HOSVD of each block gives its factors and core.
    Where no such plan exists, a Tucker plan (:func:`_tucker_plans`: a group of up to three modes
    against all the others) searches instead for the Tucker subspaces that lie inside the rows' span
    (:func:`_tucker_space`, Levenberg-Marquardt from random starts, at most :data:`TUCKER_TRIES` per
    block); a block's combinations are those whose rows stay in its subspace. Plans are tried best first (at most :data:`MAX_PLANS`; a plan after the first only once a group's
    unfolding showed an exact rank, as on exact targets, so noisy targets still give up early). Returns ``(U, C)`` or None when every
    plan failed: none exists; the group's unfolding has rank above N r_g; the search did not separate
    N blocks; or three searches in a row stalled far from a low-rank member. The work is
    bounded by ``tries * N`` searches of at most ``iters`` steps (Tucker plans: ``TUCKER_TRIES * N``
    searches of at most :data:`TUCKER_ITERS` steps; no wall clock). On a noisy target there is no exact low-rank member to find, and
    these give up early.
    """
    T = T.detach().to(torch.float64)
    sizes, ranks = tuple(T.shape), tuple(int(r) for r in ranks)
    if T.numel() > SUBSPACE_MAX:
        return None
    exact_seen = False
    for i, plan in enumerate(_subspace_plans(sizes, ranks, N)[:MAX_PLANS]):
        if i > 0 and not exact_seen:
            break  # further plans only where the target showed exact structure: noise defeats them all
        start, exact = _subspace_from_plan(T, ranks, N, plan, seed, iters, tries)
        if start is not None:
            return start
        if exact is False:
            return None
        exact_seen = exact_seen or bool(exact)
    return None


def _subspace_from_plan(T: torch.Tensor, ranks, N: int, plan, seed: int, iters: int, tries: int):
    """:func:`subspace_start` with one plan ``(group, j, rest)``: ``((U, C) or None, exact)``, where
    ``exact`` says whether the group's unfolding showed an exact rank N r_g (True), noise (False), or
    could not tell (None: the group has only N r_g rows)."""
    sizes, d = tuple(T.shape), T.dim()
    g, j, rest = plan
    if j is None:  # a Tucker plan: the rows are searched as tensors over all the other modes
        perm = list(g) + list(rest)
        mg = math.prod(sizes[k] for k in g)
        X = T.permute(perm).reshape([mg] + [sizes[k] for k in rest])
    else:
        perm = list(g) + [j] + list(rest)
        mg, mj = math.prod(sizes[k] for k in g), sizes[j]
        X = T.permute(perm).reshape(mg, mj, -1)
    rg = min(math.prod(ranks[k] for k in g), math.prod(ranks[k] for k in range(d) if k not in g))
    n = N * rg
    Ug, sg = _left_singular(X, 0)
    # an exact target's group unfolding has rank n: a noisy one has no exact member to find (1e-6:
    # singular values from the eigenvalues of A A^T resolve about sqrt(eps) of the largest)
    if sg.shape[0] > n and float(sg[n]) > 1e-6 * float(sg[0]):
        return None, False
    exact = True if sg.shape[0] > n else None  # the unfolding shows an exact rank n (or cannot)
    V = Ug[:, :n].contiguous()  # (mg, n)
    G = torch.tensordot(V, X, dims=([0], [0]))  # (n, mj, mr)
    gen = torch.Generator().manual_seed(int(seed))
    if j is None:
        # whitened rows (orthonormal: any basis of the span separates the blocks alike), so that the
        # kernel tests do not confuse a weak block with a missing one; X = (V diag(s)) G then
        scale = sg[:n].clamp_min(1e-300).reshape((n,) + (1,) * (G.dim() - 1))
        G, V = G / scale, V * scale.reshape(1, n)
        found = _tucker_blocks(G, [ranks[k] for k in rest], rg, N, gen, TUCKER_TRIES, TUCKER_ITERS)
    else:
        found = _member_blocks(G, ranks[j], rg, N, gen, iters, tries)
    if len(found) < N:
        return None, exact
    return _separate(T, ranks, N, perm, V, G, found, rg), exact


def _member_blocks(G: torch.Tensor, r: int, rg: int, N: int, gen, iters: int, tries: int) -> list:
    """The blocks' coefficient bases (n x rg each) found by low-rank member searches (at most N)."""
    n, mj = G.shape[0], G.shape[1]
    Gf = G.reshape(n, -1)
    found = []  # (n x rg) coefficient bases, one per block
    misses = 0  # searches in a row that ended nowhere near a low-rank member
    for _ in range(tries * N):
        if len(found) == N or misses == 3:
            break
        c = torch.randn(n, generator=gen, dtype=G.dtype)
        Q = None
        if found:  # start away from the blocks already found, and deflate them
            Q = torch.linalg.qr(torch.cat(found, dim=1))[0]
            c = c - Q @ (Q.T @ c)
        c, tail = _low_rank_member(G, r, c / c.norm(), iters, avoid=Q)
        misses = misses + 1 if tail > 1e-3 else 0
        if tail > 1e-6:
            continue
        P = torch.linalg.svd((c @ Gf).reshape(mj, -1), full_matrices=False)[0][:, :r]
        L = (G - (P @ P.T) @ G).reshape(n, -1)  # the part of each G_i outside span(P)
        sv, Ev = torch.linalg.svd(L.T, full_matrices=True)[1:]
        En = Ev[-rg:].T  # (n, rg): the combinations whose matrix keeps the column space P
        if sv.shape[0] >= n and float(sv[n - rg]) > 1e-6 * float(sv[0]):
            continue  # not a clean rg-dimensional null space
        if Q is not None:
            if float(torch.linalg.svdvals(En - Q @ (Q.T @ En)).min()) < 0.1:
                continue  # a block found before
        found.append(En)
    return found


def _separate(T: torch.Tensor, ranks, N: int, perm, V, G, found, rg: int):
    """(U, C) from the blocks' coefficient bases ``found``, or None where they do not separate."""
    sizes, d = tuple(T.shape), T.dim()
    # E_n^T annihilates the group factors of every other block: E^T G separates the blocks' rows,
    # and G = E^-T (E^T G)
    Ecat = torch.cat(found, dim=1)
    H = torch.tensordot(Ecat.T, G, dims=([1], [0]))  # (n, ...)
    try:
        A = torch.linalg.inv(Ecat.T)  # (n, n): the group's factor columns, per block
    except RuntimeError:
        return None
    inv = [perm.index(k) for k in range(d)]
    U = [[None] * N for _ in range(d)]
    cores = []
    for b in range(N):
        Xb = torch.tensordot(V @ A[:, b * rg:(b + 1) * rg], H[b * rg:(b + 1) * rg], dims=([1], [0]))
        Xb = Xb.reshape([sizes[k] for k in perm]).permute(inv)
        Cb = Xb
        for k in range(d):
            U[k][b] = _leading_basis(Xb, k, ranks[k])
            Cb = torch.movedim(torch.tensordot(Cb, U[k][b], dims=([k], [0])), -1, k)
        cores.append(Cb)
    Uout = [torch.stack(U[k]).contiguous() for k in range(d)]
    return orthonormalize(Uout, torch.stack(cores).contiguous())


#: Tucker searches per block (random starts; a block's basin can be small).
TUCKER_TRIES = 12
#: Levenberg-Marquardt steps of one Tucker search (:func:`_tucker_space`).
TUCKER_ITERS = 300


def _contract(Y: torch.Tensor, P) -> torch.Tensor:
    """Y (t, M_1, .., M_m) with each mode i + 1 contracted with P[i] (M_i x r_i)."""
    for i, p in enumerate(P):
        Y = torch.movedim(torch.tensordot(Y, p, dims=([i + 1], [0])), -1, i + 1)
    return Y


def _tucker_space(Y: torch.Tensor, ranks_o, gen, iters: int, P=None):
    """Tucker subspaces ``P_1 x .. x P_m`` orthogonal to the tensors Y_i (an orthonormal basis of part
    of the complement of the rows' span), searched from random P by Levenberg-Marquardt steps on the
    residuals ``F_i = Y_i x_1 P_1^T .. x_m P_m^T``: a Tucker subspace inside the span has F = 0.
    Each P_k moves in its orthogonal complement (``P_k + P_k^perp X_k``, then QR): a Gauss-Newton step
    on the Grassmannians, quadratic near an exact solution. Returns ``(P, |F|)``."""
    sizes_o, m = tuple(Y.shape[1:]), len(ranks_o)
    if P is None:
        P = [torch.linalg.qr(torch.randn(n_, r, generator=gen, dtype=Y.dtype))[0] for n_, r in zip(sizes_o, ranks_o)]
    lam = 1e-2
    F = _contract(Y, P)
    f = f_ref = float(F.norm())
    for it in range(iters):
        if f < 1e-13:
            break
        if it % 25 == 24:  # a local minimum: less than 2% over 25 steps (a search on its way falls faster)
            if f > 0.98 * f_ref:
                break
            f_ref = f
        perp, cols = [], []
        for k in range(m):
            Q = torch.linalg.svd(P[k], full_matrices=True)[0][:, ranks_o[k]:]
            perp.append(Q)
            Zm = _contract(Y, [Q if l == k else p for l, p in enumerate(P)]).movedim(k + 1, -1)
            eye = torch.eye(ranks_o[k], dtype=Y.dtype)
            cols.append(torch.einsum("...a,bc->...bac", Zm, eye).movedim(-3, k + 1).reshape(F.numel(), -1))
        J = torch.cat(cols, dim=1)
        JtJ, grad = J.T @ J, J.T @ F.reshape(-1)
        diag = torch.diagonal(JtJ).clamp_min(1e-12)
        for _ in range(10):
            try:
                dx = -torch.linalg.solve(JtJ + lam * torch.diag(diag), grad)
            except RuntimeError:
                lam *= 4
                continue
            cand, off = [], 0
            for k in range(m):
                a, r = perp[k].shape[1], ranks_o[k]
                cand.append(torch.linalg.qr(P[k] + perp[k] @ dx[off:off + a * r].reshape(a, r))[0])
                off += a * r
            Fc = _contract(Y, cand)
            fc = float(Fc.norm())
            if fc < f:
                P, F, f, lam = cand, Fc, fc, max(lam / 3, 1e-12)
                break
            lam *= 4
        else:
            break  # no step lowers the residual: a local minimum
    return P, f


def _last_block_guess(Gf: torch.Tensor, found, ranks_o, sizes_o) -> list:
    """Starting subspaces for the last block's search: the rows with the other blocks' Tucker
    subspaces projected out span (a projection of) the last one's."""
    Tb = torch.linalg.qr(torch.cat([F.T @ Gf for F in found], dim=0).T)[0]  # (M_O, (N - 1) r_g)
    Z = (Gf - (Gf @ Tb) @ Tb.T).reshape((Gf.shape[0],) + tuple(sizes_o))
    return [_left_singular(Z, k + 1)[0][:, :r].contiguous() for k, r in enumerate(ranks_o)]


def _tucker_blocks(G: torch.Tensor, ranks_o, rg: int, N: int, gen, tries: int, iters: int) -> list:
    """The blocks' coefficient bases (n x rg each) found by Tucker searches (:func:`_tucker_space`) from
    random starts, at most ``tries * N`` of them (the found blocks are not deflated: a search that
    finds one again counts as a miss; the last block's first search starts from
    :func:`_last_block_guess`). The equations are ``t`` random tensors orthogonal to the rows' span,
    about twice as many residuals as unknowns (all of the complement where it is smaller)."""
    n = G.shape[0]
    Gf = G.reshape(n, -1)
    mo = Gf.shape[1]
    ro = math.prod(ranks_o)
    family = sum(r * (m - r) for m, r in zip(G.shape[1:], ranks_o))
    t = min(mo - n, max(2, math.ceil(2 * family / ro)))  # equations: twice the unknowns (all there are)
    Wb = torch.linalg.qr(Gf.T)[0]  # (M_O, n): the rows' span
    Y = torch.randn(mo, t, generator=gen, dtype=G.dtype)
    Y = torch.linalg.qr(Y - Wb @ (Wb.T @ Y))[0].T.reshape((t,) + tuple(G.shape[1:]))
    found, guessed = [], False
    for _ in range(tries * N):
        if len(found) == N:
            break
        P0 = None
        if len(found) == N - 1 and not guessed:  # once: a start from the other blocks' complement
            P0, guessed = _last_block_guess(Gf, found, ranks_o, G.shape[1:]), True
        P, f = _tucker_space(Y, ranks_o, gen, iters, P0)
        if f > 1e-10:
            continue
        # the block's combinations: the kernel of the map to the part outside the found subspace
        L = (G - _contract(G, [p @ p.T for p in P])).reshape(n, -1)  # outside P_1 x .. x P_m
        w, E = torch.linalg.eigh(L @ L.T)
        if float(w[rg - 1]) > 1e-12 * float(w[-1]) or (rg < n and float(w[rg]) < 1e-8 * float(w[-1])):
            continue  # not a clean rg-dimensional kernel
        En = E[:, :rg]
        if any(float(torch.linalg.svdvals(F.T @ En).min()) > 1 - 1e-6 for F in found):
            continue  # a block found before (the blocks' spaces need not be far apart)
        found.append(En)
    return found
