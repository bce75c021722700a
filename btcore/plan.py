"""Plans of ``x @ W`` as pairwise steps: :class:`Step`, :class:`ContractionPlan`, and the FLOP-optimal path.

A format's spec describes a tensor network (``spec.network()``, a :class:`btcore.formats.Network`);
the input ``x`` is one more operand. This module needs nothing but that network (it imports no
other btcore module), so the specs count with it (:func:`optimal_plan`: parameters, multiply-adds
and memory as pure functions of the spec) and the contraction schemes build on it. The pairwise contraction order is searched with opt_einsum once per (spec, batch size)
and cached: several strategies are tried ("dp", "optimal" for small networks, "branch-2",
"greedy") and the one with the fewest multiply-adds wins, ties broken by the smaller largest
intermediate. opt_einsum's plain "greedy" can be several times worse for BT networks.

Every scheme (see :mod:`btcore.contract.schemes`) is described by such steps, so the app can
display the order that runs (which tensors meet, the result's shape, multiply-adds).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import opt_einsum

__all__ = ["Step", "ContractionPlan", "make_step", "optimal_plan", "plan_reconstruct", "split_steps", "uses_x",
           "candidate_paths", "network_with_batch", "steps_for"]


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
        The name of the scheme that runs the plan, a key of the registry
        :data:`btcore.contract.schemes.SCHEMES` (``"path"``, ``"chain"``, ``"fold"``, ``"dense"``).
    folded : tuple of int
        For folds: the 0-based modes folded into one matrix G (a prefix or a suffix of the modes).
    cost_s : float
        The planner's modelled seconds (0 where not estimated).
    label : str
        The short name shown to people (:attr:`name`), set by the scheme that made the plan.
    spec : FormatSpec
        The spec the plan is for (any format of :data:`btcore.formats.FORMATS`).
    """

    method: str
    batch: int
    steps: tuple[Step, ...]
    strategy: str
    output_indices: str
    scheme: str = "path"
    folded: tuple[int, ...] = ()
    cost_s: float = 0.0
    label: str = ""
    spec: object = None

    @property
    def macs(self) -> int:
        return sum(s.macs for s in self.steps)

    @property
    def largest_intermediate(self) -> int:
        return max((s.result_elements for s in self.steps), default=0)

    @property
    def name(self) -> str:
        """A short label: ``path dp`` (with the opt_einsum strategy), ``chain``, ``dense``, ``fold 2-4``."""
        return self.label or self.scheme



def steps_for(names, terms, shapes, output, path) -> tuple[Step, ...]:
    """The :class:`Step` s of an opt_einsum ``path`` over the named operands."""
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


def network_with_batch(net, batch: int):
    """(names, terms, shapes) of a spec's network with x's batch size filled in."""
    shapes = tuple((batch,) + s[1:] if n == "x" else s for n, s in zip(net.names, net.shapes))
    return net.names, net.terms, shapes


@lru_cache(maxsize=1024)
def optimal_plan(spec, batch: int) -> ContractionPlan:
    """The FLOP-optimal pairwise path of ``x @ W`` for ``batch`` rows: a pure function of the spec.

    The fewest multiply-adds over opt_einsum's "dp" and "optimal" (small networks) searches and a
    few others, ties broken by the smaller largest intermediate; no timing is involved. A dense
    spec's plan is its one GEMM (scheme ``"dense"``).
    """
    net = spec.network()
    names, terms, shapes = network_with_batch(net, batch)
    _, strategy, steps = candidate_paths(names, terms, shapes, net.output)[0]
    if net.names == ("x", "W"):  # the dense matrix: one GEMM
        return ContractionPlan("dense", batch, steps, "none", net.output, scheme="dense", spec=spec)
    return ContractionPlan("contract", batch, steps, strategy, net.output, scheme="path",
                           label=f"path {strategy}", spec=spec)


@lru_cache(maxsize=512)
def plan_reconstruct(spec) -> ContractionPlan:
    """The plan that forms the dense (I, J) matrix from the format's tensors."""
    net = spec.network()
    output = net.in_indices + net.out_indices
    if len(net.terms) == 2:  # a single tensor (dense W, TT with d = 1) is already the matrix
        return ContractionPlan("dense", 0, (), "none", output, scheme="dense", spec=spec)
    _, strategy, steps = candidate_paths(net.names[1:], net.terms[1:], net.shapes[1:], output)[0]
    return ContractionPlan("dense", 0, steps, strategy, output, scheme="dense", spec=spec)


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
