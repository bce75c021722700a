"""``x @ W`` for factorized W without forming W, by the scheme a measured cost model picks.

Modules: :mod:`~btcore.contract.paths` (steps, plans, opt_einsum paths),
:mod:`~btcore.contract.schemes` (the path, GEMM-shaped fold and dense schemes, how each runs),
:mod:`~btcore.contract.chain` (the chain scheme: one mode at a time, every step a GEMM on views),
:mod:`~btcore.contract.cost` (the cost model calibrated on this machine, the planner),
:mod:`~btcore.contract.function` (the autograd Function with each scheme's backward, timing).

``plan_matmul(spec, batch)`` returns the scheme ``matmul`` runs, with its pairwise steps (the app
displays them). The planner picks per (spec, batch, method, device, dtype, direction) the scheme
with the least modelled time; ``tune_plan`` (``matmul(..., tune=True)``) also times the few best
candidates once per shape and keeps the fastest.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch

from ..formats import DenseSpec
from ..shapes import check_choice, check_positive_int
from . import chain, cost, schemes
from .cost import Rates, rates, set_rates
from .function import PlannedMatmul, keep_memory, tune_plan
from .paths import ContractionPlan, Step, plan_reconstruct, split_steps, uses_x
from .schemes import CHUNK_ELEMENTS, chunk_rows, reconstruct_tensors

__all__ = ["Step", "ContractionPlan", "plan_matmul", "plan_reconstruct", "tune_plan", "matmul", "reconstruct",
           "CHUNK_ELEMENTS", "chunk_rows", "split_steps", "uses_x", "Rates", "rates", "set_rates", "ranked_plans",
           "PlannedMatmul", "keep_memory", "METHODS", "DIRECTIONS", "AUTO_TUNE_S"]

#: ``method`` values: "contract" never forms W (paths and folds), "dense" reconstructs W, "auto"
#: considers all, "path" only the opt_einsum paths (the FLOP-optimal order).
METHODS = ("contract", "dense", "auto", "path")
#: ``direction`` values: "forward" (inference) or "train" (forward + backward).
DIRECTIONS = ("forward", "train")


def _device_type(device) -> str:
    return torch.device(device).type


@lru_cache(maxsize=512)
def _checked(batch, method, direction):
    check_positive_int(batch, "batch")
    check_choice(method, METHODS, "method")
    check_choice(direction, DIRECTIONS, "direction")


def plan_matmul(spec, batch: int, method: str = "contract", *, device="cpu", dtype=torch.float32,
                direction: str = "forward") -> ContractionPlan:
    """The scheme ``matmul`` runs for ``batch`` rows of x, with its steps; chosen by the cost model.

    Parameters
    ----------
    spec : DenseSpec, TTSpec or BTSpec
    batch : int
        Rows of x (all leading dimensions flattened).
    method : {"contract", "dense", "auto", "path"}
        "contract" never forms W (the FLOP-optimal path or a GEMM-shaped fold); "dense" reconstructs
        W and does one matmul; "auto" considers both; "path" is the FLOP-optimal path alone.
    device, dtype
        Whose calibrated rates the cost model uses (measured once per process on first use).
    direction : {"forward", "train"}
        Minimise the forward time, or forward + backward.
    """
    _checked(batch, method, direction)
    return cost.choose(spec, int(batch), method, _device_type(device), dtype, direction)


def ranked_plans(spec, batch: int, method: str = "auto", *, device="cpu", dtype=torch.float32,
                 direction: str = "forward") -> list[ContractionPlan]:
    """Every candidate scheme with its modelled ``cost_s``, cheapest first."""
    _checked(batch, method, direction)
    return cost.ranked(spec, int(batch), method, _device_type(device), dtype, direction)


def reconstruct(M) -> torch.Tensor:
    """The dense (I, J) matrix of a :class:`BTMatrix` or :class:`TTMatrix`."""
    return reconstruct_tensors(M.spec, M.tensors())


def _check_operands(x: torch.Tensor, M) -> None:
    spec = M.spec
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"x must be a torch.Tensor of shape (..., {spec.in_size}), got {type(x).__name__}")
    if x.shape[-1:] != (spec.in_size,):
        raise ValueError(f"x: last dimension is {tuple(x.shape)[-1:] or '()'}, expected I = {spec.in_size}")
    if x.dtype != M.dtype:
        raise ValueError(f"x has dtype {x.dtype} but the matrix's tensors are {M.dtype}; cast one to the other "
                         f"(x.to({M.dtype}) or M.to({x.dtype}))")
    if x.device != M.device:
        raise ValueError(f"x is on {x.device} but the matrix's tensors are on {M.device}; move one "
                         f"(x.to('{M.device}') or M.to('{x.device}'))")


def _check_memory(plan: ContractionPlan, x: torch.Tensor) -> None:
    """Refuse, before running, a plan whose largest intermediate (per row block) would not fit."""
    rows = chunk_rows(plan, x.device.type)
    need = plan.largest_intermediate * rows // max(plan.batch, 1) * x.element_size()
    if plan.scheme == "dense":
        need = max(need, plan.steps[-1].right_shape[0] * plan.steps[-1].right_shape[1] * x.element_size())
    if need > 1 << 26:  # reading free memory costs more than small contractions: only check big ones
        from ..tensors import check_allocation

        check_allocation(need, f"the largest intermediate of x @ W ({plan.name} scheme, batch {plan.batch})",
                         "use a smaller batch (split x into row blocks) or a smaller rank", x.device)


#: ``matmul(..., tune=None)`` times the best candidates (once per shape) when the model's cheapest
#: costs more than this many seconds: below it, timing would cost more than it could save.
AUTO_TUNE_S = 2e-3


def matmul(x: torch.Tensor, M, *, method: str = "contract", tune: bool | None = None) -> torch.Tensor:
    """``x @ M.to_dense()`` for x of shape (..., I), computed without forming the dense matrix.

    Parameters
    ----------
    x : torch.Tensor
        Input of shape (..., I), of the same dtype and on the same device as ``M``'s tensors
        (otherwise ``ValueError`` naming both).
    M : BTMatrix or TTMatrix
        The factorized matrix (its tensors may be ``nn.Parameter``; the result is differentiable,
        through :class:`PlannedMatmul`, whose backward is planned too).
    method : {"contract", "dense", "auto", "path"}
        See :func:`plan_matmul`. The default never forms W.
    tune : bool or None
        True: time the few best candidates once per shape (:func:`tune_plan`) instead of trusting
        the cost model alone (the first call per shape pays for the timing). False: the model's
        choice. None (default): time only where the model's cheapest costs over
        :data:`AUTO_TUNE_S`.

    Returns
    -------
    torch.Tensor of shape (..., J).
    """
    _check_operands(x, M)
    spec = M.spec
    lead = x.shape[:-1]
    batch = math.prod(lead)
    if batch == 0:
        return x.new_zeros(*lead, spec.out_size)
    tensors = M.tensors()
    train = torch.is_grad_enabled() and (x.requires_grad or any(t.requires_grad for t in tensors))
    direction = "train" if train else "forward"
    plan = plan_matmul(spec, batch, method, device=x.device, dtype=x.dtype, direction=direction)
    if tune or (tune is None and plan.cost_s > AUTO_TUNE_S and not isinstance(spec, DenseSpec)):
        plan = tune_plan(M, batch, method=method, direction=direction)
    _check_memory(plan, x)
    x2 = x.reshape(batch, spec.in_size)
    if isinstance(spec, DenseSpec):
        y = x2 @ tensors[0]
    elif train:
        y = PlannedMatmul.apply(plan, spec, x2, *tensors)
    else:
        with torch.no_grad():
            y = schemes.run(plan, spec, x2, tensors)
    return y.reshape(*lead, spec.out_size)
