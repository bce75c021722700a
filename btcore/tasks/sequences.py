"""Sequence classification on the user's own data: a ``.npz`` of ``X`` (n, T, D) floats and ``y`` (n,) labels.

The archive comes from the data root (a path, resolved so that nothing outside the root is read or
named) or as bytes (an upload). Its headers are read first: ``X`` and ``y`` must be declared with
the right ranks, dtypes and matching ``n`` and fit the byte budget before any array is inflated
(:func:`sequence_header`); the arrays are then checked in full (:func:`load_sequences`: finite
values, integer labels 0..K-1, at least two examples per class). ``D`` is tensorized into balanced
modes (:func:`btcore.shapes.factorize`) unless ``in_modes`` are given. The model, loss and metric
(validation accuracy) are those of :class:`~btcore.tasks.action.ActionTask`.
"""

from __future__ import annotations

import io
import math
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..array_files import check_declared, npy_header
from ..clips import resolve_data_path
from ..data import ClipSet
from ..shapes import check_positive_int, factorize
from .action import ActionTask, model_config
from .base import Batch

__all__ = ["SequencesTask", "SequenceSet", "SequenceHeader", "sequence_header", "load_sequences",
           "resolve_npz_path", "split_sequences", "MAX_SEQUENCE_BYTES"]

#: Most bytes ``X`` and ``y`` together may declare (an upload or a file of the data root).
MAX_SEQUENCE_BYTES = 200 * 1024**2


@dataclass(frozen=True)
class SequenceHeader:
    """What the archive's headers declare: ``n`` examples of ``T`` steps of ``D`` features, their bytes."""

    n: int
    steps: int
    features: int
    nbytes: int


class SequenceSet(ClipSet):
    """Sequences in memory: a :class:`~btcore.data.ClipSet` whose frames are ``D`` features, not pictures.

    ``x`` (n, T, D) float32, ``y`` (n,) int64 (checked by :func:`load_sequences`); ``frame_shape``
    is ``(1, 1, D)``, the classes are named ``"0"`` .. ``"K-1"``.
    """

    def __post_init__(self):  # a picture's frame-shape rules (sides of 8 to 4,096 pixels) do not apply
        self.class_names = tuple(self.class_names)

    @classmethod
    def of(cls, x: torch.Tensor, y: torch.Tensor, classes: int, source: str = "memory") -> "SequenceSet":
        """The set of ``x`` and ``y`` with ``classes`` classes."""
        return cls(x, y, (1, 1, int(x.shape[2])), tuple(str(k) for k in range(int(classes))), source)


def resolve_npz_path(path, root) -> Path:
    """``path`` (relative to ``root``, or absolute) as a resolved ``.npz`` file inside ``root``; else a ValueError.

    The folder is resolved by :func:`btcore.clips.resolve_data_path` and the file again after it,
    so neither ``..`` nor a symlink leads out; what lies outside the root is never named.
    """
    raw = Path(path).expanduser()
    if raw.suffix.lower() != ".npz":
        raise ValueError(f"data path {path}: not a .npz file; save X and y with np.savez")
    folder = resolve_data_path(raw.parent if str(raw.parent) else ".", root)
    base = Path(root).expanduser().resolve()
    full = (folder / raw.name).resolve()
    if not full.is_relative_to(base):
        raise ValueError(f"data path {path}: leads outside the data root {base}; put the data inside the data root")
    if not full.is_file():
        raise ValueError(f"data path {path}: no such file in the data root {base}")
    return full


def _open(source, where: str) -> zipfile.ZipFile:
    try:
        if isinstance(source, (bytes, bytearray, memoryview)):
            return zipfile.ZipFile(io.BytesIO(bytes(source)))
        return zipfile.ZipFile(Path(source))
    except (zipfile.BadZipFile, OSError) as exc:
        raise ValueError(f"{where}: not a readable .npz archive ({exc})") from None


def _members(archive: zipfile.ZipFile, where: str) -> dict[str, zipfile.ZipInfo]:
    found = {i.filename.removesuffix(".npy"): i for i in archive.infolist() if i.filename.endswith(".npy")}
    missing = [k for k in ("X", "y") if k not in found]
    if missing:
        raise ValueError(f"{where}: the archive has no {' or '.join(missing)} array (it holds "
                         f"{', '.join(sorted(found)) or 'no arrays'}); save it with np.savez(f, X=X, y=y)")
    return found


def sequence_header(source, *, max_bytes: int = MAX_SEQUENCE_BYTES, where: str = "--data") -> SequenceHeader:
    """The shapes ``X`` and ``y`` declare, checked (ranks, dtypes, ``n``, ``D``, bytes) without reading the data.

    Parameters
    ----------
    source : path or bytes
        The ``.npz`` archive (a resolved path, or the uploaded bytes).
    max_bytes : int
        Most bytes ``X`` and ``y`` may declare together.
    where : str
        What is being read, to start messages.

    Returns
    -------
    SequenceHeader
    """
    with _open(source, where) as archive:
        members = _members(archive, where)
        declared = {}
        for key in ("X", "y"):
            with archive.open(members[key]) as fp:
                try:
                    declared[key] = npy_header(fp)
                except ValueError as exc:
                    raise ValueError(f"{where}: {key}: {exc}") from None
    (xs, xd), (ys, yd) = declared["X"], declared["y"]
    if len(xs) != 3:
        raise ValueError(f"{where}: X must have 3 axes (n, T, D): examples, time steps, features; got shape {xs}")
    if len(ys) != 1:
        raise ValueError(f"{where}: y must have 1 axis (n,): one integer label per example; got shape {ys}")
    if xd.kind not in "fiu" or xd.kind == "b":
        raise ValueError(f"{where}: X must hold real numbers (float), got dtype {xd}")
    if yd.kind not in "iu":
        raise ValueError(f"{where}: y must hold integer class labels 0..K-1, got dtype {yd}; cast it with "
                         "y.astype(int)")
    if xs[0] != ys[0]:
        raise ValueError(f"{where}: X has {xs[0]:,} examples but y has {ys[0]:,} labels; give one label per example")
    if xs[1] == 0 or xs[2] == 0:
        raise ValueError(f"{where}: X has shape {xs}; every example needs at least one time step (T) and one "
                         "feature (D)")
    nbytes = check_declared(xs, xd, max_bytes, f"{where}: X")
    nbytes += check_declared(ys, yd, max_bytes - nbytes, f"{where}: y (with X)")
    return SequenceHeader(int(xs[0]), int(xs[1]), int(xs[2]), nbytes)


def load_sequences(source, *, max_bytes: int = MAX_SEQUENCE_BYTES,
                   where: str = "--data") -> tuple[torch.Tensor, torch.Tensor, int]:
    """``(X float32 (n, T, D), y int64 (n,), classes)`` of the archive, refused with a clear message when malformed.

    The headers are checked first (:func:`sequence_header`); then every value of ``X`` must be
    finite, ``y`` must hold the labels 0..K-1 (each present), and every class at least two examples
    (one to train on, one to validate).
    """
    head = sequence_header(source, max_bytes=max_bytes, where=where)
    with _open(source, where) as archive:
        members = _members(archive, where)
        arrays = {}
        for key in ("X", "y"):
            with archive.open(members[key]) as fp:
                arrays[key] = np.lib.format.read_array(fp, allow_pickle=False)
    x, y = arrays["X"], arrays["y"]
    bad = int((~np.isfinite(x)).sum()) if x.dtype.kind == "f" else 0
    if bad:
        raise ValueError(f"{where}: {bad:,} of the {x.size:,} values of X are NaN or infinite; replace or drop them")
    if head.n and int(y.min()) < 0:
        raise ValueError(f"{where}: labels must be 0..K-1, got {int(y.min())}; map the classes to 0..K-1")
    classes = int(y.max()) + 1 if head.n else 0
    counts = np.bincount(y.astype(np.int64), minlength=classes)
    if classes < 2:
        raise ValueError(f"{where}: y holds {classes} class(es); a classifier needs at least 2")
    missing = np.flatnonzero(counts == 0)
    if missing.size:
        raise ValueError(f"{where}: labels must be 0..K-1 with every class present; label(s) "
                         f"{', '.join(map(str, missing[:5].tolist()))} of 0..{classes - 1} never occur "
                         "(labels out of range); renumber the classes")
    few = np.flatnonzero(counts < 2)
    if few.size:
        raise ValueError(f"{where}: class(es) {', '.join(map(str, few[:5].tolist()))} have fewer than 2 examples; "
                         "each class needs one to train on and one to validate")
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), torch.from_numpy(y.astype(np.int64)), classes


def split_sequences(y: torch.Tensor, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(train indices, val indices)``: each class's share ``val_fraction`` held out (at least one, one kept)."""
    rng = np.random.default_rng(int(seed))
    labels = y.numpy()
    train, val = [], []
    for k in range(int(labels.max()) + 1):
        idx = rng.permutation(np.flatnonzero(labels == k))
        hold = min(max(1, round(val_fraction * len(idx))), len(idx) - 1)
        val.append(idx[:hold])
        train.append(idx[hold:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


@dataclass(frozen=True)
class SequencesTask(ActionTask):
    """Sequence classification on a ``.npz`` (``data_source``: a path, or the archive's bytes).

    Parameters
    ----------
    data_source : path or bytes, optional
        The archive (None: no data yet, for reading configurations); a path is resolved inside ``root`` when ``root`` is given.
    root : path, optional
        The data root (the app's); None: the path is read as given (the command line).
    in_modes : tuple of int, optional
        Modes of the features D (default ``factorize(D, d)``).
    val_fraction : float, optional
        Share of each class held out for validation (None: 0.25).
    max_bytes : int
        Most bytes ``X`` and ``y`` may declare.

    The headers are read (and checked) when the task is made, so a bad file is refused before any
    work; ``frames`` and ``features`` are the archive's T and D.
    """

    data_source: object = None
    root: str | None = None
    in_modes: tuple | None = None
    max_bytes: int = MAX_SEQUENCE_BYTES
    features: int = 0

    name = "sequences"

    def __post_init__(self):
        source = self.data_source
        if source is None:  # no data yet: the task still names its metric and reads model configurations
            return
        if not isinstance(source, (bytes, bytearray, memoryview)):
            source = str(resolve_npz_path(source, self.root) if self.root is not None else Path(source).expanduser())
            object.__setattr__(self, "data_source", source)
        else:
            object.__setattr__(self, "data_source", bytes(source))
        if self.val_fraction is not None and not 0 < self.val_fraction < 1:
            raise ValueError(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        head = sequence_header(self.data_source, max_bytes=self.max_bytes, where=self._where)
        if self.in_modes is not None:
            modes = tuple(check_positive_int(m, "in_modes") for m in self.in_modes)
            if math.prod(modes) != head.features:
                raise ValueError(f"in_modes {'x'.join(map(str, modes))} multiply to {math.prod(modes):,}, but the "
                                 f"sequences have D = {head.features:,} features")
            object.__setattr__(self, "in_modes", modes)
        object.__setattr__(self, "frames", head.steps)
        object.__setattr__(self, "features", head.features)
        object.__setattr__(self, "frame_shape", (1, 1, head.features))

    @property
    def _where(self) -> str:
        return "uploaded .npz" if isinstance(self.data_source, bytes) else f"--data {Path(self.data_source).name}"

    @property
    def synthetic(self) -> bool:
        return False

    def load(self) -> tuple[torch.Tensor, torch.Tensor, int]:
        """``(X, y, classes)`` of the archive (:func:`load_sequences`)."""
        if self.data_source is None:
            raise ValueError("sequences: no data; give a .npz of X (n, T, D) and y (n,) as data_source")
        return load_sequences(self.data_source, max_bytes=self.max_bytes, where=self._where)

    def data(self, seed: int):
        """``(train, val)`` :class:`SequenceSet` s: a stratified split drawn with ``seed``."""
        x, y, classes = self.load()
        tr, va = split_sequences(y, 0.25 if self.val_fraction is None else self.val_fraction, seed)
        return SequenceSet.of(x[tr], y[tr], classes, "train"), SequenceSet.of(x[va], y[va], classes, "val")

    def data_bytes(self) -> dict[str, int]:
        """The bytes the sequences hold in memory (float32), keyed by ``--data``."""
        if self.data_source is None:
            return {}
        head = sequence_header(self.data_source, max_bytes=self.max_bytes, where=self._where)
        return {"--data": head.n * (4 * head.steps * head.features + 8)}

    def example_batch(self, model_config, batch: int, frames: int | None) -> Batch:
        g = torch.Generator().manual_seed(0)
        x = torch.randn(batch, frames or self.frames, model_config.input_size, generator=g)
        return x, torch.randint(0, model_config.classes, (batch,), generator=g)

    def model_config(self, kind: str, **controls):
        """The classifier for D features in ``in_modes`` (default balanced, ``factorize(D, d)``)."""
        controls = dict(controls)
        classes = controls.pop("classes", None) or self.classes
        if classes is None:
            classes = self.load()[2]
        d = controls.pop("d", 4)
        modes = controls.pop("in_modes", None) or self.in_modes or factorize(self.features, d)
        return model_config(kind, frame_shape=(1, 8, 8), classes=classes, d=len(modes), in_modes=modes, **controls)
