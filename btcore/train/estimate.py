"""Time estimates before a run, of every phase: the data (:func:`data_seconds`), building and training
each model and its evaluations (a timed probe of a few steps on the real shapes, :func:`probe_seconds`),
summed with a range (:func:`total_estimate`).

A probe times a handful of steps on a machine other sessions share, so an estimate is a range: its
low end is every step at the fastest timed step, its high end every step at the slowest times
:data:`LOAD_FACTOR` (load from other work, the first steps after a switch between the models of a race).
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..tasks import Task, make_task, to_device
from .config import TrainConfig, make_optimizer, pick_device
from .run import seeded_model

__all__ = ["probe_seconds", "data_seconds", "total_estimate", "SLOW_S", "LOAD_FACTOR"]

#: Above this many estimated seconds the page warns before launching (the paper's 3x120x160 frames on a CPU).
SLOW_S = 120.0
#: The high end of an estimate: the slowest timed step times this (other load on a shared machine).
LOAD_FACTOR = 1.5


def data_seconds(task: Task, seed: int = 0, *, sample: int = 8) -> float:
    """Estimated seconds to build (or read) ``task``'s data for ``seed``.

    The synthetic action clips are timed on ``sample`` clips per split and scaled to the task's sizes
    (generation is per clip); a clip folder is walked and ``sample`` of its clips read
    (:func:`~btcore.clips.clip_folder_estimate`; 0.0 for a path that does not exist: nothing to
    read); a data file or uploaded bytes (the sequences task) and any other task's :meth:`~btcore.tasks.base.Task.data` is timed as a whole.
    """
    synthetic = getattr(task, "synthetic", None)
    if synthetic is False:
        src = task.data_source
        if isinstance(src, (str, os.PathLike)):
            where = Path(src).expanduser()
            if where.is_dir():
                return task.folder_estimate(sample)["seconds"]
            if not where.exists():
                return 0.0
        synthetic = None  # a data file or uploaded bytes: read as a whole
    t0 = time.perf_counter()
    if synthetic is None:
        task.data(seed)
        return time.perf_counter() - t0
    full = task.synthetic_task(seed)
    n = max(int(sample), 1)
    small = type(full)(frame_shape=full.frame_shape, frames=full.frames, classes=full.classes, train_size=n,
                       val_size=n, seed=seed, noise=full.noise)
    t0 = time.perf_counter()
    for part in small.splits():
        part.prepare()
    per_clip = (time.perf_counter() - t0) / (2 * n)
    return per_clip * (full.train_size + full.val_size)


def total_estimate(probes: list[dict], data_s: float | tuple[float, float, float] = 0.0) -> dict:
    """Every phase of a race summed: ``{"data_s", "build_s", "train_s", "eval_s", "estimated_s", "low_s", "high_s"}``.

    ``probes``: one :func:`probe_seconds` per run; ``data_s``: :func:`data_seconds`, or ``(estimate,
    low, high)`` for data whose time has a range of its own (a clip folder's sampled clips,
    :func:`~btcore.clips.clip_folder_estimate`). The range is the probes' fastest and slowest timed
    steps (the slow end times :data:`LOAD_FACTOR`) and the data's range; building and evaluation
    count the same at both ends.
    """
    data, data_low, data_high = (float(data_s),) * 3 if isinstance(data_s, (int, float)) else map(float, data_s)
    build = sum(p.get("build_s", 0.0) for p in probes)
    train = sum(p["steps"] * p["step_s"] for p in probes)
    evals = sum(p["estimated_s"] - p["steps"] * p["step_s"] for p in probes)
    fixed = data + build + evals
    low = fixed - data + data_low + sum(p["steps"] * p.get("step_min_s", p["step_s"]) for p in probes)
    high = fixed - data + data_high + LOAD_FACTOR * sum(p["steps"] * p.get("step_max_s", p["step_s"]) for p in probes)
    return {"data_s": data, "build_s": build, "train_s": train, "eval_s": evals,
            "estimated_s": fixed + train, "low_s": min(low, fixed + train), "high_s": max(high, fixed + train)}


def probe_seconds(config: TrainConfig, n_train: int, n_val: int, frames: int | None, *, data=None, steps: int = 2,
                  task: Task | None = None) -> dict:
    """Estimated seconds of ``config`` on ``n_train`` / ``n_val`` examples (clips of ``frames`` frames), from timed steps.

    Trains a throwaway copy of the model (the run itself is untouched) one warm-up step and then
    ``steps`` timed steps on a batch of the real shape (from ``data`` when given, else the task's
    random example batch), and times one evaluation batch. ``task``: default ``config.task``'s.
    Returns ``{"step_s", "step_min_s", "step_max_s", "eval_batch_s", "build_s", "steps", "evals",
    "estimated_s"}``: ``estimated_s`` is all steps at the median step time plus every evaluation's
    batches; ``build_s`` the time to build the model (not in ``estimated_s``).
    """
    cfg = config
    task = task or make_task(cfg.task)
    device = pick_device(cfg.device)
    batch = min(cfg.batch_size, max(int(n_train), 1))
    spe = max(int(n_train) // batch, 1)
    total = spe * cfg.epochs if cfg.max_steps is None else min(spe * cfg.epochs, cfg.max_steps)
    t0 = time.perf_counter()
    model = seeded_model(cfg, device, task)
    build_s = time.perf_counter() - t0
    opt = make_optimizer(cfg, model.parameters())
    if data is not None:
        sample = data.get(np.arange(min(batch, len(data))))
    else:
        sample = task.example_batch(cfg.model, batch, frames)
    sample = to_device(sample, device)
    times = []
    for _ in range(1 + max(int(steps), 1)):
        t0 = time.perf_counter()
        loss, _ = task.loss(model, sample)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - t0)
    eval_batch = max(batch, 64)
    model.eval()
    with torch.no_grad():
        t0 = time.perf_counter()
        reps = math.ceil(eval_batch / batch)
        task.eval_sums(model, sample if eval_batch <= batch else tuple(
            t.repeat(reps, *([1] * (t.dim() - 1)))[:eval_batch] for t in sample))
        eval_s = time.perf_counter() - t0
    step_s = float(np.median(times[1:]))
    evals_per_epoch = 1 + (spe - 1) // cfg.eval_every if cfg.eval_every else 1
    evals = math.ceil(total / spe) * evals_per_epoch
    per_eval = math.ceil(max(int(n_val), 1) / eval_batch) * eval_s
    return {"step_s": step_s, "step_min_s": float(min(times[1:])), "step_max_s": float(max(times[1:])),
            "eval_batch_s": eval_s, "build_s": build_s, "steps": total, "evals": evals,
            "estimated_s": total * step_s + evals * per_eval}
