"""Where a study's data and dense model come from: the data root (listed safely) and uploads.

Only files inside the data root (:func:`app.training.datasets.data_root`) are listed or read: every
candidate is resolved (symlinks too) and dropped when it leads outside. An uploaded ``.npz`` is
refused above :data:`UPLOAD_MAX_BYTES` before it is opened, then checked by the library
(:func:`btcore.tasks.sequences.load_sequences`: headers before data, finite values, labels,
two examples per class), whose messages the page shows.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from btcore.tasks.sequences import load_sequences, resolve_npz_path

__all__ = ["UPLOAD_MAX_BYTES", "MAX_DEPTH", "npz_files", "checkpoint_files", "checkpoint_path", "read_upload",
           "sequences_classes"]

#: Largest uploaded archive read (bytes); larger files belong in the data root.
UPLOAD_MAX_BYTES = 64 * 1024**2
#: How deep below the data root files are listed.
MAX_DEPTH = 3


def _files(root: Path, suffix: str) -> list[str]:
    """Files ending in ``suffix`` under ``root`` (at most :data:`MAX_DEPTH` folders down), as paths relative to the
    resolved root, each resolving inside it; an empty list when ``root`` is not a folder."""
    base = Path(root).expanduser()
    if not base.is_dir():
        return []
    base = base.resolve()
    out = []
    for depth in range(MAX_DEPTH + 1):
        for p in sorted(base.glob("/".join(["*"] * (depth + 1)))):
            rel = p.relative_to(base)
            if p.suffix.lower() != suffix or any(part.startswith(".") for part in rel.parts):
                continue
            full = p.resolve()
            if full.is_relative_to(base) and full.is_file():
                out.append(rel.as_posix())
    return out


def npz_files(root: Path) -> list[str]:
    """The ``.npz`` archives under the data root (relative paths), never one that leads outside it."""
    return _files(root, ".npz")


def checkpoint_files(root: Path) -> list[str]:
    """The ``.pt`` checkpoints under the data root (relative paths), never one that leads outside it."""
    return _files(root, ".pt")


def checkpoint_path(name: str, root: Path) -> Path:
    """The resolved checkpoint ``name`` inside ``root``; ValueError when it is not a ``.pt`` file inside it."""
    base = Path(root).expanduser().resolve()
    full = (base / name).resolve()
    if Path(name).suffix.lower() != ".pt" or not full.is_relative_to(base) or not full.is_file():
        raise ValueError(f"Compress from: {name} is not a .pt checkpoint inside the data root {base}; "
                         "put the dense model's checkpoint there")
    return full


_CLASSES: dict = {}


def sequences_classes(source, root: Path | None = None, *, where: str = "Data") -> int:
    """The class count of a ``.npz`` (bytes, or a name in ``root``), every check of the library run once per content.

    Raises ValueError with the library's message (what is wrong and the fix).
    """
    if isinstance(source, (bytes, bytearray)):
        key = ("bytes", hashlib.sha256(source).hexdigest())
    else:
        path = resolve_npz_path(source, root)
        st = path.stat()
        key = (str(path), st.st_mtime_ns, st.st_size)
        source = path
    if key not in _CLASSES:
        if len(_CLASSES) > 32:
            _CLASSES.clear()
        _CLASSES[key] = load_sequences(source, where=where)[2]
    return _CLASSES[key]


def read_upload(name: str, data: bytes) -> tuple[bytes, int]:
    """``(bytes, classes)`` of an uploaded ``.npz``; ValueError naming what is wrong (size first, then the library's
    checks)."""
    if len(data) > UPLOAD_MAX_BYTES:
        raise ValueError(f"{name}: {len(data) / 1024**2:,.1f} MiB is more than the {UPLOAD_MAX_BYTES // 1024**2} MiB "
                         "an upload may hold; put the file in the data root and choose it under Data")
    if not name.lower().endswith(".npz"):
        raise ValueError(f"{name}: not a .npz file; save X (n, T, D) and y (n,) with np.savez(f, X=X, y=y)")
    return bytes(data), sequences_classes(bytes(data), where=f"uploaded {name}")
