"""Tests of btcore.target_matrices: the target generators and make_target."""

import numpy as np
import pytest

from btcore import target_matrices
from btcore.target_matrices import TARGETS, bt_structured, gaussian, image, make_target, smooth_kernel, tt_structured

IM, OM = (2, 4, 4, 2), (4, 4, 2, 2)  # 64 x 64


@pytest.mark.parametrize("kind", list(TARGETS))
def test_every_target_is_float64_of_the_right_shape_and_reproducible(kind):
    im, om = ((7, 16, 16), (4, 4, 4)) if kind == "digits" else (IM, OM)  # a data matrix has its own shape
    W = make_target(kind, im, om, seed=3)
    assert W.dtype == np.float64 and W.shape == (np.prod(im), 64) and np.isfinite(W).all()
    assert np.array_equal(W, make_target(kind, im, om, seed=3))
    assert np.linalg.norm(W) > 0


def test_sizes_or_modes_accepted_where_no_structure_is_needed():
    assert gaussian(12, 5, seed=0).shape == (12, 5)
    assert smooth_kernel(12, 5).shape == (12, 5)
    assert image(30, 20, seed=1).shape == (30, 20)
    with pytest.raises(ValueError, match="mode tuples"):
        bt_structured(64, 64)
    with pytest.raises(ValueError, match="unknown target"):
        make_target("fractal", IM, OM)


def test_structured_targets_are_recoverable_at_the_noise_level():
    from btcore.decompose import fit_bt, fit_tt

    W = bt_structured(IM, OM, seed=0, rank=2, blocks=2, noise=0.0)
    _, info = fit_bt(W, IM, OM, 2, 2, seed=0)
    assert info.relative_error < 1e-6
    Wn = bt_structured(IM, OM, seed=0, rank=2, blocks=2, noise=0.01)
    assert np.linalg.norm(Wn - W) / np.linalg.norm(W) == pytest.approx(0.01)
    T = tt_structured(IM, OM, seed=0, ranks=3, noise=0.0)
    _, info = fit_tt(T, IM, OM, 3)
    assert info.relative_error < 1e-6


def test_seeds_differ_and_kernel_is_smooth():
    assert not np.array_equal(gaussian(8, 8, seed=0), gaussian(8, 8, seed=1))
    K = smooth_kernel(64, 32)
    assert K.max() <= 1.0 and K.min() > 0
    assert np.abs(np.diff(K, axis=0)).max() < 0.2  # no jumps between neighbours


def test_make_target_checks_numbers_and_memory(monkeypatch):
    with pytest.raises(ValueError, match="noise must be a finite number >= 0"):
        target_matrices.make_target("bt", (2, 3), (3, 2), noise=float("nan"))
    with pytest.raises(ValueError, match="length_scale must be a finite number > 0"):
        target_matrices.make_target("kernel", 6, 6, length_scale=float("inf"))
    with pytest.raises(ValueError, match="seed must be an integer"):
        target_matrices.make_target("gaussian", 6, 6, seed=-3)
    with pytest.raises(TypeError, match="target 'gaussian'"):
        target_matrices.make_target("gaussian", 6, 6, bogus=1)
    with pytest.raises(ValueError, match="target 'gaussian': .* entries are not finite"):
        with np.errstate(over="ignore"):
            target_matrices.make_target("gaussian", 30, 30, std=1e308)  # finite std, overflowing entries
    monkeypatch.setattr("btcore.memory.available_memory", lambda device=None: 1024)
    with pytest.raises(ValueError, match="the 1,000 x 1,000 target needs"):
        target_matrices.make_target("gaussian", 1000, 1000)


def test_photo_and_digits_targets():
    from btcore import images
    from btcore.target_matrices import IMAGE_TARGETS, natural_shape

    assert {"photo", "digits"} <= set(TARGETS) and "photo" in IMAGE_TARGETS and "digits" not in IMAGE_TARGETS
    W = make_target("photo", (4, 8, 16), (8, 8, 8), name="camera")  # its own size: the photo itself
    assert np.array_equal(W, images.load_photo("camera"))
    assert natural_shape("photo", name="coins") == (288, 384) and natural_shape("digits") == (1792, 64)
    assert natural_shape("bt") is None
    small = make_target("photo", (4, 4, 4, 4), (4, 4, 4, 4), name="camera")  # resized, same picture
    assert small.shape == (256, 256) and 0 <= small.min() and small.max() <= 1
    assert abs(small.mean() - W.mean()) < 0.01
    D = make_target("digits", (7, 16, 16), (4, 4, 4))
    assert np.array_equal(D, images.digits_matrix())
    with pytest.raises(ValueError, match="1,792 x 64"):
        make_target("digits", (4, 4, 4, 4), (4, 4, 4, 4))
    with pytest.raises(ValueError, match="not one of"):
        make_target("photo", 16, 16, name="nope")
