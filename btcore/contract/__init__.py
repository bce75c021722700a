"""``x @ W`` for factorized W without forming W, by the scheme a cost model picks from the shapes.

Modules: :mod:`~btcore.contract.schemes` (one module per scheme, each a
:class:`~btcore.contract.schemes.base.Scheme` with plans, run, forward, backward and cost, and the
registry :data:`~btcore.contract.schemes.SCHEMES`), :mod:`~btcore.contract.calibration` (the rates
of the cost model, fixed by default, GEMM and einsum time models), :mod:`~btcore.contract.planner` (the
cheapest candidate by the model: :func:`plan_matmul`, :func:`planner_choice`),
:mod:`~btcore.contract.autograd` (:class:`PlannedMatmul`, every scheme's backward through one
interface), :mod:`~btcore.contract.tuning` (timing the best candidates once per shape). The plan
type and the FLOP-optimal path are in :mod:`btcore.plan`, below the specs.

``plan_matmul(spec, batch)`` returns the scheme ``matmul`` runs, with its pairwise steps. The
planner picks per (spec, batch, method, device, dtype, direction) the scheme with the least
modelled time, with fixed reference rates unless the process called
:func:`~btcore.contract.calibration.measure_rates`, so that results are reproducible bit for bit;
``tune_plan`` (``matmul(..., tune=True)``) also times the few best candidates once per shape and
keeps the fastest (not reproducible). The counts the specs report do not depend on either.
"""

from __future__ import annotations

import math

import torch

from ..formats import DenseSpec
from ..memory import check_allocation
from .autograd import PlannedMatmul, run_plan
from .calibration import Rates, measure_rates, measuring, rates, reference_rates, set_rates
from .planner import DIRECTIONS, METHODS, PlannerChoice, plan_matmul, planner_choice, ranked_plans
from .schemes import scheme_of
from .schemes.base import reconstruct_tensors
from .tuning import tune_plan

__all__ = ["plan_matmul", "planner_choice", "PlannerChoice", "ranked_plans", "tune_plan", "matmul", "reconstruct",
           "run_plan", "chunk_rows", "Rates", "rates", "set_rates", "reference_rates", "measure_rates", "measuring", "PlannedMatmul", "METHODS", "DIRECTIONS",
           "AUTO_TUNE_S"]


def reconstruct(M) -> torch.Tensor:
    """The dense (I, J) matrix of a factorized container (:class:`BTMatrix`, :class:`TTMatrix`, :class:`TRMatrix`)."""
    return reconstruct_tensors(M.spec, M.tensors())


def chunk_rows(plan, device_type: str = "cpu") -> int:
    """Rows of x per block when executing ``plan`` (the whole batch on GPUs)."""
    return scheme_of(plan).rows(plan, device_type)


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


#: Reading free memory costs more than small contractions: only allocations above this are checked.
_CHECK_ABOVE = 1 << 26


def _check_output(x: torch.Tensor, batch: int, spec) -> None:
    """Refuse, before anything is allocated, an output y (batch, J) that alone would not fit."""
    need = batch * spec.out_size * x.element_size()
    if need > _CHECK_ABOVE:
        check_allocation(need, f"the output of x @ W ({batch:,} x {spec.out_size:,})",
                         "use a smaller batch (split x into row blocks)", x.device)


def _check_memory(plan, x: torch.Tensor) -> None:
    """Refuse, before running, a plan whose largest intermediate (per row block) would not fit."""
    scheme = scheme_of(plan)
    need = scheme.working_elements(plan, scheme.rows(plan, x.device.type)) * x.element_size()
    if need > _CHECK_ABOVE:
        check_allocation(need, f"the largest intermediate of x @ W ({plan.name} scheme, batch {plan.batch})",
                         "use a smaller batch (split x into row blocks) or a smaller rank", x.device)


def _empty_batch(x: torch.Tensor, tensors, lead, out_size: int) -> torch.Tensor:
    """y with no rows, still joined to x and every tensor, so a backward gives zero gradients (as
    ``nn.Linear`` does) instead of failing for want of a graph."""
    y = x.new_zeros(*lead, out_size)
    if torch.is_grad_enabled():
        links = [t.sum() for t in [x, *tensors] if t.requires_grad]
        if links:
            y = y + 0 * sum(links)
    return y


#: After :func:`measure_rates`, ``matmul(..., tune=None)`` times the best candidates (once per shape)
#: when the model's cheapest costs more than this many seconds: below it, timing would cost more than
#: it could save. Without it, ``tune=None`` never times (timings vary with the machine's load).
AUTO_TUNE_S = 2e-3


def matmul(x: torch.Tensor, M, *, method: str = "contract", tune: bool | None = None) -> torch.Tensor:
    """``x @ M.to_dense()`` for x of shape (..., I), computed without forming the dense matrix.

    Parameters
    ----------
    x : torch.Tensor
        Input of shape (..., I), of the same dtype and on the same device as ``M``'s tensors
        (otherwise ``ValueError`` naming both).
    M : BTMatrix, TTMatrix or TRMatrix
        The factorized matrix (its tensors may be ``nn.Parameter``; the result is differentiable,
        through :class:`PlannedMatmul`, whose backward is planned too).
    method : {"contract", "dense", "auto", "path"}
        See :func:`plan_matmul`. The default never forms W.
    tune : bool or None
        True: time the few best candidates once per shape (:func:`tune_plan`) instead of trusting
        the cost model alone (the first call per shape pays for the timing; not reproducible).
        False: the model's choice. None (default): the model's choice, or, in a process that
        called :func:`measure_rates`, timing where the model's cheapest costs over
        :data:`AUTO_TUNE_S`.

    Returns
    -------
    torch.Tensor of shape (..., J). With no rows, an empty result whose backward gives zero
    gradients. An output or an intermediate too large for free memory is refused (``ValueError``)
    before it is allocated.
    """
    _check_operands(x, M)
    spec = M.spec
    lead = x.shape[:-1]
    batch = math.prod(lead)
    tensors = M.tensors()
    if batch == 0:
        return _empty_batch(x, tensors, lead, spec.out_size)
    _check_output(x, batch, spec)
    train = torch.is_grad_enabled() and (x.requires_grad or any(t.requires_grad for t in tensors))
    direction = "train" if train else "forward"
    plan = plan_matmul(spec, batch, method, device=x.device, dtype=x.dtype, direction=direction)
    if tune or (tune is None and measuring() and plan.cost_s > AUTO_TUNE_S and not isinstance(spec, DenseSpec)):
        plan = tune_plan(M, batch, method=method, direction=direction)
    _check_memory(plan, x)
    x2 = x.reshape(batch, spec.in_size)
    if isinstance(spec, DenseSpec):
        y = x2 @ tensors[0]
    else:
        y = run_plan(plan, x2, tensors)
    return y.reshape(*lead, spec.out_size)
