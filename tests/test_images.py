"""Tests of btcore.images: the shipped target images and the PNG codec."""

import io

import numpy as np
import pytest

from btcore import images
from btcore.images import list_images, load_image, read_png, resize, write_png
from btcore.target_matrices import image


def test_shipped_images_load_and_resize():
    names = list_images()
    assert len(names) >= 2
    for n in names:
        img = load_image(n)
        assert img.ndim == 2 and img.min() >= 0 and img.max() <= 1 and img.std() > 0.01
    W = image((8, 20, 20, 18), (4, 4, 4, 4), name=names[0])  # the paper's tall 57,600 x 256 shape
    assert W.shape == (57600, 256) and W.min() >= 0 and W.max() <= 1
    with pytest.raises(ValueError, match="not found"):
        load_image("no-such-image")


def test_png_codec_round_trip_and_other_writers():
    a = np.random.default_rng(0).uniform(size=(9, 13))
    b = read_png(write_png(a))
    assert np.abs(a - b).max() <= 0.5 / 255 + 1e-12
    with pytest.raises(ValueError, match="not a PNG"):
        read_png(b"GIF89a")
    PIL = pytest.importorskip("PIL.Image")  # a PNG written by another encoder (filters, RGB)
    rgb = (np.random.default_rng(1).uniform(size=(7, 11, 3)) * 255).astype(np.uint8)
    buf = io.BytesIO()
    PIL.fromarray(rgb).save(buf, format="PNG", optimize=True)
    gray = read_png(buf.getvalue())
    assert np.allclose(gray, (rgb.astype(float) / 255) @ np.array([0.299, 0.587, 0.114]))


def test_resize_preserves_constants_and_shapes():
    out = resize(np.full((10, 10), 0.3), (40, 7))
    assert out.shape == (40, 7) and np.allclose(out, 0.3)


def test_asset_dir_points_into_the_repo():
    assert images.ASSET_DIR.name == "targets" and images.ASSET_DIR.parent.name == "assets"


def test_read_png_argument_type():
    with pytest.raises(TypeError, match="data must be the PNG file's bytes"):
        read_png(None)


def _no_network(monkeypatch):
    import socket

    def refuse(*a, **k):
        raise AssertionError("a photo target tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_photos_load_offline_grey_with_stated_shapes(monkeypatch):
    import skimage.data

    _no_network(monkeypatch)
    images._photo.cache_clear()
    for name, (fn, what) in images.PHOTOS.items():
        img = images.load_photo(name)
        raw = getattr(skimage.data, fn)()
        h, w = raw.shape[:2]
        assert img.shape == (h - h % 16, w - w % 16) and img.shape[0] % 16 == 0 and img.shape[1] % 16 == 0
        assert f"{img.shape[0]} x {img.shape[1]}" in what  # the description states the size used
        assert img.dtype == np.float64 and 0 <= img.min() and img.max() <= 1 and img.std() > 0.02
        top, left = (h - img.shape[0]) // 2, (w - img.shape[1]) // 2
        grey = raw.astype(float) / 255 if raw.ndim == 2 else (raw[..., :3].astype(float) / 255) @ [0.299, 0.587, 0.114]
        assert np.array_equal(img, grey[top:top + img.shape[0], left:left + img.shape[1]])  # a crop, not a resample
    assert images.photo_shape("camera") == (512, 512)
    img = images.load_photo("camera")
    img[:] = 0  # the caller's copy; the cached photo is untouched
    assert images.load_photo("camera").max() == 1.0
    with pytest.raises(ValueError, match="not one of"):
        images.load_photo("eagle")  # in skimage.data, but needs a download


def test_digits_matrix_is_sklearns_data_minus_five_rows(monkeypatch):
    from sklearn.datasets import load_digits

    _no_network(monkeypatch)
    images._digits.cache_clear()
    D = images.digits_matrix()
    ref = load_digits().data
    assert ref.shape == (1797, 64) and D.shape == images.DIGITS_SHAPE == (1792, 64)
    assert np.array_equal(D * 16, ref[:1792]) and D.max() == 1.0
