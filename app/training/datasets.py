"""The data root of the app and the clip-folder datasets in it.

The app serves whoever opens it, so its Training page reads clips only from one folder, the data
root: ``$BTLAB_DATA_ROOT``, or the git-ignored ``data/`` folder of the repository. Every path is
resolved (symlinks too) by :func:`btcore.clips.resolve_data_path` and refused outside the root. The
command line (``python -m btcore.train --data PATH``) is for a local user and takes any path.
"""

from __future__ import annotations

import os
from pathlib import Path

from btcore.clips import resolve_data_path

__all__ = ["DATA_ROOT_ENV", "DEFAULT_DATA_ROOT", "data_root", "class_folders", "list_datasets", "dataset_path"]

DATA_ROOT_ENV = "BTLAB_DATA_ROOT"
DEFAULT_DATA_ROOT = Path(__file__).resolve().parents[2] / "data"


def data_root() -> Path:
    """``$BTLAB_DATA_ROOT`` when set (and not empty), else the ``data/`` folder of the checkout this app runs
    from (``app/main.py`` puts its checkout first on the import path), resolved."""
    env = os.environ.get(DATA_ROOT_ENV, "").strip()
    return (Path(env).expanduser() if env else DEFAULT_DATA_ROOT).resolve()


def class_folders(folder: Path, root: Path | None = None) -> list[Path]:
    """The class sub-folders of a dataset (not hidden ones), resolved, sorted by name; OSError when unreadable.

    A sub-folder that resolves outside ``root`` (default: the dataset folder itself) is left out, so a
    symlink out of the data root is never counted or named.
    """
    inside = []
    for p in sorted(folder.iterdir(), key=lambda p: p.name):
        if p.name.startswith(".") or not p.is_dir():
            continue
        try:
            inside.append(resolve_data_path(p.resolve(), root if root is not None else folder))
        except ValueError:  # leads out of the root
            continue
    return inside


def list_datasets(root: Path) -> list[str]:
    """Names of the datasets directly in ``root``: folders with two or more class folders, resolving inside it.

    A folder that is a symlink out of the root is left out. An empty list when ``root`` is not a
    folder; OSError when it cannot be listed.
    """
    if not root.is_dir():
        return []
    names = []
    for p in sorted(root.iterdir(), key=lambda p: p.name):
        if p.name.startswith(".") or not p.is_dir():
            continue
        try:
            folder = resolve_data_path(p.name, root)
        except ValueError:  # a symlink leading out of the root
            continue
        if len(class_folders(folder, root)) >= 2:
            names.append(p.name)
    return names


def dataset_path(name: str, root: Path) -> Path:
    """The resolved folder of dataset ``name`` in ``root``; ValueError when it is not inside the root."""
    return resolve_data_path(name, root)
