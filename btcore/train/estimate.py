"""Time estimates before a run: a timed probe of a few steps on the real shapes (:func:`probe_seconds`)."""

from __future__ import annotations

import math
import time

import numpy as np
import torch
from torch import nn

from ..tasks import Task, make_task, to_device
from .config import TrainConfig, make_optimizer, pick_device
from .run import seeded_model

__all__ = ["probe_seconds", "SLOW_S"]

#: Above this many estimated seconds the page warns before launching (the paper's 3x120x160 frames on a CPU).
SLOW_S = 120.0


def probe_seconds(config: TrainConfig, n_train: int, n_val: int, frames: int | None, *, data=None, steps: int = 2,
                  task: Task | None = None) -> dict:
    """Estimated seconds of ``config`` on ``n_train`` / ``n_val`` examples (clips of ``frames`` frames), from timed steps.

    Trains a throwaway copy of the model (the run itself is untouched) one warm-up step and then
    ``steps`` timed steps on a batch of the real shape (from ``data`` when given, else the task's
    random example batch), and times one evaluation batch. ``task``: default ``config.task``'s.
    Returns ``{"step_s", "eval_batch_s", "steps", "evals", "estimated_s"}``: all steps at the median
    step time plus every evaluation's batches.
    """
    cfg = config
    task = task or make_task(cfg.task)
    device = pick_device(cfg.device)
    batch = min(cfg.batch_size, max(int(n_train), 1))
    spe = max(int(n_train) // batch, 1)
    total = spe * cfg.epochs if cfg.max_steps is None else min(spe * cfg.epochs, cfg.max_steps)
    model = seeded_model(cfg, device, task)
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
    return {"step_s": step_s, "eval_batch_s": eval_s, "steps": total, "evals": evals,
            "estimated_s": total * step_s + evals * per_eval}
