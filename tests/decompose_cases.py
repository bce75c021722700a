"""Test matrices shared by the tests of btcore.decompose (exact BT matrices, added noise)."""

import torch

from btcore import BTMatrix


def bt_dense(im, om, rank, blocks, seed=0):
    """A random exact BT matrix (float64, dense)."""
    return BTMatrix.random(im, om, rank, blocks, seed=seed, dtype=torch.float64).to_dense()


def noisy(W, level, seed=1):
    """W plus Gaussian noise of relative size ``level``, and the noise's share of the result's norm."""
    g = torch.Generator().manual_seed(seed)
    E = torch.randn(W.shape, generator=g, dtype=torch.float64)
    E = E * (level * W.norm() / E.norm())
    Wn = W + E
    return Wn, float(E.norm() / Wn.norm())


def nonincreasing(errors):
    return all(b <= a for a, b in zip(errors, errors[1:]))


def random_bt_cases(n: int, seed: int, *, regime: str | None = None) -> list:
    """``n`` random small exact-BT shapes ``(in_modes, out_modes, R, N, index)``, d = 3..5, R = 2..4,
    N = 2..4, drawn as they come (``regime=None``) or keeping only shapes with at least two modes of
    size >= N R (``"algebraic"``: the eigenvalue start applies) or fewer (``"hard"``). bench/nls.py
    draws its suites here too."""
    import math
    import random

    if regime not in (None, "algebraic", "hard"):
        raise ValueError(f"regime must be None, 'algebraic' or 'hard', got {regime!r}")
    rng = random.Random(seed)
    out = []
    while len(out) < n:
        d, R, N = rng.choice([3, 4, 5]), rng.choice([2, 3, 4]), rng.choice([2, 3, 4])
        im = tuple(rng.choice([2, 3, 4]) for _ in range(d))
        om = tuple(rng.choice([2, 3, 4]) for _ in range(d))
        M = [a * b for a, b in zip(im, om)]
        if min(M) < R or math.prod(M) > 3e5:
            continue
        if regime is not None and (sum(m >= N * R for m in M) < 2) != (regime == "hard"):
            continue
        out.append((im, om, R, N, len(out)))
    return out


def hard_bt_cases(n: int, seed: int) -> list:
    """``n`` random exact-BT shapes ``(in_modes, out_modes, R, N, index)`` where no mode is as large as
    N R (d = 4..6, I_k, J_k = 2..4, R = 2..4, N = 2..5, at most 3e5 entries): neither eigenvalue start
    applies to a single mode. bench/nls.py --hard draws its hard suite here."""
    import math
    import random

    rng = random.Random(seed)
    out = []
    while len(out) < n:
        d, R, N = rng.choice([4, 5, 6]), rng.choice([2, 3, 4]), rng.choice([2, 3, 4, 5])
        im = tuple(rng.choice([2, 3, 4]) for _ in range(d))
        om = tuple(rng.choice([2, 3, 4]) for _ in range(d))
        M = [a * b for a, b in zip(im, om)]
        if min(M) < R or math.prod(M) > 3e5 or any(m >= N * R for m in M):
            continue
        out.append((im, om, R, N, len(out)))
    return out
