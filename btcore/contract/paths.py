"""Plans as pairwise steps: :class:`Step`, :class:`ContractionPlan`, FLOP-optimal opt_einsum paths.

The format's spec describes a tensor network (:meth:`Network`); the input ``x`` is one more
operand. The pairwise contraction order is searched with opt_einsum once per (spec, batch size)
and cached: several strategies are tried ("dp", "optimal" for small networks, "branch-2",
"greedy") and the one with the fewest multiply-adds wins, ties broken by the smaller largest
intermediate. opt_einsum's plain "greedy" can be several times worse for BT networks.

Every scheme (see :mod:`btcore.contract.schemes`) is described by such steps, so the app can
display the order that actually runs (which tensors meet, the result's shape, multiply-adds).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import opt_einsum

from ..formats import DenseSpec, Network

__all__ = ["Step", "ContractionPlan", "plan_reconstruct", "split_steps", "uses_x", "candidate_paths",
           "network_with_batch", "steps_for"]


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


def make_step(left, right, result, lt, rt, ot, sizes) -> Step:
    """The :class:`Step` joining ``left`` (indices ``lt``) and ``right`` (``rt``) into ``result`` (``ot``);
    ``sizes`` maps index letters to sizes. Its cost is the product of every index involved."""
    union = list(dict.fromkeys(lt + rt))
    return Step(left=left, right=right, result=result, left_indices=lt, right_indices=rt, result_indices=ot,
                left_shape=tuple(sizes[c] for c in lt), right_shape=tuple(sizes[c] for c in rt),
                result_shape=tuple(sizes[c] for c in ot), summed="".join(c for c in union if c not in ot),
                macs=math.prod(sizes[c] for c in union))


@dataclass(frozen=True)
class ContractionPlan:
    """A scheme for ``x @ W`` (or for W alone): its pairwise steps, in the order they run, and its cost.

    Attributes
    ----------
    method : str
        ``"contract"`` (W never formed) or ``"dense"`` (reconstruct W, then one matmul).
    batch : int
        Number of rows of x the plan is for.
    steps : tuple of Step
        The pairwise contractions in order; their ``macs`` sum to :attr:`macs`.
    strategy : str
        How the order was found (the opt_einsum strategy, or the scheme's rule).
    output_indices : str
        Index letters of the result (batch then output modes).
    scheme : str
        ``"path"`` (the FLOP-optimal pairwise path), ``"chain"`` (one mode at a time, every step a GEMM
        on views, see :mod:`btcore.contract.chain`), ``"fold"`` (a GEMM-shaped order: the core and
        the factors of :attr:`folded` modes form one matrix G, x meets G in one GEMM, the other
        modes' factors follow as batched GEMMs) or ``"dense"``.
    folded : tuple of int
        For ``"fold"``: the 0-based modes folded into G (a prefix or a suffix of the modes).
    cost_s : float
        The cost model's estimate in seconds (0 where not estimated).
    """

    method: str
    batch: int
    steps: tuple[Step, ...]
    strategy: str
    output_indices: str
    scheme: str = "path"
    folded: tuple[int, ...] = ()
    cost_s: float = 0.0

    @property
    def macs(self) -> int:
        return sum(s.macs for s in self.steps)

    @property
    def largest_intermediate(self) -> int:
        return max((s.result_elements for s in self.steps), default=0)

    @property
    def name(self) -> str:
        """A short label: ``path dp`` (with the opt_einsum strategy), ``dense``, ``fold 2-4`` (1-based
        modes folded into G)."""
        if self.scheme == "fold":
            lo, hi = self.folded[0] + 1, self.folded[-1] + 1
            return f"fold {lo}" if lo == hi else f"fold {lo}-{hi}"
        if self.scheme == "path":
            return "path " + self.strategy.replace(" (timed)", "")
        return self.scheme


_STRATEGIES = ("dp", "optimal", "branch-2", "greedy")


def steps_for(names, terms, shapes, output, path) -> tuple[Step, ...]:
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
def candidate_paths(names, terms, shapes, output):
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
        steps = steps_for(names, terms, shapes, output, path)
        found[path] = (label, steps)
    ranked = sorted(found.items(), key=lambda kv: (sum(s.macs for s in kv[1][1]),
                                                   max(s.result_elements for s in kv[1][1])))
    return tuple((path, label, steps) for path, (label, steps) in ranked)


def _best_path(names, terms, shapes, output):
    return candidate_paths(names, terms, shapes, output)[0]


def network_with_batch(net: Network, batch: int):
    shapes = tuple((batch,) + s[1:] if n == "x" else s for n, s in zip(net.names, net.shapes))
    return net.names, net.terms, shapes


@lru_cache(maxsize=512)
def plan_reconstruct(spec) -> ContractionPlan:
    """The plan that forms the dense (I, J) matrix from the format's tensors."""
    net = spec.network()
    if isinstance(spec, DenseSpec):
        return ContractionPlan("dense", 0, (), "none", net.in_indices + net.out_indices, scheme="dense")
    output = net.in_indices + net.out_indices
    if len(net.terms) == 2:  # a single tensor (TT with d = 1) is already the matrix
        return ContractionPlan("dense", 0, (), "none", output, scheme="dense")
    _, strategy, steps = _best_path(net.names[1:], net.terms[1:], net.shapes[1:], output)
    return ContractionPlan("dense", 0, steps, strategy, output, scheme="dense")


def split_steps(steps):
    """(steps that involve only the format's tensors, steps that involve x), keeping order."""
    flags = uses_x(steps)
    return [s for s, f in zip(steps, flags) if not f], [s for s, f in zip(steps, flags) if f]


def uses_x(steps) -> list[bool]:
    """For each step, whether it involves x (directly or through an earlier result).

    Steps that join only the format's own tensors are the same for every input (they run once per
    call, not per row block).
    """
    from_x, out = {"x"}, []
    for s in steps:
        hit = s.left in from_x or s.right in from_x
        if hit:
            from_x.add(s.result)
        out.append(hit)
    return out
