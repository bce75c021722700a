"""What a training task is: the one interface the trainer, the race, the sweep and the CLI use.

A task (action recognition, image generation, image captioning) says what its data are, which
model it trains around a dense, TT or BT input map, what its loss and validation metrics are, what
"learnt nothing" means for it (the level a stalled run stays at) and what a page draws beside
the curves (:meth:`Task.preview`). The training loop knows nothing else about it: it moves the
tensors of a batch to the device, calls :meth:`Task.loss`, sums what the task reports per batch
(over steps and over processes) and asks the task for the means.

Batches are tuples of tensors, ``data.get(indices)``; every sum a task reports per batch is a plain
float keyed by name, with ``"n"`` (the examples in the batch) among them, so that sums add over
batches and over DistributedDataParallel processes and the means are exact at any split.
"""

from __future__ import annotations

import dataclasses
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from ..shapes import check_positive_int, check_rank_value, factorize, format_ints

__all__ = ["Chance", "DeferredChance", "Task", "Batch", "to_device", "optimizer_states", "step_memory", "DictRecord",
           "ImageMapConfig", "RANK_FIELDS", "lstm_controls"]

#: A batch: the tensors ``data.get(indices)`` returns (for action: clips and labels).
Batch = tuple


@dataclass(frozen=True)
class Chance:
    """The validation metric of a model that learnt nothing, and how far from it counts as learning.

    Parameters
    ----------
    value : float
        The metric at chance (action: the accuracy of guessing among balanced classes).
    margin : float
        A best value within ``margin`` of ``value`` (on the wrong side) counts as "still at chance".
    error : float or None
        The standard error of the metric of a model at chance on this validation set (action: the
        binomial one of an accuracy), when it is known; it decides whether a run is long and its
        validation set large enough to say the model learns nothing (see :mod:`btcore.train.outcome`).
        Not compared: two levels are equal by ``value`` and ``margin``.
    """

    value: float
    margin: float
    error: float | None = dataclasses.field(default=None, compare=False)

    def learnt(self, best: float, higher_is_better: bool) -> bool:
        """Whether ``best`` is beyond chance by more than the margin, in the metric's good direction."""
        if not math.isfinite(best):
            return False
        return best > self.value + self.margin if higher_is_better else best < self.value - self.margin


class DeferredChance:
    """A :class:`Chance` worked out when first asked (None from ``compute``: the run is never called stalled).

    For a level that costs work (a model's score at initialisation, evaluated on a copy of its
    initial weights): a run that never reaches its stall check never pays it, and its first steps
    come without waiting for it.
    """

    def __init__(self, compute: Callable[[], Chance | None]):
        self._compute: Callable[[], Chance | None] | None = compute
        self._chance: Chance | None = None

    def resolve(self) -> Chance | None:
        """The chance level (computed once)."""
        if self._compute is not None:
            self._chance, self._compute = self._compute(), None
        return self._chance

    @property
    def value(self) -> float:
        c = self.resolve()
        return float("nan") if c is None else c.value

    @property
    def margin(self) -> float:
        c = self.resolve()
        return float("nan") if c is None else c.margin

    @property
    def error(self) -> float | None:
        c = self.resolve()
        return None if c is None else c.error

    def learnt(self, best: float, higher_is_better: bool) -> bool:
        """:meth:`Chance.learnt` of the resolved level (True when there is none)."""
        c = self.resolve()
        return True if c is None else c.learnt(best, higher_is_better)


class Task(ABC):
    """One training task. Subclasses set the class attributes and implement the abstract methods.

    Class attributes
    ----------------
    name : str
        The task's key in the registry and on the command line (``"action"``).
    metric : str
        Key of the validation metric in :meth:`val_metrics` (``"val_acc"``); sweeps and tables rank by it.
    higher_is_better : bool
        Direction of ``metric``.
    metric_label : str
        How messages name the metric (``"validation accuracy"``).
    config_type : type
        The task's model configuration class (with ``from_dict``): :meth:`config_from_dict` and
        :meth:`is_model_config` follow from it.

    Instances hold the task's data options (sizes, a folder); the methods the loop calls depend
    only on their arguments, so one instance serves every run of a race.
    """

    name: str = ""
    metric: str = ""
    higher_is_better: bool = True
    metric_label: str = ""
    config_type: type = type(None)

    # -- data ----------------------------------------------------------------------------------------
    @abstractmethod
    def data(self, seed: int) -> tuple[Any, Any]:
        """``(train, val)`` data for ``seed``: objects with ``len()`` and ``get(indices) -> Batch``; deterministic."""

    def load_data(self, seed: int, *, should_stop: Callable[[], bool] | None = None,
                  progress: Callable[[float], None] | None = None) -> tuple[Any, Any] | None:
        """:meth:`data` with a stop hook and progress, for a caller that must stay stoppable (the app's worker).

        ``should_stop()`` is asked between the pieces of the work (None is returned once it says
        True); ``progress(fraction)`` is called after each piece, with 1.0 at the end. By default
        the data are one piece; a task whose data take long overrides this with finer pieces.
        """
        if should_stop is not None and should_stop():
            return None
        out = self.data(seed)
        if progress is not None:
            progress(1.0)
        return out

    def check_data(self, data, model_config, what: str) -> None:
        """Raise ``ValueError`` (starting with ``what``) when ``data`` cannot train ``model_config``'s model."""
        if len(data) == 0:
            raise ValueError(f"{what}: the data set is empty")

    def data_bytes(self) -> dict[str, int]:
        """Bytes the data hold in memory at once, keyed by the command-line flag that sets each (estimated; {}: small)."""
        return {}

    @abstractmethod
    def example_batch(self, model_config, batch: int, frames: int | None) -> Batch:
        """A batch of random inputs of the model's shapes (for timing a model before its data exist)."""

    # -- model ---------------------------------------------------------------------------------------
    @abstractmethod
    def model_config(self, kind: str, **controls) -> Any:
        """The model configuration for input-map ``kind`` ("dense", "tt", "bt") and the shared controls.

        Controls are the same for every task: ``rank``, ``blocks`` (BT), ``tt_ranks`` (TT), ``d``,
        ``in_modes``, ``hidden_modes``, ``hidden``, ``cell``, ``dropout``; a task may take more.
        The configuration has ``kind``, ``rank``, ``blocks``, ``describe()``, ``input_map_params()``,
        ``to_dict()`` and raises ``ValueError`` naming the field that does not fit.
        """

    def config_from_dict(self, d: dict) -> Any:
        """The model configuration saved by its ``to_dict()`` (checkpoints, histories)."""
        return self.config_type.from_dict(d)

    def is_model_config(self, config) -> bool:
        """Whether ``config`` is this task's model configuration type."""
        return isinstance(config, self.config_type)

    @abstractmethod
    def build_model(self, config, *, init: torch.Generator) -> nn.Module:
        """The model of ``config``, every initial weight drawn from ``init`` (on the CPU)."""

    def seed_dropout(self, model: nn.Module, generator: torch.Generator) -> None:
        """Give the model's dropout its own generator (on the model's device); no dropout: nothing to do."""

    # -- loss and metrics ----------------------------------------------------------------------------
    @abstractmethod
    def loss(self, model: nn.Module, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        """``(loss to minimise, sums)`` on a training batch; ``sums`` hold ``"n"`` and what :meth:`train_means` needs."""

    @abstractmethod
    def train_means(self, sums: dict[str, float]) -> dict[str, float]:
        """Training metrics from summed :meth:`loss` sums; must hold ``"train_loss"``."""

    @abstractmethod
    def eval_sums(self, model: nn.Module, batch: Batch) -> dict[str, float]:
        """Sums on a validation batch (under ``torch.no_grad``, model in eval mode); with ``"n"``."""

    @abstractmethod
    def val_metrics(self, sums: dict[str, float]) -> dict[str, float]:
        """Validation metrics from summed :meth:`eval_sums`; must hold ``"val_loss"`` and :attr:`metric`."""

    def evaluate(self, model: nn.Module, val_data, *, batch: int = 64, indices: Sequence[int] | None = None,
                 device: torch.device | str = "cpu", reduce: Callable[[list[float]], list[float]] | None = None,
                 should_stop: Callable[[], bool] | None = None) -> dict[str, float] | None:
        """Validation metrics of ``model`` on ``val_data`` (or on its ``indices``); None when stopped.

        ``reduce`` sums a list of floats over processes (DistributedDataParallel: each process
        evaluates its share of the indices). The model is put back in training mode afterwards.
        """
        idx = np.arange(len(val_data)) if indices is None else np.asarray(indices, dtype=np.int64)
        model.eval()
        total: dict[str, float] = {}
        try:
            with torch.no_grad():
                for s in range(0, len(idx), batch):
                    if should_stop is not None and should_stop():
                        return None
                    sums = self.eval_sums(model, to_device(val_data.get(idx[s:s + batch]), device))
                    for k, v in sums.items():
                        total[k] = total.get(k, 0.0) + v
        finally:
            model.train()
        keys = sorted(set(total) | {"n"})
        values = [total.get(k, 0.0) for k in keys]
        if reduce is not None:
            values = reduce(values)
        total = dict(zip(keys, values))
        if total["n"] == 0:
            return {k: float("nan") for k in self.val_metrics({**total, "n": 1.0})}
        return self.val_metrics(total)

    # -- outcomes ------------------------------------------------------------------------------------
    @abstractmethod
    def chance(self, train_data, val_data, model_config) -> Chance | None:
        """What :attr:`metric` is for a model that learnt nothing (None: the run is never called stalled)."""

    def run_chance(self, model: nn.Module, train_data, val_data, model_config,
                   device: torch.device | str = "cpu") -> Chance | DeferredChance | None:
        """:meth:`chance` for a run whose ``model`` (on ``device``) has not taken a step yet; the trainer asks this.

        A task whose "nothing learnt" level is the model's own score at initialisation overrides it;
        by default it is :meth:`chance`.
        """
        return self.chance(train_data, val_data, model_config)

    def format_metric(self, value: float) -> str:
        """The metric as messages write it."""
        return f"{value:.4g}"

    def step_bytes(self, model_config, batch: int, optimizer: str = "adam") -> dict[str, int] | None:
        """Estimated bytes ``{"params", "low", "training"}`` of one training step on ``batch`` examples (:func:`step_memory`;
        ``training`` the high end); None: the trainer's own estimate.
        """
        return None

    #: What a stall message asks the user to check in the data (after "the model learns nothing ...: ").
    data_check: str = "check the data"

    #: Defaults of the run settings that differ by task (``epochs``, ``batch``, ``hidden``); the trainer's otherwise.
    defaults: dict = {}

    # -- what a page draws beside the curves ---------------------------------------------------------
    @abstractmethod
    def preview(self, model: nn.Module, val_data, *, count: int = 8, device: torch.device | str = "cpu") -> dict:
        """A JSON-able record of the model's output on the first ``count`` validation examples."""

    def result_files(self, model: nn.Module, val_data) -> dict[str, bytes]:
        """Files a results folder gets for a trained model, by name (``"samples.png"``); written as ``<stem>_<run>.<ext>``."""
        return {}


class DictRecord:
    """``to_dict`` / ``from_dict`` (JSON round trip) for a validated configuration dataclass."""

    def to_dict(self) -> dict:
        """Plain-Python dict of the fields (tuples become lists when serialised to JSON)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict):
        """Inverse of :meth:`to_dict`; unknown keys raise ``ValueError`` naming them."""
        names = {f.name for f in dataclasses.fields(cls)}
        extra = sorted(set(d) - names)
        if extra:
            raise ValueError(f"unknown {cls.__name__} field(s) {extra}; known: {sorted(names)}")
        return cls(**d)


#: The configuration field a format's rank error is about, by kind of map.
RANK_FIELDS = {"bt": "rank/blocks", "tt": "tt_ranks", "tr": "tr_ranks"}
_KIND_PREFIX = {"bt": "BT-", "tt": "TT-", "tr": "TR-"}


class ImageMapConfig(DictRecord):
    """What the configurations of the LSTM models around dense/TT/BT/TR image maps share (generation, captioning).

    A subclass is a dataclass with the fields ``kind``, ``rank`` and ``blocks`` (BT), ``tt_ranks``
    (TT) and ``tr_ranks`` (TR), and sets :attr:`model_label` (``"DRAW"``); it gets their checks
    (:meth:`check_rank_fields`), the controls a map's format reads (:meth:`controls`), its
    rank errors (:meth:`map_error`), its label (:meth:`describe`) and the JSON round trip.
    """

    #: The dense model's label; the others are prefixed with their format ("BT-DRAW").
    model_label = ""

    def check_rank_fields(self) -> None:
        """Check (and normalise) ``blocks``, ``rank``, ``tt_ranks`` and ``tr_ranks``; ValueError naming the field."""
        self.blocks = check_positive_int(self.blocks, "blocks")
        self.rank = check_rank_value(self.rank, "rank")
        self.tt_ranks = check_rank_value(self.tt_ranks, "tt_ranks")
        self.tr_ranks = check_rank_value(self.tr_ranks, "tr_ranks")

    def controls(self) -> dict:
        """The rank controls of every format (each map's format reads its own)."""
        return {"rank": self.rank, "blocks": self.blocks, "tt_ranks": self.tt_ranks, "tr_ranks": self.tr_ranks}

    def map_error(self, name: str, in_modes, out_modes, error: Exception) -> ValueError:
        """The error of a map ``name`` ("image map") whose format refused the ranks, naming the field to change."""
        field = RANK_FIELDS.get(self.kind, "image map")
        return ValueError(f"{field} for the {self.kind.upper()} {name} {format_ints(in_modes)} -> "
                          f"{format_ints(out_modes)}: {error}")

    @property
    def cell(self) -> str:
        """The recurrent cell (always ``"lstm"``)."""
        return "lstm"

    def describe(self) -> str:
        """Short label such as ``'BT-DRAW (R=4, N=2)'``, ``'TT-DRAW (ranks 4)'`` or ``'DRAW'``."""
        label = _KIND_PREFIX.get(self.kind, "") + self.model_label
        if self.kind == "bt":
            return f"{label} (R={self.rank}, N={self.blocks})"
        if self.kind == "tt":
            return f"{label} (ranks {self.tt_ranks})"
        if self.kind == "tr":
            return f"{label} (ranks {self.tr_ranks})"
        return label


def lstm_controls(controls: dict, default_hidden: int, *, cells: str, model: str) -> dict:
    """The shared controls (see :meth:`Task.model_config`) of a model of LSTMs without dropout, checked.

    Returns ``{"d", "hidden", "hidden_modes", "rank", "blocks", "tt_ranks", "tr_ranks"}`` (``hidden``
    defaults to ``default_hidden``, ``hidden_modes`` to ``factorize(hidden, d)``, the ranks to 4 and
    N to 2). A ``cell`` other than "lstm" is refused saying ``cells`` (what the model's cells are), a
    dropout above 0 saying that ``model`` has none.
    """
    d = check_positive_int(controls.get("d", 4), "d")
    if controls.get("cell", "lstm") != "lstm":
        raise ValueError(f"cell: {cells}; got {controls['cell']!r}")
    if controls.get("dropout", 0.0):
        raise ValueError(f"dropout: {model} has no dropout; leave it at 0")
    hidden = check_positive_int(controls.get("hidden") or default_hidden, "hidden")
    return {"d": d, "hidden": hidden, "hidden_modes": tuple(controls.get("hidden_modes") or factorize(hidden, d)),
            "rank": controls.get("rank", 4), "blocks": controls.get("blocks", 2),
            "tt_ranks": controls.get("tt_ranks", 4), "tr_ranks": controls.get("tr_ranks", 4)}


def step_memory(params: int, activations: int, optimizer: str = "adam") -> dict[str, int]:
    """Bytes ``{"params", "low", "training"}`` of a float32 training step: ``params`` weights, about ``activations`` kept values.

    A step holds the weights, their gradients and the optimiser's state (:func:`optimizer_states`):
    known exactly. It also holds the activations the backward pass keeps, about ``activations``
    float32 values; which intermediates a format's contraction keeps varies by up to a factor of two
    either way, so the range runs from half their bytes (``low``) to twice them (``training``: as if
    each had its gradient at once, the safe end that memory checks use).
    """
    p, a = int(params), int(activations)
    fixed = 4 * p * (2 + optimizer_states(optimizer))
    return {"params": 4 * p, "low": fixed + 2 * a, "training": fixed + 8 * a}


def optimizer_states(optimizer: str) -> int:
    """Tensors of the parameters' size an optimiser keeps (Adam, AdamW: 2; RMSprop and SGD with momentum: 1)."""
    return {"adam": 2, "adamw": 2, "rmsprop": 1, "sgd": 1}.get(optimizer, 2)


def to_device(batch: Batch, device) -> Batch:
    """The batch's tensors on ``device`` (non-blocking where the copy allows)."""
    return tuple(t.to(device, non_blocking=True) if isinstance(t, torch.Tensor) else t for t in batch)

