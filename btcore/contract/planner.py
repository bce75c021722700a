"""The planner: which scheme ``matmul`` runs, chosen by the cost model, and what it would cost.

For a (spec, batch, method, device, dtype, direction) every registered scheme's candidate plans
(:func:`btcore.contract.schemes.candidates`) are costed by their scheme with this process's
calibrated rates (:mod:`btcore.contract.calibration`) and the cheapest is kept. This is the only
part of btcore whose answer depends on timing; the counts the specs report
(:meth:`btcore.BTSpec.macs`, :func:`btcore.summary_row`) never ask it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache

import torch

from ..plan import ContractionPlan
from ..shapes import check_choice, check_positive_int
from .calibration import Rates, rates
from .schemes import candidates, scheme_of

__all__ = ["METHODS", "DIRECTIONS", "plan_cost", "plan_matmul", "ranked_plans", "PlannerChoice", "planner_choice"]

#: ``method`` values: "contract" never forms W (paths, the chain and folds), "dense" reconstructs W,
#: "auto" considers all, "path" only the opt_einsum paths (the FLOP-optimal order).
METHODS = ("contract", "dense", "auto", "path")
#: ``direction`` values: "forward" (inference) or "train" (forward + backward).
DIRECTIONS = ("forward", "train")


def plan_cost(plan: ContractionPlan, r: Rates, device_type: str = "cpu", direction: str = "forward") -> float:
    """The model's seconds for ``plan``: forward, or forward + backward with ``direction="train"``."""
    fwd, bwd = scheme_of(plan).cost(plan, r, device_type)
    return fwd + (bwd if direction == "train" else 0.0)


@lru_cache(maxsize=512)
def _checked(batch, method, direction):
    check_positive_int(batch, "batch")
    check_choice(method, METHODS, "method")
    check_choice(direction, DIRECTIONS, "direction")


@lru_cache(maxsize=1024)
def _ranked(spec, batch: int, method: str, device_type: str, direction: str, r: Rates) -> tuple:
    # keyed by the rates themselves, so fixing new rates (set_rates) gives new plans
    scored = [(plan_cost(p, r, device_type, direction), i, p) for i, p in enumerate(candidates(spec, batch, method))]
    return tuple(replace(p, cost_s=float(c)) for c, _, p in sorted(scored, key=lambda t: t[:2]))


def ranked_plans(spec, batch: int, method: str = "auto", *, device="cpu", dtype=torch.float32,
                 direction: str = "forward") -> list[ContractionPlan]:
    """Every candidate scheme with its modelled ``cost_s``, cheapest first (ties: registry order)."""
    _checked(batch, method, direction)
    device_type = torch.device(device).type
    return list(_ranked(spec, int(batch), method, device_type, direction, rates(device_type, dtype)))


def plan_matmul(spec, batch: int, method: str = "contract", *, device="cpu", dtype=torch.float32,
                direction: str = "forward") -> ContractionPlan:
    """The scheme ``matmul`` runs for ``batch`` rows of x, with its steps; chosen by the cost model.

    Parameters
    ----------
    spec : a spec of :data:`btcore.formats.FORMATS` (DenseSpec, TTSpec, BTSpec, TRSpec)
    batch : int
        Rows of x (all leading dimensions flattened).
    method : {"contract", "dense", "auto", "path"}
        "contract" never forms W (the FLOP-optimal path, the chain or a GEMM-shaped fold); "dense"
        reconstructs W and does one matmul; "auto" considers all; "path" is the opt_einsum paths alone.
    device, dtype
        Whose calibrated rates the cost model uses (measured once per process on first use).
    direction : {"forward", "train"}
        Minimise the forward time, or forward + backward.

    The answer depends on rates timed in this process; for counts that do not, use ``spec.plan``.
    """
    _checked(batch, method, direction)
    device_type = torch.device(device).type
    return _ranked(spec, int(batch), method, device_type, direction, rates(device_type, dtype))[0]


@dataclass(frozen=True)
class PlannerChoice:
    """The scheme the planner would run for a spec and batch size, beside the deterministic count.

    Attributes
    ----------
    scheme : str
        The plan's short name (``"chain"``, ``"fold 2-4"``, ``"path dp"``, ``"dense"``).
    macs_per_sample : float
        Multiply-adds per sample of that scheme (at least the FLOP-optimal count ``spec.macs``).
    modelled_s : float
        The cost model's seconds for the whole batch, from rates measured in this process.
    plan : ContractionPlan
        The plan itself.
    """

    scheme: str
    macs_per_sample: float
    modelled_s: float
    plan: ContractionPlan


def planner_choice(spec, batch: int, method: str = "contract", *, device="cpu", dtype=torch.float32,
                   direction: str = "forward") -> PlannerChoice:
    """What the planner picks (:func:`plan_matmul`) as a :class:`PlannerChoice`, labelled as the planner's:
    its scheme, multiply-adds per sample and modelled time depend on this machine's measured rates."""
    plan = plan_matmul(spec, batch, method, device=device, dtype=dtype, direction=direction)
    return PlannerChoice(plan.name, plan.macs / plan.batch, plan.cost_s, plan)
