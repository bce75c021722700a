"""Format specifications: dense, Tensor-Train (TT-matrix) and Block-Term (BT) matrices.

A spec holds shapes and ranks only (no tensors). It validates on construction, raising
``ValueError`` with a message that names the field and the fix, and it answers the questions the
app asks: how many parameters, how many multiply-adds per sample along the FLOP-optimal
contraction path, and how many bytes. These counts are pure functions of the spec (no timing);
the scheme :func:`btcore.matmul` would run is the planner's business
(:func:`btcore.contract.planner_choice`).

Index conventions (the letters are :mod:`btcore.indices`, shared with :mod:`btcore.contract`): W has shape (I, J) with
I = I_1 * ... * I_d and J = J_1 * ... * J_d, row-major, so ``x @ W`` for ``x`` of shape (B, I) is
``x.reshape(B, I_1, .., I_d)`` contracted with the format's tensors.

* TT-matrix: cores ``G_k`` of shape (r_{k-1}, I_k, J_k, r_k), r_0 = r_d = 1.
* BT: for each of N blocks a core ``C_n`` of shape (R_1, .., R_d) and factors ``A_n^(k)`` of shape
  (I_k, J_k, R_k); stored stacked over blocks as ``core`` (N, R_1, .., R_d) and ``factors[k]``
  (N, I_k, J_k, R_k).
"""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Integral
from typing import Sequence

import torch

from .indices import BATCH, BLOCK, IN, OUT, RANK
from .memory import DEFAULT_MAX_BYTES, dtype_bytes, format_bytes
from .plan import ContractionPlan, optimal_plan
from .shapes import MAX_ORDER, check_positive_int, pair_modes, prod

__all__ = [
    "Network",
    "DenseSpec",
    "TTSpec",
    "BTSpec",
    "tucker_spec",
    "cp_spec",
    "dense_params",
    "tt_params",
    "bt_params",
    "tucker_params",
    "cp_params",
    "describe",
    "summary_row",
    "max_uniform_rank",
    "normalize_ranks",
    "tt_rank_caps",
    "param_sweep",
]

@dataclass(frozen=True)
class Network:
    """A tensor network for ``x @ W``: named operands with einsum index strings and shapes.

    ``names[0]`` is the input ``x`` (indices ``b`` + input modes); the others are the format's
    tensors in the order :meth:`BTMatrix.tensors` / :meth:`TTMatrix.tensors` return them.
    """

    names: tuple[str, ...]
    terms: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]
    in_indices: str
    out_indices: str
    sizes: tuple[tuple[str, int], ...]

    @property
    def output(self) -> str:
        return BATCH + self.out_indices


def normalize_ranks(rank, d: int, *, tt: bool = False) -> tuple[int, ...]:
    """The ranks asked for, validated and normalised but not capped.

    BT (``tt=False``): one int for every mode or d per-mode ranks; returns d ranks. TT (``tt=True``):
    one int for every bond, the d-1 inner ranks, or all d+1 ranks with r_0 = r_d = 1; returns the
    d-1 inner ranks. Raises ``ValueError`` naming ``rank`` / ``ranks`` and the fix.
    """
    name, n = ("ranks", d - 1) if tt else ("rank", d)
    if isinstance(rank, (Integral, float)) and not isinstance(rank, bool):
        return (check_positive_int(rank, name),) * n
    if isinstance(rank, (str, bytes)) or not hasattr(rank, "__len__"):
        raise ValueError(f"{name} must be an int or a sequence of {'d-1' if tt else 'd'} = {n} ints, got {rank!r}")
    rk = [check_positive_int(r, f"{name}[{k}]") for k, r in enumerate(rank)]
    if tt and len(rk) == d + 1:
        if rk[0] != 1 or rk[-1] != 1:
            raise ValueError(f"ranks: with d+1 = {d + 1} ranks the first and last must be 1, got {tuple(rk)}")
        rk = rk[1:-1]
    if len(rk) != n:
        if tt:
            raise ValueError(f"ranks has {len(rk)} entries; a TT-matrix of order d = {d} needs d-1 = {n} inner "
                             "ranks (or one int for all of them)")
        raise ValueError(f"rank has {len(rk)} entries; give one int or one rank per mode (d = {d})")
    return tuple(rk)


def _check_bytes(entries: int, what: str, fix: str, max_bytes: int | None) -> None:
    if max_bytes is not None and entries * 4 > max_bytes:
        raise ValueError(
            f"{what} has {entries:,} entries ({format_bytes(entries * 4)} in float32), above the limit of "
            f"{format_bytes(max_bytes)}; {fix}"
        )


def tt_rank_caps(in_modes, out_modes) -> tuple[int, ...]:
    """Largest useful TT rank at each of the d-1 bonds: min(prod_{i<=k} I_i J_i, prod_{i>k} I_i J_i).

    A larger rank adds parameters and no expressive power (it exceeds the rank of the unfolding).
    """
    sizes = [i * j for i, j in zip(in_modes, out_modes)]
    return tuple(min(prod(sizes[: k + 1]), prod(sizes[k + 1 :])) for k in range(len(sizes) - 1))


class _Spec:
    """Behaviour shared by the specs: counts that depend on the contraction path."""

    in_modes: tuple[int, ...]
    out_modes: tuple[int, ...]
    kind: str

    @property
    def d(self) -> int:
        return len(self.in_modes)

    @property
    def in_size(self) -> int:
        return prod(self.in_modes)

    @property
    def out_size(self) -> int:
        return prod(self.out_modes)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.in_size, self.out_size)

    @property
    def params(self) -> int:  # pragma: no cover - overridden
        raise NotImplementedError

    @property
    def compression(self) -> float:
        """Dense parameters divided by this format's parameters."""
        return self.in_size * self.out_size / self.params

    def plan(self, batch: int = 1) -> ContractionPlan:
        """The FLOP-optimal pairwise path of ``x @ W`` for ``batch`` rows (:func:`btcore.plan.optimal_plan`).

        Deterministic: no rates are timed. The scheme ``matmul`` runs may differ (a GEMM-shaped
        order with more multiply-adds can be faster): see :func:`btcore.contract.planner_choice`.
        """
        return optimal_plan(self, check_positive_int(batch, "batch"))

    def macs(self, batch: int = 1) -> float:
        """Multiply-adds per sample of ``x @ W`` along the FLOP-optimal path at this batch size."""
        batch = check_positive_int(batch, "batch")
        return self.plan(batch).macs / batch

    def memory(self, dtype: torch.dtype | str = torch.float32, batch: int = 1) -> dict[str, int]:
        """Bytes of the parameters and of the largest intermediate of the FLOP-optimal path.

        Returns a dict with ``params``, ``largest_intermediate`` (both in bytes, for ``batch``
        samples) and ``total`` (their sum, a lower bound of the peak during a forward pass).
        """
        size = dtype_bytes(dtype)
        plan = self.plan(check_positive_int(batch, "batch"))
        p = self.params * size
        inter = plan.largest_intermediate * size
        return {"params": p, "largest_intermediate": inter, "total": p + inter}


class DenseSpec(_Spec):
    """A dense (I, J) matrix, the reference format.

    Parameters
    ----------
    in_modes, out_modes : int or sequence of int
        Sizes, or modes whose products are the sizes (kept so dense and factorized formats can be
        described by the same arguments).
    """

    kind = "Dense"

    def __init__(self, in_modes, out_modes, *, in_size: int | None = None, out_size: int | None = None):
        self.in_modes, self.out_modes = pair_modes(in_modes, out_modes, in_size, out_size)

    @property
    def params(self) -> int:
        return self.in_size * self.out_size

    def network(self) -> Network:
        return Network(
            names=("x", "W"),
            terms=(BATCH + "A", "AI"),
            shapes=((-1, self.in_size), (self.in_size, self.out_size)),
            in_indices="A",
            out_indices="I",
            sizes=(("A", self.in_size), ("I", self.out_size)),
        )

    def __repr__(self) -> str:
        return f"DenseSpec(in_modes={self.in_modes}, out_modes={self.out_modes})"

    def __eq__(self, other) -> bool:
        return type(other) is DenseSpec and (self.in_size, self.out_size) == (other.in_size, other.out_size)

    def __hash__(self) -> int:
        return hash(("dense", self.in_size, self.out_size))


class TTSpec(_Spec):
    """A TT-matrix (matrix product operator) with cores (r_{k-1}, I_k, J_k, r_k).

    Parameters
    ----------
    in_modes, out_modes : sequence of int
        The modes I_1..I_d and J_1..J_d.
    ranks : int or sequence of int
        One int for all d-1 inner ranks, the d-1 inner ranks, or all d+1 ranks with r_0 = r_d = 1.
    in_size, out_size : int, optional
        If given, the mode products must equal them.
    max_bytes : int or None
        Limit on the parameters' float32 bytes.

    Raises
    ------
    ValueError
        For mismatched orders, ranks below 1, or a rank above the largest useful one,
        min(prod_{i<=k} I_i J_i, prod_{i>k} I_i J_i), which would add parameters and nothing else.
    """

    kind = "TT"

    def __init__(self, in_modes, out_modes, ranks, *, in_size=None, out_size=None, max_bytes=DEFAULT_MAX_BYTES):
        self.in_modes, self.out_modes = pair_modes(in_modes, out_modes, in_size, out_size)
        inner = normalize_ranks(ranks, self.d, tt=True)
        for k, (r, cap) in enumerate(zip(inner, tt_rank_caps(self.in_modes, self.out_modes))):
            if r > cap:
                raise ValueError(
                    f"ranks[{k}] = {r} is above the largest useful TT rank {cap} between cores {k + 1} and {k + 2} "
                    f"(min of the mode sizes on either side); a larger rank adds parameters and no expressive power. "
                    f"Use ranks[{k}] <= {cap}"
                )
        self.ranks = (1,) + inner + (1,)
        _check_bytes(self.params, "this TT-matrix", "lower the ranks", max_bytes)

    @property
    def inner_ranks(self) -> tuple[int, ...]:
        return self.ranks[1:-1]

    def core_shapes(self) -> list[tuple[int, int, int, int]]:
        r = self.ranks
        return [(r[k], self.in_modes[k], self.out_modes[k], r[k + 1]) for k in range(self.d)]

    @property
    def params(self) -> int:
        return sum(prod(s) for s in self.core_shapes())

    def network(self) -> Network:
        d = self.d
        names, terms, shapes = ["x"], [BATCH + IN[:d]], [(-1,) + self.in_modes]
        sizes = {c: m for c, m in zip(IN, self.in_modes)} | {c: m for c, m in zip(OUT, self.out_modes)}
        for k in range(d):
            term = (RANK[k - 1] if k > 0 else "") + IN[k] + OUT[k] + (RANK[k] if k < d - 1 else "")
            shape = ((self.ranks[k],) if k > 0 else ()) + (self.in_modes[k], self.out_modes[k])
            shape += (self.ranks[k + 1],) if k < d - 1 else ()
            if k < d - 1:
                sizes[RANK[k]] = self.ranks[k + 1]
            names.append(f"G{k + 1}")
            terms.append(term)
            shapes.append(shape)
        return Network(tuple(names), tuple(terms), tuple(shapes), IN[:d], OUT[:d], tuple(sorted(sizes.items())))

    def __repr__(self) -> str:
        return f"TTSpec(in_modes={self.in_modes}, out_modes={self.out_modes}, ranks={self.ranks})"

    def __eq__(self, other) -> bool:
        return type(other) is TTSpec and (self.in_modes, self.out_modes, self.ranks) == (
            other.in_modes, other.out_modes, other.ranks)

    def __hash__(self) -> int:
        return hash(("tt", self.in_modes, self.out_modes, self.ranks))


class BTSpec(_Spec):
    """A Block-Term matrix: a sum of N Tucker blocks over the interleaved modes (I_k, J_k).

    Parameters
    ----------
    in_modes, out_modes : sequence of int
        The modes I_1..I_d and J_1..J_d.
    rank : int or sequence of int
        The Tucker rank R of every mode, or per-mode ranks (R_1..R_d).
    blocks : int
        The number of blocks N. ``blocks=1`` is a Tucker format, ``rank=1`` a CP format of rank N.
    in_size, out_size : int, optional
        If given, the mode products must equal them.
    max_bytes : int or None
        Limit on the parameters' float32 bytes (the core grows as R^d).

    Raises
    ------
    ValueError
        For mismatched orders, ranks or blocks below 1, a rank R_k above the mode size I_k * J_k
        (it adds parameters and no expressive power), or a format too large for ``max_bytes``.
    """

    def __init__(self, in_modes, out_modes, rank, blocks=1, *, in_size=None, out_size=None,
                 max_bytes=DEFAULT_MAX_BYTES):
        self.in_modes, self.out_modes = pair_modes(in_modes, out_modes, in_size, out_size)
        ranks = normalize_ranks(rank, self.d)
        self.blocks = check_positive_int(blocks, "blocks")
        for k, r in enumerate(ranks):
            size = self.in_modes[k] * self.out_modes[k]
            if r > size:
                raise ValueError(
                    f"rank[{k}] = {r} is above mode {k + 1}'s size I*J = {self.in_modes[k]}*{self.out_modes[k]} = {size}; "
                    f"a Tucker rank above the mode size adds parameters and no expressive power. Use rank <= {size} "
                    "for that mode"
                )
        self.ranks = ranks
        core = self.blocks * prod(ranks)
        _check_bytes(core, f"the BT core (N x R_1 x .. x R_d = {self.blocks} x {' x '.join(map(str, ranks))})",
                     "lower the rank R, the order d or the number of blocks N", max_bytes)
        _check_bytes(self.params, "this BT format", "lower the rank R or the number of blocks N", max_bytes)

    @property
    def rank(self) -> int | tuple[int, ...]:
        """The common rank R when all modes share it, else the tuple of per-mode ranks."""
        return self.ranks[0] if len(set(self.ranks)) == 1 else self.ranks

    @property
    def kind(self) -> str:
        if all(r == 1 for r in self.ranks):
            return "CP"
        return "Tucker" if self.blocks == 1 else "BT"

    def factor_shapes(self) -> list[tuple[int, int, int, int]]:
        """Shapes of the stacked factors, (N, I_k, J_k, R_k)."""
        return [(self.blocks, i, j, r) for i, j, r in zip(self.in_modes, self.out_modes, self.ranks)]

    @property
    def core_shape(self) -> tuple[int, ...]:
        return (self.blocks,) + self.ranks

    @property
    def params(self) -> int:
        return self.blocks * (sum(i * j * r for i, j, r in zip(self.in_modes, self.out_modes, self.ranks))
                              + prod(self.ranks))

    def network(self) -> Network:
        # With one block the block index is dropped, so plans and traces show no axis of size 1.
        d = self.d
        blk = BLOCK if self.blocks > 1 else ""
        nb = (self.blocks,) if self.blocks > 1 else ()
        names, terms, shapes = ["x"], [BATCH + IN[:d]], [(-1,) + self.in_modes]
        sizes = {c: m for c, m in zip(IN, self.in_modes)} | {c: m for c, m in zip(OUT, self.out_modes)}
        for k in range(d):
            names.append(f"A{k + 1}")
            terms.append(blk + IN[k] + OUT[k] + RANK[k])
            shapes.append(nb + (self.in_modes[k], self.out_modes[k], self.ranks[k]))
            sizes[RANK[k]] = self.ranks[k]
        names.append("C")
        terms.append(blk + RANK[:d])
        shapes.append(nb + self.ranks)
        if blk:
            sizes[BLOCK] = self.blocks
        return Network(tuple(names), tuple(terms), tuple(shapes), IN[:d], OUT[:d], tuple(sorted(sizes.items())))

    def __repr__(self) -> str:
        return (f"BTSpec(in_modes={self.in_modes}, out_modes={self.out_modes}, rank={self.rank}, "
                f"blocks={self.blocks})")

    def __eq__(self, other) -> bool:
        return type(other) is BTSpec and (self.in_modes, self.out_modes, self.ranks, self.blocks) == (
            other.in_modes, other.out_modes, other.ranks, other.blocks)

    def __hash__(self) -> int:
        return hash(("bt", self.in_modes, self.out_modes, self.ranks, self.blocks))


def tucker_spec(in_modes, out_modes, rank, **kwargs) -> BTSpec:
    """Tucker format: a BT format with one block."""
    return BTSpec(in_modes, out_modes, rank, 1, **kwargs)


def cp_spec(in_modes, out_modes, rank, **kwargs) -> BTSpec:
    """CP format of the given rank: a BT format with ``rank`` blocks of Tucker rank 1."""
    return BTSpec(in_modes, out_modes, 1, check_positive_int(rank, "rank"), **kwargs)


def dense_params(in_modes, out_modes) -> int:
    """Parameters of the dense (I, J) matrix: I * J."""
    return DenseSpec(in_modes, out_modes).params


def tt_params(in_modes, out_modes, ranks) -> int:
    """Parameters of a TT-matrix: sum_k r_{k-1} I_k J_k r_k (see :class:`TTSpec` for ``ranks``)."""
    return TTSpec(in_modes, out_modes, ranks, max_bytes=None).params


def bt_params(in_modes, out_modes, rank, blocks=1) -> int:
    """Parameters of a BT matrix: N * (sum_k I_k J_k R_k + prod_k R_k)."""
    return BTSpec(in_modes, out_modes, rank, blocks, max_bytes=None).params


def tucker_params(in_modes, out_modes, rank) -> int:
    """Parameters of the Tucker format (BT with one block)."""
    return bt_params(in_modes, out_modes, rank, 1)


def cp_params(in_modes, out_modes, rank) -> int:
    """Parameters of the CP format of rank ``rank`` (BT with Tucker rank 1 and ``rank`` blocks)."""
    return cp_spec(in_modes, out_modes, rank, max_bytes=None).params


def describe(spec) -> str:
    """Short human description of a spec's ranks: ``'R=4, N=2'``, ``'ranks 1-4-4-4-1'``, ``'full'``."""
    if isinstance(spec, BTSpec):
        r = spec.rank
        r_txt = f"R={r}" if isinstance(r, int) else "R=(" + ",".join(map(str, r)) + ")"
        if spec.kind == "CP":
            return f"rank {spec.blocks}"
        return r_txt if spec.blocks == 1 else f"{r_txt}, N={spec.blocks}"
    if isinstance(spec, TTSpec):
        return "ranks " + "-".join(map(str, spec.ranks))
    return "full"


def summary_row(spec, batch: int = 1, dtype: torch.dtype | str = torch.float32) -> dict:
    """One row of the formats table: parameters, compression, multiply-adds and memory.

    ``macs_per_sample`` is for the FLOP-optimal path at ``batch`` (a pure function of the spec); memory is in bytes of
    ``dtype`` (parameters, and the largest intermediate of a forward pass over ``batch`` rows).
    """
    mem = spec.memory(dtype, batch)
    return {
        "format": spec.kind,
        "ranks": describe(spec),
        "params": spec.params,
        "compression": spec.compression,
        "macs_per_sample": spec.macs(batch),
        "param_bytes": mem["params"],
        "intermediate_bytes": mem["largest_intermediate"],
    }


def max_uniform_rank(in_modes, out_modes, kind: str) -> int:
    """Largest rank valid on every mode (BT) or bond (TT) for a uniform-rank sweep."""
    if kind == "bt":
        return min(i * j for i, j in zip(in_modes, out_modes))
    return min(tt_rank_caps(in_modes, out_modes), default=1)


def param_sweep(in_modes, out_modes, ranks: Sequence[int], blocks: Sequence[int] = (1, 2, 4, 8)) -> list[dict]:
    """Parameter counts over uniform ranks: one row per (format, blocks, rank) that is valid.

    Rows: ``{"format": "TT" | "BT", "blocks": N (None for TT), "rank": r, "params": p}``.
    Ranks above what a mode or bond allows are skipped, as the specs would reject them.
    """
    rows = []
    tt_cap = max_uniform_rank(in_modes, out_modes, "tt")
    bt_cap = max_uniform_rank(in_modes, out_modes, "bt")
    for r in ranks:
        if len(in_modes) > 1 and r <= tt_cap:
            rows.append({"format": "TT", "blocks": None, "rank": r, "params": tt_params(in_modes, out_modes, r)})
        if r <= bt_cap:
            for n in blocks:
                rows.append({"format": "BT", "blocks": n, "rank": r, "params": bt_params(in_modes, out_modes, r, n)})
    return rows
