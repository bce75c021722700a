"""Tests of btcore.array_files: .npy / .npz reading with the declared size checked first."""

import io
import zipfile

import numpy as np
import pytest

from btcore.array_files import check_declared, load_npy, load_npz, npy_header


def test_round_trip_of_npy_bytes_files_and_npz(tmp_path):
    a = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    buf = io.BytesIO()
    np.save(buf, a)
    assert npy_header(io.BytesIO(buf.getvalue())) == ((2, 3, 4), np.dtype(np.float32))
    assert np.array_equal(load_npy(buf.getvalue(), a.nbytes, "a"), a)
    np.save(tmp_path / "a.npy", a)
    assert np.array_equal(load_npy(tmp_path / "a.npy", a.nbytes, "a.npy"), a)
    np.savez_compressed(tmp_path / "a.npz", first=a, second=np.zeros(3))
    assert np.array_equal(load_npz(tmp_path / "a.npz", a.nbytes, "a.npz"), a)  # the first array


def test_budget_objects_and_bad_files_are_refused(tmp_path):
    with pytest.raises(ValueError, match=r"x declares a 2 x 3 array of float64 \(48 B once read\), above the 47 B"):
        check_declared((2, 3), np.dtype(np.float64), 47, "x")
    assert check_declared((2, 3), np.dtype(np.float64), 48, "x") == 48
    with pytest.raises(ValueError, match="pickled Python objects"):
        check_declared((2,), np.dtype(object), 10**9, "x")
    with pytest.raises(ValueError, match="b: not a valid .npy header"):
        load_npy(b"\x93NUMPY\x09\x00garbage", 100, "b")
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="bad.npz: not a readable .npz archive"):
        load_npz(tmp_path / "bad.npz", 100, "bad.npz")
    with zipfile.ZipFile(tmp_path / "empty.npz", "w"):
        pass
    with pytest.raises(ValueError, match="the .npz archive is empty"):
        load_npz(tmp_path / "empty.npz", 100, "empty.npz")
