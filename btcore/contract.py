"""``x @ W`` for factorized W without forming W, along an optimised, cached contraction path.

The format's spec describes a tensor network (:meth:`Network`); the input ``x`` is one more
operand. The pairwise contraction order is searched with opt_einsum once per (spec, batch size)
and cached: several strategies are tried ("dp", "optimal" for small networks, "branch-2",
"greedy") and the one with the fewest multiply-adds wins, ties broken by the smaller largest
intermediate. opt_einsum's plain "greedy" can be several times worse for BT networks.

Each step of a plan is one pairwise ``torch.einsum``; the plan keeps the per-step trace (which
tensors meet, the result's shape, multiply-adds, elements) that the app displays.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import opt_einsum
import torch

from .formats import DenseSpec, Network
from .shapes import check_positive_int

__all__ = ["Step", "ContractionPlan", "plan_matmul", "plan_reconstruct", "matmul", "reconstruct",
           "CONTRACT_SLOWDOWN"]

#: How many times slower a multiply-add runs in the small pairwise contractions than in one large
#: GEMM, used by ``method="auto"`` (REFERENCE.md: 12-40 vs 87-260 GFLOP/s measured on 2 cores).
CONTRACT_SLOWDOWN = 3.0


@dataclass(frozen=True)
class Step:
    """One pairwise contraction of a plan."""

    left: str
    right: str
    result: str
    left_indices: str
    right_indices: str
    result_indices: str
    left_shape: tuple[int, ...]
    right_shape: tuple[int, ...]
    result_shape: tuple[int, ...]
    summed: str
    macs: int

    @property
    def equation(self) -> str:
        return f"{self.left_indices},{self.right_indices}->{self.result_indices}"

    @property
    def result_elements(self) -> int:
        return math.prod(self.result_shape)


@dataclass(frozen=True)
class ContractionPlan:
    """A contraction order for ``x @ W`` (or for W alone) with its cost.

    Attributes
    ----------
    method : str
        ``"contract"`` (x meets the factors, W never formed) or ``"dense"`` (reconstruct W, then
        one matmul).
    batch : int
        Number of rows of x the plan is for.
    steps : tuple of Step
        The pairwise contractions in order; their ``macs`` sum to :attr:`macs`.
    path : tuple of (int, int)
        opt_einsum-style positions for execution.
    strategy : str
        The opt_einsum strategy whose path was kept.
    """

    method: str
    batch: int
    steps: tuple[Step, ...]
    path: tuple[tuple[int, int], ...]
    strategy: str
    output_indices: str

    @property
    def macs(self) -> int:
        return sum(s.macs for s in self.steps)

    @property
    def largest_intermediate(self) -> int:
        return max((s.result_elements for s in self.steps), default=0)


_STRATEGIES = ("dp", "optimal", "branch-2", "greedy")


def _steps_for(names, terms, shapes, output, path) -> tuple[Step, ...]:
    sizes = {}
    for term, shape in zip(terms, shapes):
        for c, s in zip(term, shape):
            sizes[c] = s
    ops = list(zip(names, terms))
    steps, tmp = [], 0
    for i, j in path:
        hi, lo = max(i, j), min(i, j)
        (rn, rt), (ln, lt) = ops.pop(hi), ops.pop(lo)
        rest = set("".join(t for _, t in ops)) | set(output)
        union = list(dict.fromkeys(lt + rt))
        kept = "".join(c for c in union if c in rest)
        summed = "".join(c for c in union if c not in rest)
        tmp += 1
        name = "y" if not ops else f"T{tmp}"
        steps.append(Step(
            left=ln, right=rn, result=name, left_indices=lt, right_indices=rt,
            result_indices=kept if ops else output,
            left_shape=tuple(sizes[c] for c in lt), right_shape=tuple(sizes[c] for c in rt),
            result_shape=tuple(sizes[c] for c in (kept if ops else output)), summed=summed,
            macs=math.prod(sizes[c] for c in union),
        ))
        ops.append((name, kept if ops else output))
    return tuple(steps)


@lru_cache(maxsize=512)
def _best_path(names, terms, shapes, output) -> tuple[tuple[tuple[int, int], ...], str, tuple[Step, ...]]:
    if len(terms) == 1:
        raise ValueError("a network needs at least two operands")
    eq = ",".join(terms) + "->" + output
    best = None
    for strategy in _STRATEGIES:
        if strategy == "optimal" and len(terms) > 7:
            continue
        path, _ = opt_einsum.contract_path(eq, *shapes, shapes=True, optimize=strategy)
        path = tuple(tuple(p) for p in path)
        if any(len(p) != 2 for p in path):
            continue
        steps = _steps_for(names, terms, shapes, output, path)
        key = (sum(s.macs for s in steps), max(s.result_elements for s in steps))
        if best is None or key < best[0]:
            best = (key, path, strategy, steps)
    assert best is not None
    return best[1], best[2], best[3]


def _network_with_batch(net: Network, batch: int):
    shapes = tuple((batch,) + s[1:] if n == "x" else s for n, s in zip(net.names, net.shapes))
    return net.names, net.terms, shapes


@lru_cache(maxsize=512)
def plan_reconstruct(spec) -> ContractionPlan:
    """The plan that forms the dense (I, J) matrix from the format's tensors."""
    net = spec.network()
    if isinstance(spec, DenseSpec):
        return ContractionPlan("dense", 0, (), (), "none", net.in_indices + net.out_indices)
    output = net.in_indices + net.out_indices
    if len(net.terms) == 2:  # a single tensor (TT with d = 1) is already the matrix
        return ContractionPlan("dense", 0, (), (), "none", output)
    path, strategy, steps = _best_path(net.names[1:], net.terms[1:], net.shapes[1:], output)
    return ContractionPlan("dense", 0, steps, path, strategy, output)


@lru_cache(maxsize=512)
def plan_matmul(spec, batch: int, method: str = "contract") -> ContractionPlan:
    """The cached plan ``matmul`` uses for ``batch`` rows of x.

    Parameters
    ----------
    spec : DenseSpec, TTSpec or BTSpec
    batch : int
        Rows of x (all leading dimensions flattened).
    method : {"contract", "dense", "auto"}
        "contract" never forms W; "dense" reconstructs W and does one matmul; "auto" picks the
        cheaper by multiply-adds, counting contraction steps :data:`CONTRACT_SLOWDOWN` times
        dearer than a GEMM's.
    """
    batch = check_positive_int(batch, "batch")
    if method not in ("contract", "dense", "auto"):
        raise ValueError(f"method must be 'contract', 'dense' or 'auto', got {method!r}")
    net = spec.network()
    if isinstance(spec, DenseSpec):
        names, terms, shapes = _network_with_batch(net, batch)
        steps = _steps_for(names, terms, shapes, net.output, ((0, 1),))
        return ContractionPlan("dense", batch, steps, ((0, 1),), "none", net.output)
    if method == "auto":
        contract = plan_matmul(spec, batch, "contract")
        dense = plan_matmul(spec, batch, "dense")
        rec = plan_reconstruct(spec)
        dense_cost = rec.macs * CONTRACT_SLOWDOWN + (dense.macs - rec.macs)
        return dense if dense_cost < contract.macs * CONTRACT_SLOWDOWN else contract
    if method == "dense":
        rec = plan_reconstruct(spec)
        i, j = spec.in_size, spec.out_size
        gemm = Step("x", "W", "y", "bA", "AI", "bI", (batch, i), (i, j), (batch, j), "A", batch * i * j)
        return ContractionPlan("dense", batch, rec.steps + (gemm,), rec.path, rec.strategy, net.output)
    names, terms, shapes = _network_with_batch(net, batch)
    path, strategy, steps = _best_path(names, terms, shapes, net.output)
    return ContractionPlan("contract", batch, steps, path, strategy, net.output)


def _run(path, steps, operands):
    ops = list(operands)
    for (i, j), step in zip(path, steps):
        hi, lo = max(i, j), min(i, j)
        right, left = ops.pop(hi), ops.pop(lo)
        ops.append(torch.einsum(step.equation, left, right))
    (out,) = ops
    return out


def reconstruct(M) -> torch.Tensor:
    """The dense (I, J) matrix of a :class:`BTMatrix` or :class:`TTMatrix`."""
    spec = M.spec
    plan = plan_reconstruct(spec)
    full = _run(plan.path, plan.steps, M.tensors())
    # Result indices are in_modes then out_modes, already row-major for (I, J).
    return full.reshape(spec.in_size, spec.out_size)


def matmul(x: torch.Tensor, M, *, method: str = "contract") -> torch.Tensor:
    """``x @ M.to_dense()`` for x of shape (..., I), computed without forming the dense matrix.

    Parameters
    ----------
    x : torch.Tensor
        Input of shape (..., I), on the same device and dtype as ``M``'s tensors.
    M : BTMatrix or TTMatrix
        The factorized matrix (its tensors may be ``nn.Parameter``; the result is differentiable).
    method : {"contract", "dense", "auto"}
        See :func:`plan_matmul`. The default never forms W.

    Returns
    -------
    torch.Tensor of shape (..., J).
    """
    spec = M.spec
    if x.shape[-1:] != (spec.in_size,):
        raise ValueError(f"x: last dimension is {tuple(x.shape)[-1:] or '()'}, expected I = {spec.in_size}")
    lead = x.shape[:-1]
    batch = math.prod(lead)
    if batch == 0:
        return x.new_zeros(*lead, spec.out_size)
    plan = plan_matmul(spec, batch, method)
    if plan.method == "dense":
        return x @ reconstruct(M)
    xt = x.reshape((batch,) + spec.in_modes)
    y = _run(plan.path, plan.steps, (xt,) + tuple(M.tensors()))
    return y.reshape(*lead, spec.out_size)

