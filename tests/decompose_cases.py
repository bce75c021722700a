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
