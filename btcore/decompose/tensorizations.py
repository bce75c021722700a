"""The tensorizations the format advisor searches: factorizations of a matrix's I and J into d modes
and their pairings, de-duplicated by the tensor they describe (:func:`search_tensorizations`)."""

from __future__ import annotations

import math
from typing import Sequence

from ..shapes import check_modes, check_positive_int, factorize

__all__ = ["search_tensorizations", "canonical"]



def _splits(n: int, d: int, limit: int = 2) -> list[tuple[int, ...]]:
    """Up to ``limit`` factorizations of n into d factors, most balanced first (largest factor first)."""
    best = factorize(n, d, max_mode=None)
    out = [best]
    if limit > 1:
        found = []

        def walk(rest, k, lo, acc):
            if len(found) > 200:
                return
            if k == 1:
                if rest >= lo:
                    found.append(acc + (rest,))
                return
            f = lo
            while f ** k <= rest:
                if rest % f == 0:
                    walk(rest // f, k - 1, f, acc + (f,))
                f += 1

        walk(n, d, 2, ())
        found.sort(key=lambda s: (max(s), sum(math.log(f) ** 2 for f in s)))
        out += [tuple(sorted(s, reverse=True)) for s in found if tuple(sorted(s, reverse=True)) != best]
    return out[:limit]


def canonical(im, om, ordered: bool) -> tuple:
    """The key of a tensorization: its (I_k, J_k) pairs without unit modes; Tucker, BT and CP depend on
    the pairs alone (``ordered=False``), TT and TR on their order up to reversal (``ordered=True``)."""
    pairs = [(i, j) for i, j in zip(im, om) if i * j > 1]
    if not ordered:
        return tuple(sorted(pairs))
    return min(tuple(pairs), tuple(pairs[::-1]))


def search_tensorizations(shape: tuple[int, int], max_order: int = 6,
                          extra: Sequence = ()) -> list[tuple[tuple, tuple]]:
    """The (in_modes, out_modes) pairs :func:`suggest_formats` searches for a matrix of ``shape``.

    For each order d = 2..``max_order``: the two most balanced factorizations of I and of J, paired
    largest with largest and largest with smallest; the plain matrix ((I, 1), (1, J)), whose TT is
    the truncated SVD; and the pairs in ``extra``. Modes with I_k = J_k = 1 are dropped and pairs
    that describe the same tensor are kept once.
    """
    I, J = (check_positive_int(s, "shape") for s in shape)
    out, seen = [], set()

    def add(im, om):
        pairs = [(i, j) for i, j in zip(im, om) if i * j > 1] or [(im[0], om[0])]
        im2, om2 = tuple(p[0] for p in pairs), tuple(p[1] for p in pairs)
        key = canonical(im2, om2, True)
        if len(im2) >= 2 and key not in seen:
            seen.add(key)
            out.append((im2, om2))

    for im, om in extra:
        add(check_modes(im, "tensorizations (in_modes)", I), check_modes(om, "tensorizations (out_modes)", J))
    add((I, 1), (1, J))
    for d in range(2, max_order + 1):
        for im in _splits(I, d):
            for om in _splits(J, d):
                add(im, om)
                add(im, om[::-1])
    return out
