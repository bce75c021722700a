"""Run configuration: :class:`TrainConfig`, the optimiser it names, devices, threads and a memory estimate."""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass

import torch

from ..classifier import ClassifierConfig
from ..contract import measure_rates
from ..shapes import check_choice, check_positive_int
from ..tasks import make_task, task_names
from ..tasks.base import step_memory

__all__ = ["OPTIMIZERS", "MAX_LR", "TrainConfig", "make_optimizer", "check_device", "pick_device", "device_name", "cpu_count",
           "set_cpu_threads", "estimate_memory", "pin_contraction_rates"]

OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
#: The largest learning rate and weight decay accepted: far past any that trains (runs diverge above
#: about 1), and below the float32 range the optimisers hold them in (3.4e38).
MAX_LR = 1e6


@dataclass
class TrainConfig:
    """One training run: the model and the optimisation settings.

    Parameters
    ----------
    model : the task's model configuration
        A :class:`~btcore.classifier.ClassifierConfig` for the action task (see ``task``).
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
    task : str
        The task the run trains (a name of :func:`btcore.tasks.task_names`, default ``"action"``); it
        gives the model, the loss, the metrics and what "stalled" means.
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
    task: str = "action"

    def __post_init__(self):
        check_choice(self.task, task_names(), "task")
        task = make_task(self.task)
        if isinstance(self.model, dict):
            self.model = task.config_from_dict(self.model)
        if not task.is_model_config(self.model):
            raise ValueError(f"model must be the {self.task} task's model configuration, got {type(self.model).__name__}")
        check_choice(self.optimizer, OPTIMIZERS, "optimizer")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and 0 < self.lr <= MAX_LR):
            raise ValueError(f"lr must be a positive number of at most {MAX_LR:g} (typical: 1e-4 to 1e-2), got "
                             f"{self.lr!r}")
        if not (isinstance(self.weight_decay, (int, float)) and math.isfinite(self.weight_decay)
                and 0 <= self.weight_decay <= MAX_LR):
            raise ValueError(f"weight_decay must be a finite number from 0 to {MAX_LR:g} (typical: 0 to 1e-2), got "
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
        task = make_task(d.get("task", "action"))
        d["model"] = task.config_from_dict(d["model"]) if isinstance(d.get("model"), dict) else d.get("model")
        return cls(**d)


def make_optimizer(cfg: TrainConfig, params) -> torch.optim.Optimizer:
    """The optimiser ``cfg.optimizer`` over ``params`` with ``cfg``'s learning rate and weight decay (SGD: momentum 0.9)."""
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay)


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


def pin_contraction_rates() -> None:
    """Make the contraction planner's choices a function of the shapes, not of timings (process-wide).

    The planner uses its reference rates unless a process opted into measured ones
    (:func:`btcore.contract.measure_rates`); this undoes that, so that afterwards the same command
    trains the same weights bit for bit on a quiet or a loaded machine.
    """
    measure_rates(False)


def estimate_memory(config: ClassifierConfig, batch: int, frames: int, *, optimizer: str = "adam") -> dict[str, int]:
    """Bytes ``{"params", "low", "training"}`` of one float32 training step (:func:`~btcore.tasks.base.step_memory`).

    The activations counted per frame: the input, the gate pre-activations and activations and a
    few (B, H) states. What the input map's contraction keeps besides varies with the format (TT
    keeps its partial products, BT's plan little), which the range of :func:`step_memory` spans.
    """
    b, t = int(batch), int(frames)
    gates = config.gates * config.hidden_size
    act = b * t * (config.input_size + 2 * gates + 8 * config.hidden_size)
    return step_memory(config.num_params(), act, optimizer)
