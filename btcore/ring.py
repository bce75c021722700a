"""Tensor Ring (TR) matrices: the spec (:class:`TRSpec`), the container (:class:`TRMatrix`) and ``y = x W``.

A TR-matrix W of shape (I, J), I = I_1..I_d, J = J_1..J_d, is a ring of d cores G_k of shape
(r_{k-1}, I_k, J_k, r_k) whose first and last bonds are one (r_0 = r_d, a trace closes the ring)::

    W[(i_1..i_d), (j_1..j_d)] = trace(G_1[:, i_1, j_1, :] G_2[:, i_2, j_2, :] .. G_d[:, i_d, j_d, :])

Rows and columns are row-major, the pair (i_k, j_k) is merged mode k of size M_k = I_k J_k (index
i_k J_k + j_k), exactly as for TT in :mod:`btcore.formats`. With r_0 = r_d = 1 a ring is a TT-matrix.

Bonds are numbered like TT's inner ranks: ``ranks[k]`` (k = 0..d-1) is the bond between core k+1 and
core k+2, and ``ranks[d-1]`` closes the ring (between core d and core 1), so core k (0-based) has shape
``(ranks[k-1], I_k, J_k, ranks[k])``.

``y = x W`` contracts ``x.reshape(B, I_1..I_d)`` with the cores along the contraction order with the
fewest floating-point operations that opt_einsum's dynamic programme finds (outer products allowed;
deterministic, no timing); W is never formed, and autograd of the pairwise contractions gives the
exact backward pass.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass
from numbers import Integral
from typing import Sequence

import numpy as np
import opt_einsum
import torch

from .matrices import check_std
from .memory import DEFAULT_MAX_BYTES, check_allocation, dtype_bytes, format_bytes
from .shapes import check_positive_int, pair_modes, prod

__all__ = [
    "TRSpec", "TRMatrix", "TRPlan", "tr_params", "tr_matmul", "normalize_tr_ranks", "tr_rank_caps",
    "tr_universal_ranks", "tr_exact_ranks", "tr_max_uniform_rank", "tr_init_std", "tr_svd", "check_dense",
    "interleaved", "grow_bonds",
]

# Einsum letters: batch, input modes, output modes, bonds.
_BATCH = "b"
_IN = "ABCDEFGH"
_OUT = "IJKLMNOP"
_BOND = "pqrstuvw"


def tr_init_std(spec: "TRSpec", std: float) -> float:
    """Entry std of every TR core so the reconstructed matrix has entry std ``std``.

    An entry of W is a trace: a sum over all d bond indices of prod_k r_k products of d independent
    zero-mean entries, so Var(W) = prod(r) s^(2d) for a common std s.
    """
    return (std**2 / prod(spec.ranks)) ** (1.0 / (2 * spec.d))


# ----------------------------------------------------------------------------------------------
# Ranks
# ----------------------------------------------------------------------------------------------

def normalize_tr_ranks(ranks, d: int) -> tuple[int, ...]:
    """The d bond ranks asked for, validated but not capped.

    ``ranks``: one int for every bond, the d bond ranks (the last closes the ring), or d+1 ranks
    r_0..r_d with r_0 = r_d (tensorly's convention). Raises ``ValueError`` naming ``ranks`` and the fix.
    """
    if isinstance(ranks, (Integral, float)) and not isinstance(ranks, bool):
        return (check_positive_int(ranks, "ranks"),) * d
    if isinstance(ranks, (str, bytes)) or not hasattr(ranks, "__len__"):
        raise ValueError(f"ranks must be an int or a sequence of d = {d} ints, got {ranks!r}")
    rk = [check_positive_int(r, f"ranks[{k}]") for k, r in enumerate(ranks)]
    if len(rk) == d + 1:
        if rk[0] != rk[-1]:
            raise ValueError(f"ranks: with d+1 = {d + 1} ranks the first and last are the same closing bond "
                             f"and must be equal, got {tuple(rk)}")
        rk = rk[1:]
    if len(rk) != d:
        raise ValueError(f"ranks has {len(rk)} entries; a tensor ring of order d = {d} needs d = {d} bond ranks "
                         "(the last one closes the ring), or one int for all of them")
    return tuple(rk)


def _sizes(in_modes, out_modes) -> list[int]:
    return [i * j for i, j in zip(in_modes, out_modes)]


def _arc(sizes: Sequence[int], start: int, stop: int) -> int:
    """Product of the merged mode sizes of cores start..stop-1 going round the ring (0-based)."""
    d = len(sizes)
    return prod(sizes[(start + t) % d] for t in range((stop - start) % d))


def tr_rank_caps(in_modes, out_modes, ranks) -> tuple[int, ...]:
    """Largest useful rank of each bond given the other bonds' ranks.

    Rule: cut the ring at another bond j (rank r_j). What is left is a chain with boundary rank r_j
    at both ends, and bond k splits it into the cores on one side (merged sizes P_1) and on the other
    (P_2); the chain's unfolding at bond k has rank at most r_j min(P_1, P_2). A larger r_k can be
    reduced to that rank by changing only the two cores next to bond k (project onto the row space
    of one side), W unchanged. So ``cap[k] = min_{j != k} r_j min(P_1, P_2)``; with d = 1 the cap is 1
    (the trace of a single core needs no bond).
    """
    i, o = pair_modes(in_modes, out_modes)
    d, sizes = len(i), _sizes(i, o)
    rk = normalize_tr_ranks(ranks, d)
    if d == 1:
        return (1,)
    caps = []
    for k in range(d):
        # bond k sits after core k; bond j after core j: the arcs are cores j+1..k and k+1..j
        caps.append(min(rk[j] * min(_arc(sizes, j + 1, k + 1), _arc(sizes, k + 1, j + 1))
                        for j in range(d) if j != k))
    return tuple(caps)


def _svd_ranks(sizes: Sequence[int], first: int, closing: int) -> tuple[int, ...] | None:
    """Ranks (in bond order) at which TR-SVD started at core ``first`` with closing bond ``closing``
    is exact for every tensor, or None when ``closing`` does not divide the first unfolding's rank.

    TR-SVD splits the first unfolding's rank rho = min(M_first, prod of the others) as r_0 r_1 with
    r_0 = ``closing``; then bond k (k cores after the first) has rank at most
    min(r_1 P(2..k), r_0 P(k+1..d), r_0 min(P(1..k), P(k+1..d))) (the rows of the remainder are
    combinations of the tensor's unfolding there).
    """
    d = len(sizes)
    rot = [sizes[(first + t) % d] for t in range(d)]
    rho = min(rot[0], prod(rot[1:]))
    if rho % closing:
        return None
    r0, r1 = closing, rho // closing
    out = [r1]
    for k in range(2, d):
        left, right = prod(rot[:k]), prod(rot[k:])
        out.append(min(r1 * prod(rot[1:k]), r0 * right, r0 * min(left, right)))
    out.append(r0)
    # out[t] is the bond after rotated core t, i.e. after core first + t
    ranks = [0] * d
    for t, r in enumerate(out):
        ranks[(first + t) % d] = r
    return tuple(ranks)


def tr_universal_ranks(in_modes, out_modes, max_rank: int | None = None) -> list[tuple[int, ...]]:
    """Rank tuples at which a tensor ring represents every (I, J) matrix exactly (by TR-SVD).

    One per starting core and closing rank (a divisor of the first unfolding's rank, up to
    ``max_rank``), keeping those that pass the bond caps of :func:`tr_rank_caps`. Ranks that are at
    least one of these everywhere, and above it somewhere, add parameters and no expressive power.
    """
    i, o = pair_modes(in_modes, out_modes)
    d, sizes = len(i), _sizes(i, o)
    if d == 1:
        return [(1,)]
    out = set()
    for first in range(d):
        rho = min(sizes[first], prod(sizes) // sizes[first])
        for closing in range(1, min(rho, max_rank or rho) + 1):
            rk = _svd_ranks(sizes, first, closing)
            if rk is not None and all(r <= c for r, c in zip(rk, tr_rank_caps(i, o, rk))):
                out.add(rk)
    return sorted(out)


def _ring_params(sizes: Sequence[int], ranks: Sequence[int]) -> int:
    return sum(ranks[k - 1] * m * ranks[k] for k, m in enumerate(sizes))


def tr_exact_ranks(in_modes, out_modes) -> tuple[int, ...]:
    """The fewest-parameter ranks of :func:`tr_universal_ranks`: TR-SVD at them is exact for every W."""
    i, o = pair_modes(in_modes, out_modes)
    sizes = _sizes(i, o)
    return min(tr_universal_ranks(i, o), key=lambda rk: (_ring_params(sizes, rk), rk))


def _dominating(in_modes, out_modes, ranks) -> tuple[int, ...] | None:
    """A universal rank tuple below ``ranks`` everywhere and different from it (fewest parameters), or None."""
    sizes = _sizes(in_modes, out_modes)
    below = [u for u in tr_universal_ranks(in_modes, out_modes, max(ranks))
             if u != tuple(ranks) and all(a <= b for a, b in zip(u, ranks))]
    return min(below, key=lambda rk: (_ring_params(sizes, rk), rk)) if below else None


def tr_max_uniform_rank(in_modes, out_modes) -> int:
    """The largest uniform rank r that :class:`TRSpec` accepts for these modes.

    Uniform ranks always pass :func:`tr_rank_caps`; r is refused exactly when some universal rank
    tuple u (:func:`tr_universal_ranks`) has max(u) <= r and u != (r, .., r).
    """
    return min(max(u) if len(set(u)) == 1 else max(u) - 1 for u in tr_universal_ranks(in_modes, out_modes))


# ----------------------------------------------------------------------------------------------
# Spec and plan
# ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TRPlan:
    """The contraction of ``y = x W`` at one batch size: opt_einsum's FLOP-optimal pairwise order.

    ``equation`` is the einsum of x and the cores (d = 1: the traced core), ``path`` the pairwise
    order (opt_einsum's format), ``macs`` the multiply-adds for the whole batch (per step, the
    product of all the index sizes it involves), ``largest_intermediate`` the entries of the largest
    tensor a step produces (the output included).
    """

    equation: str
    path: tuple
    macs: int
    largest_intermediate: int
    batch: int


class TRSpec:
    """A Tensor Ring matrix with cores (r_{k-1}, I_k, J_k, r_k), r_0 = r_d closing the ring.

    Parameters
    ----------
    in_modes, out_modes : sequence of int
        The modes I_1..I_d and J_1..J_d.
    ranks : int or sequence of int
        One int for all d bonds, the d bond ranks (``ranks[k]`` between core k+1 and k+2, the last
        closing the ring), or d+1 ranks r_0..r_d with r_0 = r_d.
    in_size, out_size : int, optional
        If given, the mode products must equal them.
    max_bytes : int or None
        Limit on the parameters' float32 bytes.

    Raises
    ------
    ValueError
        For mismatched orders, ranks below 1, a bond rank above :func:`tr_rank_caps` (given the
        others, it can be lowered without changing W), or ranks that exceed, everywhere and
        strictly somewhere, ranks at which a ring already represents every matrix
        (:func:`tr_universal_ranks`): both add parameters and no expressive power.
    """

    kind = "TR"

    def __init__(self, in_modes, out_modes, ranks, *, in_size=None, out_size=None, max_bytes=DEFAULT_MAX_BYTES):
        self.in_modes, self.out_modes = pair_modes(in_modes, out_modes, in_size, out_size)
        rk = normalize_tr_ranks(ranks, self.d)
        problem = _rank_problem(self.in_modes, self.out_modes, rk)
        if problem:
            raise ValueError(problem)
        self.ranks = rk
        if max_bytes is not None and self.params * 4 > max_bytes:
            raise ValueError(f"this TR-matrix has {self.params:,} entries ({format_bytes(self.params * 4)} in "
                             f"float32), above the limit of {format_bytes(max_bytes)}; lower the ranks")

    d = property(lambda self: len(self.in_modes))
    in_size = property(lambda self: prod(self.in_modes))
    out_size = property(lambda self: prod(self.out_modes))
    shape = property(lambda self: (self.in_size, self.out_size))

    def core_shapes(self) -> list[tuple[int, int, int, int]]:
        r = self.ranks
        return [(r[k - 1], self.in_modes[k], self.out_modes[k], r[k]) for k in range(self.d)]

    @property
    def params(self) -> int:
        return sum(prod(s) for s in self.core_shapes())

    @property
    def compression(self) -> float:
        """Dense parameters divided by this format's parameters."""
        return self.in_size * self.out_size / self.params

    def core_terms(self) -> list[str]:
        """Einsum index strings of the cores: bond, input mode, output mode, bond."""
        d = self.d
        return [_BOND[(k - 1) % d] + _IN[k] + _OUT[k] + _BOND[k] for k in range(d)] if d > 1 else ["AI"]

    def equation(self) -> str:
        """The einsum of ``y = x W``: x first, then the cores (d = 1: the traced core)."""
        d = self.d
        return ",".join([_BATCH + _IN[:d]] + self.core_terms()) + "->" + _BATCH + _OUT[:d]

    def operand_shapes(self, batch: int) -> list[tuple[int, ...]]:
        shapes = self.core_shapes() if self.d > 1 else [self.shape]
        return [(batch,) + self.in_modes] + [tuple(s) for s in shapes]

    def plan(self, batch: int = 1) -> TRPlan:
        """The contraction order ``tr_matmul`` uses at this batch size (computed once, cached)."""
        return _plan(self, check_positive_int(batch, "batch"))

    def macs(self, batch: int = 1) -> float:
        """Multiply-adds per sample of ``x @ W`` along the path used at this batch size."""
        batch = check_positive_int(batch, "batch")
        return self.plan(batch).macs / batch

    def memory(self, dtype: torch.dtype | str = torch.float32, batch: int = 1) -> dict[str, int]:
        """Bytes of the parameters and of the largest intermediate of the contraction path.

        Returns a dict with ``params``, ``largest_intermediate`` (both in bytes, for ``batch``
        samples) and ``total`` (their sum, a lower bound of the peak during a forward pass).
        """
        size = dtype_bytes(dtype)
        plan = self.plan(check_positive_int(batch, "batch"))
        p, inter = self.params * size, plan.largest_intermediate * size
        return {"params": p, "largest_intermediate": inter, "total": p + inter}

    def __repr__(self) -> str:
        return f"TRSpec(in_modes={self.in_modes}, out_modes={self.out_modes}, ranks={self.ranks})"

    def __eq__(self, other) -> bool:
        return type(other) is TRSpec and (self.in_modes, self.out_modes, self.ranks) == (
            other.in_modes, other.out_modes, other.ranks)

    def __hash__(self) -> int:
        return hash(("tr", self.in_modes, self.out_modes, self.ranks))


@functools.lru_cache(maxsize=1024)
def _rank_problem(in_modes: tuple, out_modes: tuple, rk: tuple) -> str:
    """What is wrong with these bond ranks ("" if nothing), cached: a layer builds its spec every forward."""
    d = len(in_modes)
    for k, (r, cap) in enumerate(zip(rk, tr_rank_caps(in_modes, out_modes, rk))):
        if r > cap:
            where = f"closing the ring (cores {d} and 1)" if k == d - 1 else f"between cores {k + 1} and {k + 2}"
            return (f"ranks[{k}] = {r} is above the largest useful TR rank {cap} for the bond {where} given the "
                    f"other ranks {rk}; a larger rank adds parameters and no expressive power. Use ranks[{k}] <= {cap}")
    u = _dominating(in_modes, out_modes, rk) if d > 1 else None
    if u is not None:
        return (f"ranks {rk} are at least {u} at every bond; at ranks {u} a tensor ring already represents every "
                f"{prod(in_modes):,} x {prod(out_modes):,} matrix exactly, so larger ranks add parameters and no "
                f"expressive power. Use ranks {u} or lower ones")
    return ""


def tr_params(in_modes, out_modes, ranks) -> int:
    """Parameters of a TR-matrix: sum_k r_{k-1} I_k J_k r_k (r_0 = r_d)."""
    return TRSpec(in_modes, out_modes, ranks, max_bytes=None).params


def _count_path(equation: str, shapes, path) -> tuple[int, int]:
    """(multiply-adds, largest result) of a path: each step costs the product of all its index sizes."""
    inputs, output = equation.split("->")
    terms = inputs.split(",")
    size = {c: n for t, s in zip(terms, shapes) for c, n in zip(t, s)}
    macs = largest = 0
    for step in path:
        taken = [terms.pop(i) for i in sorted(step, reverse=True)]
        keep = set(output).union(*terms)
        union = sorted(set().union(*taken))
        result = "".join(c for c in union if c in keep)
        macs += prod(size[c] for c in union)
        largest = max(largest, prod(size[c] for c in result))
        terms.append(result)
    return macs, largest


@functools.lru_cache(maxsize=512)
def _plan(spec: TRSpec, batch: int) -> TRPlan:
    eq, shapes = spec.equation(), spec.operand_shapes(batch)
    optimizer = opt_einsum.paths.DynamicProgramming(minimize="flops", search_outer=True)
    path, _ = opt_einsum.contract_path(eq, *shapes, shapes=True, optimize=optimizer)
    macs, largest = _count_path(eq, shapes, path)
    return TRPlan(eq, tuple(tuple(p) for p in path), macs, largest, batch)


@functools.lru_cache(maxsize=512)
def _expression(spec: TRSpec, batch: int):
    """opt_einsum expression along the batch's plan (batch 0 uses batch 1's order)."""
    path = [tuple(p) for p in _plan(spec, max(batch, 1)).path]
    return opt_einsum.contract_expression(spec.equation(), *spec.operand_shapes(batch), optimize=path)


def _check_cores(cores) -> list[torch.Tensor]:
    cores = list(cores)
    if not cores:
        raise ValueError("cores: need at least one core (one per mode)")
    for k, c in enumerate(cores):
        if not isinstance(c, torch.Tensor) or not c.is_floating_point() or c.is_complex():
            raise TypeError(f"TRMatrix: every core must be a real floating-point torch.Tensor, got "
                            f"{type(c).__name__ if not isinstance(c, torch.Tensor) else c.dtype} at {k}")
        if c.dim() != 4:
            raise ValueError(f"cores[{k}] must have shape (r_{k}, I_{k + 1}, J_{k + 1}, r_{k + 1}), got {tuple(c.shape)}")
    if len({c.dtype for c in cores}) > 1 or len({c.device for c in cores}) > 1:
        raise ValueError("TRMatrix: all cores need one dtype and one device, got "
                         f"{sorted({str(c.dtype) for c in cores} | {str(c.device) for c in cores})}")
    d = len(cores)
    for k in range(d):
        if cores[k].shape[3] != cores[(k + 1) % d].shape[0]:
            what = "the first core (the bond closing the ring)" if k == d - 1 else f"cores[{k + 1}]"
            raise ValueError(f"cores[{k}] ends with rank {cores[k].shape[3]} but {what} starts with "
                             f"{cores[(k + 1) % d].shape[0]}")
    return cores


def _generator(seed, device) -> torch.Generator | None:
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, Integral) or not 0 <= seed < 2**63:
        raise ValueError(f"seed must be an integer in [0, 2^63) or None, got {seed!r}")
    return torch.Generator(device=device or "cpu").manual_seed(int(seed))


class TRMatrix:
    """A TR-matrix: ``W[(i_1..i_d), (j_1..j_d)] = trace(G_1[:, i_1, j_1, :] .. G_d[:, i_d, j_d, :])``.

    Parameters
    ----------
    cores : sequence of d tensors
        ``cores[k]`` of shape (r_{k-1}, I_k, J_k, r_k), the last core's trailing rank equal to the
        first core's leading one.

    Examples
    --------
    >>> M = TRMatrix.random((4, 4), (4, 2), 2, seed=0, dtype=torch.float64)
    >>> x = torch.randn(5, 16, dtype=torch.float64)
    >>> torch.allclose(tr_matmul(x, M), x @ M.to_dense())
    True
    """

    def __init__(self, cores: Sequence[torch.Tensor]):
        self.cores = _check_cores(cores)
        self.spec = TRSpec([c.shape[1] for c in self.cores], [c.shape[2] for c in self.cores],
                           [c.shape[3] for c in self.cores], max_bytes=None)

    @classmethod
    def random(cls, in_modes, out_modes, ranks, *, std: float = 1.0, seed: int | None = None,
               dtype: torch.dtype = torch.float32, device=None) -> "TRMatrix":
        """Gaussian cores scaled (:func:`tr_init_std`) so the dense matrix has entry std ``std``."""
        spec = TRSpec(in_modes, out_modes, ranks)
        std = check_std(std)
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point or dtype.is_complex:
            raise TypeError(f"dtype must be a real floating-point torch.dtype such as torch.float32, got {dtype!r}")
        try:
            device = torch.device(device) if device is not None else None
        except (RuntimeError, TypeError) as exc:
            raise ValueError(f"device must be a torch device such as 'cpu' or 'cuda', got {device!r}") from exc
        check_allocation(spec.params * dtype_bytes(dtype), "the TR cores", "lower the ranks", device)
        s, g = tr_init_std(spec, std), _generator(seed, device)
        return cls([torch.randn(shape, generator=g, dtype=dtype, device=device) * s for shape in spec.core_shapes()])

    @classmethod
    def from_dense(cls, W, in_modes, out_modes, ranks) -> "TRMatrix":
        """The TR-SVD of ``W`` (shape (I, J), y = x @ W) at most at ``ranks``, in W's dtype (float64 for numpy).

        Runs :func:`tr_svd` (tensorly's ``tensor_ring``) on the interleaved tensor; a bond that comes
        out smaller (a smaller unfolding) gets zero slices up to its rank (:func:`grow_bonds`). Exact for every W at
        :func:`tr_exact_ranks`; :func:`btcore.decompose.tr.fit_tr` adds ALS and reports the error.
        """
        dtype = W.dtype if isinstance(W, torch.Tensor) and W.is_floating_point() else torch.float64
        device = W.device if isinstance(W, torch.Tensor) else None
        spec = TRSpec(in_modes, out_modes, ranks)
        T = interleaved(check_dense(W, spec.in_modes, spec.out_modes), spec.in_modes, spec.out_modes)
        cores = grow_bonds(tr_svd(T, spec.ranks), spec.ranks)
        return cls([torch.from_numpy(c.reshape(c.shape[0], i, j, c.shape[2])).to(dtype=dtype, device=device)
                    for c, i, j in zip(cores, spec.in_modes, spec.out_modes)])

    shape = property(lambda self: self.spec.shape)
    in_modes = property(lambda self: self.spec.in_modes)
    out_modes = property(lambda self: self.spec.out_modes)
    num_params = property(lambda self: self.spec.params)
    dtype = property(lambda self: self.cores[0].dtype)
    device = property(lambda self: self.cores[0].device)

    def tensors(self) -> list[torch.Tensor]:
        """The operands in :meth:`TRSpec.equation` order after x (d = 1: the traced core, (I, J))."""
        if self.spec.d == 1:
            return [torch.diagonal(self.cores[0], dim1=0, dim2=3).sum(-1)]
        return list(self.cores)

    def to_dense(self) -> torch.Tensor:
        """The (I, J) matrix. Checks the memory it needs before allocating."""
        s = self.spec
        check_allocation(2 * s.in_size * s.out_size * dtype_bytes(self.dtype),
                         f"the dense {s.in_size:,} x {s.out_size:,} matrix", "use tr_matmul, which never forms it",
                         self.device)
        eq = ",".join(s.core_terms()) + "->" + _IN[: s.d] + _OUT[: s.d]
        dense = opt_einsum.contract(eq, *self.tensors(), optimize="auto", backend="torch")
        return dense.reshape(s.in_size, s.out_size)

    def to(self, *args, **kwargs) -> "TRMatrix":
        return TRMatrix([c.to(*args, **kwargs) for c in self.cores])

    def __rmatmul__(self, x: torch.Tensor) -> torch.Tensor:
        return tr_matmul(x, self)

    def __repr__(self) -> str:
        s = self.spec
        return (f"TRMatrix(in_modes={s.in_modes}, out_modes={s.out_modes}, ranks={s.ranks}, "
                f"params={s.params:,}, dtype={self.dtype})")


def tr_matmul(x: torch.Tensor, M: TRMatrix) -> torch.Tensor:
    """``x @ W`` for a :class:`TRMatrix` W, never forming W; x of shape (..., I), result (..., J).

    Contracts along :meth:`TRSpec.plan` (cached per batch size); differentiable in x and the cores.
    """
    if not isinstance(M, TRMatrix):
        raise TypeError(f"M must be a TRMatrix, got {type(M).__name__}")
    s = M.spec
    if not isinstance(x, torch.Tensor) or x.dim() == 0 or x.shape[-1] != s.in_size:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"x must be a tensor of shape (..., {s.in_size}) (the last axis is W's rows), got {shape}")
    if x.dtype != M.dtype or x.device != M.device:
        raise ValueError(f"x is {x.dtype} on {x.device} but the cores are {M.dtype} on {M.device}; convert one "
                         "with .to()")
    lead = x.shape[:-1]
    batch = prod(lead)
    xb = x.reshape((batch,) + s.in_modes)
    y = _expression(s, batch)(xb, *M.tensors(), backend="torch")
    return y.reshape(lead + (s.out_size,))


def check_dense(W, in_modes, out_modes) -> np.ndarray:
    """``W`` (a torch tensor or array of shape (I, J), real and finite) as a float64 numpy array.

    Raises ``ValueError`` naming ``W`` and the fix (wrong shape for the modes, complex, NaN or inf).
    """
    i, o = pair_modes(in_modes, out_modes)
    if isinstance(W, torch.Tensor):
        if W.is_complex():
            raise ValueError("W: complex matrices are not supported; pass the real part")
        a = W.detach().cpu().to(torch.float64).numpy()
    else:
        a = np.asarray(W)
        if a.dtype.kind not in "biuf":
            raise ValueError(f"W: expected a real numeric matrix, got dtype {a.dtype}")
        a = a.astype(np.float64)
    if a.shape != (prod(i), prod(o)):
        raise ValueError(f"W has shape {a.shape} but the modes give (I, J) = ({prod(i):,}, {prod(o):,}) "
                         f"({' x '.join(map(str, i))} -> {' x '.join(map(str, o))}); choose modes whose products "
                         "are the matrix's sizes")
    bad = int((~np.isfinite(a)).sum())
    if bad:
        raise ValueError(f"W: {bad:,} entries are NaN or infinite; clean or drop them before fitting")
    return a


def interleaved(a: np.ndarray, in_modes, out_modes) -> np.ndarray:
    """The (I, J) array as the order-d tensor over merged modes I_k J_k (pair (i_k, j_k) -> i_k J_k + j_k)."""
    d = len(in_modes)
    t = np.transpose(a.reshape(tuple(in_modes) + tuple(out_modes)), [p for k in range(d) for p in (k, d + k)])
    return np.ascontiguousarray(t).reshape([i * j for i, j in zip(in_modes, out_modes)])


def tr_svd(T: np.ndarray, ranks, first: int | None = None) -> list[np.ndarray]:
    """TR-SVD of an order-d numpy tensor (tensorly's ``tensor_ring``, on numpy arrays).

    ``ranks`` are the d bond ranks (bond k after core k, the last closing the ring). TR-SVD starts
    at a core m (0-based ``first``) whose two bonds need r_{m-1} r_m <= the rank of the m-th
    unfolding; by default the first core where that holds (if none, or if ``first``'s bonds do not
    fit, its trailing bond is lowered to fit). Later bonds come out at most at their requested rank
    (smaller when an unfolding is smaller). Returns d numpy cores of shape (r_{k-1}, M_k, r_k).
    """
    # imported here, not at the top: tensorly takes seconds to import and only TR-SVD needs it
    import tensorly as tl
    from tensorly.decomposition import tensor_ring

    T = np.asarray(T, dtype=np.float64)
    d = T.ndim
    rk = list(normalize_tr_ranks(ranks, d))
    if d == 1:
        return [T.reshape(1, -1, 1).copy()]
    rho = [min(T.shape[m], T.size // T.shape[m]) for m in range(d)]
    mode = next((m for m in range(d) if rk[m - 1] * rk[m] <= rho[m]), 0) if first is None else first % d
    if rk[mode - 1] * rk[mode] > rho[mode]:
        rk[mode - 1] = min(rk[mode - 1], rho[mode])
        rk[mode] = max(1, min(rk[mode], rho[mode] // rk[mode - 1]))
    # Rotate by hand so core ``mode`` comes first: tensorly's own ``mode`` argument rotates its d+1
    # rank list as if it had d entries, which mixes up per-bond ranks.
    T = np.ascontiguousarray(np.transpose(T, [(mode + t) % d for t in range(d)]))
    rot = [rk[(mode + t) % d] for t in range(d)]
    tl_rank = [rot[-1]] + rot  # tensorly: rank[k] is core k's leading rank, rank[0] = rank[d]
    with warnings.catch_warnings():
        # tensorly warns that an order-2 tensor is "trivial"; the rank here is given, not determined
        warnings.filterwarnings("ignore", message="Determining the TR-rank")
        if tl.get_backend() == "numpy":
            factors = tensor_ring(T, tl_rank).factors
        else:  # another thread's choice of tensorly backend is left alone: this thread uses numpy
            with tl.backend_context("numpy", local_threadsafe=True):
                factors = tensor_ring(T, tl_rank).factors
    factors = [factors[(t - mode) % d] for t in range(d)]
    return [np.asarray(f, dtype=np.float64) for f in factors]


def grow_bonds(cores: Sequence[np.ndarray], ranks, rng: np.random.Generator | None = None) -> list[np.ndarray]:
    """Cores (r_{k-1}, M_k, r_k) grown to the bond ranks ``ranks`` without changing the tensor they give.

    A smaller bond gets new slices that are zero on the core after it, and zero (``rng`` None) or
    Gaussian at the core's scale on the core before it: every new term of the trace has a zero
    factor, and an ALS sweep can still use the new slices.
    """
    out = [np.array(c, dtype=np.float64) for c in cores]
    for k, want in enumerate(ranks):
        have, nxt = out[k].shape[2], (k + 1) % len(out)
        if have < want:
            new = (0.0 if rng is None else rng.standard_normal(out[k].shape[:2] + (want - have,))
                   * (float(np.abs(out[k]).max()) or 1.0))
            out[k] = np.concatenate([out[k], np.broadcast_to(new, out[k].shape[:2] + (want - have,))], axis=2)
            out[nxt] = np.concatenate([out[nxt], np.zeros((want - have,) + out[nxt].shape[1:])], axis=0)
    return out
