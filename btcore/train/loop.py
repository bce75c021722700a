"""The training loop: one optimiser step, one epoch, a run (:func:`train`) and several (:func:`compare`)."""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import threading
import time
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from ..rnn import ClassifierConfig, SequenceClassifier
from .config import RunResult, TrainConfig, device_name, pick_device, set_cpu_threads

__all__ = ["train", "compare", "with_unique_names", "param_checksum"]


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


@dataclasses.dataclass
class _Run:
    """What the step and the epoch of one run share: the model, the data, the sizes and the progress."""

    cfg: TrainConfig
    model: nn.Module  # the module itself (its parameters are clipped and hashed)
    net: nn.Module  # what is called: the model, or its DistributedDataParallel wrapper
    opt: torch.optim.Optimizer
    train_data: Any
    val_data: Any
    device: torch.device
    dist: _Dist
    should_stop: Callable[[], bool]
    emit: Callable[[dict], None]
    params: int
    gbatch: int  # the global batch
    local: int  # this process's share of it
    steps_per_epoch: int
    total: int
    eval_batch: int
    t_start: float
    step: int = 0
    status: str = "done"
    reason: str = ""
    last_eval: dict = dataclasses.field(default_factory=dict)

    def stop(self, status: str, reason: str) -> None:
        self.status, self.reason = status, reason

    def stopped_by_request(self) -> None:
        self.stop("stopped", f"stopped by request at step {self.step}")


@dataclasses.dataclass
class _EpochSums:
    """Sums over the epoch's steps (all processes): loss x examples, correct predictions, examples, seconds."""

    loss: float = 0.0
    correct: float = 0.0
    n: float = 0.0
    time: float = 0.0

    def means(self) -> dict:
        return {"train_loss": self.loss / self.n, "train_acc": self.correct / self.n,
                "examples_per_s": self.n / self.time if self.time else float("nan")}


def _step(run: _Run, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float, float, float] | None:
    """One optimiser step on this process's batch: ``(loss sum, correct, examples, seconds)`` over all processes.

    Returns None, with the run marked "diverged", when the loss or the gradient is not finite on any
    process; the optimiser then does not step, so the weights stay those of the last good step.
    """
    cfg, dist, device = run.cfg, run.dist, run.device
    t0 = time.perf_counter()
    x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
    logits = run.net(x)
    loss = nn.functional.cross_entropy(logits, y)
    bad = not bool(torch.isfinite(loss))
    if dist.any(bad, device):
        run.stop("diverged", f"stopped at step {run.step + 1}: the training loss became non-finite "
                 f"({float(loss.detach())}). Lower the learning rate (now {cfg.lr:g})"
                 + (" or enable gradient clipping." if cfg.grad_clip is None else "."))
        return None
    run.opt.zero_grad(set_to_none=True)
    loss.backward()
    params = run.model.parameters()
    if cfg.grad_clip is not None:
        gnorm = float(nn.utils.clip_grad_norm_(params, cfg.grad_clip))
    else:
        gnorm = float(sum(float(p.grad.pow(2).sum()) for p in params if p.grad is not None))
    if dist.any(not math.isfinite(gnorm), device):
        run.stop("diverged", f"stopped at step {run.step + 1}: the gradient became non-finite. Lower the learning "
                 f"rate (now {cfg.lr:g}).")
        return None
    run.opt.step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    dt = time.perf_counter() - t0
    correct = int((logits.detach().argmax(1) == y).sum())
    lsum, csum, nsum = dist.sum([float(loss.detach()) * y.numel(), correct, y.numel()], device)
    return lsum, csum, nsum, dt


def _eval(run: _Run, means: dict) -> bool:
    """Evaluate on the validation data and report it with the epoch's ``means``; False when stopped meanwhile."""
    res = _evaluate(run.net, run.val_data, run.device, run.eval_batch, run.dist, run.should_stop)
    if res is None:
        run.stopped_by_request()
        return False
    vl, va, _ = res
    ev = {"event": "eval", "step": run.step, "epoch": run.step / run.steps_per_epoch, **means, "val_loss": vl,
          "val_acc": va, "elapsed": time.perf_counter() - run.t_start, "progress": run.step / max(run.total, 1),
          "params": run.params}
    run.last_eval = {k: ev[k] for k in ("train_loss", "train_acc", "val_loss", "val_acc") if k in ev}
    run.emit(ev)
    return True


def _epoch(run: _Run, epoch: int) -> bool:
    """Train one epoch (the batches in this epoch's seeded order), then evaluate; True when another may follow.

    The incomplete last batch is dropped, so every step sees a full global batch. With ``eval_every``
    the run also evaluates every that many steps (not on the epoch's last step: the epoch's
    evaluation follows it).
    """
    cfg, dist, spe = run.cfg, run.dist, run.steps_per_epoch
    perm = np.random.default_rng([cfg.seed, epoch]).permutation(len(run.train_data))
    sums = _EpochSums()
    more = True
    for b in range(spe):
        if run.step >= run.total:
            more = False
            break
        if run.should_stop():
            run.stopped_by_request()
            return False
        gidx = perm[b * run.gbatch:(b + 1) * run.gbatch]
        stats = _step(run, *run.train_data.get(gidx[dist.rank * run.local:(dist.rank + 1) * run.local]))
        if stats is None:
            return False
        lsum, csum, nsum, dt = stats
        run.step += 1
        sums.loss += lsum
        sums.correct += csum
        sums.n += nsum
        sums.time += dt
        run.emit({"event": "step", "step": run.step, "epoch": epoch + (b + 1) / spe, "train_loss": lsum / nsum,
                  "train_acc": csum / nsum, "step_time": dt, "examples_per_s": nsum / dt if dt > 0 else float("nan"),
                  "elapsed": time.perf_counter() - run.t_start, "progress": run.step / max(run.total, 1),
                  "params": run.params})
        if cfg.eval_every and run.step % cfg.eval_every == 0 and (b + 1) != spe and not _eval(run, sums.means()):
            return False
    if sums.n == 0:
        return False
    return _eval(run, sums.means()) and more


def _setup(cfg: TrainConfig, train_data, val_data, should_stop, dist: _Dist, device, emit) -> _Run:
    """The run's seeded model (DDP-wrapped under torch.distributed), optimiser and batch sizes."""
    model = _seeded_model(cfg, device)
    net: nn.Module = model
    if dist.on:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    n_train = len(train_data)
    gbatch = min(cfg.batch_size, n_train)
    if dist.world > 1 and gbatch % dist.world:
        raise ValueError(f"batch_size {gbatch} must be divisible by the number of processes {dist.world}")
    local = gbatch // dist.world
    steps_per_epoch = n_train // gbatch
    total = steps_per_epoch * cfg.epochs
    if cfg.max_steps is not None:
        total = min(total, cfg.max_steps)
    return _Run(cfg, model, net, _optimizer(cfg, model.parameters()), train_data, val_data, device, dist,
                should_stop, emit, sum(p.numel() for p in model.parameters()), gbatch, local, steps_per_epoch,
                total, max(local, 64), 0.0)


def _train(cfg, train_data, val_data, callback, should_stop, dist, device, run_index, runs, keep_model) -> RunResult:
    name = cfg.name
    history: list[dict] = []

    def emit(ev: dict) -> None:
        ev = {"event": ev.pop("event"), "run": name, **ev}
        if ev["event"] in ("step", "eval"):
            history.append(ev)
        callback(ev)

    run = _setup(cfg, train_data, val_data, should_stop, dist, device, emit)
    dev_name = device_name(device)
    emit({"event": "start", "run_index": run_index, "runs": runs, "params": run.params,
          "input_map_params": cfg.model.input_map_params(), "device": dev_name, "total_steps": run.total,
          "steps_per_epoch": run.steps_per_epoch, "world_size": dist.world, "config": cfg.to_dict()})
    run.t_start = time.perf_counter()
    run.net.train()
    for epoch in range(cfg.epochs):
        if not _epoch(run, epoch):
            break
    elapsed = time.perf_counter() - run.t_start
    speeds = [e["examples_per_s"] for e in history if e["event"] == "step" and math.isfinite(e["examples_per_s"])]
    step_times = [e["step_time"] for e in history if e["event"] == "step"]
    spe = run.steps_per_epoch
    final = {**run.last_eval, "steps": run.step, "epochs": run.step / spe if spe else 0.0,
             "examples_per_s": float(np.median(speeds)) if speeds else float("nan"),
             "step_time": float(np.median(step_times)) if step_times else float("nan"), "elapsed": elapsed,
             "params": run.params, "checksum": param_checksum(run.model)}
    if run.status == "done" and not run.reason:
        run.reason = f"finished {run.step} steps"
    callback({"event": "end", "run": name, "status": run.status, "reason": run.reason, **final})
    return RunResult(name, cfg, run.status, run.reason, history, final, run.params, dev_name, elapsed,
                     run.model if keep_model else None)


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
