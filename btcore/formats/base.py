"""What every format spec shares: the tensor network type, rank normalisation and the counting base class.

A spec holds shapes and ranks only (no tensors). It validates on construction, raising
``ValueError`` with a message that names the field and the fix, and it answers the questions the
app asks: how many parameters, how many multiply-adds per sample along the FLOP-optimal
contraction path, and how many bytes. These counts are pure functions of the spec (no timing);
the scheme :func:`btcore.matmul` would run is the planner's business
(:func:`btcore.contract.planner_choice`).

Index conventions (the letters are :mod:`btcore.indices`, shared with :mod:`btcore.contract`): W has
shape (I, J) with I = I_1 * ... * I_d and J = J_1 * ... * J_d, row-major, so ``x @ W`` for ``x`` of
shape (B, I) is ``x.reshape(B, I_1, .., I_d)`` contracted with the format's tensors
(:meth:`FormatSpec.network`).
"""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Integral

import torch

from ..indices import BATCH
from ..memory import dtype_bytes, format_bytes
from ..plan import ContractionPlan, optimal_plan
from ..shapes import check_positive_int, prod

__all__ = ["Network", "FormatSpec", "normalize_ranks", "check_bytes", "merged_sizes"]

@dataclass(frozen=True)
class Network:
    """A tensor network for ``x @ W``: named operands with einsum index strings and shapes.

    ``names[0]`` is the input ``x`` (indices ``b`` + input modes); the others are the format's
    tensors in the order the container's ``tensors()`` returns them (:class:`btcore.BTMatrix`, ...).
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



def check_bytes(entries: int, what: str, fix: str, max_bytes: int | None) -> None:
    """Refuse a format whose ``entries`` float32 values would exceed ``max_bytes`` (``None``: no limit)."""
    if max_bytes is not None and entries * 4 > max_bytes:
        raise ValueError(
            f"{what} has {entries:,} entries ({format_bytes(entries * 4)} in float32), above the limit of "
            f"{format_bytes(max_bytes)}; {fix}"
        )



def merged_sizes(in_modes, out_modes) -> list[int]:
    """The merged mode sizes I_k * J_k."""
    return [i * j for i, j in zip(in_modes, out_modes)]


class FormatSpec:
    """Behaviour shared by the specs: sizes and the counts that depend on the contraction path.

    A subclass sets :attr:`kind` (the label shown in tables) and :attr:`key` (its registry key,
    :data:`btcore.formats.FORMATS`), and implements :attr:`params`, :meth:`network` and
    :meth:`describe_ranks`.
    """

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


    def network(self) -> Network:  # pragma: no cover - overridden
        raise NotImplementedError

    def fields(self) -> dict:
        """What defines the spec, by constructor argument name (its repr, equality and hash)."""
        return {"in_modes": self.in_modes, "out_modes": self.out_modes, "ranks": self.ranks}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(" + ", ".join(f"{k}={v}" for k, v in self.fields().items()) + ")"

    def __eq__(self, other) -> bool:
        return type(other) is type(self) and other.fields() == self.fields()

    def __hash__(self) -> int:
        return hash((self.key,) + tuple(self.fields().values()))

    def describe_ranks(self) -> str:  # pragma: no cover - overridden
        """Short human description of the ranks: ``'R=4, N=2'``, ``'ranks 1-4-4-4-1'``, ``'full'``."""
        raise NotImplementedError
