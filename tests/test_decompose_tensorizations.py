"""Tests of btcore.decompose.tensorizations: the interleaved tensor's spectra and its free error bounds."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import btcore
from btcore.decompose import fit_bt, fit_cp
from btcore.decompose.tensorizations import Interleaved


def _exact_bt(im, om, rank, blocks, seed=0) -> torch.Tensor:
    M = btcore.BTMatrix.random(im, om, rank, blocks, seed=seed, dtype=torch.float64)
    return M.to_dense()


def test_block_bound_vanishes_at_the_generating_structure():
    im = om = (4, 4, 4, 4)
    t = Interleaved(_exact_bt(im, om, 3, 2), im, om)
    assert t.block_bound((3,) * 4, 2) < 1e-7
    assert t.block_bound((4,) * 4, 2) < 1e-7  # a larger model too


def test_block_bound_uses_the_bonds_where_the_mode_ranks_allow_a_fit():
    """N = 3 blocks of rank 2 have mode ranks 6, as the generating 2 blocks of rank 3 do, but bond
    rank 3 * 2 * 2 = 12 against 2 * 3 * 3 = 18 across the middle: the bound is far from zero, and a
    fit of that model stays above it."""
    im = om = (4, 4, 4, 4)
    W = _exact_bt(im, om, 3, 2)
    t = Interleaved(W, im, om)
    modes_only = max(tl[min(6, len(tl) - 1)] for tl, _ in t.mode) / t.norm2
    assert modes_only < 1e-14
    bound = t.block_bound((2,) * 4, 3)
    assert bound > 0.05
    _, info = fit_bt(W, im, om, 2, 3, seed=0)
    assert info.relative_error >= bound * (1 - 1e-9)


@pytest.mark.parametrize("rank, blocks", [(2, 2), (2, 4), (3, 1), (1, 5)])
def test_block_bound_is_below_every_fit(rank, blocks):
    """On a photo (nothing exact to hit), no fit of N blocks of the given ranks goes below the bound."""
    skimage_data = pytest.importorskip("skimage.data")
    W = torch.from_numpy(skimage_data.camera()[::8, ::8].astype(np.float64) / 255.0)
    im, om = (4, 4, 4), (4, 4, 4)
    t = Interleaved(W / torch.linalg.norm(W), im, om)
    bound = t.block_bound((rank,) * 3, blocks)
    assert bound > 0
    if rank == 1:
        _, info = fit_cp(W, im, om, blocks, seed=0)
    else:
        _, info = fit_bt(W, im, om, rank, blocks, seed=0)
    assert info.relative_error >= bound * (1 - 1e-9)
    assert t.hosvd_error((rank * blocks,) * 3) >= t.block_bound((min(rank * blocks, 16),) * 3, 1) * (1 - 1e-9)


def test_block_bound_of_a_zero_tensor():
    t = Interleaved(torch.zeros(16, 16, dtype=torch.float64), (4, 4), (4, 4))
    assert t.block_bound((1, 1), 1) == 0.0
