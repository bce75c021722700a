"""Tests of btcore.decompose.nls: structured gradient / Gramian products, monotone errors, recovery, statuses."""

import math

import pytest
import torch

from btcore import BTMatrix
from btcore.decompose.btmodel import bt_dense, bt_gradient as _gradient
from btcore.decompose.nls import _GN, nls_fit, nls_refine, random_start
from btcore.decompose import interleave
from decompose_cases import random_bt_cases


def _tiny(sizes=(3, 4, 2), ranks=(2, 3, 2), N=2):
    U, C = random_start(sizes, ranks, N, seed=1)
    g = torch.Generator().manual_seed(2)
    U = [u + 0.1 * torch.randn(u.shape, generator=g, dtype=u.dtype) for u in U]  # not orthonormal
    T = torch.randn(sizes, generator=g, dtype=torch.float64)
    return T, U, C


@pytest.mark.parametrize("sizes, ranks, N", [((3, 4, 2), (2, 3, 2), 2), ((2, 3, 4, 3), (2, 1, 3, 2), 3)])
def test_gradient_and_gramian_match_autograd(sizes, ranks, N):
    # d = 4 with unequal ranks: the chains skipping a middle mode share a prefix and differ after it
    T, U, C = _tiny(sizes, ranks, N)
    op = _GN(U, C)
    x0 = op.join([u.unsqueeze(0) for u in U], C.unsqueeze(0))[0]

    def model(x):
        dU, dC = op.split(x.unsqueeze(0))
        return bt_dense([u[0] for u in dU], dC[0]).reshape(-1)

    J = torch.autograd.functional.jacobian(model, x0)
    r = model(x0) - T.reshape(-1)
    gU, gC = _gradient(r.reshape(T.shape), U, C)
    g = op.join([x.unsqueeze(0) for x in gU], gC.unsqueeze(0))[0]
    assert torch.allclose(g, J.T @ r, atol=1e-10, rtol=0)
    v = torch.randn(3, x0.numel(), generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    assert torch.allclose(op.apply(v), v @ (J.T @ J), atol=1e-10, rtol=0)
    assert torch.allclose(op.apply(v[1:2]), op.apply(v)[1:2], atol=1e-13, rtol=0)  # one row as in CG
    assert torch.allclose(op.dense(chunk=7), J.T @ J, atol=1e-10, rtol=0)


def _target(im, om, R, N, seed, noise=0.0):
    W = BTMatrix.random(im, om, R, N, seed=seed, dtype=torch.float64).to_dense()
    if noise:
        E = torch.randn(W.shape, generator=torch.Generator().manual_seed(seed + 99), dtype=torch.float64)
        W = W + noise * E * (W.norm() / E.norm())
    return interleave(W, im, om)


@pytest.mark.parametrize("dense_max", [0, 10**6])  # CG path and direct path
def test_error_history_never_increases(dense_max):
    T = _target((2, 3, 2), (3, 2, 2), 2, 3, seed=4, noise=0.05)
    U, C = random_start(T.shape, (2, 2, 2), 3, seed=5)
    res = nls_refine(T, U, C, max_iter=60, dense_max=dense_max)
    h = res.history
    assert len(h) == res.iterations + 1
    assert all(b <= a for a, b in zip(h, h[1:]))
    assert h[-1] < h[0]
    # the last entry is the error of the returned model
    err = float(torch.linalg.norm(bt_dense(res.factors, res.cores) - T) / torch.linalg.norm(T))
    assert math.isclose(err, h[-1], rel_tol=1e-9, abs_tol=1e-15)


def _cases(n=30, seed=0):
    """Random small exact-BT shapes with at least two modes of size >= N R (where the algebraic
    start applies; see the module notes for the other regime)."""
    return random_bt_cases(n, seed, regime="algebraic")


def test_recovery_suite():
    ok = []
    for im, om, R, N, s in _cases():
        T = _target(im, om, R, N, seed=s)
        res, _ = nls_fit(T, (R,) * len(im), N, seed=s)
        ok.append(res.rel_error < 1e-6)
    assert sum(ok) >= 29, f"recovered {sum(ok)} of {len(ok)}"


def test_swamp_case_recovered():
    # ALS stays at ~0.2 on 4 of these 5 seeds
    for s in range(5):
        T = _target((4, 4, 4), (4, 4, 4), 4, 3, seed=s)
        res, _ = nls_fit(T, (4, 4, 4), 3, seed=s)
        assert res.rel_error < 1e-10
        assert res.status == "converged"


def test_max_iter_and_stop_are_not_converged():
    T = _target((2, 3, 2), (3, 2, 2), 2, 3, seed=6)
    U, C = random_start(T.shape, (2, 2, 2), 3, seed=7)
    res = nls_refine(T, U, C, max_iter=3)
    assert res.status == "max_iter" and res.iterations == 3
    calls = []
    res = nls_refine(T, U, C, max_iter=100, progress=calls.append, should_stop=lambda: len(calls) >= 2)
    assert res.status == "stopped"
    assert len(calls) == 2 and res.iterations == 2
    res = nls_refine(T, U, C, should_stop=lambda: True)
    assert res.status == "stopped" and res.iterations == 0 and res.history == [res.history[0]]


def test_noisy_target_reaches_noise_floor_first_order():
    T = _target((4, 4, 4), (4, 4, 4), 3, 2, seed=8, noise=0.01)
    res, kind = nls_fit(T, (3, 3, 3), 2, seed=0)
    assert res.status == "converged"
    assert res.grad_norm < 1e-9
    assert 0.008 < res.rel_error < 0.0101  # at (just below) the noise level


# -- the subspace start (btcore.decompose.algebraic.subspace_start) ------------------------------

@pytest.mark.parametrize("im, om, R, N", [
    ((2, 3, 3, 2), (2, 4, 2, 2), 4, 2),        # one mode (12) >= N R = 8: no algebraic start
    ((3, 4, 4, 2, 3), (2, 2, 4, 4, 3), 2, 3),  # sizes 6, 8, 16, 8, 9: a merged pair is used
    ((2, 4, 3), (3, 3, 3), 3, 4),              # sizes 6, 12, 9: one block's basin takes most starts
])
def test_subspace_start_is_exact_on_exact_targets(im, om, R, N):
    from btcore.decompose.algebraic import _subspace_plan, subspace_applies, subspace_start
    T = _target(im, om, R, N, seed=3)
    ranks = (R,) * len(im)
    assert subspace_applies(T.shape, ranks, N)
    U, C = subspace_start(T, ranks, N, seed=0)
    assert [tuple(u.shape) for u in U] == [(N, m, R) for m in T.shape]
    for u in U:  # orthonormal factors per block
        assert torch.allclose(u.transpose(1, 2) @ u, torch.eye(R, dtype=u.dtype).expand(N, R, R), atol=1e-10)
    err = float(torch.linalg.norm(bt_dense(U, C) - T) / torch.linalg.norm(T))
    assert err < 1e-8, (err, _subspace_plan(T.shape, ranks, N))


def test_low_rank_member_converges_in_a_few_steps_and_deflation_finds_every_block():
    from btcore.decompose.algebraic import _leading_basis, _low_rank_member
    N, R = 4, 3
    T = _target((2, 4, 3), (3, 3, 3), R, N, seed=7)  # sizes 6, 12, 9: mode 1 has N R = 12
    X = T.movedim(1, 0).reshape(12, 6, 9)
    G = torch.tensordot(_leading_basis(X, 0, N * R), X, dims=([0], [0]))  # (12, 6, 9)
    gen = torch.Generator().manual_seed(0)

    def start():
        c = torch.randn(N * R, generator=gen, dtype=G.dtype)
        return c / c.norm()

    def column_space(c):
        return torch.linalg.svd(torch.tensordot(c, G, dims=1), full_matrices=False)[0][:, :R]

    def same(P, Q):
        return float(torch.linalg.svdvals(P.T @ Q).min()) > 1 - 1e-8

    c, tail = _low_rank_member(G, R, start(), 15)  # Gauss-Newton: quadratic, a few steps
    assert tail < 1e-12
    assert float(torch.linalg.matrix_rank(torch.tensordot(c, G, dims=1))) == R
    # plain restarts fall into the same block again and again; with the found blocks deflated, each
    # search finds a new one
    plain = [column_space(_low_rank_member(G, R, start(), 40)[0]) for _ in range(8)]
    distinct = []
    for P in plain:
        if not any(same(P, Q) for Q in distinct):
            distinct.append(P)
    assert len(distinct) < N
    found, spaces = [], []
    for _ in range(N):
        Q = torch.linalg.qr(torch.cat(found, dim=1))[0] if found else None
        c0 = start()
        if Q is not None:
            c0 = c0 - Q @ (Q.T @ c0)
        c, tail = _low_rank_member(G, R, c0 / c0.norm(), 40, avoid=Q)
        assert tail < 1e-10
        P = column_space(c)
        assert not any(same(P, S) for S in spaces)
        spaces.append(P)
        L = (G - (P @ P.T) @ G).reshape(N * R, -1)
        found.append(torch.linalg.svd(L.T, full_matrices=True)[2][-R:].T)  # that block's combinations
    assert len(spaces) == N


@pytest.mark.parametrize("im, om, R, N, searches", [
    ((2, 3, 3, 2), (2, 4, 2, 2), 4, 2, 0),  # group of 12 > N r_g = 8: the unfolding's rank shows the noise
    ((2, 4, 3), (3, 3, 3), 3, 4, 3),        # group of 12 = N r_g: three member searches stall, then it stops
])
def test_subspace_start_gives_up_early_on_noisy_targets(monkeypatch, im, om, R, N, searches):
    import btcore.decompose.algebraic as algebraic
    T = _target(im, om, R, N, seed=3, noise=0.01)
    calls, search = [], algebraic._low_rank_member

    def counted(*args, **kwargs):
        calls.append(1)
        return search(*args, **kwargs)

    monkeypatch.setattr(algebraic, "_low_rank_member", counted)
    assert algebraic.subspace_start(T, (R,) * len(im), N, seed=0) is None
    assert len(calls) == searches  # rather than spending its time limit


def test_subspace_plan_skips_a_mode_where_any_column_space_looks_like_a_block():
    from btcore.decompose.algebraic import _leading_basis, _subspace_plan
    sizes, R, N = (9, 4, 4, 6), 2, 4  # group (0, 1): r_g = 4, n = 16
    gen = torch.Generator().manual_seed(0)
    U = [torch.linalg.qr(torch.randn(N, m, R, generator=gen, dtype=torch.float64))[0] for m in sizes]
    T = bt_dense(U, torch.randn((N,) + (R,) * 4, generator=gen, dtype=torch.float64))  # exact BT

    def kept_by_a_random_column_space(j, rest):
        X = T.permute([0, 1, j, rest]).reshape(36, sizes[j], sizes[rest])
        G = torch.tensordot(_leading_basis(X, 0, 16), X, dims=([0], [0]))
        P = torch.linalg.qr(torch.randn(sizes[j], R, generator=gen, dtype=torch.float64))[0]
        L = (G - P @ (P.T @ G)).reshape(16, -1)  # a combination keeps P when its row of L is zero
        s = torch.linalg.svdvals(L)
        return int((s < 1e-10 * s[0]).sum()) + max(0, 16 - L.shape[1])

    # mode 2 (4 x 6 slices): 16 - (4 - 2) * 6 = 4 = r_g, so every column space keeps 4 combinations
    assert kept_by_a_random_column_space(2, 3) == 4
    # mode 3 (6 x 4 slices): 16 - (6 - 2) * 4 = 0, only a block's own column space keeps any
    assert kept_by_a_random_column_space(3, 2) == 0
    assert _subspace_plan(sizes, (R,) * 4, N) == ((0, 1), 3, (2,))


def test_subspace_start_refuses_shapes_without_a_plan():
    from btcore.decompose.algebraic import subspace_applies, subspace_start
    T = _target((3, 3, 3), (4, 4, 3), 4, 4, seed=0)  # sizes 12, 12, 9 < N R = 16, order 3: no group
    assert not subspace_applies(T.shape, (4, 4, 4), 4)
    assert subspace_start(T, (4, 4, 4), 4) is None
    assert subspace_start(T, (4, 4, 4), 1) is None  # one block: nothing to separate


def test_fit_bt_auto_uses_the_subspace_start_where_only_one_mode_is_large():
    from btcore.decompose import fit_bt
    im, om, R, N = (2, 3, 3, 2), (2, 4, 2, 2), 4, 2
    W = BTMatrix.random(im, om, R, N, seed=11, dtype=torch.float64).to_dense()
    M, info = fit_bt(W, im, om, R, N, warn=False)
    assert "subspace" in info.start_kinds and "algebraic" not in info.start_kinds
    assert info.relative_error < 1e-8 and info.status == "converged"
    assert float(torch.linalg.norm(M.to_dense() - W) / torch.linalg.norm(W)) < 1e-8


def test_tucker_plan_separates_blocks_where_no_member_plan_exists():
    from btcore.decompose.algebraic import _subspace_plans, _tucker_plans, subspace_start
    im, om, R, N = (2, 2, 4, 2), (2, 3, 3, 4), 3, 5  # sizes 4, 6, 12, 8; N R = 15
    T = _target(im, om, R, N, seed=26)
    ranks = (R,) * 4
    # (0, 2) merged (48 >= 45 = N R^2) against modes 1 and 3: 24 unknowns, 27 equations
    assert _subspace_plans(T.shape, ranks, N) == _tucker_plans(T.shape, ranks, N) == [((0, 2), None, (1, 3))]
    U, C = subspace_start(T, ranks, N, seed=0)
    err = float(torch.linalg.norm(bt_dense(U, C) - T) / torch.linalg.norm(T))
    assert err < 1e-8


def test_subspace_start_tries_its_next_plan_when_the_best_ranked_one_fails():
    from btcore.decompose.algebraic import _subspace_from_plan, _subspace_plans, subspace_start
    im, om, R, N = (2, 3, 4, 2), (3, 4, 3, 4), 3, 5  # sizes 6, 12, 12, 8; N R = 15
    T = _target(im, om, R, N, seed=2)
    ranks = (R,) * 4
    plans = _subspace_plans(T.shape, ranks, N)
    assert len(plans) > 2
    assert _subspace_from_plan(T, ranks, N, plans[0], 0, 40, 4) == (None, True)  # exact, not separated
    U, C = subspace_start(T, ranks, N, seed=0)
    err = float(torch.linalg.norm(bt_dense(U, C) - T) / torch.linalg.norm(T))
    assert err < 1e-8
