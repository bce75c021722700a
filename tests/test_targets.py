"""Tests of btcore.target_matrices (generators), btcore.images (shipped images, PNG) and btcore.uploads."""

import io
import pickle

import numpy as np
import pytest
import torch

from btcore import images, target_matrices, uploads
from btcore.images import list_images, load_image, read_png, resize, write_png
from btcore.target_matrices import TARGETS, bt_structured, gaussian, image, make_target, smooth_kernel, tt_structured
from btcore.uploads import load_uploaded, trained_weights

IM, OM = (2, 4, 4, 2), (4, 4, 2, 2)  # 64 x 64



def _npy(arr, **kw) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, **kw)
    return buf.getvalue()


def _pt(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------
# generators
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", list(TARGETS))
def test_every_target_is_float64_of_the_right_shape_and_reproducible(kind):
    W = make_target(kind, IM, OM, seed=3)
    assert W.dtype == np.float64 and W.shape == (64, 64) and np.isfinite(W).all()
    assert np.array_equal(W, make_target(kind, IM, OM, seed=3))
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


# ---------------------------------------------------------------------------------------------
# images
# ---------------------------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------------------------
# uploads
# ---------------------------------------------------------------------------------------------

def test_upload_npy_and_pt_accepted():
    W = np.arange(12.0).reshape(3, 4)
    assert np.array_equal(load_uploaded("w.npy", _npy(W)), W)
    assert np.array_equal(load_uploaded("w.npy", _npy(W.astype(np.float32)), (3, 4)), W)
    assert np.array_equal(load_uploaded("w.npy", _npy(W.astype(np.int32))), W)
    assert np.array_equal(load_uploaded("w.pt", _pt(torch.from_numpy(W))), W)
    state = {"lstm.weight_ih": torch.from_numpy(W.T.copy()), "fc.weight": torch.ones(2, 2), "step": 3}
    assert np.array_equal(load_uploaded("model.pt", _pt(state), (3, 4)), W)  # found by shape, transposed
    assert np.array_equal(load_uploaded("model.pt", _pt(state), key="fc.weight"), np.ones((2, 2)))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # torch notes the protocol before refusing
def test_upload_rejects_pickled_arrays():
    with pytest.raises(ValueError, match="pickled"):
        load_uploaded("w.npy", _npy(np.array([{"a": 1}, None], dtype=object), allow_pickle=True))
    with pytest.raises(ValueError, match="lacks the .npy header"):
        load_uploaded("w.npy", pickle.dumps(np.ones((3, 3))))

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    with pytest.raises(ValueError, match="weights_only|pickled"):
        load_uploaded("w.pt", pickle.dumps(Evil()))
    buf = io.BytesIO()
    torch.save({"w": torch.ones(3, 3), "obj": Evil()}, buf)
    with pytest.raises(ValueError, match="weights_only|pickled"):
        load_uploaded("w.pt", buf.getvalue())


@pytest.mark.parametrize("arr, match", [
    (np.ones(5), "1-D"),
    (np.ones((2, 3, 4)), "3-D"),
    (np.array(3.0), "0-D"),
    (np.array([[1.0, np.nan], [0.0, 1.0]]), "NaN"),
    (np.array([[1.0, np.inf], [0.0, 1.0]]), "infinite"),
    (np.ones((2, 2), dtype=complex), "complex"),
    (np.array([["a", "b"], ["c", "d"]]), "not numeric"),
])
def test_upload_rejects_bad_arrays(arr, match):
    with pytest.raises(ValueError, match=match):
        load_uploaded("w.npy", _npy(arr))


def test_upload_rejects_bad_pt_contents():
    with pytest.raises(ValueError, match="1-D"):
        load_uploaded("w.pt", _pt(torch.ones(5)))
    with pytest.raises(ValueError, match="NaN"):
        load_uploaded("w.pt", _pt(torch.tensor([[float("nan"), 1.0]])))
    with pytest.raises(ValueError, match="pick one by name"):
        load_uploaded("w.pt", _pt({"a": torch.ones(2, 2), "b": torch.ones(3, 3)}))
    with pytest.raises(ValueError, match="no 2-D"):
        load_uploaded("w.pt", _pt({"a": torch.ones(4)}))
    with pytest.raises(ValueError, match="not a tensor"):
        load_uploaded("w.pt", _pt([1, 2, 3]))


def test_upload_rejects_wrong_size_oversize_and_unknown_files():
    W = np.ones((4, 3))
    with pytest.raises(ValueError, match=r"does not match.*\(3, 4\).*transposed"):
        load_uploaded("w.npy", _npy(W), expected_shape=(3, 4))
    with pytest.raises(ValueError, match="does not match"):
        load_uploaded("w.npy", _npy(W), expected_shape=(6, 2))
    with pytest.raises(ValueError, match="above the upload limit"):
        load_uploaded("w.npy", _npy(np.ones((100, 100))), max_bytes=10_000)
    with pytest.raises(ValueError, match="unsupported file type"):
        load_uploaded("w.csv", b"1,2\n3,4\n")
    with pytest.raises(ValueError, match="empty"):
        load_uploaded("w.npy", b"")
    with pytest.raises(ValueError, match="not a valid .npy"):
        load_uploaded("w.npy", b"\x93NUMPY garbage")
    with pytest.raises(ValueError, match="w.npy is not a .npy file .*lacks the .npy header"):
        load_uploaded("w.npy", b"1,2\n3,4\n")


def test_trained_weights_from_checkpoint(tmp_path):
    W = np.random.default_rng(0).standard_normal((12, 8))
    path = tmp_path / "model.pt"
    torch.save({"model": {"rnn.weight_ih_l0": torch.from_numpy(W.T.copy()), "rnn.weight_hh_l0": torch.ones(12, 12)}},
               path)
    assert np.allclose(trained_weights(path, (3, 4), (2, 4)), W)
    assert np.allclose(trained_weights(path, name="model.rnn.weight_hh_l0"), np.ones((12, 12)))
    with pytest.raises(ValueError, match="no trained model"):
        trained_weights(tmp_path / "missing.pt", (3, 4), (2, 4))
    with pytest.raises(ValueError, match="no 2-D tensor of shape"):
        trained_weights(path, (5,), (5,))


def test_asset_dir_points_into_the_repo():
    assert images.ASSET_DIR.name == "targets" and images.ASSET_DIR.parent.name == "assets"


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
    monkeypatch.setattr("btcore.tensors.available_memory", lambda device=None: 1024)
    with pytest.raises(ValueError, match="the 1,000 x 1,000 target needs"):
        target_matrices.make_target("gaussian", 1000, 1000)


def test_load_uploaded_argument_types():
    with pytest.raises(TypeError, match="name must be the file name"):
        uploads.load_uploaded(5, b"x")
    with pytest.raises(ValueError, match="max_bytes must be a positive integer"):
        uploads.load_uploaded("w.npy", b"x", max_bytes=0)
    with pytest.raises(TypeError, match="data must be the PNG file's bytes"):
        images.read_png(None)
