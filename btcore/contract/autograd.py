"""The autograd Function behind ``matmul``: every scheme's training forward and backward, one interface.

``PlannedMatmul.apply(plan, x2, *tensors)`` asks the plan's scheme (:func:`~btcore.contract.schemes.scheme_of`)
for its training forward, keeps the state it returns, and hands that state back to the same
scheme's backward. See each scheme's module for its backward (hand-written for the chain and the
single-mode folds; the recorded graph replayed for the others).
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from ..plan import ContractionPlan
from .schemes import scheme_of

__all__ = ["PlannedMatmul", "run_plan"]


class PlannedMatmul(torch.autograd.Function):
    """``y = x2 @ W`` along a plan: ``PlannedMatmul.apply(plan, x2, *tensors)`` with x2 (b, I)."""

    @staticmethod
    def forward(ctx, plan: ContractionPlan, x2: torch.Tensor, *tensors):
        ctx.plan = plan
        y, ctx.state = scheme_of(plan).forward(plan, x2, tensors, ctx.needs_input_grad[1:])
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, gy):
        grads = scheme_of(ctx.plan).backward(ctx.plan, ctx.state, gy, ctx.needs_input_grad[1:])
        return (None, *grads)


def run_plan(plan: ContractionPlan, x2: torch.Tensor, tensors) -> torch.Tensor:
    """y (b, J) for x2 (b, I) along ``plan``: through :class:`PlannedMatmul` where a gradient is
    needed, else the scheme's plain forward without autograd bookkeeping."""
    if torch.is_grad_enabled() and any(t.requires_grad for t in [x2, *tensors]):
        return PlannedMatmul.apply(plan, x2, *tensors)
    with torch.no_grad():
        return scheme_of(plan).run(plan, x2, tensors)
