"""Timing the planner's best candidates once per shape (:func:`tune_plan`), for ``matmul(tune=...)``."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import replace

import torch

from ..plan import ContractionPlan
from .autograd import PlannedMatmul
from .calibration import median_time
from .planner import ranked_plans
from .schemes import scheme_of

__all__ = ["tune_plan"]

#: Timed plans by (spec, batch, method, direction, dtype, device), oldest dropped past :data:`_TUNED_MAX`.
_TUNED: "OrderedDict" = OrderedDict()
_TUNED_MAX = 256


def _time_plan(plan, M, xt, direction: str, repeats: int) -> float:
    sync = (lambda: torch.cuda.synchronize(M.device)) if M.device.type == "cuda" else (lambda: None)
    tensors = [t.detach().requires_grad_(direction == "train") for t in M.tensors()]

    def once():
        if direction == "train":
            PlannedMatmul.apply(plan, xt, *tensors).sum().backward()
        else:
            with torch.no_grad():
                scheme_of(plan).run(plan, xt, tensors)

    return median_time(once, repeats, sync)


def tune_plan(M, batch: int, *, method: str = "contract", direction: str = "forward", slack: float = 1.5,
              max_candidates: int = 3, repeats: int = 3) -> ContractionPlan:
    """The fastest *measured* of the model's best candidates for ``M`` at ``batch`` rows, cached.

    The candidates whose modelled cost is within ``slack`` times the cheapest (at most
    ``max_candidates``) are each run ``repeats`` times on random data of ``M``'s dtype and device
    (forward, or forward + backward for ``direction="train"``) and the fastest median is kept. The
    cache key is (spec, batch, method, direction, dtype, device).
    """
    spec = M.spec
    key = (spec, batch, method, direction, M.dtype, str(M.device))
    if key in _TUNED:
        _TUNED.move_to_end(key)
        return _TUNED[key]
    ranked = ranked_plans(spec, batch, method, device=M.device, dtype=M.dtype, direction=direction)
    cands = [p for p in ranked if p.cost_s <= slack * ranked[0].cost_s][:max_candidates]
    best = cands[0]
    if len(cands) > 1:
        with torch.random.fork_rng(devices=[M.device] if M.device.type == "cuda" else []):
            xt = torch.randn(batch, spec.in_size, dtype=M.dtype, device=M.device)
        with torch.enable_grad():
            timings = [_time_plan(p, M, xt, direction, repeats) for p in cands]
        best = cands[min(range(len(cands)), key=timings.__getitem__)]
    plan = replace(best, strategy=best.strategy + " (timed)")
    _TUNED[key] = plan
    while len(_TUNED) > _TUNED_MAX:
        _TUNED.popitem(last=False)
    return plan
