"""Tests for btcore.classifier: ClassifierConfig, SequenceClassifier and the UCF11 configuration."""

import dataclasses
import json

import pytest
import torch
from torch import nn

from btcore.classifier import ClassifierConfig, SequenceClassifier, ucf11_config
from btcore.formats import FORMATS

#: Every format of the registry.
KINDS = list(FORMATS)


# -- configuration --------------------------------------------------------------------------------

def test_ucf11_parameter_counts():
    bt, tt = ucf11_config("bt"), ucf11_config("tt")
    assert bt.input_map_params() == 3392 and tt.input_map_params() == 3360
    assert ucf11_config("tt", "gru").input_map_params() == 3232
    assert ucf11_config("dense").input_map_params() == 58_982_400
    assert bt.out_modes == (16, 4, 4, 4) and ucf11_config("bt", "gru").out_modes == (12, 4, 4, 4)
    assert bt.input_size == 57_600 and bt.hidden_size == 256 and bt.classes == 11
    assert (bt.rank, bt.blocks, tt.tt_ranks) == (4, 2, 4)
    assert round(58_982_400 / bt.input_map_params(), 1) == 17388.7


@pytest.mark.parametrize("kind", ["bt", "tt", "tr"])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_ucf11_models_build_with_matching_counts(kind, cell):
    cfg = ucf11_config(kind, cell)
    model = SequenceClassifier(cfg)
    assert model.num_params == cfg.num_params()
    imap = model.rnn.cell.input_map
    assert imap.num_params - imap.bias.numel() == cfg.input_map_params()
    with torch.no_grad():
        model.eval()
        assert model(torch.randn(2, 2, 57_600)).shape == (2, 11)


def test_config_num_params_dense_small():
    cfg = ClassifierConfig(kind="dense", cell="gru", in_modes=(4, 3), hidden_modes=(2, 3), classes=5)
    assert SequenceClassifier(cfg).num_params == cfg.num_params()
    assert cfg.input_map_params() == 12 * 18


@pytest.mark.parametrize("change,field", [
    (dict(kind="cp"), "kind"),
    (dict(cell="rnn"), "cell"),
    (dict(readout="max"), "readout"),
    (dict(dropout=1.0), "dropout"),
    (dict(dropout=-0.1), "dropout"),
    (dict(classes=0), "classes"),
    (dict(blocks=0), "blocks"),
    (dict(in_modes=(8, 0, 20, 18)), r"in_modes\[1\]"),
    (dict(in_modes=()), "in_modes"),
    (dict(hidden_modes=(16, 16)), "hidden_modes"),
    (dict(rank=100), r"rank"),
    (dict(rank=(4, 4)), "rank"),
    (dict(kind="tt", tt_ranks=10_000), "tt_ranks"),
    (dict(kind="tt", tt_ranks=(4, 4)), "tt_ranks"),
    (dict(kind="tr", tr_ranks=(4, 4)), "tr_ranks"),
    (dict(kind="tr", tr_ranks=0), "tr_ranks"),
    (dict(kind="tr", tr_ranks=(4, 4, 4, 10_000)), "tr_ranks"),
    (dict(recurrent_init="zero"), "recurrent_init"),
])
def test_config_validation_names_field(change, field):
    with pytest.raises(ValueError, match=field):
        ClassifierConfig(**change)


def test_config_validate_after_mutation_and_dense_ignores_ranks():
    cfg = ClassifierConfig()
    cfg.kind = "xx"
    with pytest.raises(ValueError, match="kind"):
        cfg.validate()
    with pytest.raises(ValueError, match="kind"):
        SequenceClassifier(cfg)
    ClassifierConfig(kind="dense", in_modes=(57600,), hidden_modes=(256,), rank=10_000)


def test_config_dict_round_trip():
    cfg = ucf11_config("tt", "gru", dropout=0.1, readout="mean")
    d = json.loads(json.dumps(cfg.to_dict()))  # lists after JSON
    back = ClassifierConfig.from_dict(d)
    assert back == cfg and isinstance(back.in_modes, tuple)
    with pytest.raises(ValueError, match="unknown"):
        ClassifierConfig.from_dict({**d, "foo": 1})
    assert dataclasses.replace(cfg, kind="bt").describe() == "BT-GRU (R=4, N=2)"


def test_tr_config_counts_round_trip_and_label():
    cfg = ucf11_config("tr", tr_ranks=(2, 3, 4, 3))
    # sum_k r_{k-1} I_k J_k r_k over the UCF11 map 8x20x20x18 -> 16x4x4x4, r_0 = r_4 = 3
    assert cfg.input_map_params() == 3 * 8 * 16 * 2 + 2 * 20 * 4 * 3 + 3 * 20 * 4 * 4 + 4 * 18 * 4 * 3
    assert cfg.spec().ranks == (2, 3, 4, 3) and cfg.spec().kind == "TR"
    back = ClassifierConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert back == cfg and back.tr_ranks == (2, 3, 4, 3)
    assert cfg.describe() == "TR-LSTM (ranks (2, 3, 4, 3))"
    assert ClassifierConfig.from_dict({k: v for k, v in cfg.to_dict().items() if k != "tr_ranks"}).tr_ranks == 4


# -- classifier -----------------------------------------------------------------------------------

SMALL = dict(in_modes=(4, 3), hidden_modes=(2, 3), rank=2, blocks=2, tt_ranks=2, tr_ranks=2, classes=5)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("readout", ["last", "mean"])
def test_classifier_forward_backward(kind, cell, readout):
    torch.manual_seed(0)
    model = SequenceClassifier(ClassifierConfig(kind=kind, cell=cell, readout=readout, **SMALL))
    x = torch.randn(3, 4, 12)
    logits = model(x)
    assert logits.shape == (3, 5)
    nn.functional.cross_entropy(logits, torch.tensor([0, 1, 4])).backward()
    assert all(p.grad is not None for p in model.parameters())
    model.eval()
    torch.testing.assert_close(model(x.reshape(3, 4, 4, 3)), model(x))  # frames flattened
    with pytest.raises(ValueError, match="batch, time, 12"):
        model(torch.randn(3, 4, 13))


def test_classifier_readouts_and_lengths():
    torch.manual_seed(0)
    cfg = ClassifierConfig(kind="bt", readout="mean", dropout=0.0, **SMALL)
    model = SequenceClassifier(cfg).eval()
    x = torch.randn(2, 5, 12)
    full = model(x)
    short = model(x[:, :3])
    masked = model(x, lengths=torch.tensor([3, 3]))
    torch.testing.assert_close(masked, short)
    assert not torch.allclose(full, short)
    last = SequenceClassifier(dataclasses.replace(cfg, readout="last"))
    last.load_state_dict(model.state_dict())
    last.eval()
    out, (h, _) = last.rnn(x)
    torch.testing.assert_close(last(x), last.head(h))


def test_classifier_accepts_dict_and_copies_config():
    cfg = ClassifierConfig(**SMALL)
    model = SequenceClassifier(cfg.to_dict())
    assert model.config == cfg and model.config is not cfg
    with pytest.raises(ValueError, match="ClassifierConfig"):
        SequenceClassifier("bt")


def test_sizes_are_ints_and_callable():
    cfg = ucf11_config("bt")
    assert cfg.input_size == 57_600 and cfg.hidden_size == 256
    assert isinstance(cfg.input_size, int) and cfg.input_size * 2 == 115_200
    assert json.dumps({"n": cfg.hidden_size}) == '{"n": 256}'
    assert SequenceClassifier(ClassifierConfig(**SMALL)).input_map.spec.blocks == 2
