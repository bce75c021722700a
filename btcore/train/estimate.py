"""Time estimates before a run: a timed probe of a few steps on the real shapes (:func:`probe_seconds`)."""

from __future__ import annotations

import math
import time

import numpy as np
import torch
from torch import nn

from .config import TrainConfig, pick_device
from .loop import _optimizer, seeded_model

__all__ = ["probe_seconds", "SLOW_S"]

#: Above this many estimated seconds the page warns before launching (the paper's 3x120x160 frames on a CPU).
SLOW_S = 120.0


def _sample(cfg: TrainConfig, frames: int, batch: int, data=None):
    if data is not None:
        return data.get(np.arange(min(batch, len(data))))
    g = torch.Generator().manual_seed(0)
    x = torch.rand(batch, frames, cfg.model.input_size, generator=g)
    return x, torch.randint(0, cfg.model.classes, (batch,), generator=g)


def probe_seconds(config: TrainConfig, n_train: int, n_val: int, frames: int, *, data=None, steps: int = 2) -> dict:
    """Estimated seconds of ``config`` on ``n_train`` / ``n_val`` clips of ``frames`` frames, from timed steps.

    Trains a throwaway copy of the model (the run itself is untouched) one warm-up step and then
    ``steps`` timed steps on a batch of the real shape (from ``data`` when given, else random
    frames), and times one evaluation batch. Returns ``{"step_s", "eval_batch_s", "steps", "evals",
    "estimated_s"}``: all steps at the median step time plus every evaluation's batches.
    """
    cfg = config
    device = pick_device(cfg.device)
    batch = min(cfg.batch_size, max(int(n_train), 1))
    spe = max(int(n_train) // batch, 1)
    total = spe * cfg.epochs if cfg.max_steps is None else min(spe * cfg.epochs, cfg.max_steps)
    model = seeded_model(cfg, device)
    opt = _optimizer(cfg, model.parameters())
    x, y = _sample(cfg, frames, batch, data)
    x, y = x.to(device), y.to(device)
    times = []
    for _ in range(1 + max(int(steps), 1)):
        t0 = time.perf_counter()
        loss = nn.functional.cross_entropy(model(x), y)
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
        xe = x if eval_batch <= batch else x.repeat(math.ceil(eval_batch / batch), 1, 1)[:eval_batch]
        model(xe)
        eval_s = time.perf_counter() - t0
    step_s = float(np.median(times[1:]))
    evals_per_epoch = 1 + (spe - 1) // cfg.eval_every if cfg.eval_every else 1
    evals = math.ceil(total / spe) * evals_per_epoch
    per_eval = math.ceil(max(int(n_val), 1) / eval_batch) * eval_s
    return {"step_s": step_s, "eval_batch_s": eval_s, "steps": total, "evals": evals,
            "estimated_s": total * step_s + evals * per_eval}
