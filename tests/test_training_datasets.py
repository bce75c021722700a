"""app.training.datasets: the data root and the datasets listed in it."""

from __future__ import annotations

import pytest

from app.training import datasets


def _dataset(path, classes=("a", "b")):
    for c in classes:
        (path / c).mkdir(parents=True)
    return path


def test_data_root_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv(datasets.DATA_ROOT_ENV, raising=False)
    assert datasets.data_root() == datasets.DEFAULT_DATA_ROOT
    assert datasets.DEFAULT_DATA_ROOT.name == "data" and (datasets.DEFAULT_DATA_ROOT.parent / "btcore").is_dir()
    monkeypatch.setenv(datasets.DATA_ROOT_ENV, str(tmp_path))
    assert datasets.data_root() == tmp_path
    monkeypatch.setenv(datasets.DATA_ROOT_ENV, "  ")
    assert datasets.data_root() == datasets.DEFAULT_DATA_ROOT


def test_list_datasets(tmp_path):
    root = tmp_path / "root"
    _dataset(root / "ucf")
    _dataset(root / "b_small", ("x", "y", "z"))
    _dataset(root / "one", ("only",))  # one class: not a dataset
    _dataset(root / ".hidden")
    (root / "notes.txt").write_text("x")
    outside = _dataset(tmp_path / "outside")
    (root / "link_out").symlink_to(outside)
    (root / "link_in").symlink_to(root / "ucf")
    assert datasets.list_datasets(root) == ["b_small", "link_in", "ucf"]
    assert [p.name for p in datasets.class_folders(root / "b_small")] == ["x", "y", "z"]
    assert datasets.list_datasets(tmp_path / "missing") == []
    assert datasets.dataset_path("ucf", root) == (root / "ucf").resolve()
    for bad in ("link_out", "../outside", str(outside)):
        with pytest.raises(ValueError, match="not allowed|outside the data root"):
            datasets.dataset_path(bad, root)
