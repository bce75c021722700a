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


def test_the_default_root_is_the_checkout_being_run(monkeypatch):
    import subprocess
    import sys
    from pathlib import Path

    monkeypatch.delenv(datasets.DATA_ROOT_ENV, raising=False)
    checkout = Path(__file__).resolve().parents[1]
    assert datasets.data_root() == checkout / "data"
    # `streamlit run app/main.py` starts with app/ first on the path: main puts its own checkout before any install
    probe = ("import runpy, sys; sys.path[0] = sys.argv[1] + '/app'; src = open(sys.argv[1] + '/app/main.py').read();"
             "exec(src.split('import streamlit')[0], {'__file__': sys.argv[1] + '/app/main.py'}); import app.training.datasets as d; print(d.DEFAULT_DATA_ROOT)")
    out = subprocess.run([sys.executable, "-c", probe, str(checkout)], cwd="/", capture_output=True, text=True,
                         timeout=120, check=True).stdout.strip()
    assert out == str(checkout / "data")


def test_a_class_folder_linked_out_of_the_root_is_not_counted(tmp_path):
    root = tmp_path / "root"
    ds = _dataset(root / "ucf", ("a", "b"))
    outside = _dataset(tmp_path / "secret", ("c", "d"))
    (ds / "leak").symlink_to(outside / "c")
    (root / "two_links").mkdir()
    (root / "two_links" / "x").symlink_to(outside / "c")
    (root / "two_links" / "y").symlink_to(outside / "d")
    assert [p.name for p in datasets.class_folders(ds, root)] == ["a", "b"]
    assert datasets.list_datasets(root) == ["ucf"]  # two class folders, both outside: not a dataset
    (ds / "inside").symlink_to(ds / "a")  # a link that stays inside is a folder like any other
    assert len(datasets.class_folders(ds, root)) == 3
