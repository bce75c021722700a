"""The ``dense`` scheme: reconstruct W from the format's tensors, then one (batch, I) x (I, J) GEMM.

Worth it for small W and large batches, where one big GEMM beats many small steps; only
``method="dense"`` or ``"auto"`` consider it. The backward replays the recorded graph.
"""

from __future__ import annotations

import torch

from ...plan import ContractionPlan, Step, plan_reconstruct
from ..calibration import Rates, einsum_seconds, gemm_seconds
from .base import Scheme, reconstruct_tensors

__all__ = ["DenseScheme", "DENSE"]


class DenseScheme(Scheme):
    """Form W (the plan of :func:`btcore.plan.plan_reconstruct`), then one GEMM with x."""

    name = "dense"
    order = 3
    methods = frozenset({"dense", "auto"})

    def plans(self, spec, batch: int) -> list[ContractionPlan]:
        rec = plan_reconstruct(spec)
        net = spec.network()
        i, j = spec.in_size, spec.out_size
        gemm = Step("x", "W", "y", "bA", "AI", "bI", (batch, i), (i, j), (batch, j), "A", batch * i * j)
        return [ContractionPlan("dense", batch, rec.steps + (gemm,), rec.strategy, net.output, scheme=self.name,
                                spec=spec)]

    def run(self, plan: ContractionPlan, x2: torch.Tensor, tensors) -> torch.Tensor:
        return x2 @ reconstruct_tensors(plan.spec, tensors)

    def working_elements(self, plan: ContractionPlan, rows: int) -> int:
        w = plan.steps[-1].right_shape  # W itself, whatever the batch
        return max(super().working_elements(plan, rows), w[0] * w[1])

    def cost(self, plan: ContractionPlan, r: Rates, device_type: str) -> tuple[float, float]:
        rec = sum(einsum_seconds(s, r) for s in plan.steps[:-1])
        g = plan.steps[-1]
        gemm = gemm_seconds(r, 1, g.left_shape[0], g.right_shape[1], g.left_shape[1])
        return rec + gemm, 2 * rec + 2 * gemm


#: The registered instance.
DENSE = DenseScheme()
