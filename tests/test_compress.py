"""btcore.compress: dense maps refitted as TT/BT/TR layers; exact at full rank, the fit error reported below it."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from btcore.classifier import ClassifierConfig, SequenceClassifier
from btcore.compress import compress, rank_for_budget
from btcore.layers import BTLinear, TRLinear, TTLinear
from btcore.ring import TRMatrix
from btcore.shapes import factorize


def _model():
    cfg = ClassifierConfig(kind="dense", in_modes=(4, 3, 2), hidden_modes=(2, 2, 2), classes=3, dropout=0.0)
    return SequenceClassifier(cfg, generator=torch.Generator().manual_seed(0)).double()


@pytest.mark.parametrize("fmt, cls", [("tt", TTLinear), ("bt", BTLinear), ("tr", TRLinear)])
def test_full_rank_preserves_outputs(fmt, cls):
    m = _model()
    x = torch.randn(5, 4, 24, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    new, report = compress(m, fmt)
    assert isinstance(new.input_map, cls) and isinstance(m.input_map, nn.Linear)  # the original is untouched
    torch.testing.assert_close(new(x), m(x), rtol=1e-10, atol=1e-12)
    assert report[0].name == "rnn.cell.input_map" and report[0].fit_error < 1e-12
    assert report[0].params_before == 24 * 32
    # the compressed classifier rebuilds from its config and reloads its weights
    again = SequenceClassifier(new.config).double()
    again.load_state_dict(new.state_dict())
    torch.testing.assert_close(again(x), m(x), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("fmt", ["tt", "bt", "tr"])
def test_budget_respected_and_fit_error_reported(fmt):
    m = _model()
    new, report = compress(m, fmt, budget=200)
    r = report[0]
    assert r.params_after == new.input_map.spec.params <= 200
    w = m.input_map.weight.detach().T
    err = torch.linalg.norm(new.input_map.weight_matrix().detach() - w) / torch.linalg.norm(w)
    assert r.fit_error == pytest.approx(float(err), rel=1e-6) and 0.05 < r.fit_error < 1


def test_plain_linears_are_replaced():
    net = nn.Sequential(nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 7)).double()  # 7 is prime: left dense
    new, report = compress(net, "tt", d=2)
    assert [r.name for r in report] == ["0"] and isinstance(new[0], TTLinear) and isinstance(new[2], nn.Linear)
    x = torch.randn(3, 16, dtype=torch.float64)
    torch.testing.assert_close(new(x), net(x))


def test_refusals():
    with pytest.raises(ValueError, match="format must be"):
        compress(_model(), "svd")
    with pytest.raises(ValueError, match="not both"):
        compress(_model(), "bt", rank=2, budget=100)
    with pytest.raises(ValueError, match="raise the budget"):
        compress(_model(), "bt", budget=3)
    with pytest.raises(ValueError, match="nothing to compress"):
        compress(nn.Sequential(nn.ReLU()), "bt")


def test_rank_for_budget_is_the_largest_within():
    params = lambda r: 10 * r * r  # noqa: E731
    assert rank_for_budget(params, 1000) == 10 and rank_for_budget(params, 999) == 9
    assert rank_for_budget(params, 5) is None


@pytest.mark.parametrize("in_features, out_features, ranks", [(24, 12, (2, 3, 2)), (36, 16, (3, 1, 2)),
                                                               (16, 18, (2, 2))])
def test_a_linear_layer_with_exact_tr_structure_is_reproduced(in_features, out_features, ranks):
    """W = the dense matrix of a random ring at ``ranks``: the TR fit at those ranks recovers it, and the
    compressed network computes the same outputs (float64)."""
    d = len(ranks)
    im, om = factorize(in_features, d), factorize(out_features, d)
    W = TRMatrix.random(im, om, ranks, seed=3, dtype=torch.float64).to_dense()
    lin = nn.Linear(in_features, out_features).double()
    with torch.no_grad():
        lin.weight.copy_(W.T)
    net = nn.Sequential(lin)
    new, report = compress(net, "tr", rank=ranks, d=d)
    layer = new[0]
    assert isinstance(layer, TRLinear) and layer.spec.ranks == ranks and layer.spec.in_modes == im
    assert report[0].format == "tr" and report[0].blocks is None and report[0].fit_error < 1e-8
    assert report[0].params_after == layer.spec.params < report[0].params_before
    x = torch.randn(7, in_features, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        assert float(torch.linalg.norm(new(x) - net(x)) / torch.linalg.norm(net(x))) < 1e-8
    torch.testing.assert_close(layer.bias, lin.bias)
