"""Tensor-Train matrices (matrix product operators): cores G_k of shape (r_{k-1}, I_k, J_k, r_k), r_0 = r_d = 1."""

from __future__ import annotations

from ..indices import BATCH, IN, OUT, RANK
from ..memory import DEFAULT_MAX_BYTES
from ..shapes import pair_modes, prod
from .base import FormatSpec, Network, check_bytes, merged_sizes, normalize_ranks

__all__ = ["TTSpec", "tt_params", "tt_rank_caps"]


def tt_rank_caps(in_modes, out_modes) -> tuple[int, ...]:
    """Largest useful TT rank at each of the d-1 bonds: min(prod_{i<=k} I_i J_i, prod_{i>k} I_i J_i).

    A larger rank adds parameters and no expressive power (it exceeds the rank of the unfolding).
    """
    sizes = merged_sizes(in_modes, out_modes)
    return tuple(min(prod(sizes[: k + 1]), prod(sizes[k + 1 :])) for k in range(len(sizes) - 1))



class TTSpec(FormatSpec):
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
    key = "tt"

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
        check_bytes(self.params, "this TT-matrix", "lower the ranks", max_bytes)

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

    def describe_ranks(self) -> str:
        return "ranks " + "-".join(map(str, self.ranks))

    @staticmethod
    def max_uniform_rank(in_modes, out_modes) -> int:
        """Largest rank valid on every bond (1 for d = 1, which has no bond)."""
        return min(tt_rank_caps(in_modes, out_modes), default=1)


def tt_params(in_modes, out_modes, ranks) -> int:
    """Parameters of a TT-matrix: sum_k r_{k-1} I_k J_k r_k (see :class:`TTSpec` for ``ranks``)."""
    return TTSpec(in_modes, out_modes, ranks, max_bytes=None).params

