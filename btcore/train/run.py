"""The life of one training run as an object: :meth:`Run.open`, :meth:`Run.announce`, :meth:`Run.steps`, :meth:`Run.finish`.

:func:`btcore.train.train` drives one :class:`Run` to its end; :func:`btcore.train.compare` drives
several in turns. Everything task-specific (the model, the loss, the metrics, what "stalled"
means) comes from the run's :class:`~btcore.tasks.Task`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import threading
import time
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch import nn

from ..tasks import Task, make_task, to_device
from .config import TrainConfig, device_name, make_optimizer
from .distributed import Processes
from .outcome import Watch

__all__ = ["Run", "TrainResult", "STOP_CHECKS", "seeded_model", "param_checksum", "never_stop", "model_fields"]


#: What ended a run early (``stop_check``): non-finite input values in the batch, the training loss,
#: the gradient norm, non-finite weights after a step, the validation loss, a divergence on another
#: process, a stall at chance, a stop request.
STOP_CHECKS = ("inputs", "loss", "gradient", "weights", "validation", "other process", "stall", "request")


def never_stop() -> bool:
    """A ``should_stop`` that never asks to stop."""
    return False


def param_checksum(model: nn.Module) -> str:
    """A short hash of the parameters (for checking that DDP ranks agree)."""
    h = hashlib.sha256()
    for p in model.parameters():
        h.update(p.detach().to("cpu", torch.float32).numpy().tobytes())
    return h.hexdigest()[:16]


#: Held while a model is built: the constructors' default inits draw from the global RNG, which is
#: forked (the caller's state restored) before the model is re-initialised from its own generator.
_INIT_LOCK = threading.Lock()


def _stream_seed(seed: int, stream: int) -> int:
    """An independent 63-bit seed for stream ``stream`` (0: init, 1: dropout) of run seed ``seed``."""
    return int(np.random.SeedSequence([int(seed), stream]).generate_state(1, np.uint64)[0] >> 1)


def seeded_model(cfg: TrainConfig, device: torch.device | str = "cpu", task: Task | None = None) -> nn.Module:
    """The run's model: init and dropout each from a ``torch.Generator`` of its own, seeded from ``cfg.seed``.

    Nothing is drawn from (or left changed in) the global RNG, so models training at the same time,
    in turns or in threads, reproduce what each does alone. ``task``: default ``cfg.task``'s.
    """
    task = task or make_task(cfg.task)
    device = torch.device(device)
    with _INIT_LOCK, torch.random.fork_rng(devices=[]):
        model = task.build_model(cfg.model, init=torch.Generator().manual_seed(_stream_seed(cfg.seed, 0)))
    model = model.to(device)
    task.seed_dropout(model, torch.Generator(device=device).manual_seed(_stream_seed(cfg.seed, 1)))
    return model


def model_fields(cfg: TrainConfig) -> dict:
    """``kind``, ``rank`` and ``blocks`` of the run's model (rank and blocks None unless BT), for sweeps and tables."""
    m = cfg.model
    bt = m.kind == "bt"
    return {"kind": m.kind, "rank": (m.rank if isinstance(m.rank, int) else list(m.rank)) if bt else None,
            "blocks": m.blocks if bt else None}


@dataclasses.dataclass
class TrainResult:
    """What a training run leaves: its events (``history``), final metrics, status and the trained model.

    A run that ended early says where in numbers as well as in ``reason``: ``stop_step`` (for a
    divergence the step that diverged, which is never reported as a step event; for a stop or a
    stall the last step done), ``stop_loss`` (the loss the failing check saw at that step: the
    training loss, or the validation loss for a validation divergence; inf or NaN when non-finite;
    None when none was computed) and ``stop_check`` (one of :data:`STOP_CHECKS`). All three are None
    for a run that finished. ``verdict`` (one of :data:`~btcore.train.outcome.VERDICTS`, or None when
    the task has no chance level, the checks are off or the run diverged or was stopped) says what its
    evaluations showed: a finished run that did not learn is "too short" (to judge) or "at chance",
    and its ``reason`` says why.
    """

    name: str
    config: TrainConfig
    status: str
    reason: str
    history: list[dict]
    final: dict
    params: int
    device: str
    elapsed: float
    model: nn.Module | None = dataclasses.field(default=None, repr=False)
    stop_step: int | None = None
    stop_loss: float | None = None
    stop_check: str | None = None
    verdict: str | None = None

    def to_dict(self) -> dict:
        return {"name": self.name, "config": self.config.to_dict(), "status": self.status, "reason": self.reason,
                "stop_step": self.stop_step, "stop_loss": self.stop_loss, "stop_check": self.stop_check,
                "verdict": self.verdict,
                "final": self.final, "params": self.params, "device": self.device, "elapsed": self.elapsed,
                "history": self.history}


def _add(total: dict, sums: dict) -> None:
    for k, v in sums.items():
        total[k] = total.get(k, 0.0) + v


def _grad_norm(params) -> float:
    grads = [p.grad.detach() for p in params if p.grad is not None]
    if not grads:
        return 0.0
    return float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])))


@dataclasses.dataclass
class Run:
    """One run: its model, data, sizes, checks and progress; made by :meth:`open`, driven by :meth:`steps`.

    ``status`` is "done" until the run is stopped ("stopped"), diverges ("diverged") or stalls
    ("stalled"); ``reason`` says why. ``history`` holds its step and evaluation events.
    """

    cfg: TrainConfig
    task: Task
    model: nn.Module  # the module itself (its parameters are clipped and hashed)
    net: nn.Module  # what is called: the model, or its DistributedDataParallel wrapper
    opt: torch.optim.Optimizer
    train_data: Any
    val_data: Any
    device: torch.device
    processes: Processes
    should_stop: Callable[[], bool]
    emit: Callable[[dict], None]
    watch: Watch
    params: int
    gbatch: int  # the global batch
    local: int  # this process's share of it
    steps_per_epoch: int
    total: int
    eval_batch: int
    device_label: str = ""
    previews: bool = False
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
    stop_step: int | None = None
    stop_loss: float | None = None
    stop_check: str | None = None

    # -- lifecycle -----------------------------------------------------------------------------------
    @classmethod
    def open(cls, cfg: TrainConfig, train_data, val_data, *, task: Task | None = None,
             callback: Callable[[dict], Any] | None = None, should_stop: Callable[[], bool] | None = None,
             processes: Processes | None = None, device: torch.device | str = "cpu",
             estimated_s: float | None = None, previews: bool = False) -> "Run":
        """A run set up to train: its seeded model (DDP-wrapped under torch.distributed), optimiser and sizes.

        Its events go to ``callback`` with ``"run"`` (the name) and ``"task"``; step and evaluation
        events are also kept in :attr:`history`. With ``previews`` every evaluation event carries the
        task's :meth:`~btcore.tasks.Task.preview` of the model.
        """
        task = task or make_task(cfg.task)
        processes = processes or Processes()
        device = torch.device(device)
        callback = callback or (lambda e: None)
        history: list[dict] = []

        def emit(ev: dict) -> None:
            ev = {"event": ev.pop("event"), "run": cfg.name, "task": task.name, **ev}
            if ev["event"] in ("step", "eval"):
                history.append(ev)
            callback(ev)

        model = seeded_model(cfg, device, task)
        n_train = len(train_data)
        gbatch = min(cfg.batch_size, n_train)
        if processes.world > 1 and gbatch % processes.world:
            raise ValueError(f"batch_size {gbatch} must be divisible by the number of processes {processes.world}")
        local = gbatch // processes.world
        steps_per_epoch = n_train // gbatch
        total = steps_per_epoch * cfg.epochs
        if cfg.max_steps is not None:
            total = min(total, cfg.max_steps)
        watch = Watch(cfg.lr, cfg.weight_decay, cfg.grad_clip is not None, cfg.diverge_factor, cfg.grad_factor,
                      cfg.stall_fraction, task.run_chance(model, train_data, val_data, cfg.model, device),
                      higher_is_better=task.higher_is_better, metric_label=task.metric_label,
                      format_metric=task.format_metric, data_check=task.data_check, val_size=len(val_data),
                      optimizer=cfg.optimizer)
        run = cls(cfg, task, model, processes.wrap(model, device), make_optimizer(cfg, model.parameters()),
                  train_data, val_data, device, processes, should_stop or never_stop, emit, watch,
                  sum(p.numel() for p in model.parameters()), gbatch, local, steps_per_epoch, total, max(local, 64),
                  device_label=device_name(device), previews=previews, estimated_s=estimated_s)
        run.history = history
        return run

    def announce(self, run_index: int = 0, runs: int = 1, **extra) -> None:
        """Emit the start event (sizes, parameters, the configuration) and start the clock."""
        cfg = self.cfg
        self.emit({"event": "start", "run_index": run_index, "runs": runs, "params": self.params,
                   "input_map_params": cfg.model.input_map_params(), "device": self.device_label,
                   "total_steps": self.total, "steps_per_epoch": self.steps_per_epoch, "batch": self.gbatch,
                   "world_size": self.processes.world, "estimated_s": self.estimated_s, **model_fields(cfg),
                   **extra, "config": cfg.to_dict()})
        self.t_start = time.perf_counter()
        self.net.train()

    def stop(self, status: str, reason: str, check: str, step: int | None = None, loss: float | None = None) -> None:
        """End the run with ``status`` ("stopped", "diverged", "stalled") and ``reason``.

        ``check`` (one of :data:`STOP_CHECKS`), ``step`` (default the last step done) and ``loss`` are
        the numeric record of where it ended (see :class:`TrainResult`).
        """
        if check not in STOP_CHECKS:
            raise ValueError(f"check must be one of {', '.join(STOP_CHECKS)}, got {check!r}")
        self.status, self.reason = status, reason
        self.stop_check, self.stop_step = check, self.step if step is None else int(step)
        self.stop_loss = None if loss is None else float(loss)

    def stopped_by_request(self) -> None:
        self.stop("stopped", f"stopped by request at step {self.step}", "request")

    def finish(self, callback: Callable[[dict], Any] | None = None, keep_model: bool = True) -> TrainResult:
        """Emit the end event (to ``callback``, default the run's own) and return the :class:`TrainResult`."""
        cfg, history = self.cfg, self.history
        elapsed = time.perf_counter() - self.t_start
        speeds = [e["examples_per_s"] for e in history if e["event"] == "step" and math.isfinite(e["examples_per_s"])]
        spe = self.steps_per_epoch
        final = {**self.last_eval, "steps": self.step, "epochs": self.step / spe if spe else 0.0,
                 "examples_per_s": float(np.median(speeds)) if speeds else float("nan"),
                 "step_time": float(np.median(self.step_times)) if self.step_times else float("nan"),
                 "elapsed": elapsed, "run_s": self.own_s, "estimated_s": self.estimated_s, "params": self.params,
                 "checksum": param_checksum(self.model), **model_fields(cfg)}
        verdict = None
        if self.status == "done":
            verdict, note = self.watch.ending()
            self.reason = self.reason or f"finished {self.step} steps" + (f"; {note}" if note else "")
        elif self.status == "stalled":
            verdict = "at chance"
        end = {"event": "end", "run": cfg.name, "task": self.task.name, "status": self.status, "reason": self.reason,
               "stop_step": self.stop_step, "stop_loss": self.stop_loss, "stop_check": self.stop_check,
               "verdict": verdict, "progress": self.step / max(self.total, 1), **final}
        if callback is None:
            self.emit(end)
        else:
            callback(end)
        return TrainResult(cfg.name, cfg, self.status, self.reason, history, final, self.params, self.device_label,
                           elapsed, self.model if keep_model else None, stop_step=self.stop_step,
                           stop_loss=self.stop_loss, stop_check=self.stop_check, verdict=verdict)

    # -- progress ------------------------------------------------------------------------------------
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

    # -- steps ---------------------------------------------------------------------------------------
    def _diverged(self, reason: str | None, check: str, loss: float | None = None) -> bool:
        """Mark the run "diverged" at the step being taken, with ``reason`` (from ``check``, at training
        loss ``loss``), on every process when any process has one.
        """
        bad = self.processes.any(reason is not None, self.device)
        if bad:
            n = self.step + 1
            if reason is None:
                self.stop("diverged", f"stopped at step {n}: another process diverged", "other process", n)
            else:
                self.stop("diverged", reason, check, n, loss)
        return bad

    def train_step(self, batch) -> tuple[dict, float] | None:
        """One optimiser step on this process's ``batch``: ``(the task's sums over all processes, seconds)``.

        Returns None, with the run marked "diverged" and the cause in its reason, when the batch holds
        non-finite inputs, or the loss or the gradient is non-finite or has exploded (see :class:`Watch`);
        the optimiser then does not step, so the weights stay those of the last good step.
        """
        cfg, device, watch, n = self.cfg, self.device, self.watch, self.step + 1
        t0 = time.perf_counter()
        batch = to_device(batch, device)
        floats = [t for t in batch if isinstance(t, torch.Tensor) and t.is_floating_point()]
        if self._diverged(next((r for r in (watch.batch(t, n) for t in floats) if r is not None), None), "inputs"):
            return None
        loss, sums = self.task.loss(self.net, batch)
        value = float(loss.detach())
        if self._diverged(watch.loss(value, n), "loss", value):
            return None
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        params = list(self.model.parameters())
        if cfg.grad_clip is not None:
            gnorm = float(nn.utils.clip_grad_norm_(params, cfg.grad_clip))
        else:
            gnorm = _grad_norm(params)
        if self._diverged(watch.gradient(gnorm, n), "gradient", value):
            return None
        self.opt.step()
        if self._diverged(watch.parameters(all(bool(torch.isfinite(p).all()) for p in params), n), "weights", value):
            return None
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        dt = time.perf_counter() - t0
        keys = list(sums)
        return dict(zip(keys, self.processes.sum([sums[k] for k in keys], device))), dt

    def evaluate(self, means: dict) -> bool:
        """Evaluate on the validation data and report it with the epoch's ``means``; False when the run ends here."""
        t0 = time.perf_counter()
        p = self.processes
        metrics = self.task.evaluate(self.net, self.val_data, batch=self.eval_batch, device=self.device,
                                     indices=np.arange(len(self.val_data))[p.rank::p.world],
                                     reduce=lambda v: p.sum(v, self.device), should_stop=self.should_stop)
        if metrics is None:
            self.stopped_by_request()
            return False
        dt = time.perf_counter() - t0
        self.own_s += dt
        self.eval_times.append(dt)
        ev = {"event": "eval", **self.base(), **means, **metrics, "eta_s": self.eta_s()}
        verdict = self.watch.validation(metrics["val_loss"], metrics[self.task.metric], self.step, self.total)
        if verdict is not None and verdict[0] == "diverged":
            self.stop(*verdict, "validation", loss=metrics["val_loss"])  # the bad value is not reported as a metric
            return False
        self.last_eval = {k: ev[k] for k in (*means, *metrics) if k != "examples_per_s"}
        if self.previews:
            ev["preview"] = self.task.preview(self.model, self.val_data, device=self.device)
        self.emit(ev)
        if verdict is not None:
            self.stop(*verdict, "stall")
            return False
        return True

    def _epoch_means(self, sums: dict, seconds: float) -> dict:
        return {**self.task.train_means(sums),
                "examples_per_s": sums["n"] / seconds if seconds else float("nan")}

    def steps(self) -> Iterator[None]:
        """The run as a generator: it yields after every step, so several runs can take turns.

        Each epoch takes its batches in its seeded order and ends with an evaluation. The incomplete
        last batch is dropped, so every step sees a full global batch. With ``eval_every`` the run also
        evaluates every that many steps (not on the epoch's last step: the epoch's evaluation follows).
        The generator returns when the run ends; :attr:`status` / :attr:`reason` say how.
        """
        cfg, p, spe = self.cfg, self.processes, self.steps_per_epoch
        for epoch in range(cfg.epochs):
            perm = np.random.default_rng([cfg.seed, epoch]).permutation(len(self.train_data))
            sums: dict = {}
            seconds = 0.0
            for b in range(spe):
                if self.step >= self.total:
                    break
                if self.should_stop():
                    self.stopped_by_request()
                    return
                gidx = perm[b * self.gbatch:(b + 1) * self.gbatch]
                stats = self.train_step(self.train_data.get(gidx[p.rank * self.local:(p.rank + 1) * self.local]))
                if stats is None:
                    return
                batch_sums, dt = stats
                self.step += 1
                self.own_s += dt
                self.step_times.append(dt)
                _add(sums, batch_sums)
                seconds += dt
                nsum = batch_sums["n"]
                self.emit({"event": "step", **self.base(), "epoch": epoch + (b + 1) / spe,
                           **self.task.train_means(batch_sums), "step_time": dt,
                           "examples_per_s": nsum / dt if dt > 0 else float("nan"), "eta_s": self.eta_s()})
                if cfg.eval_every and self.step % cfg.eval_every == 0 and (b + 1) != spe \
                        and not self.evaluate(self._epoch_means(sums, seconds)):
                    return
                yield
            if not sums.get("n") or not self.evaluate(self._epoch_means(sums, seconds)) or self.step >= self.total:
                return
            yield
