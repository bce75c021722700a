"""Tests of btcore.uploads: safe loading of uploaded .npy / .pt files and trained weights."""

import io
import pickle

import numpy as np
import pytest
import torch

from btcore import uploads
from btcore.uploads import load_uploaded, trained_weights


def _npy(arr, **kw) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, **kw)
    return buf.getvalue()


def _pt(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


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


def test_load_uploaded_argument_types():
    with pytest.raises(TypeError, match="name must be the file name"):
        uploads.load_uploaded(5, b"x")
    with pytest.raises(ValueError, match="max_bytes must be a positive integer"):
        uploads.load_uploaded("w.npy", b"x", max_bytes=0)


# -- decompression bombs: what a file declares or expands to is checked before it is read -----------

def _deflated(data: bytes) -> bytes:
    """The same torch archive with every record deflated (torch.load reads it just the same)."""
    import zipfile

    src, out = zipfile.ZipFile(io.BytesIO(data)), io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for info in src.infolist():
            z.writestr(info.filename, src.read(info.filename))
    return out.getvalue()


def test_a_small_compressed_pt_expanding_past_the_limit_is_refused_before_loading(monkeypatch, tmp_path):
    bomb = _deflated(_pt(torch.zeros(4096, 4096)))  # 64 MiB of float32 in about 66 kB
    assert len(bomb) < 200_000
    assert torch.load(io.BytesIO(bomb), weights_only=True).shape == (4096, 4096)  # a real, loadable bomb
    loads = []
    monkeypatch.setattr(torch, "load", lambda *a, **k: loads.append(1))
    with pytest.raises(ValueError, match=r"w.pt expands to 64.0 MiB once read, above the 16.0 MiB limit"):
        load_uploaded("w.pt", bomb, max_bytes=16 * 1024**2)
    path = tmp_path / "model.pt"
    path.write_bytes(bomb)
    with pytest.raises(ValueError, match=r"model.pt expands to 64.0 MiB"):
        trained_weights(path, max_bytes=16 * 1024**2)
    assert not loads  # refused from the zip directory alone


def test_a_tensor_view_repeating_a_tiny_storage_is_refused_before_it_is_materialised():
    data = _pt(torch.zeros(1).expand(16384, 16384))  # one stored float, 16,384 x 16,384 (1 GiB) once copied
    assert len(data) < 10_000
    with pytest.raises(ValueError, match=r"a tensor of shape \(16384, 16384\) \(1.0 GiB of torch.float32\) is above"):
        load_uploaded("w.pt", data)
    with pytest.raises(ValueError, match="is above the"):
        load_uploaded("w.pt", _pt({"layer.weight": torch.zeros(1).expand(16384, 16384)}))


def test_a_npy_declaring_more_than_the_limit_is_refused_from_its_header():
    from numpy.lib import format as npy_format

    header = io.BytesIO()
    npy_format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": (16384, 16384)})
    data = header.getvalue() + bytes(64)  # declares 2 GiB, holds 64 bytes
    with pytest.raises(ValueError, match=r"w.npy declares a 16,384 x 16,384 array of float64 .2.0 GiB once read., "
                                         r"above the 200.0 MiB limit"):
        load_uploaded("w.npy", data)
    ok = _npy(np.eye(3))
    assert np.array_equal(load_uploaded("w.npy", ok, max_bytes=len(ok)), np.eye(3))  # at the limit: fine
