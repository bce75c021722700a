"""Tests of btcore.ring: TRSpec counts and rank rules, TRMatrix, tr_matmul against the dense product."""

import math

import numpy as np
import pytest
import torch

from btcore.formats import (TRSpec, normalize_tr_ranks, tr_exact_ranks, tr_max_uniform_rank, tr_params, tr_rank_caps,
                            tr_universal_ranks)
from btcore.ring import TRMatrix, grow_bonds, interleaved, tr_matmul, tr_svd

F64 = torch.float64

CONFIGS = [
    ((3, 4), (2, 5), 2),
    ((3, 4), (2, 5), (1, 3)),
    ((2, 3, 4), (3, 2, 2), 2),
    ((2, 3, 4), (3, 2, 2), (2, 3, 1)),
    ((2, 3, 2, 3), (3, 2, 2, 2), (2, 1, 3, 2)),
    ((2, 2, 3, 2, 2), (2, 3, 1, 2, 2), 2),
    ((2, 2, 2, 2, 2), (1, 2, 2, 3, 2), (3, 2, 1, 2, 2)),
]


def _dense_by_trace(M: TRMatrix) -> torch.Tensor:
    """W entry by entry from the definition: trace(prod_k G_k[:, i_k, j_k, :]), rows and columns row-major."""
    s = M.spec
    W = torch.empty(s.shape, dtype=M.dtype)
    for row, i in enumerate(np.ndindex(*s.in_modes)):
        for col, j in enumerate(np.ndindex(*s.out_modes)):
            P = torch.eye(M.cores[0].shape[0], dtype=M.dtype)
            for k, c in enumerate(M.cores):
                P = P @ c[:, i[k], j[k], :]
            W[row, col] = torch.trace(P)
    return W


@pytest.mark.parametrize("in_modes, out_modes, ranks", CONFIGS)
def test_params_count_the_core_entries(in_modes, out_modes, ranks):
    M = TRMatrix.random(in_modes, out_modes, ranks, seed=0, dtype=F64)
    assert M.spec.params == sum(c.numel() for c in M.cores) == tr_params(in_modes, out_modes, ranks)
    rk = normalize_tr_ranks(ranks, len(in_modes))
    expected = sum(rk[k - 1] * i * j * rk[k] for k, (i, j) in enumerate(zip(in_modes, out_modes)))
    assert M.spec.params == expected
    assert M.spec.compression == pytest.approx(math.prod(in_modes) * math.prod(out_modes) / expected)


@pytest.mark.parametrize("in_modes, out_modes, ranks", CONFIGS[:4])
def test_to_dense_is_the_trace_of_the_core_products(in_modes, out_modes, ranks):
    M = TRMatrix.random(in_modes, out_modes, ranks, seed=1, dtype=F64)
    torch.testing.assert_close(M.to_dense(), _dense_by_trace(M), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("in_modes, out_modes, ranks", CONFIGS + [((3,), (4,), 1)])
@pytest.mark.parametrize("batch", [1, 7])
def test_product_equals_dense_product(in_modes, out_modes, ranks, batch):
    M = TRMatrix.random(in_modes, out_modes, ranks, seed=2, dtype=F64)
    x = torch.randn(batch, M.shape[0], dtype=F64, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(tr_matmul(x, M), x @ M.to_dense(), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(x @ M, x @ M.to_dense(), rtol=1e-12, atol=1e-12)  # __rmatmul__


def test_product_keeps_leading_axes():
    M = TRMatrix.random((2, 3), (3, 2), 2, seed=0, dtype=F64)
    x = torch.randn(4, 5, 6, dtype=F64)
    torch.testing.assert_close(tr_matmul(x, M), x @ M.to_dense(), rtol=1e-12, atol=1e-12)


def test_empty_batch_gives_empty_result_and_zero_gradients():
    M = TRMatrix.random((2, 3, 2), (2, 2, 3), 2, seed=0, dtype=F64)
    cores = [c.clone().requires_grad_(True) for c in M.cores]
    x = torch.zeros(0, 12, dtype=F64, requires_grad=True)
    y = tr_matmul(x, TRMatrix(cores))
    assert y.shape == (0, 12)
    y.sum().backward()
    assert all(c.grad is not None and c.grad.shape == c.shape and not c.grad.any() for c in cores)
    assert x.grad.shape == (0, 12)


@pytest.mark.parametrize("in_modes, out_modes, ranks", [((2, 3), (2, 2), 2), ((2, 2, 3), (2, 1, 2), (2, 1, 2)),
                                                        ((3,), (2,), 1)])
def test_gradcheck(in_modes, out_modes, ranks):
    M = TRMatrix.random(in_modes, out_modes, ranks, seed=5, dtype=F64)
    cores = [c.clone().requires_grad_(True) for c in M.cores]
    x = torch.randn(3, M.shape[0], dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, *cs: tr_matmul(x, TRMatrix(list(cs))), (x, *cores))


def test_gradients_equal_those_of_the_dense_product():
    M = TRMatrix.random((2, 3, 4), (3, 2, 2), (2, 3, 2), seed=6, dtype=F64)
    x = torch.randn(5, 24, dtype=F64)
    a = [c.clone().requires_grad_(True) for c in M.cores]
    b = [c.clone().requires_grad_(True) for c in M.cores]
    g = torch.randn(5, 12, dtype=F64)
    (tr_matmul(x, TRMatrix(a)) * g).sum().backward()
    ((x @ TRMatrix(b).to_dense()) * g).sum().backward()
    for ca, cb in zip(a, b):
        torch.testing.assert_close(ca.grad, cb.grad, rtol=1e-11, atol=1e-11)


def test_macs_and_memory_follow_the_plan():
    s = TRSpec((8, 20, 20, 18), (16, 4, 4, 4), (2, 3, 4, 3))
    for batch in (1, 16, 256):
        plan = s.plan(batch)
        assert s.macs(batch) == plan.macs / batch
        # the first step of any order touches x: at least B * I multiply-adds, and never more than the
        # cost of forming W and multiplying by it
        assert batch * s.in_size <= plan.macs
        mem = s.memory(torch.float32, batch)
        assert mem["params"] == 4 * s.params and mem["largest_intermediate"] == 4 * plan.largest_intermediate
        assert mem["largest_intermediate"] >= 4 * batch * s.out_size  # the output is one of them
    assert s.memory(torch.float64, 16)["params"] == 8 * s.params
    assert s.plan(16) is s.plan(16)  # cached: deterministic and computed once


def test_macs_match_a_hand_count_for_two_cores():
    # x (B, I1, I2) with G1 (r1, I1, J1, r2), G2 (r2, I2, J2, r1): the optimal order contracts x with a
    # core first (x.G1 costs B I1 I2 J1 r1 r2), then the result with the other (B I2 J1 r1 r2 J2).
    s = TRSpec((3, 4), (2, 5), (2, 3))
    B = 10
    first = [B * 3 * 4 * 2 * 2 * 3, B * 3 * 4 * 5 * 2 * 3]
    second = [B * 4 * 2 * 2 * 3 * 5, B * 3 * 5 * 2 * 3 * 2]
    combine = 2 * 3 * 4 * 5 * 2 * 3  # forming W first
    candidates = [first[0] + second[0], first[1] + second[1], combine + B * 12 * 10]
    assert s.plan(B).macs == min(candidates)


def test_spec_repr_eq_hash():
    a = TRSpec((2, 3), (3, 2), 2)
    assert a == TRSpec((2, 3), (3, 2), (2, 2)) == TRSpec((2, 3), (3, 2), (2, 2, 2))
    assert hash(a) == hash(TRSpec((2, 3), (3, 2), [2, 2]))
    assert a != TRSpec((2, 3), (3, 2), (1, 2))
    assert repr(a) == "TRSpec(in_modes=(2, 3), out_modes=(3, 2), ranks=(2, 2))"
    assert a.kind == "TR" and a.d == 2 and a.shape == (6, 6)
    assert a.core_shapes() == [(2, 2, 3, 2), (2, 3, 2, 2)]


@pytest.mark.parametrize("args, match", [
    (((2, 3), (3, 2), 0), "ranks must be at least 1"),
    (((2, 3), (3, 2), (2, 2, 2, 2)), "ranks has 4 entries; a tensor ring of order d = 2 needs d = 2"),
    (((2, 3), (3, 2), (1, 2, 3)), "the first and last are the same closing bond"),
    (((2, 3), (3, 2), "2"), "ranks must be an int or a sequence"),
    (((2, 3), (3, 2, 1), 2), "in_modes has 2 modes but out_modes has 3"),
    (((2, 0), (3, 2), 2), r"in_modes\[1\] must be at least 1"),
    (((2, 3), (3, 2), (1, 40)), r"ranks\[1\] = 40 is above the largest useful TR rank 6 for the bond closing"),
    (((2, 3), (3, 2), 7), r"ranks \(7, 7\) are at least \(1, 6\) at every bond"),
    (((3,), (4,), 2), r"ranks\[0\] = 2 is above the largest useful TR rank 1"),
])
def test_spec_validation_messages(args, match):
    with pytest.raises(ValueError, match=match):
        TRSpec(*args)


def test_spec_refuses_a_format_above_the_byte_limit():
    with pytest.raises(ValueError, match=r"above the limit of 2\.0 GiB; lower the ranks"):
        TRSpec((64, 64, 64), (64, 64, 64), 300)
    assert TRSpec((64, 64, 64), (64, 64, 64), 300, max_bytes=None).params == 3 * 300 * 4096 * 300


def test_bond_cap_rule_is_tight_at_a_reducible_bond():
    # merged modes of size 4 and 4: with the other bond at 1, bond 1 joins a 4 x 4 product (cap 4);
    # with the other bond at 4, bond 0 could go up to 4 * min(4, 4) = 16 before the rule bites
    assert tr_rank_caps((2, 2), (2, 2), (1, 4)) == (16, 4)
    TRSpec((2, 2), (2, 2), (1, 4))
    with pytest.raises(ValueError, match=r"ranks\[1\] = 5"):
        TRSpec((2, 2), (2, 2), (1, 5))


@pytest.mark.parametrize("in_modes, out_modes", [((2, 3, 4), (3, 2, 2)), ((4, 4), (4, 4)), ((2, 2, 3), (2, 3, 2)),
                                                 ((3, 2, 2, 2), (2, 2, 1, 3))])
def test_universal_ranks_represent_every_matrix(in_modes, out_modes):
    W = torch.randn(math.prod(in_modes), math.prod(out_modes), dtype=F64, generator=torch.Generator().manual_seed(0))
    universal = tr_universal_ranks(in_modes, out_modes)
    assert tr_exact_ranks(in_modes, out_modes) in universal
    for rk in universal:
        M = TRMatrix.from_dense(W, in_modes, out_modes, rk)
        assert float(torch.linalg.norm(M.to_dense() - W) / torch.linalg.norm(W)) < 1e-10, rk


def test_max_uniform_rank_is_the_last_accepted_one():
    for im, om in [((2, 3, 4), (3, 2, 2)), ((4, 4), (4, 4)), ((2, 2, 2), (2, 2, 2))]:
        r = tr_max_uniform_rank(im, om)
        TRSpec(im, om, r)
        with pytest.raises(ValueError):
            TRSpec(im, om, r + 1)
    assert tr_max_uniform_rank((4, 4), (4, 4)) == 4  # (4, 4): r_0 r_1 = 16 is the rank of a 16 x 16 matrix


def test_full_rank_equivalence_to_dense():
    im, om = (3, 4, 2), (2, 3, 4)
    W = torch.randn(24, 24, dtype=F64, generator=torch.Generator().manual_seed(1))
    M = TRMatrix.from_dense(W, im, om, tr_exact_ranks(im, om))
    assert float(torch.linalg.norm(M.to_dense() - W) / torch.linalg.norm(W)) < 1e-10
    x = torch.randn(5, 24, dtype=F64)
    torch.testing.assert_close(tr_matmul(x, M), x @ W, rtol=1e-9, atol=1e-9)


def test_from_dense_keeps_dtype_and_checks_input():
    W = torch.randn(6, 6, dtype=torch.float32)
    assert TRMatrix.from_dense(W, (2, 3), (3, 2), 2).dtype == torch.float32
    assert TRMatrix.from_dense(W.numpy(), (2, 3), (3, 2), 2).dtype == F64
    with pytest.raises(ValueError, match="W has shape"):
        TRMatrix.from_dense(W, (2, 3), (2, 2), 2)
    W[0, 0] = float("nan")
    with pytest.raises(ValueError, match="1 entries are NaN"):
        TRMatrix.from_dense(W, (2, 3), (3, 2), 2)


def test_from_dense_grows_smaller_bonds_to_the_asked_ranks_exactly():
    # r_3 r_1 = 9 > 8, the rank of the first merged mode's unfolding: TR-SVD returns a smaller bond,
    # which gets zero slices, so the matrix has the asked ranks and the same W as TR-SVD's
    W = torch.randn(8, 9, dtype=F64, generator=torch.Generator().manual_seed(3))
    M = TRMatrix.from_dense(W, (2, 2, 2), (1, 3, 3), (3, 3, 3))
    raw = tr_svd(interleaved(W.numpy(), (2, 2, 2), (1, 3, 3)), (3, 3, 3))
    assert M.spec.ranks == (3, 3, 3) and any(c.shape[2] < 3 for c in raw)
    from tensorly.tr_tensor import tr_to_tensor

    np.testing.assert_allclose(interleaved(M.to_dense().numpy(), (2, 2, 2), (1, 3, 3)), tr_to_tensor(raw),
                               rtol=1e-12, atol=1e-12)
    grown = grow_bonds(raw, (3, 3, 3), np.random.default_rng(0))
    np.testing.assert_allclose(tr_to_tensor(grown), tr_to_tensor(raw), rtol=1e-12, atol=1e-12)


def test_container_validation():
    a = torch.randn(2, 2, 3, 3, dtype=F64)
    b = torch.randn(3, 3, 2, 2, dtype=F64)
    TRMatrix([a, b])
    with pytest.raises(ValueError, match="closing the ring"):
        TRMatrix([a, torch.randn(3, 3, 2, 1, dtype=F64)])
    with pytest.raises(ValueError, match=r"cores\[0\] must have shape"):
        TRMatrix([a[0], b])
    with pytest.raises(ValueError, match="one dtype"):
        TRMatrix([a, b.float()])
    with pytest.raises(TypeError, match="real floating-point"):
        TRMatrix([a, b.long()])
    with pytest.raises(ValueError, match="need at least one core"):
        TRMatrix([])
    M = TRMatrix([a, b])
    with pytest.raises(ValueError, match=r"x: last dimension is \(5,\), expected I = 6"):
        tr_matmul(torch.zeros(2, 5, dtype=F64), M)
    with pytest.raises(ValueError, match="cast one to the other"):
        tr_matmul(torch.zeros(2, 6), M)


def test_random_is_seeded_and_scaled():
    a = TRMatrix.random((4, 5, 4), (4, 4, 5), 3, seed=7, dtype=F64)
    b = TRMatrix.random((4, 5, 4), (4, 4, 5), 3, seed=7, dtype=F64)
    assert all(torch.equal(x, y) for x, y in zip(a.cores, b.cores))
    stds = [TRMatrix.random((4, 5, 4), (4, 4, 5), 3, std=0.5, seed=s, dtype=F64).to_dense().std() for s in range(8)]
    assert float(torch.stack(stds).pow(2).mean().sqrt()) == pytest.approx(0.5, rel=0.25)  # in expectation
    assert TRMatrix.random((2, 2), (2, 2), 1, dtype=torch.float32).dtype == torch.float32


def test_peer_tensorly_tr_to_tensor_gives_the_same_tensor():
    pytest.importorskip("tensorly")
    from tensorly.tr_tensor import tr_to_tensor

    for im, om, rk in CONFIGS[1:6]:
        M = TRMatrix.random(im, om, rk, seed=3, dtype=F64)
        # tensorly's TR cores are (r_{k-1}, n_k, r_k) over the merged modes (i_k, j_k) -> i_k J_k + j_k
        factors = [c.reshape(c.shape[0], -1, c.shape[3]).numpy() for c in M.cores]
        ref = np.asarray(tr_to_tensor(factors))  # numpy input: no backend switch
        np.testing.assert_allclose(interleaved(M.to_dense().numpy(), im, om), ref, rtol=1e-12, atol=1e-12)


# -- through the planner ----------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["contract", "path", "dense", "auto"])
@pytest.mark.parametrize("in_modes, out_modes, ranks", [CONFIGS[3], CONFIGS[4], ((3,), (4,), 1)])
def test_every_planner_method_gives_the_dense_product_and_its_gradients(method, in_modes, out_modes, ranks):
    import btcore
    from btcore.contract import plan_matmul
    from btcore.contract.schemes import SCHEMES

    M = TRMatrix.random(in_modes, out_modes, ranks, seed=8, dtype=F64)
    plan = plan_matmul(M.spec, 6, method, dtype=F64, direction="train")
    assert plan.scheme in SCHEMES and plan.spec == M.spec
    if method in ("contract", "path"):
        assert plan.method == "contract"  # W never formed
    x = torch.randn(6, M.shape[0], dtype=F64, generator=torch.Generator().manual_seed(9), requires_grad=True)
    cores = [c.clone().requires_grad_(True) for c in M.cores]
    y = btcore.matmul(x, TRMatrix(cores), method=method)
    torch.testing.assert_close(y, x.detach() @ M.to_dense(), rtol=1e-12, atol=1e-12)
    g = torch.randn_like(y)
    (y * g).sum().backward()
    ref = [c.clone().requires_grad_(True) for c in M.cores]
    xr = x.detach().clone().requires_grad_(True)
    ((xr @ TRMatrix(ref).to_dense()) * g).sum().backward()
    torch.testing.assert_close(x.grad, xr.grad, rtol=1e-11, atol=1e-11)
    for a, b in zip(cores, ref):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-11, atol=1e-11)


def test_gradcheck_through_matmul_with_the_dense_scheme():
    import btcore

    M = TRMatrix.random((2, 3), (2, 2), 2, seed=5, dtype=F64)
    cores = [c.clone().requires_grad_(True) for c in M.cores]
    x = torch.randn(3, 6, dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, *cs: btcore.matmul(x, TRMatrix(list(cs)), method="dense"), (x, *cores))


def test_the_spec_counts_with_the_shared_plan_and_network():
    from btcore.plan import optimal_plan

    s = TRSpec((2, 3, 4), (3, 2, 2), (2, 3, 1))
    assert s.plan(5) is optimal_plan(s, 5)
    net = s.network()
    assert net.names == ("x", "G1", "G2", "G3")
    assert net.terms[1:] == ("rAIp", "pBJq", "qCKr")  # the closing bond r joins core 3 and core 1
    assert [tuple(sh) for sh in net.shapes[1:]] == s.core_shapes()
    assert TRSpec((3,), (4,), 1).network().terms == ("bA", "AI")  # d = 1: the traced core
