"""The ``path`` scheme: the FLOP-optimal pairwise order from opt_einsum, one ``torch.einsum`` per step.

Each einsum permutes its operands into a batched GEMM. The steps that join only the format's
tensors run once; on CPU the steps that involve x run in row blocks so the intermediates stay in
cache. The backward replays the autograd graph the forward recorded (the :class:`Scheme` default).
"""

from __future__ import annotations

import math

import torch

from ...plan import ContractionPlan, candidate_paths, network_with_batch, split_steps
from ..calibration import Rates, copy_seconds, einsum_seconds
from .base import Scheme, blocked_rows, run_steps

__all__ = ["PathScheme", "PATH"]


class PathScheme(Scheme):
    """The opt_einsum candidate paths within ``slack`` times the fewest multiply-adds (at most ``limit``)."""

    name = "path"
    order = 0
    methods = frozenset({"contract", "auto", "path"})

    def __init__(self, slack: float = 1.5, limit: int = 4):
        self.slack, self.limit = slack, limit

    def plans(self, spec, batch: int) -> list[ContractionPlan]:
        net = spec.network()
        names, terms, shapes = network_with_batch(net, batch)
        cands = candidate_paths(names, terms, shapes, net.output)
        least = sum(s.macs for s in cands[0][2])
        keep = [c for c in cands if sum(s.macs for s in c[2]) <= self.slack * least][: self.limit]
        return [ContractionPlan("contract", batch, steps, label, net.output, scheme=self.name,
                                label=f"path {label}", spec=spec) for _, label, steps in keep]

    def rows(self, plan: ContractionPlan, device_type: str = "cpu") -> int:
        return blocked_rows(plan, device_type)

    def run(self, plan: ContractionPlan, x2: torch.Tensor, tensors) -> torch.Tensor:
        """Weight-only steps once, then the x-steps in row blocks (same multiply-adds, less traffic)."""
        spec = plan.spec
        weights = dict(zip(spec.network().names[1:], tensors))
        weight_only, x_steps = split_steps(plan.steps)
        for step in weight_only:
            weights[step.result] = torch.einsum(step.equation, weights.pop(step.left), weights.pop(step.right))
        xt = x2.reshape((x2.shape[0],) + spec.in_modes)
        rows = self.rows(plan, x2.device.type)
        if rows >= xt.shape[0]:
            y = run_steps(x_steps, weights | {"x": xt})
        else:
            y = torch.cat([run_steps(x_steps, weights | {"x": part}) for part in xt.split(rows)])
        return y.reshape(x2.shape[0], spec.out_size)

    def cost(self, plan: ContractionPlan, r: Rates, device_type: str) -> tuple[float, float]:
        weight_only, x_steps = split_steps(plan.steps)
        w = sum(einsum_seconds(s, r) for s in weight_only)
        blocks = math.ceil(plan.batch / self.rows(plan, device_type))
        x = sum(einsum_seconds(s, r) for s in x_steps) + (blocks - 1) * len(x_steps) * r.call_s
        if blocks > 1:
            x += copy_seconds(r, plan.steps[-1].result_elements)  # torch.cat of the row blocks
        # backward: each einsum step's two gradient einsums; the weight-only steps likewise
        return w + x, 2 * (w + x)


#: The registered instance.
PATH = PathScheme()
