"""The training loop: one optimiser step, a run as a generator of steps, :func:`train` (several: :mod:`.race`)."""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import threading
import time
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from ..classifier import ClassifierConfig, SequenceClassifier
from .config import RunResult, TrainConfig, device_name, pick_device, set_cpu_threads
from .outcome import Watch, chance_level

__all__ = ["train", "seeded_model", "param_checksum"]


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


#: Held while a model is built: the constructors' default inits draw from the global RNG, which is
#: forked (the caller's state restored) before the model is re-initialised from its own generator.
_INIT_LOCK = threading.Lock()


def _stream_seed(seed: int, stream: int) -> int:
    """An independent 63-bit seed for stream ``stream`` (0: init, 1: dropout) of run seed ``seed``."""
    return int(np.random.SeedSequence([int(seed), stream]).generate_state(1, np.uint64)[0] >> 1)


def seeded_model(cfg: TrainConfig, device: torch.device | str = "cpu") -> nn.Module:
    """The run's model: init and dropout each from a ``torch.Generator`` of its own, seeded from ``cfg.seed``.

    Nothing is drawn from (or left changed in) the global RNG, so models training at the same time,
    in turns or in threads, reproduce what each does alone.
    """
    device = torch.device(device)
    with _INIT_LOCK, torch.random.fork_rng(devices=[]):
        model = SequenceClassifier(cfg.model, generator=torch.Generator().manual_seed(_stream_seed(cfg.seed, 0)))
    model = model.to(device)
    model.rnn.dropout_generator = torch.Generator(device=device).manual_seed(_stream_seed(cfg.seed, 1))
    return model


@dataclasses.dataclass
class _Run:
    """What the steps of one run share: the model, the data, the sizes, the checks and the progress."""

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
    watch: Watch
    params: int
    gbatch: int  # the global batch
    local: int  # this process's share of it
    steps_per_epoch: int
    total: int
    eval_batch: int
    t_start: float = 0.0
    step: int = 0
    own_s: float = 0.0  # seconds spent in this run's own steps and evaluations
    status: str = "done"
    reason: str = ""
    last_eval: dict = dataclasses.field(default_factory=dict)
    history: list = dataclasses.field(default_factory=list)
    step_times: list = dataclasses.field(default_factory=list)
    eval_times: list = dataclasses.field(default_factory=list)
    estimated_s: float | None = None

    def stop(self, status: str, reason: str) -> None:
        self.status, self.reason = status, reason

    def stopped_by_request(self) -> None:
        self.stop("stopped", f"stopped by request at step {self.step}")

    @property
    def evals_left(self) -> int:
        done = len(self.eval_times)
        per_epoch = 1 + (self.steps_per_epoch - 1) // self.cfg.eval_every if self.cfg.eval_every else 1
        planned = math.ceil(self.total / max(self.steps_per_epoch, 1)) * per_epoch
        return max(0, planned - done)

    def eta_s(self) -> float | None:
        """Seconds this run still needs: its remaining steps at its recent median step time, plus its evaluations."""
        if not self.step_times:
            return self.estimated_s
        step_s = float(np.median(self.step_times[-50:]))
        eval_s = float(np.mean(self.eval_times)) if self.eval_times else step_s * len(self.val_data) / max(
            self.eval_batch, 1) / 3  # a forward pass is about a third of a training step
        return (self.total - self.step) * step_s + self.evals_left * eval_s

    def base(self) -> dict:
        """Fields every step and evaluation event carries."""
        return {"step": self.step, "epoch": self.step / self.steps_per_epoch,
                "examples": self.step * self.gbatch, "elapsed": time.perf_counter() - self.t_start,
                "run_s": self.own_s, "progress": self.step / max(self.total, 1), "params": self.params}


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


def _diverged(run: _Run, reason: str | None) -> bool:
    """Mark the run "diverged" with ``reason`` on every process when any process has one."""
    bad = run.dist.any(reason is not None, run.device)
    if bad:
        run.stop("diverged", reason or f"stopped at step {run.step + 1}: another process diverged")
    return bad


def _grad_norm(params) -> float:
    grads = [p.grad.detach() for p in params if p.grad is not None]
    if not grads:
        return 0.0
    return float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])))


def _step(run: _Run, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float, float, float] | None:
    """One optimiser step on this process's batch: ``(loss sum, correct, examples, seconds)`` over all processes.

    Returns None, with the run marked "diverged" and the cause in its reason, when the batch holds
    non-finite inputs, or the loss or the gradient is non-finite or has exploded (see :class:`Watch`);
    the optimiser then does not step, so the weights stay those of the last good step.
    """
    cfg, device, watch, n = run.cfg, run.device, run.watch, run.step + 1
    t0 = time.perf_counter()
    x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
    if _diverged(run, watch.batch(x, n)):
        return None
    logits = run.net(x)
    loss = nn.functional.cross_entropy(logits, y)
    if _diverged(run, watch.loss(float(loss.detach()), n)):
        return None
    run.opt.zero_grad(set_to_none=True)
    loss.backward()
    params = list(run.model.parameters())
    if cfg.grad_clip is not None:
        gnorm = float(nn.utils.clip_grad_norm_(params, cfg.grad_clip))
    else:
        gnorm = _grad_norm(params)
    if _diverged(run, watch.gradient(gnorm, n)):
        return None
    run.opt.step()
    if _diverged(run, watch.parameters(all(bool(torch.isfinite(p).all()) for p in params), n)):
        return None
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    dt = time.perf_counter() - t0
    correct = int((logits.detach().argmax(1) == y).sum())
    lsum, csum, nsum = run.dist.sum([float(loss.detach()) * y.numel(), correct, y.numel()], device)
    return lsum, csum, nsum, dt


def _eval(run: _Run, means: dict) -> bool:
    """Evaluate on the validation data and report it with the epoch's ``means``; False when the run ends here."""
    t0 = time.perf_counter()
    res = _evaluate(run.net, run.val_data, run.device, run.eval_batch, run.dist, run.should_stop)
    if res is None:
        run.stopped_by_request()
        return False
    dt = time.perf_counter() - t0
    run.own_s += dt
    run.eval_times.append(dt)
    vl, va, _ = res
    ev = {"event": "eval", **run.base(), **means, "val_loss": vl, "val_acc": va, "eta_s": run.eta_s()}
    verdict = run.watch.validation(vl, va, run.step, run.total)
    if verdict is not None and verdict[0] == "diverged":
        run.stop(*verdict)  # the bad value is not reported as a metric
        return False
    run.last_eval = {k: ev[k] for k in ("train_loss", "train_acc", "val_loss", "val_acc") if k in ev}
    run.emit(ev)
    if verdict is not None:
        run.stop(*verdict)
        return False
    return True


def _steps(run: _Run) -> Iterator[None]:
    """The run as a generator: it yields after every step, so several runs can take turns.

    Each epoch takes its batches in its seeded order and ends with an evaluation. The incomplete
    last batch is dropped, so every step sees a full global batch. With ``eval_every`` the run also
    evaluates every that many steps (not on the epoch's last step: the epoch's evaluation follows).
    The generator returns when the run ends; ``run.status`` / ``run.reason`` say how.
    """
    cfg, dist, spe = run.cfg, run.dist, run.steps_per_epoch
    for epoch in range(cfg.epochs):
        perm = np.random.default_rng([cfg.seed, epoch]).permutation(len(run.train_data))
        sums = _EpochSums()
        for b in range(spe):
            if run.step >= run.total:
                break
            if run.should_stop():
                run.stopped_by_request()
                return
            gidx = perm[b * run.gbatch:(b + 1) * run.gbatch]
            stats = _step(run, *run.train_data.get(gidx[dist.rank * run.local:(dist.rank + 1) * run.local]))
            if stats is None:
                return
            lsum, csum, nsum, dt = stats
            run.step += 1
            run.own_s += dt
            run.step_times.append(dt)
            sums.loss, sums.correct, sums.n, sums.time = (sums.loss + lsum, sums.correct + csum, sums.n + nsum,
                                                          sums.time + dt)
            run.emit({"event": "step", **run.base(), "epoch": epoch + (b + 1) / spe, "train_loss": lsum / nsum,
                      "train_acc": csum / nsum, "step_time": dt,
                      "examples_per_s": nsum / dt if dt > 0 else float("nan"), "eta_s": run.eta_s()})
            if cfg.eval_every and run.step % cfg.eval_every == 0 and (b + 1) != spe and not _eval(run, sums.means()):
                return
            yield
        if sums.n == 0 or not _eval(run, sums.means()) or run.step >= run.total:
            return
        yield


def _setup(cfg: TrainConfig, train_data, val_data, should_stop, dist: _Dist, device, emit) -> _Run:
    """The run's seeded model (DDP-wrapped under torch.distributed), optimiser, batch sizes and checks."""
    model = seeded_model(cfg, device)
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
    classes = getattr(train_data, "classes", None) or cfg.model.classes
    watch = Watch(cfg.lr, cfg.weight_decay, cfg.grad_clip is not None, cfg.diverge_factor, cfg.grad_factor,
                  cfg.stall_fraction, chance_level(classes), len(val_data))
    return _Run(cfg, model, net, _optimizer(cfg, model.parameters()), train_data, val_data, device, dist,
                should_stop, emit, watch, sum(p.numel() for p in model.parameters()), gbatch, local,
                steps_per_epoch, total, max(local, 64))


def _open(cfg: TrainConfig, train_data, val_data, callback, should_stop, dist, device) -> _Run:
    """A set-up run whose events go to ``callback`` (named, and kept in its history)."""
    history: list[dict] = []

    def emit(ev: dict) -> None:
        ev = {"event": ev.pop("event"), "run": cfg.name, **ev}
        if ev["event"] in ("step", "eval"):
            history.append(ev)
        callback(ev)

    run = _setup(cfg, train_data, val_data, should_stop, dist, device, emit)
    run.history = history
    return run


def _model_fields(cfg: TrainConfig) -> dict:
    """``kind``, ``rank`` and ``blocks`` of the run's model (rank and blocks None unless BT), for sweeps and tables."""
    m = cfg.model
    bt = m.kind == "bt"
    return {"kind": m.kind, "rank": (m.rank if isinstance(m.rank, int) else list(m.rank)) if bt else None,
            "blocks": m.blocks if bt else None}


def _announce(run: _Run, run_index: int, runs: int, dev_name: str, **extra) -> None:
    cfg = run.cfg
    run.emit({"event": "start", "run_index": run_index, "runs": runs, "params": run.params,
              "input_map_params": cfg.model.input_map_params(), "device": dev_name, "total_steps": run.total,
              "steps_per_epoch": run.steps_per_epoch, "batch": run.gbatch, "world_size": run.dist.world,
              "estimated_s": run.estimated_s, **_model_fields(cfg), **extra, "config": cfg.to_dict()})


def _finish(run: _Run, callback, dev_name: str, keep_model: bool) -> RunResult:
    """The run's end event and result."""
    cfg, history = run.cfg, run.history
    elapsed = time.perf_counter() - run.t_start
    speeds = [e["examples_per_s"] for e in history if e["event"] == "step" and math.isfinite(e["examples_per_s"])]
    spe = run.steps_per_epoch
    final = {**run.last_eval, "steps": run.step, "epochs": run.step / spe if spe else 0.0,
             "examples_per_s": float(np.median(speeds)) if speeds else float("nan"),
             "step_time": float(np.median(run.step_times)) if run.step_times else float("nan"), "elapsed": elapsed,
             "run_s": run.own_s, "estimated_s": run.estimated_s, "params": run.params,
             "checksum": param_checksum(run.model), **_model_fields(cfg)}
    if run.status == "done" and not run.reason:
        run.reason = f"finished {run.step} steps"
    callback({"event": "end", "run": cfg.name, "status": run.status, "reason": run.reason,
              "progress": run.step / max(run.total, 1), **final})
    return RunResult(cfg.name, cfg, run.status, run.reason, history, final, run.params, dev_name, elapsed,
                     run.model if keep_model else None)


def _device(cfg: TrainConfig, dist: _Dist) -> torch.device:
    device = pick_device(cfg.device)
    if device.type == "cuda" and dist.on and device.index is None:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return device


def train(config: TrainConfig, train_data, val_data, *, callback: Callable[[dict], Any] | None = None,
          should_stop: Callable[[], bool] | None = None, run_index: int = 0, runs: int = 1,
          keep_model: bool = True, apply_threads: bool = False, estimated_s: float | None = None) -> RunResult:
    """Train one configuration; report through ``callback``; return a :class:`RunResult`.

    ``train_data`` / ``val_data`` are :class:`btcore.data.ClipSet` or synthetic splits (anything
    with ``len()`` and ``get(indices) -> (x, y)``). Under torch.distributed the model is wrapped in
    DistributedDataParallel and each global batch is split across the processes.

    ``apply_threads``: set torch's (process-wide) CPU thread count to ``config.threads`` for the run
    and restore it afterwards. Only for a caller that owns the process; never from a worker thread
    that shares the process with other torch work (the app), where it would race with them.
    ``estimated_s`` (e.g. from :func:`btcore.train.probe_seconds`) goes into the start event.

    Randomness: the model init and the dropout masks come from two ``torch.Generator`` s of the run,
    seeded from ``config.seed`` (:func:`seeded_model`); the batch order from a NumPy generator of its
    own. The global RNG is neither used nor changed, so runs training at the same time (in turns, as
    :func:`compare` does, or in threads) reproduce their results alone.
    """
    cfg = config
    callback = callback or (lambda e: None)
    should_stop = should_stop or _never
    _check_data(train_data, cfg.model, "training data")
    _check_data(val_data, cfg.model, "validation data")
    dist = _Dist()
    device = _device(cfg, dist)
    old_threads = None
    if apply_threads and device.type == "cpu" and cfg.threads is not None:
        old_threads = set_cpu_threads(cfg.threads)
    try:
        run = _open(cfg, train_data, val_data, callback, should_stop, dist, device)
        run.estimated_s = estimated_s
        dev_name = device_name(device)
        _announce(run, run_index, runs, dev_name)
        run.t_start = time.perf_counter()
        run.net.train()
        for _ in _steps(run):
            pass
        return _finish(run, callback, dev_name, keep_model)
    finally:
        if old_threads is not None:
            torch.set_num_threads(old_threads)
