"""The tensorizations the format advisor searches: factorizations of a matrix's I and J into d modes
and their pairings, de-duplicated by the tensor they describe (:func:`search_tensorizations`), and the interleaved tensor
of one with its unfolding spectra (:class:`Interleaved`)."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

from ..shapes import check_modes, check_positive_int, factorize, prod
from .inputs import interleave

__all__ = ["search_tensorizations", "canonical", "Interleaved"]



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


def _gram_spectrum(A: torch.Tensor, vectors: bool = False, rows: bool = False):
    """Squared singular values (descending) of A (and its left singular vectors) via the smaller Gram.

    ``rows``: with ``vectors``, the singular vectors of the smaller side as they come (left ones for
    a wide A, right ones for a tall A), for :func:`_leading_rows`."""
    left = A.shape[0] <= A.shape[1]
    G = A @ A.T if left else A.T @ A
    if rows:
        if not vectors:
            return torch.linalg.eigvalsh(G).flip(0).clamp_min(0), None
        w, V = torch.linalg.eigh(G)
        return w.flip(0).clamp_min(0), V.flip(1)
    if vectors and left:
        w, V = torch.linalg.eigh(G)
        return w.flip(0).clamp_min(0), V.flip(1)
    w = torch.linalg.eigvalsh(G).flip(0).clamp_min(0)
    if vectors:  # tall unfolding: left vectors from the right ones
        _, V = torch.linalg.eigh(G)
        U = A @ V.flip(1)
        U = U / U.norm(dim=0).clamp_min(1e-300)
        return w, U
    return w


def _leading_rows(step: tuple, r: int) -> torch.Tensor:
    """S_r Vh_r of a TT-SVD step (its matrix A's r leading singular values times their right singular
    vectors), from ``step`` = (s^2, (A, V)) with V as :func:`_gram_spectrum` gave it (``rows=True``):
    U_r^T A for a wide A, S_r V_r^T for a tall one."""
    s2, (A, V) = step
    if A.shape[0] <= A.shape[1]:
        return V[:, :r].T @ A
    return s2[:r].sqrt()[:, None] * V[:, :r].T


def _tails(s2: torch.Tensor) -> np.ndarray:
    """tails[r] = sum of s2[r:] (what a rank-r truncation leaves), r = 0..len."""
    s = s2.double().numpy()[::-1].cumsum()[::-1]
    return np.append(s, 0.0)


class Interleaved:
    """The interleaved tensor of W for one tensorization (``im``, ``om``) and the spectra of its mode and
    bond unfoldings (computed once), with the free error bounds and direct errors the advisor reads.
    """

    def __init__(self, W: torch.Tensor, im, om):
        self.im, self.om = tuple(im), tuple(om)
        self.sizes = [i * j for i, j in zip(im, om)]
        self.T = interleave(W, self.im, self.om)
        self.norm2 = float((self.T ** 2).sum())
        self.mode = []    # (tails, U) of the mode-k unfoldings
        d = len(self.sizes)
        for k in range(d):
            A = self.T.movedim(k, 0).reshape(self.sizes[k], -1)
            s2, U = _gram_spectrum(A, vectors=True)
            self.mode.append((_tails(s2), U))
        self.bond = [_tails(_gram_spectrum(self.T.reshape(prod(self.sizes[:k + 1]), -1))) for k in range(d - 1)]
        self._path = []  # the TT-SVD steps of the last tt_error call: (rank before it, s^2, basis)

    def tt_error(self, ranks) -> float:
        """Relative error of TT-SVD at the d+1 TT ``ranks``: the root of the discarded squared singular
        values of its steps (as :func:`~btcore.decompose.tt.fit_tt` computes it; the squared singular
        values here are the eigenvalues of each step's smaller Gram matrix, accurate to about 1e-15 of
        ||T||^2: errors below about 1e-6 need fit_tt itself). Step k depends only on the ranks before
        it, so the steps the previous call shares with this one (its ranks' longest common prefix: call
        in sorted order of ranks) are not recomputed; the last step needs its eigenvalues alone."""
        if self.norm2 == 0:
            return 0.0
        d = len(self.sizes)
        discarded, r_prev = 0.0, 1
        for k in range(d - 1):
            if k >= len(self._path) or self._path[k][0] != r_prev:
                del self._path[k:]
                if k == 0:
                    A = self.T.reshape(self.sizes[0], -1)
                else:
                    A = _leading_rows(self._path[k - 1][1:], r_prev).reshape(r_prev * self.sizes[k], -1)
                S2, B = _gram_spectrum(A, vectors=k < d - 2, rows=True)
                self._path.append((r_prev, S2, (A, B)))
            S2 = self._path[k][1]
            r = min(ranks[k + 1], S2.shape[0])
            discarded += float(S2[r:].sum())
            r_prev = r
        return math.sqrt(discarded / self.norm2)

    def block_bound(self, ranks, N: int) -> float:
        """Lower bound on the relative error of any BT model of N blocks with core ``ranks`` (CP: N
        blocks of ranks 1; Tucker: N = 1).

        The model's mode-k unfolding has rank at most N R_k, and its unfolding of modes 1..k against
        the others (a TT bond) at most N min(R_1 ... R_k, R_k+1 ... R_d): a block's unfolding has at
        most the smaller product of its core's ranks. A matrix of rank r leaves at least the tail of
        the unfolding's squared singular values beyond r (Eckart-Young); the bound is the largest."""
        if not self.norm2:
            return 0.0
        worst = max(t[min(N * r, len(t) - 1)] for (t, _), r in zip(self.mode, ranks))
        for k, t in enumerate(self.bond):
            r = N * min(prod(ranks[: k + 1]), prod(ranks[k + 1:]))
            worst = max(worst, t[min(r, len(t) - 1)])
        return math.sqrt(max(0.0, worst) / self.norm2)

    def hosvd_error(self, ranks) -> float:
        """Relative error of the truncated HOSVD at ``ranks`` (exact: ||T||^2 - ||core||^2)."""
        core = self.T
        for k, ((_, U), r) in enumerate(zip(self.mode, ranks)):
            core = torch.tensordot(core, U[:, :r], dims=([0], [0]))  # contracted mode moves to the back
        left = self.norm2 - float((core ** 2).sum())
        return math.sqrt(max(0.0, left) / self.norm2) if self.norm2 else 0.0
