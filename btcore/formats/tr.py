"""Tensor Ring (TR) matrices: a ring of d cores G_k of shape (r_{k-1}, I_k, J_k, r_k), r_0 = r_d.

W of shape (I, J), I = I_1..I_d, J = J_1..J_d, is the trace of the core products::

    W[(i_1..i_d), (j_1..j_d)] = trace(G_1[:, i_1, j_1, :] G_2[:, i_2, j_2, :] .. G_d[:, i_d, j_d, :])

Rows and columns are row-major and the pair (i_k, j_k) is merged mode k of size M_k = I_k J_k
(index i_k J_k + j_k), exactly as for TT (:mod:`btcore.formats.tt`). With r_0 = r_d = 1 a ring is a
TT-matrix.

Bonds are numbered like TT's inner ranks: ``ranks[k]`` (k = 0..d-1) is the bond between core k+1
and core k+2, and ``ranks[d-1]`` closes the ring (between core d and core 1), so core k (0-based)
has shape ``(ranks[k-1], I_k, J_k, ranks[k])``; in the tensor network bond k is the index
``RANK[k]`` of :mod:`btcore.indices`.
"""

from __future__ import annotations

import functools
from numbers import Integral
from typing import Sequence

from ..indices import BATCH, IN, OUT, RANK
from ..memory import DEFAULT_MAX_BYTES
from ..shapes import check_positive_int, pair_modes, prod
from .base import FormatSpec, Network, check_bytes, merged_sizes

__all__ = ["TRSpec", "tr_params", "normalize_tr_ranks", "tr_rank_caps", "tr_universal_ranks", "tr_exact_ranks",
           "tr_max_uniform_rank"]


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
    d, sizes = len(i), merged_sizes(i, o)
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
    d, sizes = len(i), merged_sizes(i, o)
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
    sizes = merged_sizes(i, o)
    return min(tr_universal_ranks(i, o), key=lambda rk: (_ring_params(sizes, rk), rk))


def _dominating(in_modes, out_modes, ranks) -> tuple[int, ...] | None:
    """A universal rank tuple below ``ranks`` everywhere and different from it (fewest parameters), or None."""
    sizes = merged_sizes(in_modes, out_modes)
    below = [u for u in tr_universal_ranks(in_modes, out_modes, max(ranks))
             if u != tuple(ranks) and all(a <= b for a, b in zip(u, ranks))]
    return min(below, key=lambda rk: (_ring_params(sizes, rk), rk)) if below else None


def tr_max_uniform_rank(in_modes, out_modes) -> int:
    """The largest uniform rank r that :class:`TRSpec` accepts for these modes.

    Uniform ranks always pass :func:`tr_rank_caps`; r is refused exactly when some universal rank
    tuple u (:func:`tr_universal_ranks`) has max(u) <= r and u != (r, .., r).
    """
    return min(max(u) if len(set(u)) == 1 else max(u) - 1 for u in tr_universal_ranks(in_modes, out_modes))


class TRSpec(FormatSpec):
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
    key = "tr"

    def __init__(self, in_modes, out_modes, ranks, *, in_size=None, out_size=None, max_bytes=DEFAULT_MAX_BYTES):
        self.in_modes, self.out_modes = pair_modes(in_modes, out_modes, in_size, out_size)
        rk = normalize_tr_ranks(ranks, self.d)
        problem = _rank_problem(self.in_modes, self.out_modes, rk)
        if problem:
            raise ValueError(problem)
        self.ranks = rk
        check_bytes(self.params, "this TR-matrix", "lower the ranks", max_bytes)

    def core_shapes(self) -> list[tuple[int, int, int, int]]:
        r = self.ranks
        return [(r[k - 1], self.in_modes[k], self.out_modes[k], r[k]) for k in range(self.d)]

    @property
    def params(self) -> int:
        return sum(prod(s) for s in self.core_shapes())

    def network(self) -> Network:
        """x and the d cores, core k with indices (bond k-1, I_k, J_k, bond k), bond d-1 closing the ring.

        With d = 1 the ring is one core whose two bonds are the same index (its trace): the network
        holds the traced core, an (I, J) matrix (:meth:`btcore.TRMatrix.tensors` passes it so).
        """
        d = self.d
        names, terms, shapes = ["x"], [BATCH + IN[:d]], [(-1,) + self.in_modes]
        sizes = {c: m for c, m in zip(IN, self.in_modes)} | {c: m for c, m in zip(OUT, self.out_modes)}
        if d == 1:
            return Network(("x", "G1"), (BATCH + IN[0], IN[0] + OUT[0]), ((-1,) + self.in_modes, self.shape),
                           IN[:1], OUT[:1], tuple(sorted(sizes.items())))
        for k in range(d):
            names.append(f"G{k + 1}")
            terms.append(RANK[(k - 1) % d] + IN[k] + OUT[k] + RANK[k])
            shapes.append(self.core_shapes()[k])
            sizes[RANK[k]] = self.ranks[k]
        return Network(tuple(names), tuple(terms), tuple(shapes), IN[:d], OUT[:d], tuple(sorted(sizes.items())))

    def describe_ranks(self) -> str:
        """``'ring ranks 4-4-4-4'``: the d bond ranks, the last closing the ring."""
        return "ring ranks " + "-".join(map(str, self.ranks))

    @staticmethod
    def max_uniform_rank(in_modes, out_modes) -> int:
        """The largest uniform rank this spec accepts (:func:`tr_max_uniform_rank`)."""
        return tr_max_uniform_rank(in_modes, out_modes)


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
