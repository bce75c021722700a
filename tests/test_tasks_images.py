"""Tests for btcore.tasks.images: image grids and their PNG bytes."""

import io

import numpy as np
import pytest
import torch
from PIL import Image

from btcore.tasks.images import grid_png_bytes, tile


def test_tile_places_images_row_major():
    imgs = np.arange(6 * 4).reshape(6, 2, 2).astype(float)
    g = tile(imgs, 2, 3)
    assert g.shape == (4, 6)
    np.testing.assert_array_equal(g[2:4, 2:4], imgs[4])  # row 1, column 1 = image 4
    np.testing.assert_array_equal(tile(imgs.reshape(6, 4), 2, 3), g)
    with pytest.raises(ValueError, match="tile needs 6 square images"):
        tile(imgs[:5], 2, 3)
    np.testing.assert_array_equal(tile(torch.tensor(imgs), 2, 3), g)
    with pytest.raises(ValueError, match="not square"):
        tile(np.zeros((2, 5)), 1, 2)


def test_grid_png_bytes_round_trip():
    a = np.linspace(0, 1, 12).reshape(3, 4)
    img = Image.open(io.BytesIO(grid_png_bytes(a)))
    assert img.format == "PNG" and img.mode == "L" and img.size == (4, 3)
    np.testing.assert_array_equal(np.asarray(img), np.round(a * 255).astype(np.uint8))
    big = np.asarray(Image.open(io.BytesIO(grid_png_bytes(a, scale=3))))
    assert big.shape == (9, 12) and big[3:6, 6:9].min() == big[3:6, 6:9].max() == np.asarray(img)[1, 2]
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        grid_png_bytes(a * 2)
    with pytest.raises(ValueError, match="2-D"):
        grid_png_bytes(np.zeros(3))
