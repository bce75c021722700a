"""Tests for btcore.layers: BTLinear and TTLinear."""

import math

import pytest
import torch
from hypothesis import given, settings, strategies as st
from torch import nn
from torch.func import functional_call

import btcore
from btcore import BTLinear, BTMatrix, TTLinear, TTMatrix, bt_params, tt_params
from btcore.decompose import FitInfo
from btcore.layer_init import linear_init_std

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
F64 = torch.float64


def _bt(**kw):
    args = dict(in_modes=(2, 3, 4), out_modes=(3, 2, 2), rank=2, blocks=2)
    args.update(kw)
    return BTLinear(args.pop("in_modes"), args.pop("out_modes"), args.pop("rank"), args.pop("blocks"), **args)


def _tt(**kw):
    args = dict(in_modes=(2, 3, 4), out_modes=(3, 2, 2), ranks=2)
    args.update(kw)
    return TTLinear(args.pop("in_modes"), args.pop("out_modes"), args.pop("ranks"), **args)


MAKERS = {"bt": _bt, "tt": _tt}


# -- shapes, dtypes, devices ----------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["bt", "tt"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("device", DEVICES)
def test_forward_shapes_dtypes_devices(kind, dtype, device):
    layer = MAKERS[kind](dtype=dtype, device=device)
    assert layer.in_features == 24 and layer.out_features == 12
    for p in layer.parameters():
        assert p.dtype == dtype and p.device.type == device
    for lead in [(5,), (2, 3), ()]:
        x = torch.randn(*lead, 24, dtype=dtype, device=device)
        y = layer(x)
        assert y.shape == lead + (12,) and y.dtype == dtype and y.device.type == device
    x = torch.randn(7, 24, dtype=dtype, device=device)
    W = layer.to_matrix().to_dense()
    tol = 1e-12 if dtype == F64 else 1e-5
    torch.testing.assert_close(layer(x), x @ W + layer.bias, atol=tol, rtol=tol)


@pytest.mark.parametrize("kind", ["bt", "tt"])
def test_module_conversions_follow_parameters(kind):
    layer = MAKERS[kind]()
    layer.double()
    x = torch.randn(3, 24, dtype=F64)
    assert layer(x).dtype == F64
    assert layer.to_matrix().dtype == F64


@pytest.mark.parametrize("kind", ["bt", "tt"])
def test_no_bias(kind):
    layer = MAKERS[kind](bias=False, dtype=F64)
    assert layer.bias is None
    x = torch.randn(4, 24, dtype=F64)
    torch.testing.assert_close(layer(x), x @ layer.weight_matrix())


def test_to_matrix_shares_parameters():
    layer = _bt(dtype=F64)
    M = layer.to_matrix()
    assert isinstance(M, BTMatrix)
    assert M.core is layer.core and all(a is b for a, b in zip(M.factors, layer.factors))
    M.to_dense().sum().backward()
    assert layer.core.grad is not None and all(f.grad is not None for f in layer.factors)
    tt = _tt(dtype=F64)
    assert isinstance(tt.to_matrix(), TTMatrix)
    assert all(a is b for a, b in zip(tt.to_matrix().cores, tt.cores))


# -- gradients --------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["bt", "tt"])
def test_gradcheck(kind):
    torch.manual_seed(0)
    layer = MAKERS[kind](in_modes=(2, 3), out_modes=(2, 2), dtype=F64)
    names = [n for n, _ in layer.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_() for p in layer.parameters())
    x = torch.randn(3, 6, dtype=F64, requires_grad=True)

    def f(x, *ps):
        return functional_call(layer, dict(zip(names, ps)), (x,))

    assert torch.autograd.gradcheck(f, (x,) + params)


@pytest.mark.parametrize("kind", ["bt", "tt"])
def test_backward_reaches_every_parameter(kind):
    layer = MAKERS[kind]()
    layer(torch.randn(4, 24)).pow(2).sum().backward()
    for name, p in layer.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


# -- parameter counts, repr, state dict --------------------------------------------------------------

@pytest.mark.parametrize("in_modes,out_modes,rank,blocks", [
    ((2, 3, 4), (3, 2, 2), 2, 2),
    ((8, 20, 20, 18), (16, 4, 4, 4), 4, 2),
    ((4, 4), (4, 4), (3, 5), 3),
    ((6,), (5,), 7, 1),
])
def test_bt_param_count(in_modes, out_modes, rank, blocks):
    layer = BTLinear(in_modes, out_modes, rank, blocks)
    assert layer.num_params == bt_params(in_modes, out_modes, rank, blocks) + math.prod(out_modes)
    no_bias = BTLinear(in_modes, out_modes, rank, blocks, bias=False)
    assert no_bias.num_params == bt_params(in_modes, out_modes, rank, blocks)


@pytest.mark.parametrize("in_modes,out_modes,ranks", [
    ((2, 3, 4), (3, 2, 2), 2),
    ((8, 20, 20, 18), (16, 4, 4, 4), 4),
    ((4, 4, 2), (4, 4, 3), (5, 6)),
])
def test_tt_param_count(in_modes, out_modes, ranks):
    layer = TTLinear(in_modes, out_modes, ranks)
    assert layer.num_params == tt_params(in_modes, out_modes, ranks) + math.prod(out_modes)
    assert TTLinear(in_modes, out_modes, ranks, bias=False).num_params == tt_params(in_modes, out_modes, ranks)


def test_ucf11_layer_counts():
    bt = BTLinear((8, 20, 20, 18), (16, 4, 4, 4), 4, 2, bias=False)
    tt = TTLinear((8, 20, 20, 18), (16, 4, 4, 4), 4, bias=False)
    assert bt.num_params == 3392 and tt.num_params == 3360
    assert round(bt.compression, 1) == 17388.7


def test_extra_repr():
    r = repr(_bt())
    assert "rank=2" in r and "blocks=2" in r and "in_modes=(2, 3, 4)" in r and "params=" in r
    r = repr(_tt())
    assert "ranks=(1, 2, 2, 1)" in r


@pytest.mark.parametrize("kind", ["bt", "tt"])
def test_state_dict_round_trip(kind):
    torch.manual_seed(1)
    a = MAKERS[kind](dtype=F64)
    torch.manual_seed(2)
    b = MAKERS[kind](dtype=F64)
    x = torch.randn(4, 24, dtype=F64)
    assert not torch.allclose(a(x), b(x))
    b.load_state_dict(a.state_dict())
    torch.testing.assert_close(a(x), b(x))
    with pytest.raises(RuntimeError):
        MAKERS[kind](rank=3, dtype=F64).load_state_dict(a.state_dict()) if kind == "bt" else \
            MAKERS[kind](ranks=3, dtype=F64).load_state_dict(a.state_dict())


# -- initialisation -----------------------------------------------------------------------------------

INIT_CASES = [
    # (kind, in_modes, out_modes, rank or ranks, blocks)
    ("bt", (4, 4), (4, 4), 1, 1),
    ("bt", (4, 4), (4, 4), 2, 3),
    ("bt", (8, 8, 4), (4, 4, 4), 3, 2),
    ("bt", (4, 5, 6, 4), (2, 4, 4, 2), 2, 4),
    ("bt", (8, 6, 5), (5, 6, 2), (3, 1, 4), 1),
    ("bt", (4, 4), (2, 2), 1, 40),  # CP with more blocks than any mode size: no joint orthogonality
    ("tt", (4, 4), (4, 4), 1, None),
    ("tt", (8, 8, 4), (4, 4, 4), 3, None),
    ("tt", (4, 5, 6, 4), (2, 4, 4, 2), (2, 5, 3), None),
    ("tt", (16, 16), (8, 8), 2, None),
]


@pytest.mark.parametrize("kind,in_modes,out_modes,rank,blocks", INIT_CASES)
def test_init_matches_dense_linear(kind, in_modes, out_modes, rank, blocks):
    torch.manual_seed(0)
    i, j = math.prod(in_modes), math.prod(out_modes)
    layer = BTLinear(in_modes, out_modes, rank, blocks) if kind == "bt" else TTLinear(in_modes, out_modes, rank)
    dense = nn.Linear(i, j)
    target = linear_init_std(i)
    assert layer.init_std == pytest.approx(target)
    W = layer.weight_matrix().detach()
    assert W.std().item() == pytest.approx(target, rel=0.2)
    assert dense.weight.std().item() == pytest.approx(target, rel=0.2)  # the reference really is 1/sqrt(3I)
    x = torch.randn(4096, i)
    with torch.no_grad():
        y, yd = layer(x) - layer.bias, dense(x) - dense.bias
    assert y.std().item() == pytest.approx(yd.std().item(), rel=0.2)
    bound = 1 / math.sqrt(i)
    assert layer.bias.abs().max() <= bound and layer.bias.std() > 0.2 * bound


def test_init_ucf11_output_not_vanishing_or_exploding():
    """docs/reference.md, "Initialisation": earlier BT layers gave output std 7e-6 or 126 where dense gives 0.58."""
    torch.manual_seed(0)
    x = torch.randn(32, 57600)
    for layer in (BTLinear((8, 20, 20, 18), (16, 4, 4, 4), 4, 2), TTLinear((8, 20, 20, 18), (16, 4, 4, 4), 4)):
        with torch.no_grad():
            y = layer(x) - layer.bias
        assert y.std().item() == pytest.approx(1 / math.sqrt(3), rel=0.2)


def test_reset_parameters_custom_std_and_reseeding():
    layer = _bt(dtype=F64)
    layer.reset_parameters(std=0.5)
    assert layer.weight_matrix().std().item() == pytest.approx(0.5, rel=0.2)
    torch.manual_seed(3)
    layer.reset_parameters()
    a = [p.clone() for p in layer.parameters()]
    torch.manual_seed(3)
    layer.reset_parameters()
    assert all(torch.equal(p, q) for p, q in zip(a, layer.parameters()))
    with pytest.raises(ValueError, match="std"):
        layer.reset_parameters(std=-1.0)
    tt = _tt(dtype=F64)
    tt.reset_parameters(std=0.5)
    assert tt.weight_matrix().std().item() == pytest.approx(0.5, rel=0.2)


# -- from_dense / from_linear --------------------------------------------------------------------------

@pytest.mark.parametrize("blocks", [1, 2])
def test_bt_from_dense_full_rank_exact(blocks):
    torch.manual_seed(0)
    W = torch.randn(24, 12, dtype=F64)
    b = torch.randn(12, dtype=F64)
    layer = BTLinear.from_dense(W, (2, 3, 4), (3, 2, 2), blocks=blocks, bias=b)
    assert layer.ranks == (6, 6, 8) and layer.blocks == blocks
    info = layer.fit_info
    assert isinstance(info, FitInfo) and info.method == "exact" and info.relative_error == 0.0
    assert info.at_precision and info.ranks == (6, 6, 8) and info.blocks == blocks
    assert info.params == bt_params((2, 3, 4), (3, 2, 2), (6, 6, 8), blocks) == layer.num_params - 12
    assert info.format == ("Tucker" if blocks == 1 else "BT")
    torch.testing.assert_close(layer.weight_matrix(), W, atol=1e-12, rtol=0)
    x = torch.randn(5, 24, dtype=F64)
    torch.testing.assert_close(layer(x), x @ W + b, atol=1e-12, rtol=0)


def test_tt_from_dense_full_rank_exact():
    torch.manual_seed(0)
    W = torch.randn(24, 12, dtype=F64)
    layer = TTLinear.from_dense(W, (2, 3, 4), (3, 2, 2))
    assert layer.ranks == (1, 6, 8, 1)
    torch.testing.assert_close(layer.weight_matrix(), W, atol=1e-12, rtol=0)
    assert layer.bias is None  # a bare weight has no bias, and none is invented
    assert layer.num_params == tt_params((2, 3, 4), (3, 2, 2), (6, 8))
    info = layer.fit_info
    assert isinstance(info, FitInfo) and info.method == "TT-SVD" and info.relative_error < 1e-13
    assert info.ranks == info.requested_ranks == (1, 6, 8, 1) and info.notes == []
    with_bias = TTLinear.from_dense(W, (2, 3, 4), (3, 2, 2), bias=True)  # explicit: a zero, trainable bias
    torch.testing.assert_close(with_bias.bias.detach(), torch.zeros(12, dtype=F64))
    assert with_bias.bias.requires_grad and with_bias.num_params == layer.num_params + 12


def test_tt_from_dense_exact_on_low_rank_tt():
    torch.manual_seed(0)
    M = TTMatrix.random((3, 4, 2), (2, 3, 5), 2, dtype=F64)
    W = M.to_dense()
    layer = TTLinear.from_dense(W, (3, 4, 2), (2, 3, 5), 2)
    assert layer.ranks == (1, 2, 2, 1)
    torch.testing.assert_close(layer.weight_matrix(), W, atol=1e-12, rtol=0)
    assert layer.fit_info.relative_error < 1e-12


@pytest.mark.parametrize("kind", ["bt", "tt"])
def test_from_linear_full_rank_matches_linear(kind):
    torch.manual_seed(0)
    lin = nn.Linear(24, 12, dtype=F64)
    cls = BTLinear if kind == "bt" else TTLinear
    layer = cls.from_linear(lin, (2, 3, 4), (3, 2, 2))
    x = torch.randn(6, 24, dtype=F64)
    torch.testing.assert_close(layer(x), lin(x), atol=1e-12, rtol=0)
    # a bias-free source gives a bias-free layer: only the format's parameters
    for rank in (None, 2):
        nob = cls.from_linear(nn.Linear(24, 12, bias=False, dtype=F64), (2, 3, 4), (3, 2, 2), rank)
        assert nob.bias is None
        ranks = (None if rank is None else nob.ranks)
        if kind == "bt":
            assert nob.num_params == bt_params((2, 3, 4), (3, 2, 2), ranks or (6, 6, 8), 1)
        else:
            assert nob.num_params == tt_params((2, 3, 4), (3, 2, 2), ranks or (6, 8))
        assert "bias=False" in repr(nob)
    # with a bias the count is the format's plus out_features, and the bias is the source's
    assert layer.num_params == layer.spec.params + 12
    torch.testing.assert_close(layer.bias.detach(), lin.bias.detach())
    # bias= overrides the source: a zero, trainable bias on a bias-free linear
    zb = cls.from_linear(nn.Linear(24, 12, bias=False, dtype=F64), (2, 3, 4), (3, 2, 2), bias=True)
    torch.testing.assert_close(zb.bias.detach(), torch.zeros(12, dtype=F64))


def test_from_dense_low_rank_calls_fit_bt(monkeypatch):
    """Below full rank, from_dense must use btcore.decompose.fit_bt (faked here to pin the call)."""
    calls = {}
    M = BTMatrix.random((2, 3, 4), (3, 2, 2), 2, 2, seed=0, dtype=F64)
    fake_info = FitInfo(format="BT", method="ALS", relative_error=0.123)

    def fit_bt(W, in_modes, out_modes, rank, blocks, seed=None, **kw):
        calls.update(shape=tuple(W.shape), in_modes=in_modes, out_modes=out_modes, rank=rank, blocks=blocks,
                     seed=seed, kw=kw)
        return M, fake_info

    monkeypatch.setattr(btcore.decompose, "fit_bt", fit_bt)
    layer = BTLinear.from_dense(torch.randn(24, 12, dtype=F64), (2, 3, 4), (3, 2, 2), 2, 2, seed=7, sweeps=3)
    assert calls == dict(shape=(24, 12), in_modes=(2, 3, 4), out_modes=(3, 2, 2), rank=2, blocks=2, seed=7,
                         kw={"sweeps": 3})
    assert layer.fit_info is fake_info and layer.fit_info.relative_error == 0.123
    assert layer.bias is None and layer.num_params == M.num_params
    torch.testing.assert_close(layer.weight_matrix(), M.to_dense())


def test_from_dense_calls_fit_tt_without_warnings(monkeypatch):
    """TTLinear.from_dense always fits with decompose.fit_tt(..., warn=False), full rank included."""
    calls = []
    real = btcore.decompose.fit_tt

    def fit_tt(W, i, o, r, **kw):
        calls.append((tuple(r), kw))
        return real(W, i, o, r, **kw)

    monkeypatch.setattr(btcore.decompose, "fit_tt", fit_tt)
    W = torch.randn(24, 12, dtype=F64)
    layer = TTLinear.from_dense(W, (2, 3, 4), (3, 2, 2), 2)
    assert layer.ranks == (1, 2, 2, 1) and layer.fit_info.ranks == (1, 2, 2, 1)
    assert layer.fit_info.relative_error == pytest.approx(btcore.relative_error(W, layer.to_matrix()), rel=1e-9)
    TTLinear.from_dense(W, (2, 3, 4), (3, 2, 2))
    assert calls == [((1, 2, 2, 1), {"warn": False}), ((1, 6, 8, 1), {"warn": False})]


def test_from_dense_low_rank_real_fit_on_structured_matrix():
    torch.manual_seed(0)
    W = BTMatrix.random((3, 4), (4, 2), 2, 2, seed=1, dtype=F64).to_dense()
    layer = BTLinear.from_dense(W, (3, 4), (4, 2), 2, 2, seed=0)
    assert layer.ranks == (2, 2) and layer.blocks == 2
    err = (torch.linalg.norm(layer.weight_matrix().detach() - W) / torch.linalg.norm(W)).item()
    assert err < 1e-3
    Wt = TTMatrix.random((4, 4, 4), (4, 4, 2), 3, seed=1, dtype=F64).to_dense()
    tt = TTLinear.from_dense(Wt, (4, 4, 4), (4, 4, 2), 3)
    err = (torch.linalg.norm(tt.weight_matrix().detach() - Wt) / torch.linalg.norm(Wt)).item()
    assert err < 1e-8


def test_from_matrix_copies():
    M = BTMatrix.random((2, 3), (3, 2), 2, 2, seed=0, dtype=F64)
    layer = BTLinear.from_matrix(M)
    torch.testing.assert_close(layer.weight_matrix(), M.to_dense())
    assert layer.bias is None and layer.num_params == M.num_params  # a matrix has no bias
    with torch.no_grad():
        layer.core.add_(1)
    assert not torch.allclose(layer.weight_matrix(), M.to_dense())  # copies, not views
    T = TTMatrix.random((2, 3), (3, 2), 2, seed=0, dtype=F64)
    torch.testing.assert_close(TTLinear.from_matrix(T, bias=torch.ones(6, dtype=F64))(torch.zeros(1, 6, dtype=F64)),
                               torch.ones(1, 6, dtype=F64))


# -- bad arguments ---------------------------------------------------------------------------------

@pytest.mark.parametrize("make,match", [
    (lambda: BTLinear((2, 3), (3, 2, 2), 2), "same order"),
    (lambda: BTLinear((2, 3), (3, 2), 7), r"rank\[0\] = 7"),
    (lambda: BTLinear((2, 3), (3, 2), 2, 0), "blocks"),
    (lambda: BTLinear((2, 0), (3, 2), 2), r"in_modes\[1\]"),
    (lambda: BTLinear((2, 3), (3, 2), (1, 2, 3)), "rank has 3 entries"),
    (lambda: BTLinear((2, 3), (3, 2), 2, method="fast"), "method"),
    (lambda: TTLinear((2, 3), (3, 2), 40), r"ranks\[0\] = 40"),
    (lambda: TTLinear((2, 3, 2), (3, 2, 2), (2, 2, 2)), "ranks has 3 entries"),
    (lambda: TTLinear((2, 3), (3, 2), 0), "ranks"),
])
def test_bad_constructor_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize("kind", ["bt", "tt"])
def test_bad_input_and_weights(kind):
    layer = MAKERS[kind](dtype=F64)
    cls = type(layer)
    with pytest.raises(ValueError, match="in_features = 24"):
        layer(torch.randn(3, 25, dtype=F64))
    with pytest.raises(ValueError, match="transposed"):
        cls.from_dense(torch.randn(12, 24, dtype=F64), (2, 3, 4), (3, 2, 2))
    with pytest.raises(ValueError, match="2-D"):
        cls.from_dense(torch.randn(24, 12, 1, dtype=F64), (2, 3, 4), (3, 2, 2))
    with pytest.raises(ValueError, match="floating"):
        cls.from_dense(torch.ones(24, 12, dtype=torch.int64), (2, 3, 4), (3, 2, 2))
    with pytest.raises(ValueError, match="bias must have shape"):
        cls.from_dense(torch.randn(24, 12, dtype=F64), (2, 3, 4), (3, 2, 2), bias=torch.zeros(5, dtype=F64))
    with pytest.raises(ValueError, match="nn.Linear"):
        cls.from_linear(nn.Conv1d(1, 1, 1), (2, 3, 4), (3, 2, 2))
    with pytest.raises(ValueError, match="bias must be a tensor"):
        cls.from_dense(torch.randn(24, 12, dtype=F64), (2, 3, 4), (3, 2, 2), bias=1.0)


def test_bad_bias_is_rejected_before_fitting(monkeypatch):
    def no_fit(*args, **kwargs):
        raise AssertionError("fitted before checking the bias")

    monkeypatch.setattr(btcore.decompose, "fit_bt", no_fit)
    monkeypatch.setattr(btcore.decompose, "fit_tt", no_fit)
    W, bad = torch.randn(24, 12, dtype=F64), torch.zeros(5, dtype=F64)
    with pytest.raises(ValueError, match=r"bias must have shape \(12,\)"):
        BTLinear.from_dense(W, (2, 3, 4), (3, 2, 2), 2, 2, bias=bad)
    with pytest.raises(ValueError, match=r"bias must have shape \(12,\)"):
        TTLinear.from_dense(W, (2, 3, 4), (3, 2, 2), 2, bias=bad)


# -- properties ---------------------------------------------------------------------------------------

_modes = st.integers(1, 3).flatmap(lambda d: st.tuples(
    st.lists(st.integers(1, 3), min_size=d, max_size=d), st.lists(st.integers(1, 3), min_size=d, max_size=d)))


@settings(max_examples=25, deadline=None)
@given(modes=_modes, blocks=st.integers(1, 2), seed=st.integers(0, 2**16))
def test_full_rank_round_trip_property(modes, blocks, seed):
    in_modes, out_modes = modes
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(math.prod(in_modes), math.prod(out_modes), generator=g, dtype=F64)
    x = torch.randn(3, W.shape[0], generator=g, dtype=F64)
    bt = BTLinear.from_dense(W, in_modes, out_modes, blocks=blocks)
    torch.testing.assert_close(bt(x), x @ W, atol=1e-10, rtol=0)
    tt = TTLinear.from_dense(W, in_modes, out_modes)
    torch.testing.assert_close(tt(x), x @ W, atol=1e-10, rtol=0)


@pytest.mark.parametrize("method", ["dense", "auto"])
def test_method_option_same_result(method):
    torch.manual_seed(0)
    a = _bt(dtype=F64)
    b = _bt(dtype=F64, method=method)
    b.load_state_dict(a.state_dict())
    x = torch.randn(4, 24, dtype=F64)
    torch.testing.assert_close(a(x), b(x))


@pytest.mark.parametrize("kind", ["bt", "tt"])
def test_tune_option_same_result(kind):
    import inspect

    if "tune" not in inspect.signature(btcore.matmul).parameters:
        pytest.skip("btcore.matmul has no tune option")
    torch.manual_seed(0)
    a = MAKERS[kind](dtype=F64)
    b = MAKERS[kind](dtype=F64, tune=True)
    b.load_state_dict(a.state_dict())
    x = torch.randn(4, 24, dtype=F64)
    torch.testing.assert_close(a(x), b(x))


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
@pytest.mark.parametrize("rank", [None, 1])
def test_from_dense_refuses_non_finite_weights(bad, rank):
    # At full rank the exact copy used to report error 0.0 and method "exact" with NaN weights.
    w = torch.randn(6, 6, dtype=F64)
    w[2, 3] = bad
    with pytest.raises(ValueError, match="weight has 1 NaN or infinite entries"):
        BTLinear.from_dense(w, (2, 3), (3, 2), rank)
    with pytest.raises(ValueError, match="weight has 1 NaN or infinite entries"):
        TTLinear.from_dense(w, (2, 3), (3, 2), rank)
    with pytest.raises(ValueError, match="finite entries"):
        BTLinear.from_dense(torch.randn(6, 6), (2, 3), (3, 2), bias=torch.full((6,), bad))


def test_many_blocks_initialise_batched_and_exactly():
    # N = 10^5 blocks took 31 s in a Python loop over blocks; one batched QR keeps the init exact.
    layer = BTLinear((2, 3), (3, 2), 2, 2000, bias=False, dtype=F64, allow_larger=True)
    W = layer.weight_matrix()
    assert W.pow(2).mean().sqrt().item() == pytest.approx(layer.init_std, rel=0.3)
    f = layer.factors[0].reshape(2000, 6, 2)
    gram = f.transpose(1, 2) @ f  # each block's unfolded factor has orthogonal columns of equal norm
    torch.testing.assert_close(gram, gram[:, :1, :1] * torch.eye(2, dtype=F64).expand(2000, 2, 2))


def test_layer_init_has_a_memory_budget(monkeypatch):
    monkeypatch.setattr(btcore.memory, "available_memory", lambda device=None: 1024**2)
    with pytest.raises(ValueError, match="initialising this CP layer needs"):
        BTLinear((2, 3), (3, 2), 1, 10**5)
    with pytest.raises(ValueError, match="initialising this TT layer needs"):
        TTLinear((64, 64), (64, 64), 64)


def test_constructor_flags_and_std_are_checked():
    with pytest.raises(TypeError, match="bias must be True or False"):
        _bt(bias="yes")
    with pytest.raises(TypeError, match="tune must be True or False"):
        _tt(tune=None)
    with pytest.raises(ValueError, match="std must be a finite number >= 0"):
        _bt().reset_parameters(float("nan"))


@pytest.mark.parametrize("make", [lambda **kw: BTLinear((2, 3), (3, 2), 2, **kw),
                                  lambda **kw: TTLinear((2, 3), (3, 2), 2, **kw)])
def test_a_device_this_machine_lacks_is_a_value_error(make, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # as on a CPU-only machine
    with pytest.raises(ValueError, match="device 'cuda': CUDA is not available"):
        make(device="cuda")
    with pytest.raises(ValueError, match="device 'gpu0' is not a torch device"):
        make(device="gpu0")
    assert all(p.device.type == "cpu" for p in make(device="cpu").parameters())


def test_a_layer_far_larger_than_dense_is_refused_unless_allowed():
    # 10^6 blocks of rank 1 on a 16 x 16 matrix: 33,000,000 parameters in place of 256 (+ 16 bias).
    with pytest.raises(ValueError, match=r"33,000,000 parameters, 128,906x the 256 .* allow_larger=True"):
        BTLinear((4, 4), (4, 4), 1, 10**6)
    limit = btcore.layers.MAX_PARAMS_RATIO * 256
    ok = BTLinear((4, 4), (4, 4), 1, limit // 33, bias=False)  # just under the limit: built
    assert ok.spec.params <= limit < BTLinear((4, 4), (4, 4), 1, limit // 33 + 1, allow_larger=True).spec.params
    with pytest.raises(ValueError, match="allow_larger"):
        BTLinear((4, 4), (4, 4), 1, limit // 33 + 1)
    with pytest.raises(TypeError, match="allow_larger must be True or False"):
        BTLinear((4, 4), (4, 4), 1, 1, allow_larger="yes")
    big = BTLinear((2, 3), (3, 2), 2, 100, allow_larger=True)
    assert BTLinear.from_matrix(big.to_matrix()).spec.params == big.spec.params  # an existing matrix is kept


@pytest.mark.parametrize("make", [lambda: BTLinear((2, 3), (3, 2), 2), lambda: TTLinear((2, 3), (3, 2), 2)])
def test_an_empty_batch_gives_zero_gradients_like_nn_linear(make):
    layer = make()
    x = torch.zeros(0, 6, requires_grad=True)
    layer(x).sum().backward()
    assert x.grad is not None and x.grad.shape == (0, 6)
    for p in layer.parameters():
        assert p.grad is not None and not p.grad.any()
