"""Tests for btcore.rnn: cells and sequence layers against PyTorch's, lengths, dropout, empty inputs."""


import pytest
import torch
from torch import nn

from btcore.layers import LAYERS
from btcore.classifier import ClassifierConfig, SequenceClassifier
from btcore.rnn import GRU, KINDS as REGISTERED_KINDS, LSTM, GRUCell, LSTMCell, folded_out_modes, make_input_map

F64 = torch.float64
#: Every format of the registry, so a new format runs every test below.
KINDS = list(REGISTERED_KINDS)
FACTORIZED = [k for k in KINDS if k != "dense"]
# Small tensorized shapes: input 4x3 = 12, hidden 2x3 = 6.
IN, HID = (4, 3), (2, 3)


def _torch_cell(cell_type, bias=True):
    torch.manual_seed(0)
    cls = nn.LSTMCell if cell_type == "lstm" else nn.GRUCell
    return cls(12, 6, bias=bias, dtype=F64)


# -- full-rank equivalence with PyTorch ---------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("with_state", [False, True])
def test_lstm_cell_matches_torch(kind, with_state):
    ref = _torch_cell("lstm")
    cell = LSTMCell.from_torch(ref, IN, HID, kind)
    x = torch.randn(5, 12, dtype=F64)
    state = (torch.randn(5, 6, dtype=F64), torch.randn(5, 6, dtype=F64)) if with_state else None
    h, c = cell(x, state)
    h_ref, c_ref = ref(x, state)
    torch.testing.assert_close(h, h_ref, atol=1e-6, rtol=0)
    torch.testing.assert_close(c, c_ref, atol=1e-6, rtol=0)
    assert cell.out_modes == (8, 3)
    assert type(cell.input_map) is LAYERS[kind]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("with_state", [False, True])
def test_gru_cell_matches_torch(kind, with_state):
    ref = _torch_cell("gru")
    cell = GRUCell.from_torch(ref, IN, HID, kind)
    x = torch.randn(5, 12, dtype=F64)
    h0 = torch.randn(5, 6, dtype=F64) if with_state else None
    torch.testing.assert_close(cell(x, h0), ref(x, h0), atol=1e-6, rtol=0)
    assert cell.out_modes == (6, 3)


@pytest.mark.parametrize("cell_type", ["lstm", "gru"])
@pytest.mark.parametrize("kind", FACTORIZED)
def test_cell_without_bias_matches_torch(cell_type, kind):
    ref = _torch_cell(cell_type, bias=False)
    cls = LSTMCell if cell_type == "lstm" else GRUCell
    cell = cls.from_torch(ref, IN, HID, kind)
    assert cell.input_map.bias is None and cell.hidden_map.bias is None
    assert cell.input_map.num_params == cell.input_map.spec.params == cell.input_map_params
    x = torch.randn(3, 12, dtype=F64)
    out, out_ref = cell(x), ref(x)
    if cell_type == "lstm":
        out, out_ref = out[0], out_ref[0]
    torch.testing.assert_close(out, out_ref, atol=1e-6, rtol=0)


@pytest.mark.parametrize("kind", FACTORIZED)
@pytest.mark.parametrize("gate", range(4))
def test_gate_order_is_gate_major(kind, gate):
    """Column j of the folded map is gate j // H: zeroing gate g's columns of the input map changes only
    gate g's pre-activation, and gives the cell of nn.LSTMCell with gate g's rows of W_ih zeroed."""
    ref = _torch_cell("lstm")
    cell = LSTMCell.from_torch(ref, IN, HID, kind)
    H, H1 = 6, HID[0]
    assert cell.out_modes == (4 * H1,) + HID[1:]
    W = cell.input_map.weight_matrix().detach()
    torch.testing.assert_close(W, ref.weight_ih.detach().T, atol=1e-12, rtol=0)
    torch.manual_seed(1)
    x, h, c = torch.randn(5, 12, dtype=F64), torch.randn(5, 6, dtype=F64), torch.randn(5, 6, dtype=F64)
    with torch.no_grad():
        pre = cell.input_map(x) + cell.hidden_map(h)  # gate pre-activations, gate-major [i | f | g | o]
        # Gate g is the slice g*H1:(g+1)*H1 of the folded first output mode (4 H_1): zero it in the
        # first factor (BT, every block) or first core (TT, TR), i.e. in the format, not in a dense copy.
        first = cell.input_map.factors[0] if kind == "bt" else cell.input_map.cores[0]
        first[:, :, gate * H1:(gate + 1) * H1, :] = 0
        W0 = cell.input_map.weight_matrix()
        pre0 = cell.input_map(x) + cell.hidden_map(h)
    cols = torch.zeros(4 * H, dtype=torch.bool)
    cols[gate * H:(gate + 1) * H] = True
    assert torch.count_nonzero(W0[:, cols]) == 0  # exactly gate g's columns are zero ...
    torch.testing.assert_close(W0[:, ~cols], W[:, ~cols], atol=1e-12, rtol=0)  # ... and only those
    torch.testing.assert_close(pre0[:, ~cols], pre[:, ~cols], atol=1e-12, rtol=0)  # other gates unchanged
    assert bool(((pre0[:, cols] - pre[:, cols]).abs() > 1e-6).all())  # gate g changed, every unit
    b_ih, w_hh, b_hh = ref.bias_ih.detach(), ref.weight_hh.detach(), ref.bias_hh.detach()
    torch.testing.assert_close(pre0[:, cols], b_ih[cols] + h @ w_hh[cols].T + b_hh[cols], atol=1e-12, rtol=0)
    # the same gate in PyTorch's order: nn.LSTMCell with rows g*H:(g+1)*H of weight_ih zeroed
    with torch.no_grad():
        ref.weight_ih[gate * H:(gate + 1) * H] = 0
        out, out_ref = cell(x, (h, c)), ref(x, (h, c))
    torch.testing.assert_close(out[0], out_ref[0], atol=1e-10, rtol=0)
    torch.testing.assert_close(out[1], out_ref[1], atol=1e-10, rtol=0)
    assert folded_out_modes((4, 4, 4, 4), 4) == (16, 4, 4, 4)


@pytest.mark.parametrize("cell_type", ["lstm", "gru"])
@pytest.mark.parametrize("kind", KINDS)
def test_sequence_layer_matches_torch(cell_type, kind):
    torch.manual_seed(0)
    tcls = nn.LSTM if cell_type == "lstm" else nn.GRU
    ref = tcls(12, 6, batch_first=True, dtype=F64)
    tcell = (nn.LSTMCell if cell_type == "lstm" else nn.GRUCell)(12, 6, dtype=F64)
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(tcell, name).copy_(getattr(ref, name + "_l0"))
    ccls, scls = (LSTMCell, LSTM) if cell_type == "lstm" else (GRUCell, GRU)
    layer = scls.from_cell(ccls.from_torch(tcell, IN, HID, kind))
    x = torch.randn(3, 5, 12, dtype=F64)
    if cell_type == "lstm":
        s0 = (torch.randn(3, 6, dtype=F64), torch.randn(3, 6, dtype=F64))
        out, (h, c) = layer(x, s0)
        out_ref, (h_ref, c_ref) = ref(x, (s0[0][None], s0[1][None]))
        torch.testing.assert_close(c, c_ref[0], atol=1e-6, rtol=0)
    else:
        s0 = torch.randn(3, 6, dtype=F64)
        out, h = layer(x, s0)
        out_ref, h_ref = ref(x, s0[None])
    torch.testing.assert_close(out, out_ref, atol=1e-6, rtol=0)
    torch.testing.assert_close(h, h_ref[0], atol=1e-6, rtol=0)


# -- sequence layers: lengths, dropout, shapes -----------------------------------------------------------

@pytest.mark.parametrize("scls", [LSTM, GRU])
def test_lengths_freeze_state(scls):
    torch.manual_seed(0)
    layer = scls(IN, HID, "bt", rank=2, blocks=2, dtype=F64)
    x = torch.randn(2, 6, 12, dtype=F64)
    out, state = layer(x, lengths=torch.tensor([6, 3]))
    out3, state3 = layer(x[1:, :3])
    h = state[0] if scls is LSTM else state
    h3 = state3[0] if scls is LSTM else state3
    torch.testing.assert_close(h[1], h3[0])
    torch.testing.assert_close(out[1, :3], out3[0])
    assert torch.count_nonzero(out[1, 3:]) == 0
    with pytest.raises(ValueError, match="lengths"):
        layer(x, lengths=torch.tensor([7, 3]))


@pytest.mark.parametrize("scls", [LSTM, GRU])
def test_dropout_only_in_training(scls):
    torch.manual_seed(0)
    layer = scls(IN, HID, "tt", tt_ranks=2, input_dropout=0.3, state_dropout=0.3)
    x = torch.randn(4, 5, 12)
    layer.eval()
    a, _ = layer(x)
    b, _ = layer(x)
    torch.testing.assert_close(a, b)
    layer.train()
    c, _ = layer(x)
    assert not torch.allclose(a, c)
    plain = scls.from_cell(layer.cell)  # no dropout: training == eval
    torch.testing.assert_close(plain(x)[0], a)
    with pytest.raises(ValueError, match="state_dropout"):
        scls(IN, HID, "tt", tt_ranks=2, state_dropout=1.0)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_sequence_shapes_and_dtypes(kind, dtype):
    layer = LSTM(IN, HID, kind, rank=2, blocks=2, tt_ranks=2, tr_ranks=2, dtype=dtype)
    out, (h, c) = layer(torch.randn(3, 4, 12, dtype=dtype))
    assert out.shape == (3, 4, 6) and h.shape == c.shape == (3, 6) and out.dtype == dtype
    g = GRU(IN, HID, kind, rank=2, blocks=2, tt_ranks=2, tr_ranks=2, dtype=dtype)
    out, h = g(torch.randn(3, 4, 12, dtype=dtype))
    assert out.shape == (3, 4, 6) and h.shape == (3, 6)


def test_cell_and_layer_errors():
    cell = LSTMCell(IN, HID, "bt", rank=2)
    with pytest.raises(ValueError, match="input_size = 12"):
        cell(torch.randn(2, 11))
    with pytest.raises(ValueError, match="state h"):
        cell(torch.randn(2, 12), (torch.zeros(2, 5), torch.zeros(2, 6)))
    with pytest.raises(ValueError, match="kind"):
        LSTMCell(IN, HID, "cp")
    with pytest.raises(ValueError, match="same order"):
        LSTMCell((4, 3), (6,), "tt")
    LSTMCell((4, 3), 6, "dense")  # a dense map needs no matching order
    with pytest.raises(ValueError, match="nn.GRUCell"):
        GRUCell.from_torch(nn.LSTMCell(12, 6), IN, HID)
    with pytest.raises(ValueError, match="hidden_size"):
        LSTMCell.from_torch(nn.LSTMCell(12, 6), IN, (2, 2))
    with pytest.raises(ValueError, match=r"shape \(batch, time, 12\)"):
        LSTM(IN, HID, "dense")(torch.randn(2, 12))
    with pytest.raises(ValueError, match="state"):
        GRU(IN, HID, "dense")(torch.randn(2, 3, 12), torch.zeros(3, 6))


def test_make_input_map_kinds_and_init():
    torch.manual_seed(0)
    m = make_input_map("bt", (8, 6), (4, 4), 4, rank=3, blocks=2)
    assert isinstance(m, LAYERS["bt"]) and m.out_modes == (16, 4) and m.in_features == 48
    assert isinstance(make_input_map("tt", (8, 6), (4, 4), 3, tt_ranks=2), LAYERS["tt"])
    assert isinstance(make_input_map("dense", (8, 6), (4, 4), 3), nn.Linear)
    tr = make_input_map("tr", (8, 6), (4, 4), 4, tr_ranks=(2, 3), rank=7, tt_ranks=9)  # other formats' controls ignored
    assert type(tr) is LAYERS["tr"] and tr.ranks == (2, 3) and tr.out_modes == (16, 4)
    assert tr.num_params == 2 * 8 * 16 * 3 + 3 * 6 * 4 * 2 + 64


def test_tr_cell_input_map_has_the_dense_init_variance():
    """The TR map's realized ||W||_F is that of nn.Linear's init for the same fan-in, sqrt(I J / (3 I))."""
    for seed in range(3):
        torch.manual_seed(seed)
        cell = LSTMCell((8, 6), (4, 4), "tr", tr_ranks=(2, 3), dtype=F64)
        W = cell.input_map.weight_matrix().detach()
        assert W.shape == (48, 64)
        assert float(W.pow(2).mean().sqrt()) == pytest.approx(1 / (3 * 48) ** 0.5, rel=1e-9)


def test_recurrent_init_orthogonal():
    cell = GRUCell(IN, HID, "dense", recurrent_init="orthogonal", dtype=F64)
    W = cell.hidden_map.weight.detach()
    for k in range(3):
        block = W[6 * k:6 * (k + 1)]
        torch.testing.assert_close(block @ block.T, torch.eye(6, dtype=F64), atol=1e-10, rtol=0)
    with pytest.raises(ValueError, match="recurrent_init"):
        GRUCell(IN, HID, "dense", recurrent_init="zeros")


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_empty_sequences_and_batches(cell):
    cfg = ClassifierConfig(kind="bt", cell=cell, in_modes=(2, 3), hidden_modes=(2, 2), rank=2, blocks=1,
                           classes=3, readout="mean")
    model = SequenceClassifier(cfg)
    with pytest.raises(ValueError, match="sequence length 0"):
        model(torch.zeros(2, 0, 6))
    x = torch.zeros(0, 4, 6, requires_grad=True)  # batch 0: empty logits, zero gradients
    y = model(x)
    assert y.shape == (0, 3)
    y.sum().backward()
    assert x.grad.shape == (0, 4, 6)
    out, state = model.rnn(torch.zeros(0, 4, 6))
    assert out.shape == (0, 4, 4)
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        model([[0.0] * 6])


@pytest.mark.parametrize("kind", KINDS)
def test_a_device_this_machine_lacks_is_a_value_error(kind, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # as on a CPU-only machine
    for make in (LSTMCell, GRU):
        with pytest.raises(ValueError, match="device 'cuda': CUDA is not available"):
            make((2, 3), (2, 2), kind, rank=2, tt_ranks=2, tr_ranks=2, device="cuda")


@pytest.mark.parametrize("scls", [LSTM, GRU])
@pytest.mark.parametrize("lengths", [torch.tensor([6.0, 3.0]), [6.0, 2.5], torch.tensor([True, True])])
def test_lengths_must_be_integers(scls, lengths):
    layer = scls(IN, HID, "bt", rank=2, blocks=2, dtype=F64)
    x = torch.randn(2, 6, 12, dtype=F64)
    with pytest.raises(TypeError, match="lengths must be integers"):
        layer(x, lengths=lengths)
    out, _ = layer(x, lengths=[6, 3])  # a list of ints is fine
    assert torch.count_nonzero(out[1, 3:]) == 0
