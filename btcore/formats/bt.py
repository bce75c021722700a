"""Block-Term matrices: a sum of N Tucker blocks over the interleaved modes (I_k, J_k); Tucker and CP are BT cases.

For each of N blocks a core ``C_n`` of shape (R_1, .., R_d) and factors ``A_n^(k)`` of shape
(I_k, J_k, R_k); stored stacked over blocks as ``core`` (N, R_1, .., R_d) and ``factors[k]``
(N, I_k, J_k, R_k).
"""

from __future__ import annotations

from ..indices import BATCH, BLOCK, IN, OUT, RANK
from ..memory import DEFAULT_MAX_BYTES
from ..shapes import check_positive_int, pair_modes, prod
from .base import FormatSpec, Network, check_bytes, normalize_ranks

__all__ = ["BTSpec", "tucker_spec", "cp_spec", "bt_params", "tucker_params", "cp_params"]


class BTSpec(FormatSpec):
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

    key = "bt"

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
        check_bytes(core, f"the BT core (N x R_1 x .. x R_d = {self.blocks} x {' x '.join(map(str, ranks))})",
                     "lower the rank R, the order d or the number of blocks N", max_bytes)
        check_bytes(self.params, "this BT format", "lower the rank R or the number of blocks N", max_bytes)

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

    def fields(self) -> dict:
        return {"in_modes": self.in_modes, "out_modes": self.out_modes, "rank": self.rank, "blocks": self.blocks}


    def describe_ranks(self) -> str:
        r = self.rank
        r_txt = f"R={r}" if isinstance(r, int) else "R=(" + ",".join(map(str, r)) + ")"
        if self.kind == "CP":
            return f"rank {self.blocks}"
        return r_txt if self.blocks == 1 else f"{r_txt}, N={self.blocks}"

    @staticmethod
    def max_uniform_rank(in_modes, out_modes) -> int:
        """Largest Tucker rank valid on every mode: the smallest merged mode size I_k J_k."""
        return min(i * j for i, j in zip(in_modes, out_modes))


def tucker_spec(in_modes, out_modes, rank, **kwargs) -> BTSpec:
    """Tucker format: a BT format with one block."""
    return BTSpec(in_modes, out_modes, rank, 1, **kwargs)


def cp_spec(in_modes, out_modes, rank, **kwargs) -> BTSpec:
    """CP format of the given rank: a BT format with ``rank`` blocks of Tucker rank 1."""
    return BTSpec(in_modes, out_modes, 1, check_positive_int(rank, "rank"), **kwargs)


def bt_params(in_modes, out_modes, rank, blocks=1) -> int:
    """Parameters of a BT matrix: N * (sum_k I_k J_k R_k + prod_k R_k)."""
    return BTSpec(in_modes, out_modes, rank, blocks, max_bytes=None).params


def tucker_params(in_modes, out_modes, rank) -> int:
    """Parameters of the Tucker format (BT with one block)."""
    return bt_params(in_modes, out_modes, rank, 1)


def cp_params(in_modes, out_modes, rank) -> int:
    """Parameters of the CP format of rank ``rank`` (BT with Tucker rank 1 and ``rank`` blocks)."""
    return cp_spec(in_modes, out_modes, rank, max_bytes=None).params


