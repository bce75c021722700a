"""Tests of TRLinear (btcore.layers)."""

import math

import pytest
import torch
from torch import nn

from btcore.layer_init import linear_init_std
from btcore.formats import tr_exact_ranks, tr_params
from btcore.layers import TRLinear
from btcore.ring import TRMatrix, tr_frobenius_norm

F64 = torch.float64


@pytest.mark.parametrize("in_modes, out_modes, ranks", [
    ((8, 20, 20, 18), (16, 4, 4, 4), (2, 3, 4, 3)),
    ((8, 8, 8, 6), (16, 4, 2, 2), 3),
    ((4, 4, 4), (4, 4, 4), (1, 2, 1)),
    ((4, 4), (4, 2), 1),
])
def test_init_matches_dense_linear(in_modes, out_modes, ranks):
    torch.manual_seed(0)
    layer = TRLinear(in_modes, out_modes, ranks)
    W = layer.weight_matrix().detach().double()
    target = linear_init_std(math.prod(in_modes))
    assert layer.init_std == pytest.approx(target)
    # the realized norm is rescaled to the target, not only its expectation
    assert float(W.detach().pow(2).mean().sqrt()) == pytest.approx(target, rel=1e-5)
    assert float(W.std()) == pytest.approx(target, rel=0.05)
    bound = 1 / math.sqrt(layer.in_features)
    assert layer.bias.abs().max() <= bound


def test_init_uses_the_generator_and_the_std():
    a = TRLinear((4, 4), (4, 4), 2, dtype=F64)
    b = TRLinear((4, 4), (4, 4), 2, dtype=F64)
    a.reset_parameters(std=0.3, generator=torch.Generator().manual_seed(1))
    b.reset_parameters(std=0.3, generator=torch.Generator().manual_seed(1))
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert float(a.weight_matrix().detach().pow(2).mean().sqrt()) == pytest.approx(0.3, rel=1e-9)
    with pytest.raises(ValueError, match="std must be a finite number"):
        a.reset_parameters(std=-1.0)


def test_frobenius_norm_from_transfer_matrices():
    for im, om, rk in [((2, 3, 4), (3, 2, 2), (2, 3, 1)), ((3,), (4,), 1), ((2, 2), (3, 2), (1, 3))]:
        M = TRMatrix.random(im, om, rk, seed=0, dtype=F64)
        assert float(tr_frobenius_norm(M.cores)) == pytest.approx(float(torch.linalg.norm(M.to_dense())), rel=1e-12)


def test_forward_equals_dense_layer_and_gradients_flow():
    layer = TRLinear((2, 3, 4), (3, 2, 2), (2, 3, 2), dtype=F64)
    x = torch.randn(5, 24, dtype=F64)
    torch.testing.assert_close(layer(x), x @ layer.weight_matrix() + layer.bias, rtol=1e-12, atol=1e-12)
    dense = TRLinear.from_matrix(layer.to_matrix(), bias=layer.bias, method="dense")
    torch.testing.assert_close(dense(x), layer(x), rtol=1e-12, atol=1e-12)
    layer(x).pow(2).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in layer.parameters())
    gradcheck_layer = TRLinear((2, 3), (2, 2), 2, dtype=F64)
    xs = torch.randn(3, 6, dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(gradcheck_layer, (xs,))


def test_counts():
    layer = TRLinear((8, 20, 20, 18), (16, 4, 4, 4), (2, 3, 4, 3))
    assert layer.num_params == tr_params((8, 20, 20, 18), (16, 4, 4, 4), (2, 3, 4, 3)) + 1024 == 3072 + 1024
    assert TRLinear((8, 20, 20, 18), (16, 4, 4, 4), (2, 3, 4, 3), bias=False).num_params == 3072
    assert layer.compression == pytest.approx(57600 * 1024 / 3072)
    assert "ranks=(2, 3, 4, 3)" in repr(layer)


def test_from_dense_full_rank_is_exact():
    W = torch.randn(24, 12, dtype=F64, generator=torch.Generator().manual_seed(0))
    layer = TRLinear.from_dense(W, (2, 3, 4), (3, 2, 2))
    assert layer.ranks == tr_exact_ranks((2, 3, 4), (3, 2, 2)) and layer.bias is None
    assert float(torch.linalg.norm(layer.weight_matrix().detach() - W) / torch.linalg.norm(W)) < 1e-10
    assert layer.fit_info.relative_error < 1e-10 and layer.fit_info.format == "TR"


def test_from_linear_copies_the_bias_and_transposes():
    lin = nn.Linear(24, 12).double()
    target = TRMatrix.random((2, 3, 4), (3, 2, 2), 2, seed=0, dtype=F64).to_dense()
    with torch.no_grad():
        lin.weight.copy_(target.T)
    layer = TRLinear.from_linear(lin, (2, 3, 4), (3, 2, 2), 2)
    x = torch.randn(4, 24, dtype=F64)
    torch.testing.assert_close(layer(x), lin(x), rtol=1e-7, atol=1e-7)
    torch.testing.assert_close(layer.bias, lin.bias)


@pytest.mark.parametrize("make, match", [
    (lambda: TRLinear((2, 3), (3, 2), 0), "ranks must be at least 1"),
    (lambda: TRLinear((2, 3), (3, 2), (1, 40)), r"ranks\[1\] = 40"),
    (lambda: TRLinear((2, 3), (3, 2), 2, method="fast"), "method must be one of"),
    (lambda: TRLinear((2, 3), (3, 2), 2)(torch.zeros(2, 5)), "expected in_features = 6"),
    (lambda: TRLinear.from_dense(torch.zeros(6, 5), (2, 3), (3, 2), 2), "weight has shape"),
    (lambda: TRLinear.from_dense(torch.zeros(6, 6), (2, 3), (3, 2), 2, bias=torch.zeros(5)), "bias must have shape"),
    (lambda: TRLinear.from_matrix(torch.zeros(6, 6)), "M must be a TRMatrix"),
])
def test_validation(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_from_dense_hints_a_transposed_weight():
    with pytest.raises(ValueError, match="looks transposed"):
        TRLinear.from_dense(torch.zeros(6, 4), (2, 2), (3, 2), 1)


def test_peer_tednet_tr_linear_counts_and_products():
    pytest.importorskip("tednet", reason="tednet (the BT-LSTM authors' toolkit) is not installed")
    from tednet.tnn.tensor_ring import TRLinear as TednetTRLinear

    # tednet rings the d input modes and then the d output modes as 2d separate cores (node k of shape
    # (r_k, n_k, r_{k+1})); in btcore's layout that is the ring over in_modes + (1,)*d -> (1,)*d + out_modes
    for in_shape, out_shape, ranks in [((8, 8, 8, 6), (16, 4, 2, 2), (2, 3, 2, 3, 2, 3, 2, 3)),
                                       ((4, 5), (3, 2), (2, 2, 3, 1))]:
        d = len(in_shape)
        peer = TednetTRLinear(list(in_shape), list(out_shape), list(ranks), bias=False).double()
        nodes = [getattr(peer, f"node{k}") for k in range(2 * d)]
        ours_ranks = tuple(ranks[1:]) + (ranks[0],)
        im, om = tuple(in_shape) + (1,) * d, (1,) * d + tuple(out_shape)
        assert sum(n.numel() for n in nodes) == tr_params(im, om, ours_ranks)
        cores = [n.detach().reshape(n.shape[0], n.shape[1], 1, n.shape[2]) if k < d
                 else n.detach().reshape(n.shape[0], 1, n.shape[1], n.shape[2]) for k, n in enumerate(nodes)]
        layer = TRLinear.from_matrix(TRMatrix(cores))
        x = torch.randn(3, math.prod(in_shape), dtype=F64)
        torch.testing.assert_close(layer(x), peer(x), rtol=1e-10, atol=1e-10)
