"""Tests for btcore.tasks.digits: scikit-learn's digits, resized and split."""

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from btcore.tasks import digits as dg
from btcore.tasks.digits import DigitsSplit, check_image_modes, digit_images, digits_split


def test_default_split_shapes_range_and_labels():
    s = digits_split()
    assert isinstance(s, DigitsSplit)
    assert s.train.shape == (1500, 784) and s.val.shape == (297, 784)
    assert s.train.dtype == torch.float32 and s.train_labels.dtype == torch.int64
    assert s.size == 28 and s.modes == (4, 7, 4, 7) and s.pixels == 784
    for x in (s.train, s.val):
        assert float(x.min()) == 0.0 and float(x.max()) <= 1.0 and float(x.max()) > 0.99
    assert set(s.train_labels.tolist()) == set(range(10)) == set(s.val_labels.tolist())


def test_size_8_is_the_scans_scaled_to_unit_range():
    images, labels = digit_images(8)
    ref = load_digits()
    np.testing.assert_array_equal(images.numpy(), (ref.images.reshape(1797, 64) / 16.0).astype(np.float32))
    np.testing.assert_array_equal(labels.numpy(), ref.target)


def test_resize_keeps_each_digit_mean_and_shape():
    small, _ = digit_images(8)
    big, _ = digit_images(28)
    assert big.shape == (1797, 784)
    # bilinear resizing (half-pixel centres) nearly keeps the mean grey level of each scan
    np.testing.assert_allclose(big.mean(1).numpy(), small.mean(1).numpy(), atol=0.03)
    # and where the scan is dark (centre of a 0, say) the resized image is dark too: same coarse picture
    coarse = torch.nn.functional.avg_pool2d(big.reshape(-1, 1, 28, 28), 7, 7).reshape(-1, 16)
    ref = torch.nn.functional.avg_pool2d(small.reshape(-1, 1, 8, 8), 2, 2).reshape(-1, 16)
    assert float((coarse - ref).abs().mean()) < 0.05


def test_split_is_a_seeded_partition_and_deterministic():
    full, labels = digit_images(28)
    a, b = digits_split(seed=0), digits_split(seed=0)
    assert torch.equal(a.train, b.train) and torch.equal(a.val, b.val)
    rows = {tuple(r) for r in full.numpy().round(6).tolist()}
    got = [tuple(r) for r in torch.cat([a.train, a.val]).numpy().round(6).tolist()]
    assert len(got) == 1797 and set(got) == rows  # every digit once (duplicates among scans aside)
    assert sorted(torch.cat([a.train_labels, a.val_labels]).tolist()) == sorted(labels.tolist())
    other = digits_split(seed=1)
    assert not torch.equal(other.val, a.val)
    small = digits_split(train=300)
    assert small.train.shape == (300, 784) and small.val.shape == (1497, 784)


def test_repeated_calls_hit_the_cache_and_return_copies():
    digits_split(seed=5)
    hits = dg._split.cache_info().hits
    s = digits_split(seed=5)
    assert dg._split.cache_info().hits == hits + 1
    s.train.fill_(7.0)  # the caller's copy only
    assert float(digits_split(seed=5).train.max()) <= 1.0


def test_check_image_modes():
    assert check_image_modes(28, [4, 7, 4, 7]) == (4, 7, 4, 7)
    assert check_image_modes(8, (2, 4, 2, 4)) == (2, 4, 2, 4)
    with pytest.raises(ValueError, match=r"image_modes 4x7x4x8 multiply to 896, but a 28 x 28 image has 784 pixels"):
        check_image_modes(28, (4, 7, 4, 8))
    with pytest.raises(ValueError, match="image_modes"):
        check_image_modes(28, ())


@pytest.mark.parametrize("kwargs, match", [
    ({"size": 0}, "image_size must be at least 1"),
    ({"size": 1000}, "image_size must be at most 256"),
    ({"size": 28, "modes": (8, 7, 4, 7)}, "multiply to 1,568"),
    ({"train": 0}, "train must be an integer from 1 to 1796"),
    ({"train": 1797}, "train must be an integer from 1 to 1796"),
    ({"seed": -1}, "seed must be a non-negative integer"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        digits_split(**kwargs)
