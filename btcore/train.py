"""Training runs with a metrics callback and a stop flag; comparisons; the CLI; DistributedDataParallel.

Library use::

    from btcore.data import SyntheticActions
    from btcore.train import TrainConfig, model_config, train, compare

    train_set, val_set = SyntheticActions().splits()
    runs = [TrainConfig(model_config(k, frame_shape=(3, 32, 32), classes=8), epochs=5) for k in ("dense", "tt", "bt")]
    results = compare(runs, train_set, val_set, callback=print)

Every run reports through ``callback(event)`` with plain dicts (JSON-friendly):

* ``{"event": "start", "run", "run_index", "runs", "params", "input_map_params", "device", "total_steps"}``
* ``{"event": "step", "run", "step", "epoch", "train_loss", "train_acc", "step_time", "examples_per_s",
  "elapsed", "progress"}`` after every optimiser step (``train_*`` are of that batch);
* ``{"event": "eval", "run", "step", "epoch", "train_loss", "train_acc", "val_loss", "val_acc",
  "examples_per_s", "elapsed", "progress"}`` after every epoch (``train_*`` are the epoch's means) and,
  with ``eval_every``, every that many steps;
* ``{"event": "end", "run", "status", "reason", ...final metrics}``.

``status`` is ``"done"``, ``"stopped"`` (``should_stop()`` became true; checked between steps and
between evaluation batches, so a run stops within one step) or ``"diverged"`` (a non-finite loss or
gradient: the run stops with a reason and the bad value is never reported as a metric).

CLI: ``python -m btcore.train --help``. One JSON line per epoch (and per evaluation) on stdout, then a
summary line. Under ``torchrun --nproc_per_node=K`` the same command trains with
DistributedDataParallel (NCCL on GPUs, gloo on CPU): each global batch is split across the K
processes, gradients are averaged, metrics are reduced, and only rank 0 prints and writes files.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import hashlib
import io
import json
import math
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from .data import SyntheticActions, load_clip_folder, parse_frame_shape
from .rnn import ClassifierConfig, SequenceClassifier
from .shapes import check_choice, check_positive_int, factorize, parse_ints, parse_rank

__all__ = [
    "OPTIMIZERS",
    "TrainConfig",
    "RunResult",
    "model_config",
    "fit_model_config",
    "pick_device",
    "device_name",
    "set_cpu_threads",
    "estimate_memory",
    "train",
    "compare",
    "with_unique_names",
    "history_rows",
    "histories_csv",
    "save_results",
    "save_checkpoint",
    "checkpoint_bytes",
    "load_checkpoint",
    "main",
]

OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")

#: Columns of :func:`histories_csv`, in order.
HISTORY_COLUMNS = ("run", "event", "step", "epoch", "train_loss", "train_acc", "val_loss", "val_acc", "step_time",
                   "examples_per_s", "elapsed", "params")


# ------------------------------------------------------------------------------------------------
# Configuration
# ------------------------------------------------------------------------------------------------

def model_config(kind: str = "bt", cell: str = "lstm", *, frame_shape=(3, 32, 32), hidden: int = 64, d: int = 4,
                 rank=4, blocks: int = 2, tt_ranks=4, classes: int = 8, dropout: float = 0.0, readout: str = "last",
                 in_modes=None, hidden_modes=None, recurrent_init: str = "orthogonal") -> ClassifierConfig:
    """A :class:`~btcore.rnn.ClassifierConfig` for frames of ``frame_shape``.

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

    def __post_init__(self):
        if isinstance(self.model, dict):
            self.model = ClassifierConfig.from_dict(self.model)
        if not isinstance(self.model, ClassifierConfig):
            raise ValueError(f"model must be a ClassifierConfig, got {type(self.model).__name__}")
        check_choice(self.optimizer, OPTIMIZERS, "optimizer")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a positive number, got {self.lr!r}")
        if not (isinstance(self.weight_decay, (int, float)) and self.weight_decay >= 0):
            raise ValueError(f"weight_decay must be 0 or more, got {self.weight_decay!r}")
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

def pick_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; other strings as ``torch.device``."""
    if isinstance(device, torch.device):
        return device
    if device in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r}: CUDA is not available on this machine; use 'cpu' or 'auto'")
    return dev


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


# ------------------------------------------------------------------------------------------------
# Distributed helpers
# ------------------------------------------------------------------------------------------------

class _Dist:
    """Rank/world of the current process (1 process when torch.distributed is not initialised)."""

    def __init__(self):
        import torch.distributed as dist

        self.dist = dist
        self.on = dist.is_available() and dist.is_initialized()
        self.rank = dist.get_rank() if self.on else 0
        self.world = dist.get_world_size() if self.on else 1

    def sum(self, values: Sequence[float], device) -> list[float]:
        t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=device)
        if self.on:
            self.dist.all_reduce(t)
        return t.tolist()

    def any(self, flag: bool, device) -> bool:
        return self.sum([1.0 if flag else 0.0], device)[0] > 0


def param_checksum(model: nn.Module) -> str:
    """A short hash of the parameters (for checking that DDP ranks agree)."""
    h = hashlib.sha256()
    for p in model.parameters():
        h.update(p.detach().to("cpu", torch.float32).numpy().tobytes())
    return h.hexdigest()[:16]


# ------------------------------------------------------------------------------------------------
# Training
# ------------------------------------------------------------------------------------------------

def _optimizer(cfg: TrainConfig, params):
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay)


def _check_data(data, cfg: ClassifierConfig, what: str) -> None:
    if len(data) == 0:
        raise ValueError(f"{what}: the data set is empty")
    feats = getattr(data, "features", None)
    if feats is not None and feats != cfg.input_size:
        raise ValueError(f"{what}: frames have {feats:,} features but the model's input modes "
                         f"{'x'.join(map(str, cfg.in_modes))} multiply to {cfg.input_size:,}; choose input modes "
                         f"whose product is the frame size")
    classes = getattr(data, "classes", None)
    if classes is not None and classes > cfg.classes:
        raise ValueError(f"{what}: the data has {classes} classes but the model only {cfg.classes}")


def _evaluate(model, data, device, batch, dist: _Dist, should_stop) -> tuple[float, float, int] | None:
    """(mean loss, accuracy, n) over ``data`` (sharded over ranks); None when stopped."""
    model.eval()
    idx = np.arange(len(data))[dist.rank::dist.world]
    loss_sum, correct, n = 0.0, 0, 0
    with torch.no_grad():
        for s in range(0, len(idx), batch):
            if should_stop():
                model.train()
                return None
            x, y = data.get(idx[s:s + batch])
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            logits = model(x)
            loss_sum += float(nn.functional.cross_entropy(logits, y, reduction="sum"))
            correct += int((logits.argmax(1) == y).sum())
            n += int(y.numel())
    model.train()
    loss_sum, correct, n = dist.sum([loss_sum, correct, n], device)
    if n == 0:
        return float("nan"), float("nan"), 0
    return loss_sum / n, correct / n, int(n)


def _never() -> bool:
    return False


def train(config: TrainConfig, train_data, val_data, *, callback: Callable[[dict], Any] | None = None,
          should_stop: Callable[[], bool] | None = None, run_index: int = 0, runs: int = 1,
          keep_model: bool = True, apply_threads: bool = False) -> RunResult:
    """Train one configuration; report through ``callback``; return a :class:`RunResult`.

    ``train_data`` / ``val_data`` are :class:`btcore.data.ClipSet` or synthetic splits (anything
    with ``len()`` and ``get(indices) -> (x, y)``). Under torch.distributed the model is wrapped in
    DistributedDataParallel and each global batch is split across the processes.

    ``apply_threads``: set torch's (process-wide) CPU thread count to ``config.threads`` for the run
    and restore it afterwards. Only for a caller that owns the process; never from a worker thread
    that shares the process with other torch work (the app), where it would race with them.

    Randomness: the model init and dropout draw from torch's global RNG, seeded with ``config.seed``
    inside ``torch.random.fork_rng`` (the caller's RNG state is restored afterwards); the seeding and
    the model init hold a lock, so concurrent runs get the same initial weights as a run alone. The
    batch order comes from a NumPy generator of its own. Dropout masks of runs training at the same
    time in one process share the global RNG and are not reproducible.
    """
    cfg = config
    callback = callback or (lambda e: None)
    should_stop = should_stop or _never
    _check_data(train_data, cfg.model, "training data")
    _check_data(val_data, cfg.model, "validation data")
    dist = _Dist()
    device = pick_device(cfg.device)
    if device.type == "cuda" and dist.on and device.index is None:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    old_threads = None
    if apply_threads and device.type == "cpu" and cfg.threads is not None:
        old_threads = set_cpu_threads(cfg.threads)
    cuda_devices = [device.index if device.index is not None else torch.cuda.current_device()] \
        if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=cuda_devices):
            return _train(cfg, train_data, val_data, callback, should_stop, dist, device, run_index, runs, keep_model)
    finally:
        if old_threads is not None:
            torch.set_num_threads(old_threads)


#: Held while a run seeds the global RNG and initialises its model (see :func:`train`).
_INIT_LOCK = threading.Lock()


def _seeded_model(cfg: TrainConfig, device: torch.device) -> nn.Module:
    """The run's model, initialised from ``cfg.seed``; the global RNG stays seeded for dropout."""
    with _INIT_LOCK:
        torch.default_generator.manual_seed(cfg.seed)
        if device.type == "cuda":
            with torch.cuda.device(device):
                torch.cuda.manual_seed(cfg.seed)
        model = SequenceClassifier(cfg.model)
    return model.to(device)


def _train(cfg, train_data, val_data, callback, should_stop, dist, device, run_index, runs, keep_model) -> RunResult:
    model = _seeded_model(cfg, device)
    params = sum(p.numel() for p in model.parameters())
    net: nn.Module = model
    if dist.on:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    opt = _optimizer(cfg, model.parameters())
    n_train = len(train_data)
    gbatch = min(cfg.batch_size, n_train)
    if dist.world > 1 and gbatch % dist.world:
        raise ValueError(f"batch_size {gbatch} must be divisible by the number of processes {dist.world}")
    local = gbatch // dist.world
    steps_per_epoch = n_train // gbatch  # incomplete last batch dropped, so every step sees a full batch
    total = steps_per_epoch * cfg.epochs
    if cfg.max_steps is not None:
        total = min(total, cfg.max_steps)
    eval_batch = max(local, 64)
    dev_name = device_name(device)
    name = cfg.name
    history: list[dict] = []

    def emit(ev: dict) -> None:
        ev = {"event": ev.pop("event"), "run": name, **ev}
        if ev["event"] in ("step", "eval"):
            history.append(ev)
        callback(ev)

    emit({"event": "start", "run_index": run_index, "runs": runs, "params": params,
          "input_map_params": cfg.model.input_map_params(), "device": dev_name, "total_steps": total,
          "steps_per_epoch": steps_per_epoch, "world_size": dist.world, "config": cfg.to_dict()})
    t_start = time.perf_counter()
    step, status, reason = 0, "done", ""
    last_eval: dict = {}
    ep_loss = ep_correct = ep_n = 0.0
    ep_time = 0.0
    net.train()

    def do_eval(epoch_value, epoch_means) -> bool:
        nonlocal last_eval
        res = _evaluate(net, val_data, device, eval_batch, dist, should_stop)
        if res is None:
            return False
        vl, va, _ = res
        ev = {"event": "eval", "step": step, "epoch": epoch_value, **epoch_means, "val_loss": vl, "val_acc": va,
              "elapsed": time.perf_counter() - t_start, "progress": step / max(total, 1), "params": params}
        last_eval = {k: ev[k] for k in ("train_loss", "train_acc", "val_loss", "val_acc") if k in ev}
        emit(ev)
        return True

    done = False
    for epoch in range(cfg.epochs):
        if done:
            break
        perm = np.random.default_rng([cfg.seed, epoch]).permutation(n_train)
        ep_loss = ep_correct = ep_n = 0.0
        ep_time = 0.0
        for b in range(steps_per_epoch):
            if step >= total:
                done = True
                break
            if should_stop():
                status, reason, done = "stopped", f"stopped by request at step {step}", True
                break
            gidx = perm[b * gbatch:(b + 1) * gbatch]
            x, y = train_data.get(gidx[dist.rank * local:(dist.rank + 1) * local])
            t0 = time.perf_counter()
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            logits = net(x)
            loss = nn.functional.cross_entropy(logits, y)
            bad = not bool(torch.isfinite(loss))
            if dist.any(bad, device):
                status, done = "diverged", True
                reason = (f"stopped at step {step + 1}: the training loss became non-finite ({float(loss.detach())}). "
                          f"Lower the learning rate (now {cfg.lr:g})"
                          + (" or enable gradient clipping." if cfg.grad_clip is None else "."))
                break
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip is not None:
                gnorm = float(nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip))
            else:
                gnorm = float(sum(float(p.grad.pow(2).sum()) for p in model.parameters() if p.grad is not None))
            if dist.any(not math.isfinite(gnorm), device):
                status, done = "diverged", True
                reason = (f"stopped at step {step + 1}: the gradient became non-finite. Lower the learning rate "
                          f"(now {cfg.lr:g}).")
                break
            opt.step()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            dt = time.perf_counter() - t0
            step += 1
            correct = int((logits.detach().argmax(1) == y).sum())
            lsum, csum, nsum = dist.sum([float(loss.detach()) * y.numel(), correct, y.numel()], device)
            ep_loss += lsum
            ep_correct += csum
            ep_n += nsum
            ep_time += dt
            emit({"event": "step", "step": step, "epoch": epoch + (b + 1) / steps_per_epoch,
                  "train_loss": lsum / nsum, "train_acc": csum / nsum, "step_time": dt,
                  "examples_per_s": nsum / dt if dt > 0 else float("nan"),
                  "elapsed": time.perf_counter() - t_start, "progress": step / max(total, 1), "params": params})
            if cfg.eval_every and step % cfg.eval_every == 0 and (b + 1) != steps_per_epoch:
                means = {"train_loss": ep_loss / ep_n, "train_acc": ep_correct / ep_n,
                         "examples_per_s": ep_n / ep_time if ep_time else float("nan")}
                if not do_eval(step / steps_per_epoch, means):
                    status, reason, done = "stopped", f"stopped by request at step {step}", True
                    break
        if status != "done" or ep_n == 0:
            break
        means = {"train_loss": ep_loss / ep_n, "train_acc": ep_correct / ep_n,
                 "examples_per_s": ep_n / ep_time if ep_time else float("nan")}
        if not do_eval(step / steps_per_epoch, means):
            status, reason = "stopped", f"stopped by request at step {step}"
            break
    elapsed = time.perf_counter() - t_start
    speeds = [e["examples_per_s"] for e in history if e["event"] == "step" and math.isfinite(e["examples_per_s"])]
    step_times = [e["step_time"] for e in history if e["event"] == "step"]
    final = {**last_eval, "steps": step, "epochs": step / steps_per_epoch if steps_per_epoch else 0.0,
             "examples_per_s": float(np.median(speeds)) if speeds else float("nan"),
             "step_time": float(np.median(step_times)) if step_times else float("nan"), "elapsed": elapsed,
             "params": params, "checksum": param_checksum(model)}
    if status == "done" and not reason:
        reason = f"finished {step} steps"
    callback({"event": "end", "run": name, "status": status, "reason": reason, **final})
    return RunResult(name, cfg, status, reason, history, final, params, dev_name, elapsed,
                     model if keep_model else None)


def with_unique_names(configs: Sequence[TrainConfig]) -> list[TrainConfig]:
    """Copies of ``configs`` whose names are unique (``"BT-LSTM"``, ``"BT-LSTM #2"``); the inputs are unchanged.

    Configurations whose names are already unique are returned as they are (as copies), so applying
    this twice gives the same names.
    """
    taken = {c.name for c in configs}
    used: set[str] = set()
    out = []
    for c in configs:
        name = c.name
        if name in used:
            k = 2
            while f"{c.name} #{k}" in used or f"{c.name} #{k}" in taken:
                k += 1
            name = f"{c.name} #{k}"
        used.add(name)
        out.append(dataclasses.replace(c, name=name))
    return out


def compare(configs: Sequence[TrainConfig], train_data, val_data, *, callback: Callable[[dict], Any] | None = None,
            should_stop: Callable[[], bool] | None = None, keep_models: bool = True,
            apply_threads: bool = False) -> list[RunResult]:
    """Train several configurations one after another (same data); a stop request ends them all.

    Run names are made unique (``"BT-LSTM"``, ``"BT-LSTM #2"``, see :func:`with_unique_names`) on
    copies: each result's ``config`` carries its run's name, the caller's configurations are not
    changed. Each event also carries ``overall_progress`` over all runs' steps. ``apply_threads`` as
    in :func:`train`.
    """
    configs = with_unique_names(configs)
    if not configs:
        raise ValueError("compare: give at least one configuration")
    should_stop = should_stop or _never
    callback = callback or (lambda e: None)
    totals: list[int] = []
    for c in configs:
        spe = len(train_data) // min(c.batch_size, len(train_data))
        t = spe * c.epochs
        totals.append(min(t, c.max_steps) if c.max_steps else t)
    grand = max(sum(totals), 1)
    results = []
    for i, c in enumerate(configs):
        before = sum(totals[:i])

        def cb(ev, before=before, t=totals[i]):
            ev["overall_progress"] = min(1.0, (before + ev.get("progress", 1.0 if ev["event"] == "end" else 0.0) * t)
                                         / grand)
            callback(ev)

        res = train(c, train_data, val_data, callback=cb, should_stop=should_stop, run_index=i, runs=len(configs),
                    keep_model=keep_models, apply_threads=apply_threads)
        results.append(res)
        if res.status == "stopped":
            break
    return results


# ------------------------------------------------------------------------------------------------
# Histories and checkpoints
# ------------------------------------------------------------------------------------------------

def history_rows(results_or_events) -> list[dict]:
    """Flat rows (``HISTORY_COLUMNS``) from a list of :class:`RunResult` or of step/eval events."""
    events = []
    for item in results_or_events:
        if isinstance(item, RunResult):
            events.extend(item.history)
        elif isinstance(item, dict) and item.get("event") in ("step", "eval"):
            events.append(item)
    return [{c: ev.get(c) for c in HISTORY_COLUMNS} for ev in events]


def histories_csv(results_or_events) -> str:
    """The histories as CSV text (one row per step and per evaluation, all runs)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(HISTORY_COLUMNS))
    w.writeheader()
    for row in history_rows(results_or_events):
        w.writerow({k: ("" if v is None else v) for k, v in row.items()})
    return buf.getvalue()


def _slug(name: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in name).strip("_").lower() or "run"


def save_results(results: Sequence[RunResult], out_dir, *, checkpoints: bool = False) -> dict[str, str]:
    """Write ``history.csv``, ``history.json``, ``summary.json`` (and ``<run>.pt`` checkpoints) into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"csv": str(out / "history.csv"), "json": str(out / "history.json"), "summary": str(out / "summary.json")}
    (out / "history.csv").write_text(histories_csv(results))
    (out / "history.json").write_text(json.dumps([r.to_dict() for r in results], default=_json_default))
    (out / "summary.json").write_text(json.dumps(summary(results), default=_json_default, indent=1))
    if checkpoints:
        for r in results:
            if r.model is not None:
                p = out / f"{_slug(r.name)}.pt"
                save_checkpoint(p, r.model, r.config, r.history)
                paths[r.name] = str(p)
    return paths


def summary(results: Sequence[RunResult]) -> list[dict]:
    return [{"run": r.name, "kind": r.config.model.kind, "cell": r.config.model.cell, "status": r.status,
             "reason": r.reason, "device": r.device, **r.final} for r in results]


def _checkpoint(model: nn.Module, config: TrainConfig, history: list[dict] | None) -> dict:
    model = getattr(model, "module", model)
    return {"format": "btlab-checkpoint-1", "train_config": config.to_dict(),
            "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}, "history": history or []}


def save_checkpoint(path, model: nn.Module, config: TrainConfig, history: list[dict] | None = None) -> Path:
    """Save the model's weights with its configuration (and optionally its history)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(_checkpoint(model, config, history), path)
    return path


def checkpoint_bytes(model: nn.Module, config: TrainConfig, history: list[dict] | None = None) -> bytes:
    """The bytes of :func:`save_checkpoint`'s file, made in memory (e.g. for a download)."""
    buf = io.BytesIO()
    torch.save(_checkpoint(model, config, history), buf)
    return buf.getvalue()


def load_checkpoint(path, device="cpu") -> tuple[nn.Module, TrainConfig, list[dict]]:
    """``(model, train_config, history)`` from :func:`save_checkpoint`'s file (a path or a binary file object)."""
    src = path if hasattr(path, "read") else Path(path)
    blob = torch.load(src, map_location=device, weights_only=True)
    if not isinstance(blob, dict) or blob.get("format") != "btlab-checkpoint-1":
        raise ValueError(f"{path} is not a BT Lab checkpoint")
    cfg = TrainConfig.from_dict(blob["train_config"])
    model = SequenceClassifier(cfg.model)
    model.load_state_dict(blob["state_dict"])
    return model.to(device), cfg, blob.get("history", [])


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, tuple):
        return list(o)
    return str(o)


def _clean(o):
    """NaN/inf -> None so every line is strict JSON."""
    if isinstance(o, float) and not math.isfinite(o):
        return None
    if isinstance(o, dict):
        return {k: _clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_clean(v) for v in o]
    return o


# ------------------------------------------------------------------------------------------------
# CLI
# ------------------------------------------------------------------------------------------------

def _parser() -> argparse.ArgumentParser:
    task = SyntheticActions()  # the defaults of the synthetic task
    run = {f.name: f.default for f in dataclasses.fields(TrainConfig) if f.default is not dataclasses.MISSING}
    p = argparse.ArgumentParser(
        prog="python -m btcore.train",
        description="Train dense / TT / BT recurrent classifiers on synthetic action clips (or a UCF11-style clip "
                    "folder) and print one JSON line of metrics per epoch, then a summary line. Runs under "
                    "`torchrun --nproc_per_node=K` with DistributedDataParallel (NCCL on GPUs, gloo on CPU).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    g = p.add_argument_group("model")
    g.add_argument("--model", default="bt", help="input-map format(s): dense, tt or bt; a comma list (dense,tt,bt) "
                   "trains them one after another for a comparison")
    g.add_argument("--cell", default="lstm", choices=("lstm", "gru"), help="recurrent cell")
    g.add_argument("--hidden", type=int, default=64, help="hidden size (factorized into --d modes, 64 -> 4x4x2x2)")
    g.add_argument("--d", type=int, default=4, help="tensor order: number of input and hidden modes")
    g.add_argument("--in-modes", default=None, help="input modes, e.g. 8x8x8x6 (default: factorize(C*H*W, d))")
    g.add_argument("--hidden-modes", default=None, help="hidden modes, e.g. 4x4x4x4 (default: factorize(hidden, d))")
    g.add_argument("--rank", default="4", help="BT Tucker rank R (one int, or per-mode 4,4,2,2)")
    g.add_argument("--blocks", type=int, default=2, help="BT blocks N")
    g.add_argument("--tt-ranks", default="4", help="TT ranks (one int, or the d-1 inner ranks 4,4,4)")
    g.add_argument("--dropout", type=float, default=0.0, help="dropout on the input and the recurrent state")
    g.add_argument("--readout", default="last", choices=("last", "mean"), help="classify the last or the mean hidden state")
    g = p.add_argument_group("data")
    g.add_argument("--data", default="synthetic", help="'synthetic', or a clip folder in the UCF11 layout "
                   "(root/<class>/<clip>, clips as frame folders, .npy/.npz arrays or animated .gif)")
    g.add_argument("--frame", default="x".join(map(str, task.frame_shape)), help="frame size CxHxW (the paper: 3x120x160 = 57,600 inputs)")
    g.add_argument("--frames", type=int, default=task.frames, help="frames per clip (sequence length T)")
    g.add_argument("--classes", type=int, default=task.classes, help="synthetic task: number of motion classes (2..8)")
    g.add_argument("--train-size", type=int, default=task.train_size, help="synthetic task: training clips")
    g.add_argument("--val-size", type=int, default=task.val_size, help="synthetic task: validation clips")
    g.add_argument("--noise", type=float, default=task.noise, help="synthetic task: per-frame pixel noise std")
    g.add_argument("--val-fraction", type=float, default=0.25, help="clip folder: share of clips held out")
    g = p.add_argument_group("optimisation")
    g.add_argument("--optimizer", default="adam", choices=OPTIMIZERS, help="optimiser")
    g.add_argument("--lr", type=float, default=run["lr"], help="learning rate")
    g.add_argument("--weight-decay", type=float, default=0.0, help="weight decay")
    g.add_argument("--batch", type=int, default=run["batch_size"], help="global batch size (split across DDP processes)")
    g.add_argument("--epochs", type=int, default=run["epochs"], help="epochs")
    g.add_argument("--max-steps", type=int, default=None, help="stop each run after this many steps")
    g.add_argument("--eval-every", type=int, default=0, help="also evaluate every N steps (0: per epoch only)")
    g.add_argument("--clip", type=float, default=1.0, help="gradient-norm clipping (0 disables)")
    g.add_argument("--seed", type=int, default=0, help="seed of the data, the init and the batch order")
    g = p.add_argument_group("system")
    g.add_argument("--device", default="auto", help="auto (CUDA if available, else CPU), cpu, cuda or cuda:K")
    g.add_argument("--threads", type=int, default=None, help="CPU threads per process (default: cores / processes)")
    g.add_argument("--out", default=None, help="folder for history.csv, history.json and summary.json")
    g.add_argument("--checkpoint", action="store_true", help="also save each model as <out>/<run>.pt")
    g.add_argument("--steps", action="store_true", help="print a JSON line per step too (default: per epoch)")
    return p


def _parse_modes(text, flag: str):
    return None if text is None else parse_ints(text, flag)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    distributed = world > 1
    import torch.distributed as tdist

    want_cuda = args.device.startswith("cuda") or (args.device == "auto" and torch.cuda.is_available())
    if distributed and not tdist.is_initialized():
        backend = "nccl" if want_cuda else "gloo"
        if want_cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        tdist.init_process_group(backend)
    rank = tdist.get_rank() if distributed else 0
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world))
    if not want_cuda:  # the CLI owns its process: set torch's thread count once, before any run
        set_cpu_threads(args.threads, share=local_world if distributed else 1)
    device = args.device
    if distributed and want_cuda:
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"

    def out(obj):
        if rank == 0:
            print(json.dumps(_clean(obj), default=_json_default), flush=True)

    try:
        frame = parse_frame_shape(args.frame)
        if args.data == "synthetic":
            task = SyntheticActions(frame_shape=frame, frames=args.frames, classes=args.classes,
                                    train_size=args.train_size, val_size=args.val_size, seed=args.seed,
                                    noise=args.noise)
            train_set, val_set = task.splits()
            classes = task.classes
        else:
            train_set, val_set = load_clip_folder(args.data, frame, args.frames, val_fraction=args.val_fraction,
                                                  seed=args.seed)
            classes = train_set.classes
        kinds = [k.strip() for k in args.model.split(",") if k.strip()]
        configs = []
        for kind in kinds:
            mc = model_config(kind, args.cell, frame_shape=frame, hidden=args.hidden, d=args.d,
                              rank=parse_rank(args.rank, "--rank"), blocks=args.blocks,
                              tt_ranks=parse_rank(args.tt_ranks, "--tt-ranks"), classes=classes,
                              dropout=args.dropout, readout=args.readout,
                              in_modes=_parse_modes(args.in_modes, "--in-modes"),
                              hidden_modes=_parse_modes(args.hidden_modes, "--hidden-modes"))
            configs.append(TrainConfig(mc, optimizer=args.optimizer, lr=args.lr, weight_decay=args.weight_decay,
                                       batch_size=args.batch, epochs=args.epochs, seed=args.seed, device=device,
                                       grad_clip=args.clip if args.clip and args.clip > 0 else None,
                                       eval_every=args.eval_every, max_steps=args.max_steps))
    except ValueError as exc:
        if rank == 0:
            print(f"error: {exc}", file=sys.stderr)
        if distributed:
            tdist.destroy_process_group()
        return 2

    def cb(ev):
        kind = ev["event"]
        if kind in ("eval", "end") or (args.steps and kind == "step"):
            out(ev)
        elif kind == "start":
            out({k: v for k, v in ev.items() if k != "config"})

    results = compare(configs, train_set, val_set, callback=cb)
    rows = summary(results)
    if distributed:
        sums = [None] * world
        tdist.all_gather_object(sums, [r.final["checksum"] for r in results])
        for i, row in enumerate(rows):
            row["rank_checksums"] = [s[i] for s in sums]
    out({"summary": rows, "world_size": world, "data": "synthetic" if args.data == "synthetic" else args.data})
    if args.out and rank == 0:
        save_results(results, args.out, checkpoints=args.checkpoint)
    if distributed:
        tdist.barrier()
        tdist.destroy_process_group()
    return 0 if all(r.status == "done" for r in results) else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
