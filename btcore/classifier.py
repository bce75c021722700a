"""Sequence classifiers built from the recurrent layers of :mod:`btcore.rnn`, and the paper's UCF11 setting.

:class:`ClassifierConfig` holds everything that defines a model (validated on construction, JSON
round trip); :class:`SequenceClassifier` is dropout on the input, a dense/TT/BT/TR LSTM or GRU, and a
linear head on the last or mean hidden state; :func:`ucf11_config` is the configuration of Ye et al.
2018 (docs/reference.md, "The paper's UCF11 setting").
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .checks import check_dropout, check_tensor
from .formats import FORMATS
from .layer_init import reset_linear
from .rnn import (CELLS, GATES, GRU, KINDS, LSTM, READOUTS, RECURRENT_INITS, UCF11_BLOCKS, UCF11_CLASSES,
                  UCF11_HIDDEN_MODES, UCF11_IN_MODES, UCF11_RANK, UCF11_TT_RANKS, folded_out_modes)
from .shapes import as_modes, check_choice, check_positive_int, check_rank_value, prod

__all__ = ["ClassifierConfig", "SequenceClassifier", "ucf11_config"]

#: How :meth:`ClassifierConfig.describe` shows each rank control.
_CONTROL_TEXT = {"rank": "R={}", "blocks": "N={}", "tt_ranks": "ranks {}", "tr_ranks": "ranks {}"}


@dataclass
class ClassifierConfig:
    """Everything that defines a :class:`SequenceClassifier`; validated on construction.

    Fields
    ------
    kind : "dense" | "tt" | "bt" | "tr"
        Format of the input-to-hidden map, a key of :data:`btcore.formats.FORMATS`.
    cell : "lstm" | "gru"
    in_modes : tuple of int
        Input modes; the frame feature size is their product.
    hidden_modes : tuple of int
        Hidden modes; hidden size is their product (4x4x4x4 = 256). For a factorized kind the same order d
        as ``in_modes``.
    rank : int or tuple
        BT Tucker rank R (or per-mode ranks), kind "bt".
    blocks : int
        BT blocks N, kind "bt".
    tt_ranks : int or tuple
        TT ranks, kind "tt".
    tr_ranks : int or tuple
        TR bond ranks (the last closes the ring), kind "tr".
    classes : int
        Number of classes.
    dropout : float in [0, 1)
        Dropout on the input and on the recurrent state (training only).
    readout : "last" | "mean"
        Classify the last hidden state or the mean over time steps.
    recurrent_init : "orthogonal" | "uniform"
        Init of the (dense) hidden-to-hidden weights; orthogonal as in TT-RNN.
    """

    kind: str = "bt"
    cell: str = "lstm"
    in_modes: tuple = UCF11_IN_MODES
    hidden_modes: tuple = UCF11_HIDDEN_MODES
    rank: Any = UCF11_RANK
    blocks: int = UCF11_BLOCKS
    tt_ranks: Any = UCF11_TT_RANKS
    tr_ranks: Any = 4
    classes: int = 11
    dropout: float = 0.25
    readout: str = "last"
    recurrent_init: str = "orthogonal"

    def __post_init__(self):
        self.validate()

    def validate(self) -> "ClassifierConfig":
        """Check every field (normalising lists to tuples); raise ``ValueError`` naming the bad field."""
        check_choice(self.kind, KINDS, "kind")
        check_choice(self.cell, CELLS, "cell")
        check_choice(self.readout, READOUTS, "readout")
        check_choice(self.recurrent_init, RECURRENT_INITS, "recurrent_init")
        self.in_modes = as_modes(self.in_modes, "in_modes")
        self.hidden_modes = as_modes(self.hidden_modes, "hidden_modes")
        self.classes = check_positive_int(self.classes, "classes")
        self.dropout = check_dropout(self.dropout, "dropout")
        self.blocks = check_positive_int(self.blocks, "blocks")
        self.rank = check_rank_value(self.rank, "rank")
        self.tt_ranks = check_rank_value(self.tt_ranks, "tt_ranks")
        self.tr_ranks = check_rank_value(self.tr_ranks, "tr_ranks")
        fmt = FORMATS[self.kind]
        if fmt.factorized and len(self.in_modes) != len(self.hidden_modes):
            raise ValueError(
                f"hidden_modes has {len(self.hidden_modes)} modes but in_modes has {len(self.in_modes)}; "
                f"a {fmt.label} input map needs the same order d for both"
            )
        if fmt.factorized:
            try:
                self.spec()
            except ValueError as e:  # the spec's messages name the rank field and the fix
                raise ValueError(f"{'/'.join(fmt.controls)} for the {fmt.label} input map {self.in_modes} -> "
                                 f"{self.out_modes}: {e}") from None
        return self

    # -- derived sizes -------------------------------------------------------------------------
    @property
    def gates(self) -> int:
        return GATES[self.cell]

    @property
    def input_size(self) -> int:
        """Features per frame, prod(in_modes)."""
        return prod(self.in_modes)

    @property
    def hidden_size(self) -> int:
        """Hidden units, prod(hidden_modes)."""
        return prod(self.hidden_modes)

    @property
    def out_modes(self) -> tuple[int, ...]:
        """Output modes of the input-to-hidden map, (G * H_1, H_2, .., H_d)."""
        return folded_out_modes(self.hidden_modes, self.gates)

    def controls(self) -> dict:
        """The rank controls of every format (:data:`btcore.formats.RANK_CONTROLS`), from this config."""
        return {"rank": self.rank, "blocks": self.blocks, "tt_ranks": self.tt_ranks, "tr_ranks": self.tr_ranks}

    def spec(self):
        """The input-to-hidden map's format spec (``DenseSpec``, ``TTSpec``, ``BTSpec`` or ``TRSpec``)."""
        fmt = FORMATS[self.kind]
        if not fmt.factorized:
            return fmt.spec_for(self.input_size, self.gates * self.hidden_size)
        return fmt.spec_for(self.in_modes, self.out_modes, **self.controls())

    def input_map_params(self) -> int:
        """Parameters of the input-to-hidden matrix, without bias (3,392 for the UCF11 BT-LSTM)."""
        return self.spec().params

    def num_params(self) -> int:
        """All trainable parameters of the classifier (= ``sum(p.numel())`` of the built model)."""
        g, h = self.gates, self.hidden_size
        return (self.input_map_params() + g * h  # input map + b_ih
                + g * h * h + g * h  # hidden map + b_hh
                + h * self.classes + self.classes)  # head

    def to_dict(self) -> dict:
        """Plain-Python dict (JSON-friendly: tuples become lists when serialised)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ClassifierConfig":
        """Inverse of :meth:`to_dict`; unknown keys raise ``ValueError``."""
        names = {f.name for f in dataclasses.fields(cls)}
        extra = sorted(set(d) - names)
        if extra:
            raise ValueError(f"unknown ClassifierConfig field(s) {extra}; known: {sorted(names)}")
        return cls(**d)

    def describe(self) -> str:
        """Short label such as ``'BT-LSTM (R=4, N=2)'``."""
        fmt = FORMATS[self.kind]
        name = f"{fmt.label + '-' if fmt.factorized else ''}{self.cell.upper()}"
        controls = self.controls()
        shown = [_CONTROL_TEXT[c].format(controls[c]) for c in FORMATS[self.kind].controls]
        if shown:
            return f"{name} ({', '.join(shown)})"
        return name


class SequenceClassifier(nn.Module):
    """Recurrent layer over frames (B, T, F) -> last or mean hidden state -> linear head -> logits (B, classes).

    Built from a :class:`ClassifierConfig`; ``forward(x, lengths=None)``. Frames with more than one
    feature axis, (B, T, *frame), are flattened when their size matches ``config.input_size``.

    ``generator`` (a seeded CPU ``torch.Generator``): every initial weight is drawn from it instead of
    the global RNG, so models built at the same time in several threads get the weights they would
    get alone. ``model.rnn.dropout_generator`` does the same for the dropout masks.
    """

    def __init__(self, config: ClassifierConfig, *, generator: torch.Generator | None = None):
        super().__init__()
        if isinstance(config, dict):
            config = ClassifierConfig.from_dict(config)
        if not isinstance(config, ClassifierConfig):
            raise ValueError(f"config must be a ClassifierConfig, got {type(config).__name__}")
        self.config = dataclasses.replace(config)  # a validated copy
        c = self.config
        layer = LSTM if c.cell == "lstm" else GRU
        self.rnn = layer(c.in_modes, c.hidden_modes, c.kind, **c.controls(), input_dropout=c.dropout,
                         state_dropout=c.dropout, recurrent_init=c.recurrent_init)
        self.head = nn.Linear(c.hidden_size, c.classes)
        if generator is not None:  # every initial weight from this model's own generator
            self.rnn.cell.reset_parameters(generator)
            reset_linear(self.head, generator)

    @property
    def num_params(self) -> int:
        """Trainable parameters (equal to ``config.num_params()``)."""
        return sum(p.numel() for p in self.parameters())

    @property
    def input_map(self) -> nn.Module:
        """The input-to-hidden map (``nn.Linear`` or the format's layer, :data:`btcore.layers.LAYERS`)."""
        return self.rnn.cell.input_map

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (B, classes) of ``x`` (B, T, F) or (B, T, *frame); T >= 1, B = 0 gives (0, classes)."""
        c = self.config
        check_tensor(x, "x")
        if x.dim() > 3 and prod(x.shape[2:]) == c.input_size:
            x = x.flatten(2)
        if x.dim() != 3 or x.shape[-1] != c.input_size:
            raise ValueError(f"x must have shape (batch, time, {c.input_size}) (frames of "
                             f"{' x '.join(map(str, c.in_modes))} features), got {tuple(x.shape)}")
        outputs, state = self.rnn(x, lengths=lengths)
        if c.readout == "last":
            h = state[0] if c.cell == "lstm" else state
        elif lengths is None:
            h = outputs.mean(1)
        else:
            n = torch.as_tensor(lengths, device=x.device).to(outputs.dtype)
            h = outputs.sum(1) / n[:, None]  # outputs are zero past each length
        return self.head(h)


def ucf11_config(kind: str = "bt", cell: str = "lstm", **overrides) -> ClassifierConfig:
    """The UCF11 setting of Ye et al. 2018: frames 8x20x20x18 = 57,600, hidden 4x4x4x4 = 256,
    BT R=4, N=2 (3,392 input-map parameters for LSTM), TT ranks 4 (3,360), 11 classes, dropout 0.25.

    The input map's output modes are 16x4x4x4 (LSTM) or 12x4x4x4 (GRU). ``overrides`` replace fields.
    """
    base = dict(kind=kind, cell=cell, in_modes=UCF11_IN_MODES, hidden_modes=UCF11_HIDDEN_MODES, rank=UCF11_RANK,
                blocks=UCF11_BLOCKS, tt_ranks=UCF11_TT_RANKS, classes=UCF11_CLASSES, dropout=0.25, readout="last",
                recurrent_init="orthogonal")
    base.update(overrides)
    return ClassifierConfig(**base)
