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
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache

import opt_einsum
import torch

from .formats import DenseSpec, Network
from .shapes import check_choice, check_positive_int

__all__ = ["Step", "ContractionPlan", "plan_matmul", "plan_reconstruct", "tune_plan", "matmul", "reconstruct",
           "CONTRACT_SLOWDOWN", "CHUNK_ELEMENTS", "chunk_rows"]

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
    strategy : str
        The opt_einsum strategy whose path was kept.
    """

    method: str
    batch: int
    steps: tuple[Step, ...]
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


def _candidate_strategies(n_terms: int):
    yield "dp", "dp"
    if n_terms <= 7:
        yield "optimal", "optimal"
    yield "branch-2", "branch-2"
    yield "greedy", "greedy"
    for minimize in ("size", "write", "combo"):
        yield f"dp-{minimize}", opt_einsum.paths.DynamicProgramming(minimize=minimize)


@lru_cache(maxsize=512)
def _candidate_paths(names, terms, shapes, output):
    """Distinct pairwise paths from several strategies, fewest multiply-adds first.

    Each entry is (path, strategy, steps). The first is the one plans use; the others are
    alternatives that :func:`tune_plan` times, since FLOPs do not fully predict speed.
    """
    if len(terms) == 1:
        raise ValueError("a network needs at least two operands")
    eq = ",".join(terms) + "->" + output
    found = {}
    for label, strategy in _candidate_strategies(len(terms)):
        path, _ = opt_einsum.contract_path(eq, *shapes, shapes=True, optimize=strategy)
        path = tuple(tuple(p) for p in path)
        if path in found or any(len(p) != 2 for p in path):
            continue
        steps = _steps_for(names, terms, shapes, output, path)
        found[path] = (label, steps)
    ranked = sorted(found.items(), key=lambda kv: (sum(s.macs for s in kv[1][1]),
                                                   max(s.result_elements for s in kv[1][1])))
    return tuple((path, label, steps) for path, (label, steps) in ranked)


def _best_path(names, terms, shapes, output):
    return _candidate_paths(names, terms, shapes, output)[0]


def _network_with_batch(net: Network, batch: int):
    shapes = tuple((batch,) + s[1:] if n == "x" else s for n, s in zip(net.names, net.shapes))
    return net.names, net.terms, shapes


@lru_cache(maxsize=512)
def plan_reconstruct(spec) -> ContractionPlan:
    """The plan that forms the dense (I, J) matrix from the format's tensors."""
    net = spec.network()
    if isinstance(spec, DenseSpec):
        return ContractionPlan("dense", 0, (), "none", net.in_indices + net.out_indices)
    output = net.in_indices + net.out_indices
    if len(net.terms) == 2:  # a single tensor (TT with d = 1) is already the matrix
        return ContractionPlan("dense", 0, (), "none", output)
    _, strategy, steps = _best_path(net.names[1:], net.terms[1:], net.shapes[1:], output)
    return ContractionPlan("dense", 0, steps, strategy, output)


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
    check_choice(method, ("contract", "dense", "auto"), "method")
    net = spec.network()
    if isinstance(spec, DenseSpec):
        names, terms, shapes = _network_with_batch(net, batch)
        steps = _steps_for(names, terms, shapes, net.output, ((0, 1),))
        return ContractionPlan("dense", batch, steps, "none", net.output)
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
        return ContractionPlan("dense", batch, rec.steps + (gemm,), rec.strategy, net.output)
    names, terms, shapes = _network_with_batch(net, batch)
    _, strategy, steps = _best_path(names, terms, shapes, net.output)
    return ContractionPlan("contract", batch, steps, strategy, net.output)


#: On CPU the batch is processed in row blocks whose largest intermediate stays under this many
#: elements (4 MiB in float32), so each block's intermediates stay in cache. Measured on the UCF11
#: map at batch 64 (N=2, 1 thread): one block 206 ms, blocks of 8 rows 43 ms.
CHUNK_ELEMENTS = 1 << 20


def _run(steps, operands: dict):
    """Evaluate the steps by operand name; returns the last result."""
    env = dict(operands)
    for step in steps:
        env[step.result] = torch.einsum(step.equation, env.pop(step.left), env.pop(step.right))
    return env[steps[-1].result] if steps else next(iter(env.values()))


def _split_steps(steps):
    """(steps that involve only the format's tensors, steps that involve x), keeping order."""
    from_x, weight_only, rest = {"x"}, [], []
    for step in steps:
        if step.left in from_x or step.right in from_x:
            from_x.add(step.result)
            rest.append(step)
        else:
            weight_only.append(step)
    return weight_only, rest


def chunk_rows(plan: ContractionPlan, device_type: str = "cpu") -> int:
    """Rows of x per block when executing ``plan`` (the whole batch on GPUs)."""
    if device_type != "cpu" or plan.batch <= 1:
        return plan.batch
    _, x_steps = _split_steps(plan.steps)
    per_row = max((s.result_elements for s in x_steps), default=0) / plan.batch
    rows = 1
    while rows * 2 * per_row <= CHUNK_ELEMENTS and rows * 2 < plan.batch:
        rows *= 2
    return min(rows, plan.batch)


def _run_matmul(plan: ContractionPlan, xt: torch.Tensor, names, tensors) -> torch.Tensor:
    """Run a contraction plan; on CPU, weight-only steps once, then x-steps in row blocks.

    Every x-dependent step carries the batch index, so row blocks do the same multiply-adds as
    one pass; only the memory traffic changes.
    """
    weights = dict(zip(names, tensors))
    weight_only, x_steps = _split_steps(plan.steps)
    for step in weight_only:
        weights[step.result] = torch.einsum(step.equation, weights.pop(step.left), weights.pop(step.right))
    rows = chunk_rows(plan, xt.device.type)
    if rows >= xt.shape[0]:
        return _run(x_steps, weights | {"x": xt})
    return torch.cat([_run(x_steps, weights | {"x": part}) for part in xt.split(rows)])


def reconstruct(M) -> torch.Tensor:
    """The dense (I, J) matrix of a :class:`BTMatrix` or :class:`TTMatrix`."""
    spec = M.spec
    plan = plan_reconstruct(spec)
    full = _run(plan.steps, dict(zip(spec.network().names[1:], M.tensors())))
    # Result indices are in_modes then out_modes, already row-major for (I, J).
    return full.reshape(spec.in_size, spec.out_size)


#: Timed plans by (spec, batch, dtype, device), oldest dropped past :data:`_TUNED_MAX` entries.
_TUNED: "OrderedDict" = OrderedDict()
_TUNED_MAX = 256


def tune_plan(M, batch: int, *, slack: float = 1.5, max_candidates: int = 6, repeats: int = 3) -> ContractionPlan:
    """The fastest measured plan for ``M`` at ``batch`` rows, timed once and cached.

    FLOP counts do not predict time well for small batched contractions (REFERENCE.md section 1),
    so the candidate paths within ``slack`` times the fewest multiply-adds are each run
    ``repeats`` times on random data of ``M``'s dtype and device (forward only) and the fastest
    median kept. The cache key is (spec, batch, dtype, device).
    """
    import time

    spec = M.spec
    key = (spec, batch, M.dtype, str(M.device))
    if key in _TUNED:
        _TUNED.move_to_end(key)
        return _TUNED[key]
    net = spec.network()
    names, terms, shapes = _network_with_batch(net, batch)
    candidates = _candidate_paths(names, terms, shapes, net.output)
    least = sum(s.macs for s in candidates[0][2])
    candidates = [c for c in candidates if sum(s.macs for s in c[2]) <= slack * least][:max_candidates]
    best = candidates[0]
    if len(candidates) > 1:
        with torch.no_grad():
            xt = torch.randn((batch,) + spec.in_modes, dtype=M.dtype, device=M.device)
            tensors = [t.detach() for t in M.tensors()]
            timings = []
            for cand in candidates:
                cand_plan = ContractionPlan("contract", batch, cand[2], cand[1], net.output)
                _run_matmul(cand_plan, xt, net.names[1:], tensors)  # warm-up
                ts = []
                for _ in range(repeats):
                    if M.device.type == "cuda":
                        torch.cuda.synchronize(M.device)
                    t0 = time.perf_counter()
                    _run_matmul(cand_plan, xt, net.names[1:], tensors)
                    if M.device.type == "cuda":
                        torch.cuda.synchronize(M.device)
                    ts.append(time.perf_counter() - t0)
                timings.append(sorted(ts)[len(ts) // 2])
        best = candidates[min(range(len(candidates)), key=timings.__getitem__)]
    plan = ContractionPlan("contract", batch, best[2], best[1] + " (timed)", net.output)
    _TUNED[key] = plan
    while len(_TUNED) > _TUNED_MAX:
        _TUNED.popitem(last=False)
    return plan


def matmul(x: torch.Tensor, M, *, method: str = "contract", tune: bool = False) -> torch.Tensor:
    """``x @ M.to_dense()`` for x of shape (..., I), computed without forming the dense matrix.

    Parameters
    ----------
    x : torch.Tensor
        Input of shape (..., I), on the same device and dtype as ``M``'s tensors.
    M : BTMatrix or TTMatrix
        The factorized matrix (its tensors may be ``nn.Parameter``; the result is differentiable).
    method : {"contract", "dense", "auto"}
        See :func:`plan_matmul`. The default never forms W.
    tune : bool
        With ``method="contract"``, use the fastest measured path (:func:`tune_plan`) instead of
        the one with the fewest multiply-adds. The first call per shape pays for the timing.

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
    plan = tune_plan(M, batch) if tune and method == "contract" else plan_matmul(spec, batch, method)
    if plan.method == "dense":
        return x @ reconstruct(M)
    xt = x.reshape((batch,) + spec.in_modes)
    y = _run_matmul(plan, xt, spec.network().names[1:], M.tensors())
    return y.reshape(*lead, spec.out_size)

