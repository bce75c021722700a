"""Run configuration: :class:`TrainConfig`, :class:`RunResult`, model configurations, devices and threads."""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field

import torch
from torch import nn

from ..data import parse_frame_shape
from ..classifier import ClassifierConfig
from ..shapes import check_choice, check_positive_int, factorize

__all__ = ["OPTIMIZERS", "TrainConfig", "RunResult", "model_config", "fit_model_config", "check_device",
           "pick_device", "device_name", "cpu_count", "set_cpu_threads", "estimate_memory"]

OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")


def model_config(kind: str = "bt", cell: str = "lstm", *, frame_shape=(3, 32, 32), hidden: int = 64, d: int = 4,
                 rank=4, blocks: int = 2, tt_ranks=4, classes: int = 8, dropout: float = 0.0, readout: str = "last",
                 in_modes=None, hidden_modes=None, recurrent_init: str = "orthogonal") -> ClassifierConfig:
    """A :class:`~btcore.classifier.ClassifierConfig` for frames of ``frame_shape``.

    Input modes default to ``factorize(C*H*W, d)`` (3x32x32 = 3,072 -> 8x8x8x6), hidden modes to
    ``factorize(hidden, d)`` (64 -> 4x4x2x2, 256 -> 4x4x4x4). Raises ``ValueError`` (from the
    config's validation) when a rank does not fit the modes.
    """
    c, h, w = parse_frame_shape(frame_shape)
    d = check_positive_int(d, "d")
    in_modes = tuple(in_modes) if in_modes is not None else factorize(c * h * w, d)
    hidden_modes = tuple(hidden_modes) if hidden_modes is not None else factorize(check_positive_int(hidden, "hidden"), d)
    return ClassifierConfig(kind=kind, cell=cell, in_modes=in_modes, hidden_modes=hidden_modes, rank=rank,
                            blocks=blocks, tt_ranks=tt_ranks, classes=classes, dropout=dropout, readout=readout,
                            recurrent_init=recurrent_init)


def fit_model_config(kind: str, cell: str = "lstm", *, frame_shape=(3, 32, 32), hidden: int = 64, d: int = 4,
                     rank=4, blocks: int = 2, tt_ranks=4, classes: int = 8, dropout: float = 0.0,
                     readout: str = "last", in_modes=None, hidden_modes=None) -> tuple[ClassifierConfig, list[str]]:
    """Like :func:`model_config`, falling back to defaults (d=4, R=4, N=2, TT ranks 4) for what does not fit.

    ``in_modes`` / ``hidden_modes`` (e.g. the Shapes page's 8x20x20x18) are used when their product is
    the frame size / hidden size and their order is ``d``; otherwise the sizes are factorized.
    Returns ``(config, notes)``; each note says what was replaced and why.
    """
    c, h, w = parse_frame_shape(frame_shape)
    if in_modes is not None and (math.prod(in_modes) != c * h * w or len(in_modes) != d):
        in_modes = None
    if hidden_modes is not None and (math.prod(hidden_modes) != hidden or len(hidden_modes) != d):
        hidden_modes = None
    notes: list[str] = []
    tries = [dict(d=d, rank=rank, blocks=blocks, tt_ranks=tt_ranks, in_modes=in_modes, hidden_modes=hidden_modes)]
    if in_modes is not None or hidden_modes is not None:
        tries.append(dict(d=d, rank=rank, blocks=blocks, tt_ranks=tt_ranks, in_modes=None, hidden_modes=None))
    if d != 4:
        tries.append(dict(d=4, rank=rank, blocks=blocks, tt_ranks=tt_ranks))
    tries += [dict(d=4, rank=4, blocks=blocks, tt_ranks=4), dict(d=4, rank=4, blocks=2, tt_ranks=4),
              dict(d=4, rank=2, blocks=2, tt_ranks=2), dict(d=3, rank=2, blocks=1, tt_ranks=2)]
    first_error = None
    for t in tries:
        try:
            cfg = model_config(kind, cell, frame_shape=frame_shape, hidden=hidden, classes=classes, dropout=dropout,
                               readout=readout, **t)
        except ValueError as exc:
            first_error = first_error or exc
            continue
        if t != tries[0]:
            changed = ", ".join(f"{k}={t.get(k)}" for k in t if t.get(k) != tries[0].get(k) and t.get(k) is not None)
            notes.append(f"{kind.upper()}: {first_error} -> using {changed or 'factorized modes'}")
        return cfg, notes
    raise first_error  # type: ignore[misc]


@dataclass
class TrainConfig:
    """One training run: the model and the optimisation settings.

    Parameters
    ----------
    model : ClassifierConfig
    optimizer : "adam" | "adamw" | "sgd" | "rmsprop"
    lr, weight_decay : float
    batch_size : int
        Global batch (split across processes under DDP).
    epochs : int
    seed : int
        Seeds the model init and the batch order.
    device : "auto" | "cpu" | "cuda" | "cuda:K"
        "auto" is CUDA when available, else CPU.
    grad_clip : float or None
        Clip the gradient's global norm to this value (None: no clipping).
    eval_every : int
        Also evaluate every this many steps (0: once per epoch only).
    max_steps : int or None
        Stop (status "done") after this many steps.
    threads : int or None
        CPU threads for this run, applied only by ``train(..., apply_threads=True)`` (a caller that owns
        the process, such as a script; restored afterwards). torch's thread count is process-wide, so
        trainers in worker threads (the app) leave it alone; the CLI sets it once with ``--threads``.
    name : str or None
        Label of the run (default: the model's description, e.g. "BT-LSTM (R=4, N=2)").
    diverge_factor : float or None
        The run ends "diverged" when a training (or validation) loss exceeds this many times the first
        step's loss (None: only non-finite losses).
    grad_factor : float or None
        The run ends "diverged" when the gradient norm (before clipping) exceeds this many times the
        first step's (None: only a non-finite gradient).
    stall_fraction : float or None
        The run ends "stalled" when validation accuracy is still at chance after this share of its
        steps (None or 0: never).
    """

    model: ClassifierConfig
    optimizer: str = "adam"
    lr: float = 3e-3
    weight_decay: float = 0.0
    batch_size: int = 32
    epochs: int = 8
    seed: int = 0
    device: str = "auto"
    grad_clip: float | None = 1.0
    eval_every: int = 0
    max_steps: int | None = None
    threads: int | None = None
    name: str | None = None
    diverge_factor: float | None = 10.0
    grad_factor: float | None = 1e4
    stall_fraction: float | None = 0.5

    def __post_init__(self):
        if isinstance(self.model, dict):
            self.model = ClassifierConfig.from_dict(self.model)
        if not isinstance(self.model, ClassifierConfig):
            raise ValueError(f"model must be a ClassifierConfig, got {type(self.model).__name__}")
        check_choice(self.optimizer, OPTIMIZERS, "optimizer")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a positive number, got {self.lr!r}")
        if not (isinstance(self.weight_decay, (int, float)) and math.isfinite(self.weight_decay)
                and self.weight_decay >= 0):
            raise ValueError(f"weight_decay must be a finite number of 0 or more (typical: 0 to 1e-2), got "
                             f"{self.weight_decay!r}")
        for name in ("diverge_factor", "grad_factor"):
            v = getattr(self, name)
            if v is not None and not (isinstance(v, (int, float)) and v > 1):
                raise ValueError(f"{name} must be a number above 1, or None to turn the check off, got {v!r}")
        if self.stall_fraction is not None and not (isinstance(self.stall_fraction, (int, float))
                                                    and 0 <= self.stall_fraction <= 1):
            raise ValueError(f"stall_fraction must be between 0 and 1 (0 or None: never stall), got "
                             f"{self.stall_fraction!r}")
        self.batch_size = check_positive_int(self.batch_size, "batch_size")
        self.epochs = check_positive_int(self.epochs, "epochs")
        if self.grad_clip is not None and not (self.grad_clip > 0):
            raise ValueError(f"grad_clip must be positive or None, got {self.grad_clip!r}")
        if int(self.eval_every) < 0:
            raise ValueError(f"eval_every must be 0 or more, got {self.eval_every!r}")
        if self.max_steps is not None:
            self.max_steps = check_positive_int(self.max_steps, "max_steps")
        if self.threads is not None:
            self.threads = check_positive_int(self.threads, "threads")
        if self.name is None:
            self.name = self.model.describe()

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["model"] = self.model.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        d = dict(d)
        d["model"] = ClassifierConfig.from_dict(d["model"]) if isinstance(d.get("model"), dict) else d.get("model")
        return cls(**d)


@dataclass
class RunResult:
    """What a run leaves: its events (``history``), final metrics, status and the trained model."""

    name: str
    config: TrainConfig
    status: str
    reason: str
    history: list[dict]
    final: dict
    params: int
    device: str
    elapsed: float
    model: nn.Module | None = field(default=None, repr=False)

    def to_dict(self) -> dict:
        return {"name": self.name, "config": self.config.to_dict(), "status": self.status, "reason": self.reason,
                "final": self.final, "params": self.params, "device": self.device, "elapsed": self.elapsed,
                "history": self.history}


# ------------------------------------------------------------------------------------------------
# Devices and threads
# ------------------------------------------------------------------------------------------------

def check_device(device: str | torch.device | None = "auto", field: str = "device") -> torch.device:
    """The ``torch.device`` for ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:K"``, checked on this machine.

    ``"auto"`` is CUDA when available, else CPU. Raises ``ValueError`` naming ``field`` for another
    device type (the trainer runs on CPUs and CUDA GPUs only), for CUDA on a machine without a GPU
    and for a GPU index this machine does not have.
    """
    if isinstance(device, torch.device):
        text = str(device)
    elif device in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        text = str(device).strip().lower()
    kind, _, index = text.partition(":")
    if kind not in ("cpu", "cuda") or (index and not index.isdigit()) or (kind == "cpu" and index):
        raise ValueError(f"{field} must be 'auto', 'cpu', 'cuda' or 'cuda:K' (K a GPU index), got {device!r}")
    if kind == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ValueError(f"{field} {device!r}: CUDA is not available on this machine; use 'cpu' or 'auto'")
    if index and int(index) >= torch.cuda.device_count():
        raise ValueError(f"{field} {device!r}: this machine has {torch.cuda.device_count()} GPU(s), cuda:0 to "
                         f"cuda:{torch.cuda.device_count() - 1}; choose one of those")
    return torch.device(text)


def pick_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; ``"cpu"``, ``"cuda"``, ``"cuda:K"`` as checked by :func:`check_device`."""
    if isinstance(device, torch.device):
        return device
    return check_device(device)


def device_name(device: str | torch.device = "auto") -> str:
    """Human name: ``"NVIDIA H200 (cuda:0)"`` or ``"CPU (2 threads)"``."""
    dev = pick_device(device)
    if dev.type == "cuda":
        idx = dev.index if dev.index is not None else torch.cuda.current_device()
        return f"{torch.cuda.get_device_name(idx)} (cuda:{idx})"
    return f"CPU ({torch.get_num_threads()} thread{'s' if torch.get_num_threads() != 1 else ''})"


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def set_cpu_threads(n: int | None = None, *, share: int = 1) -> int:
    """Set torch's intra-op threads to ``n`` (default: this machine's cores // ``share``); returns the old value.

    ``share`` is the number of processes sharing the cores (e.g. DDP workers on one node).
    """
    old = torch.get_num_threads()
    if n is None:
        n = max(1, cpu_count() // max(1, share))
    torch.set_num_threads(check_positive_int(n, "threads"))
    return old


def estimate_memory(config: ClassifierConfig, batch: int, frames: int, *, optimizer: str = "adam") -> dict[str, int]:
    """Rough bytes of one training step (float32): parameters + optimiser state + activations.

    Activations: the input batch, the gate pre-activations for all steps and a few (B, H) tensors
    per step, doubled for the backward pass. A lower bound good enough to warn before launching.
    """
    p = config.num_params()
    state = {"adam": 2, "adamw": 2, "rmsprop": 1, "sgd": 1}.get(optimizer, 2)
    b, t = int(batch), int(frames)
    gates = config.gates * config.hidden_size
    act = b * t * (config.input_size + 2 * gates + 8 * config.hidden_size)
    try:
        inter = config.spec().memory(batch=b * t)["largest_intermediate"] // 4
    except Exception:  # pragma: no cover - spec without a plan
        inter = 0
    act += 2 * inter
    params = 4 * p * (2 + state)  # weights, grads, optimiser state
    total = params + 4 * 2 * act
    return {"params": 4 * p, "training": int(total)}
