"""The interface every contraction scheme implements, and what the schemes share.

A scheme is an object (one per module of this package, listed in the registry
:data:`btcore.contract.schemes.SCHEMES`) that answers, for its own plans:

* :meth:`Scheme.plans`: its candidate plans for a spec and a batch size (empty where it does not apply);
* :meth:`Scheme.run`: y (b, J) from x2 (b, I) without autograd bookkeeping;
* :meth:`Scheme.forward` / :meth:`Scheme.backward`: the training forward (returning what the
  backward needs) and the gradients, used by :class:`btcore.contract.autograd.PlannedMatmul`;
* :meth:`Scheme.cost`: the cost model's (forward, backward) seconds;
* :meth:`Scheme.rows` and :meth:`Scheme.working_elements`: the row blocks it runs in and the elements it
  holds at once (for the memory check before running).

The defaults suit a scheme whose :meth:`run` is plain differentiable torch ops: the forward records
an autograd graph on detached leaves (x a leaf only when its gradient is needed) and the backward
replays it, so no gradient that is not needed is computed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ...plan import ContractionPlan, plan_reconstruct, split_steps
from ..calibration import Rates

__all__ = ["CHUNK_ELEMENTS", "Scheme", "Recorded", "blocked_rows", "run_steps", "reconstruct_tensors"]

#: On CPU the batch is processed in row blocks whose largest intermediate stays under this many
#: elements (4 MiB in float32), so each block's intermediates stay in cache. Measured on the UCF11
#: map at batch 64 (N=2, 1 thread): one block 206 ms, blocks of 8 rows 43 ms.
CHUNK_ELEMENTS = 1 << 20


def run_steps(steps, operands: dict):
    """Evaluate pairwise einsum steps by operand name; returns the last result."""
    env = dict(operands)
    for step in steps:
        env[step.result] = torch.einsum(step.equation, env.pop(step.left), env.pop(step.right))
    return env[steps[-1].result] if steps else next(iter(env.values()))


def reconstruct_tensors(spec, tensors) -> torch.Tensor:
    """The dense (I, J) matrix from the format's tensors (network order)."""
    plan = plan_reconstruct(spec)
    full = run_steps(plan.steps, dict(zip(spec.network().names[1:], tensors)))
    # Result indices are in_modes then out_modes, already row-major for (I, J).
    return full.reshape(spec.in_size, spec.out_size)


def blocked_rows(plan: ContractionPlan, device_type: str = "cpu") -> int:
    """Rows per block so the largest x-step result stays under :data:`CHUNK_ELEMENTS` (CPU only)."""
    if device_type != "cpu" or plan.batch <= 1:
        return plan.batch
    _, x_steps = split_steps(plan.steps)
    per_row = max((s.result_elements for s in x_steps), default=0) / plan.batch
    rows = 1
    while rows * 2 * per_row <= CHUNK_ELEMENTS and rows * 2 < plan.batch:
        rows *= 2
    return min(rows, plan.batch)


def leaf_grads(mats, g_mats, leaves, need) -> tuple:
    """Gradients of the weight tensors ``leaves`` (those with ``need`` True) from the gradients
    ``g_mats`` of the matrices ``mats`` built from them; None where a tensor needs none.

    A matrix built only from tensors that need no gradient has no ``grad_fn`` and is left out:
    ``torch.autograd.grad`` refuses such outputs.
    """
    wanted = [v for v, n in zip(leaves, need) if n]
    live = [(m, g) for m, g in zip(mats, g_mats) if m.requires_grad]
    got = iter(torch.autograd.grad([m for m, _ in live], wanted, [g for _, g in live], allow_unused=True)) \
        if wanted else iter(())
    return tuple(next(got) if n else None for n in need)


@dataclass
class Recorded:
    """What the default training forward keeps: the recorded output and the leaves it was built on."""

    y: torch.Tensor
    leaves: list


class Scheme:
    """One way of computing ``y = x @ W``; subclasses set :attr:`name`, :attr:`methods` and implement
    :meth:`plans`, :meth:`run` and :meth:`cost` (and :meth:`forward`/:meth:`backward` where the
    recorded autograd graph is not good enough)."""

    #: The registry key, also :attr:`ContractionPlan.scheme` of the scheme's plans.
    name: str = ""
    #: The ``matmul(method=...)`` values under which the planner considers this scheme.
    methods: frozenset = frozenset()
    #: Position among the candidates: the planner lists schemes in this order and, at equal modelled
    #: cost, keeps the first.
    order: int = 100

    def plans(self, spec, batch: int) -> list[ContractionPlan]:  # pragma: no cover - abstract
        raise NotImplementedError

    def run(self, plan: ContractionPlan, x2: torch.Tensor, tensors) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def cost(self, plan: ContractionPlan, r: Rates, device_type: str) -> tuple[float, float]:  # pragma: no cover
        raise NotImplementedError

    def rows(self, plan: ContractionPlan, device_type: str = "cpu") -> int:
        """Rows of x per block when running ``plan`` (the whole batch by default)."""
        return plan.batch

    def working_elements(self, plan: ContractionPlan, rows: int) -> int:
        """Elements of the largest intermediate held while running ``plan`` in blocks of ``rows`` rows."""
        return plan.largest_intermediate * rows // max(plan.batch, 1)

    def forward(self, plan: ContractionPlan, x2: torch.Tensor, tensors, need) -> tuple[torch.Tensor, object]:
        """(y, state for :meth:`backward`); ``need`` flags which of (x2, *tensors) need gradients."""
        with torch.enable_grad():
            leaves = [v.detach().requires_grad_(n) for v, n in zip((x2,) + tuple(tensors), need)]
            y = self.run(plan, leaves[0], leaves[1:])
        return y.detach(), Recorded(y, leaves)

    def backward(self, plan: ContractionPlan, state, gy: torch.Tensor, need) -> tuple:
        """Gradients of (x2, *tensors), ``None`` where ``need`` is False."""
        wanted = [v for v, n in zip(state.leaves, need) if n]
        # retain_graph: the inner graph lives as long as the autograd node (a retained outer graph
        # may call backward again); it is freed with the node.
        got = iter(torch.autograd.grad(state.y, wanted, gy, allow_unused=True, retain_graph=True)) if wanted \
            else iter(())
        return tuple(next(got) if n else None for n in need)
