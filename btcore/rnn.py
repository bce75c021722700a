"""LSTM and GRU cells and sequence layers with dense, TT, BT or TR input maps.

The input-to-hidden map of a cell is one (I, G*H) matrix for all G gates (G = 4 for LSTM, 3 for
GRU), as in Ye et al. 2018 / Yang et al. 2017: for a factorized map the gate factor is folded into
the first output mode, ``out_modes = (G * H_1, H_2, .., H_d)``. With the column index
j = (j_1, .., j_d) row-major and j_1 = g * H_1 + h_1, the gate g is the slowest-varying index of j,
so the columns are gate-major exactly like the rows of PyTorch's ``weight_ih`` (``[i, f, g, o]`` for
LSTM, ``[r, z, n]`` for GRU); converting a PyTorch cell is ``W = weight_ih.T``.

The hidden-to-hidden map stays dense (an ``nn.Linear(H, G*H)``), as in both papers.

Equations (as ``nn.LSTMCell`` / ``nn.GRUCell``), with ``gx = x W_ih + b_ih`` and ``gh = h W_hh + b_hh``:

* LSTM: i, f, g, o = sigma, sigma, tanh, sigma of (gx + gh); c' = f c + i g; h' = o tanh(c').
* GRU: r = sigma(gx_r + gh_r); z = sigma(gx_z + gh_z); n = tanh(gx_n + r * gh_n);
  h' = (1 - z) n + z h.

Sequence layers (:class:`LSTM`, :class:`GRU`) are batch-first, apply the input map to all time
steps at once (one contraction for B*T rows), take an optional initial state and optional
per-sequence lengths, and apply dropout to the input (every element) and to the state fed to the
recurrent map (one mask per sequence, "variational", so memory is not erased at every step).

:class:`btcore.classifier.SequenceClassifier` runs one of them over a (B, T, F) sequence of flat
frame features and maps the last (or mean) hidden state to class logits.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .checks import check_device, check_dropout, check_tensor
from .formats import FORMATS
from .memory import DEFAULT_MAX_BYTES, check_allocation, dtype_bytes, format_bytes
from .layer_init import reset_linear
from .layers import LAYERS
from .shapes import as_modes, check_choice, check_positive_int, prod

__all__ = [
    "KINDS",
    "CELLS",
    "GATES",
    "folded_out_modes",
    "make_input_map",
    "LSTMCell",
    "GRUCell",
    "LSTM",
    "GRU",
    "UCF11_FRAME",
    "UCF11_IN_MODES",
    "UCF11_HIDDEN_MODES",
    "UCF11_RANK",
    "UCF11_BLOCKS",
    "UCF11_TT_RANKS",
    "UCF11_CLASSES",
    "PAPER_UCF11_ACCURACY",
]

#: The input-map kinds: every key of the registry of formats, :data:`btcore.formats.FORMATS`.
KINDS = tuple(FORMATS)

# The paper's UCF11 setting (Ye et al. 2018; docs/reference.md, "The paper's UCF11 setting"): the one
# source of these numbers for the presets, the home page, the Training page and the CLI.
#: Frames of 3 x 120 x 160 = 57,600 inputs, tensorized as 8x20x20x18.
UCF11_FRAME = (3, 120, 160)
UCF11_IN_MODES = (8, 20, 20, 18)
#: Hidden size 256 = 4x4x4x4 (the gates fold into the first output mode: 16x4x4x4 for the LSTM).
UCF11_HIDDEN_MODES = (4, 4, 4, 4)
UCF11_RANK, UCF11_BLOCKS, UCF11_TT_RANKS = 4, 2, 4
UCF11_CLASSES = 11
#: The paper's reported UCF11 top-1 accuracies of the LSTM classifiers, by input-map kind.
PAPER_UCF11_ACCURACY = {"dense": 0.697, "tt": 0.796, "bt": 0.853}
CELLS = ("lstm", "gru")
GATES = {"lstm": 4, "gru": 3}
READOUTS = ("last", "mean")
RECURRENT_INITS = ("orthogonal", "uniform")


def folded_out_modes(hidden_modes, gates: int) -> tuple[int, ...]:
    """Output modes of the stacked input map: the gate factor folded into the first mode."""
    h = as_modes(hidden_modes, "hidden_modes")
    return (check_positive_int(gates, "gates") * h[0],) + h[1:]


def make_input_map(kind: str, in_modes, hidden_modes, gates: int, *, rank=4, blocks: int = 1, tt_ranks=4,
                   tr_ranks=4, bias: bool = True, device=None, dtype=None) -> nn.Module:
    """The input-to-hidden map of ``gates`` stacked gates: the layer of format ``kind`` (:data:`btcore.layers.LAYERS`).

    ``nn.Linear`` for "dense", else :class:`TTLinear` (``tt_ranks``), :class:`BTLinear` (``rank``,
    ``blocks``) or :class:`TRLinear` (``tr_ranks``); each format takes its own controls from
    :data:`btcore.formats.RANK_CONTROLS` and ignores the others'. All are initialised like
    ``nn.Linear`` (entry std 1/sqrt(3 I)), the factorized ones through their matched-variance init.
    """
    kind = check_choice(kind, KINDS, "kind")
    i = as_modes(in_modes, "in_modes")
    h = as_modes(hidden_modes, "hidden_modes")
    out = folded_out_modes(h, gates)
    factory = {"device": check_device(device), "dtype": dtype}
    fmt = FORMATS[kind]
    if not fmt.factorized:
        return nn.Linear(prod(i), prod(out), bias=bias, **factory)
    if len(i) != len(h):
        raise ValueError(
            f"hidden_modes has {len(h)} modes but in_modes has {len(i)}; a {fmt.label} input map needs the same "
            f"order d for both (e.g. hidden 256 as {'x'.join(['4'] * len(i)) if len(i) == 4 else '...'})"
        )
    spec = fmt.spec_for(i, out, rank=rank, blocks=blocks, tt_ranks=tt_ranks, tr_ranks=tr_ranks)
    return LAYERS[kind].from_spec(spec, bias, **factory)


class _Cell(nn.Module):
    """Shared machinery of :class:`LSTMCell` and :class:`GRUCell`."""

    gates: int = 0

    def __init__(self, in_modes, hidden_modes, kind: str = "bt", *, rank=4, blocks: int = 1, tt_ranks=4, tr_ranks=4,
                 bias: bool = True, recurrent_init: str = "uniform", input_map: nn.Module | None = None,
                 device=None, dtype=None):
        super().__init__()
        self.kind = check_choice(kind, KINDS, "kind")
        self.in_modes = as_modes(in_modes, "in_modes")
        self.hidden_modes = as_modes(hidden_modes, "hidden_modes")
        self.recurrent_init = check_choice(recurrent_init, RECURRENT_INITS, "recurrent_init")
        device = check_device(device)
        self.input_size = prod(self.in_modes)
        self.hidden_size = prod(self.hidden_modes)
        g, hs = self.gates, self.hidden_size
        # One memory budget before anything is allocated: the dense maps grow as I * G * H and G * H^2.
        dense_in = self.input_size * g * hs if input_map is None and not FORMATS[self.kind].factorized else 0
        size = dtype_bytes(dtype if dtype is not None else torch.get_default_dtype())
        nbytes = (dense_in + g * hs * hs) * size
        if nbytes > DEFAULT_MAX_BYTES:  # the specs' limit on a format's parameters, for the dense maps too
            raise ValueError(f"the dense maps of this {type(self).__name__} need {format_bytes(nbytes)}, above the "
                             f"{format_bytes(DEFAULT_MAX_BYTES)} limit on a layer's parameters; lower the hidden size "
                             "or use a factorized input map")
        check_allocation(nbytes, f"the dense maps of this {type(self).__name__}",
                         "lower the hidden size or use a factorized input map")
        if input_map is None:
            input_map = make_input_map(kind, self.in_modes, self.hidden_modes, g, rank=rank, blocks=blocks,
                                       tt_ranks=tt_ranks, tr_ranks=tr_ranks, bias=bias, device=device, dtype=dtype)
        else:
            shape = (getattr(input_map, "in_features", None), getattr(input_map, "out_features", None))
            if shape != (self.input_size, g * hs):
                raise ValueError(f"input_map maps {shape[0]} -> {shape[1]}, expected {self.input_size} -> {g * hs}")
        self.input_map = input_map
        self.hidden_map = nn.Linear(hs, g * hs, bias=bias, device=device, dtype=dtype)
        self.reset_recurrent()

    @property
    def out_modes(self) -> tuple[int, ...]:
        """Output modes of the stacked input map, (G * H_1, H_2, .., H_d)."""
        return folded_out_modes(self.hidden_modes, self.gates)

    def reset_recurrent(self, generator: torch.Generator | None = None) -> None:
        """Initialise the hidden-to-hidden map (drawing from ``generator``, default the global RNG).

        "uniform": as ``nn.LSTMCell``/``nn.GRUCell``, U(-1/sqrt(H), 1/sqrt(H)) for weight and bias.
        "orthogonal": each gate's (H, H) block orthogonal, bias as "uniform".
        """
        bound = 1.0 / math.sqrt(self.hidden_size)
        hs = self.hidden_size
        with torch.no_grad():
            if self.recurrent_init == "orthogonal":
                for k in range(self.gates):
                    nn.init.orthogonal_(self.hidden_map.weight[k * hs:(k + 1) * hs], generator=generator)
            else:
                self.hidden_map.weight.uniform_(-bound, bound, generator=generator)
            if self.hidden_map.bias is not None:
                self.hidden_map.bias.uniform_(-bound, bound, generator=generator)

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Re-initialise the input and hidden maps, drawing from ``generator`` (default: the global RNG)."""
        if isinstance(self.input_map, nn.Linear):
            reset_linear(self.input_map, generator)
        else:
            self.input_map.reset_parameters(generator=generator)
        self.reset_recurrent(generator)

    @property
    def input_map_params(self) -> int:
        """Parameters of the input-to-hidden matrix, bias excluded."""
        m = self.input_map
        return m.spec.params if hasattr(m, "spec") else m.weight.numel()

    def extra_repr(self) -> str:
        return (f"kind={self.kind!r}, in_modes={self.in_modes}, hidden_modes={self.hidden_modes}, "
                f"input_map_params={self.input_map_params:,}")

    def _check_x(self, x: torch.Tensor) -> None:
        check_tensor(x, "x")
        if x.dim() < 1 or x.shape[-1] != self.input_size:
            raise ValueError(f"{type(self).__name__}: input's last dimension is {tuple(x.shape)[-1:] or '()'}, "
                             f"expected input_size = {self.input_size}")

    def _check_state(self, t: torch.Tensor, ref: torch.Tensor, name: str) -> None:
        want = tuple(ref.shape[:-1]) + (self.hidden_size,)
        if tuple(t.shape) != want:
            raise ValueError(f"{name} has shape {tuple(t.shape)}, expected {want}")

    @classmethod
    def from_torch(cls, cell: nn.Module, in_modes, hidden_modes, kind: str = "bt", *, rank=None, blocks: int = 1,
                   tt_ranks=None, tr_ranks=None, **fit_kwargs):
        """Convert a PyTorch ``nn.LSTMCell`` / ``nn.GRUCell`` (W_ih = cell.weight_ih.T, gate-major columns).

        ``rank=None`` / ``tt_ranks=None`` / ``tr_ranks=None`` mean full rank, where the conversion is
        exact; lower ranks fit the weight with :mod:`btcore.decompose` (the format's layer's
        ``from_dense``, e.g. :meth:`BTLinear.from_dense`).
        """
        torch_type = nn.LSTMCell if cls.gates == 4 else nn.GRUCell
        if not isinstance(cell, torch_type):
            raise ValueError(f"cell must be an nn.{torch_type.__name__}, got {type(cell).__name__}")
        kind = check_choice(kind, KINDS, "kind")
        in_modes = as_modes(in_modes, "in_modes")
        hidden_modes = as_modes(hidden_modes, "hidden_modes")
        if prod(in_modes) != cell.input_size:
            raise ValueError(f"in_modes multiply to {prod(in_modes)}, but the cell's input_size is {cell.input_size}")
        if prod(hidden_modes) != cell.hidden_size:
            raise ValueError(f"hidden_modes multiply to {prod(hidden_modes)}, but the cell's hidden_size is "
                             f"{cell.hidden_size}")
        has_bias = cell.bias_ih is not None
        w = cell.weight_ih.detach().T
        b = cell.bias_ih.detach() if has_bias else None
        out = folded_out_modes(hidden_modes, cls.gates)
        factory = {"dtype": w.dtype, "device": w.device}
        if not FORMATS[kind].factorized:
            imap = nn.Linear(w.shape[0], w.shape[1], bias=has_bias, **factory)
            with torch.no_grad():
                imap.weight.copy_(cell.weight_ih)
                if has_bias:
                    imap.bias.copy_(b)
        else:
            if len(in_modes) != len(hidden_modes):
                raise ValueError(f"hidden_modes has {len(hidden_modes)} modes but in_modes has {len(in_modes)}; "
                                 f"a {FORMATS[kind].label} input map needs the same order d for both")
            # b is None for a bias-free cell, and then the map has no bias either
            controls = {"rank": rank, "blocks": blocks, "tt_ranks": tt_ranks, "tr_ranks": tr_ranks}
            # each layer's from_dense takes its format's controls positionally, in the registry's order
            args = [controls[c] for c in FORMATS[kind].controls]
            imap = LAYERS[kind].from_dense(w, in_modes, out, *args, bias=b, **fit_kwargs)
        new = cls(in_modes, hidden_modes, kind, bias=has_bias, input_map=imap, **factory)
        with torch.no_grad():
            new.hidden_map.weight.copy_(cell.weight_hh)
            if has_bias:
                new.hidden_map.bias.copy_(cell.bias_hh)
        return new


class LSTMCell(_Cell):
    """An LSTM cell with a dense, TT or BT input-to-hidden map (gates [i, f, g, o] as ``nn.LSTMCell``).

    Parameters
    ----------
    in_modes : int or sequence of int
        Input modes I_1..I_d (an int for a dense map).
    hidden_modes : int or sequence of int
        Hidden modes H_1..H_d; hidden_size = prod(hidden_modes). The input map's output modes are
        (4 H_1, H_2, .., H_d).
    kind : {"dense", "tt", "bt", "tr"}
        A key of :data:`btcore.formats.FORMATS`.
    rank, blocks : BT rank R (int or per-mode) and number of blocks N (kind "bt").
    tt_ranks : TT ranks (kind "tt").
    tr_ranks : TR bond ranks (kind "tr").
    bias : bool
        Biases b_ih and b_hh, as PyTorch.
    recurrent_init : {"uniform", "orthogonal"}
        See :meth:`reset_recurrent`.

    ``forward(x, state=None) -> (h, c)`` for x of shape (B, I) (or (I,)), state (h, c) of shape (B, H).
    """

    gates = 4

    def step(self, gx: torch.Tensor, state=None, h_mask: torch.Tensor | None = None):
        """One step from precomputed input gates ``gx = input_map(x)`` (shape (..., 4H)).

        ``h_mask`` (optional) multiplies h where it enters the recurrent map (state dropout).
        """
        if state is None:
            h = c = gx.new_zeros(gx.shape[:-1] + (self.hidden_size,))
        else:
            h, c = state
        hr = h if h_mask is None else h * h_mask
        z = gx + self.hidden_map(hr)
        i, f, g, o = z.chunk(4, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, c

    def forward(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None):
        self._check_x(x)
        if state is not None:
            if not isinstance(state, (tuple, list)) or len(state) != 2:
                raise ValueError("state must be a pair (h, c) of tensors")
            self._check_state(state[0], x, "state h")
            self._check_state(state[1], x, "state c")
        return self.step(self.input_map(x), state)


class GRUCell(_Cell):
    """A GRU cell with a dense, TT or BT input-to-hidden map (gates [r, z, n] as ``nn.GRUCell``).

    n = tanh(W_in x + b_in + r * (W_hn h + b_hn)); h' = (1 - z) * n + z * h. Parameters as
    :class:`LSTMCell`, with output modes (3 H_1, H_2, .., H_d). ``forward(x, h=None) -> h``.
    """

    gates = 3

    def step(self, gx: torch.Tensor, h: torch.Tensor | None = None, h_mask: torch.Tensor | None = None):
        """One step from precomputed input gates ``gx = input_map(x)`` (shape (..., 3H))."""
        if h is None:
            h = gx.new_zeros(gx.shape[:-1] + (self.hidden_size,))
        hr = h if h_mask is None else h * h_mask
        gh = self.hidden_map(hr)
        xr, xz, xn = gx.chunk(3, dim=-1)
        hr_, hz, hn = gh.chunk(3, dim=-1)
        r = torch.sigmoid(xr + hr_)
        z = torch.sigmoid(xz + hz)
        n = torch.tanh(xn + r * hn)
        return (1 - z) * n + z * h

    def forward(self, x: torch.Tensor, h: torch.Tensor | None = None):
        self._check_x(x)
        if h is not None:
            self._check_state(h, x, "state h")
        return self.step(self.input_map(x), h)


class _Sequence(nn.Module):
    """A batch-first recurrent layer over a cell; see :class:`LSTM` and :class:`GRU`."""

    cell_class: type = _Cell

    def __init__(self, in_modes, hidden_modes, kind: str = "bt", *, rank=4, blocks: int = 1, tt_ranks=4, tr_ranks=4,
                 bias: bool = True, input_dropout: float = 0.0, state_dropout: float = 0.0,
                 recurrent_init: str = "uniform", cell: _Cell | None = None, device=None, dtype=None):
        super().__init__()
        if cell is None:
            cell = self.cell_class(in_modes, hidden_modes, kind, rank=rank, blocks=blocks, tt_ranks=tt_ranks,
                                   tr_ranks=tr_ranks, bias=bias, recurrent_init=recurrent_init, device=device, dtype=dtype)
        elif not isinstance(cell, self.cell_class):
            raise ValueError(f"cell must be a {self.cell_class.__name__}, got {type(cell).__name__}")
        self.cell = cell
        self.input_dropout = check_dropout(input_dropout, "input_dropout")
        self.state_dropout = check_dropout(state_dropout, "state_dropout")
        #: Where the dropout masks come from (a ``torch.Generator`` on the input's device); None: the global RNG.
        self.dropout_generator: torch.Generator | None = None

    @classmethod
    def from_cell(cls, cell: _Cell, input_dropout: float = 0.0, state_dropout: float = 0.0):
        """A sequence layer around an existing cell (e.g. one made with ``from_torch``)."""
        return cls(cell.in_modes, cell.hidden_modes, cell.kind, cell=cell, input_dropout=input_dropout,
                   state_dropout=state_dropout)

    @property
    def input_size(self) -> int:
        return self.cell.input_size

    @property
    def hidden_size(self) -> int:
        return self.cell.hidden_size

    def extra_repr(self) -> str:
        return f"input_dropout={self.input_dropout}, state_dropout={self.state_dropout}"

    def _initial(self, state, batch: int, ref: torch.Tensor):
        raise NotImplementedError  # pragma: no cover

    def _step(self, gx, state, h_mask):
        """One step from the precomputed input gates (the cell's :meth:`step`)."""
        return self.cell.step(gx, state, h_mask)

    def forward(self, x: torch.Tensor, state=None, lengths: torch.Tensor | None = None):
        """Run over ``x`` of shape (B, T, F), T >= 1 (``ValueError`` for T = 0; B = 0 gives empty outputs).

        Returns ``(outputs, final_state)``: outputs (B, T, H) (zero after a sequence's length);
        final_state is (h, c) for LSTM, h for GRU, each (B, H), taken at each sequence's last valid
        step when ``lengths`` (B,) is given.
        """
        check_tensor(x, "x")
        if x.dim() != 3 or x.shape[-1] != self.input_size:
            raise ValueError(f"{type(self).__name__}: x must have shape (batch, time, {self.input_size}), "
                             f"got {tuple(x.shape)}")
        b, t, f = x.shape
        if t == 0:
            raise ValueError(f"{type(self).__name__}: x has sequence length 0; every sequence needs at least one "
                             "time step")
        mask = None
        if lengths is not None:
            lengths = torch.as_tensor(lengths, device=x.device)
            if lengths.is_floating_point() or lengths.is_complex() or lengths.dtype == torch.bool:
                raise TypeError(f"lengths must be integers (the number of valid steps of each sequence), got "
                                f"{lengths.dtype}")
            if lengths.shape != (b,):
                raise ValueError(f"lengths must have shape ({b},), got {tuple(lengths.shape)}")
            if bool((lengths < 1).any()) or bool((lengths > t).any()):
                raise ValueError(f"lengths must be between 1 and the sequence length {t}")
            mask = torch.arange(t, device=x.device)[None, :] < lengths[:, None]  # (B, T)
        if b == 0:  # an empty batch: correctly shaped empty outputs and state (zero gradients), no steps
            zero = x.sum() * 0  # keeps the graph to x, so backward works and gives zero gradients
            return x.new_zeros(0, t, self.hidden_size) + zero, self._initial(state, 0, x.new_zeros(0, 1) + zero)
        if self.training and self.input_dropout > 0:
            if self.dropout_generator is None:
                x = nn.functional.dropout(x, self.input_dropout, training=True)
            else:  # the same masks as F.dropout, from this layer's own generator
                keep = 1.0 - self.input_dropout
                x = x * torch.bernoulli(torch.full_like(x, keep), generator=self.dropout_generator) / keep
        gx = self.cell.input_map(x.reshape(b * t, f)).reshape(b, t, -1)
        h_mask = None
        if self.training and self.state_dropout > 0:
            keep = 1.0 - self.state_dropout
            h_mask = torch.bernoulli(gx.new_full((b, self.hidden_size), keep), generator=self.dropout_generator) / keep
        state = self._initial(state, b, gx)
        outs = []
        for step in range(t):
            new = self._step(gx[:, step], state, h_mask)
            if mask is not None:
                m = mask[:, step, None]
                new = self._where(m, new, state)
                outs.append(self._h(new) * m)
            else:
                outs.append(self._h(new))
            state = new
        return torch.stack(outs, 1), state


class LSTM(_Sequence):
    """Batch-first LSTM over (B, T, F) with a dense, TT, BT or TR input map; see :class:`LSTMCell`.

    ``forward(x, state=None, lengths=None) -> (outputs (B, T, H), (h, c))``; dropout on the input
    (``input_dropout``) and on the state entering the recurrent map (``state_dropout``, one mask
    per sequence), in training mode only.
    """

    cell_class = LSTMCell

    def _initial(self, state, batch, ref):
        if state is None:
            z = ref.new_zeros(batch, self.hidden_size)
            return z, z
        if not isinstance(state, (tuple, list)) or len(state) != 2:
            raise ValueError("state must be a pair (h, c) of tensors of shape (B, H)")
        for name, s in zip("hc", state):
            if tuple(s.shape) != (batch, self.hidden_size):
                raise ValueError(f"state {name} has shape {tuple(s.shape)}, expected ({batch}, {self.hidden_size})")
        return tuple(state)

    @staticmethod
    def _where(m, new, old):
        return torch.where(m, new[0], old[0]), torch.where(m, new[1], old[1])

    @staticmethod
    def _h(state):
        return state[0]


class GRU(_Sequence):
    """Batch-first GRU over (B, T, F) with a dense, TT, BT or TR input map; see :class:`GRUCell` and :class:`LSTM`.

    ``forward(x, h=None, lengths=None) -> (outputs (B, T, H), h)``.
    """

    cell_class = GRUCell

    def _initial(self, state, batch, ref):
        if state is None:
            return ref.new_zeros(batch, self.hidden_size)
        if not isinstance(state, torch.Tensor) or tuple(state.shape) != (batch, self.hidden_size):
            shape = tuple(state.shape) if isinstance(state, torch.Tensor) else type(state).__name__
            raise ValueError(f"state h has shape {shape}, expected ({batch}, {self.hidden_size})")
        return state

    @staticmethod
    def _where(m, new, old):
        return torch.where(m, new, old)

    @staticmethod
    def _h(state):
        return state
