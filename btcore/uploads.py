"""Safe loading of a user's own matrix: an uploaded ``.npy`` / ``.pt`` file, or a trained model's weight.

* :func:`load_uploaded` - a user-uploaded ``.npy`` / ``.pt`` with strict checks and clear messages.
* :func:`trained_weights` - a 2-D weight of a saved model (``torch.save`` state dict).

No pickled objects are ever loaded: ``.npy`` uses ``allow_pickle=False``, ``.pt`` ``weights_only=True``.
"""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import numpy as np
import torch

from .array_files import check_declared, npy_header
from .checks import check_matrix
from .memory import format_bytes
from .shapes import check_positive_int, size_and_modes

__all__ = ["DEFAULT_MAX_UPLOAD_BYTES", "DEFAULT_MAX_MODEL_BYTES", "load_uploaded", "trained_weights"]

#: Default size limit of an uploaded file and of the data it expands to (200 MiB: a 57,600 x 256
#: float64 matrix is 113 MiB).
DEFAULT_MAX_UPLOAD_BYTES = 200 * 1024**2
#: Default limit on what a trained model's file expands to (the dense UCF11 LSTM is about 240 MB).
DEFAULT_MAX_MODEL_BYTES = 2 * 1024**3


def _matrices(state) -> dict[str, torch.Tensor]:
    out = {}

    def walk(obj, prefix):
        if isinstance(obj, torch.Tensor):
            if obj.dim() == 2 and obj.is_floating_point():
                out[prefix] = obj
        elif isinstance(obj, dict):
            for k, v in obj.items():
                walk(v, f"{prefix}.{k}" if prefix else str(k))

    walk(state, "")
    return out


def _check_tensor_size(t: torch.Tensor, budget: int, source: str) -> None:
    """Refuse a tensor whose elements take more than ``budget`` bytes (a view can repeat a small storage)."""
    nbytes = t.numel() * t.element_size()
    if nbytes > budget:
        raise ValueError(f"{source}: a tensor of shape {tuple(t.shape)} ({format_bytes(nbytes)} of {t.dtype}) is above "
                         f"the {format_bytes(budget)} limit; save a smaller matrix")


def _check_torch_archive(source, budget: int, where: str) -> None:
    """Refuse a torch zip archive whose records would inflate above ``budget``, before any is inflated.

    The sizes come from the zip's directory, which torch also allocates by; the legacy (non-zip)
    format is never compressed, so its data is at most the file's size.
    """
    try:
        archive = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError):
        return
    with archive:
        total = sum(info.file_size for info in archive.infolist())
    if total > budget:
        raise ValueError(f"{where} expands to {format_bytes(total)} once read, above the {format_bytes(budget)} limit "
                         "(a compressed archive is judged by what it holds); save a smaller matrix")


def _pick_matrix(state, name, expected_shape, source: str, budget: int) -> np.ndarray:
    tensors = _matrices(state)
    found = {k: tuple(v.shape) for k, v in tensors.items()}
    if not found:
        raise ValueError(f"{source} holds no 2-D floating-point tensor; save the weight matrix itself or a state dict")
    if name is not None:
        if name not in found:
            raise ValueError(f"{source}: no 2-D tensor named {name!r}; available: "
                             + ", ".join(f"{k} {v}" for k, v in found.items()))
        candidates = [name]
    elif expected_shape is not None:
        e = tuple(expected_shape)
        candidates = [k for k, s in found.items() if s == e or s == e[::-1]]
        if not candidates:
            raise ValueError(f"{source}: no 2-D tensor of shape {e} (or its transpose); available: "
                             + ", ".join(f"{k} {v}" for k, v in found.items()))
        # prefer input-to-hidden weights
        candidates.sort(key=lambda k: (not any(s in k.lower() for s in ("ih", "input", "in_map", "w_x")), k))
    else:
        if len(found) > 1:
            raise ValueError(f"{source} holds {len(found)} 2-D tensors; pick one by name: "
                             + ", ".join(f"{k} {v}" for k, v in found.items()))
        candidates = list(found)
    _check_tensor_size(tensors[candidates[0]], budget, source)
    t = tensors[candidates[0]].detach().to("cpu", torch.float64)
    W = t.numpy().copy()
    if expected_shape is not None:
        e = tuple(expected_shape)
        if W.shape != e and W.T.shape == e:
            W = np.ascontiguousarray(W.T)  # nn.Linear / LSTM weights are stored (out, in)
    return W


def trained_weights(path, in_modes=None, out_modes=None, seed: int = 0, *, name: str | None = None,
                    max_bytes: int = DEFAULT_MAX_MODEL_BYTES) -> np.ndarray:
    """A weight matrix of a trained model saved with ``torch.save`` (loaded with ``weights_only=True``).

    With ``in_modes``/``out_modes`` the tensor of shape (I, J) or (J, I) is chosen (input-to-hidden
    weights preferred, transposed to (I, J)); else ``name`` or the only 2-D tensor. ``seed`` is unused.
    A file that would expand to more than ``max_bytes`` is refused before it is read.
    """
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"no trained model at {p}; train one first or choose another target")
    expected = None
    if in_modes is not None and out_modes is not None:
        expected = (size_and_modes(in_modes, "in_modes")[0], size_and_modes(out_modes, "out_modes")[0])
    _check_torch_archive(p, max_bytes, p.name)
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure gets the same clear message
        raise ValueError(f"{p.name}: cannot be read as a weights-only torch file ({type(exc).__name__}); "
                         "save tensors or a state dict with torch.save") from exc
    W = _pick_matrix(state, name, expected, p.name, max_bytes)
    check_matrix(W, p.name, expected)
    return W


def load_uploaded(name: str, data: bytes, expected_shape: tuple[int, int] | None = None, *,
                  max_bytes: int = DEFAULT_MAX_UPLOAD_BYTES, key: str | None = None) -> np.ndarray:
    """Load a user-uploaded matrix from a ``.npy`` or ``.pt`` file's bytes, safely.

    ``.npy`` is read with ``allow_pickle=False``; ``.pt`` with ``torch.load(weights_only=True)`` and
    may hold a tensor or a (nested) dict of tensors (``key`` picks one, else the one of
    ``expected_shape`` or the only 2-D one). Returns a float64 (I, J) array.

    Raises
    ------
    ValueError
        With a message naming the problem and the fix: file too large (or declaring, or expanding
        to, more than ``max_bytes`` of data: checked before it is read), unknown extension, pickled
        or unreadable content, non-numeric or complex dtype, not 2-D, NaN/inf entries, or a shape
        other than ``expected_shape``.
    """
    if not isinstance(name, (str, os.PathLike)):
        raise TypeError(f"name must be the file name (a string), got {type(name).__name__}")
    fname = os.path.basename(str(name)) or "upload"
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, (int, np.integer)) or max_bytes < 1:
        raise ValueError(f"max_bytes must be a positive integer, got {max_bytes!r}")
    if expected_shape is not None:
        expected_shape = tuple(check_positive_int(v, "expected_shape") for v in expected_shape)
        if len(expected_shape) != 2:
            raise ValueError(f"expected_shape must be (I, J), got {expected_shape!r}")
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ValueError(f"{fname}: expected the file's bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) > max_bytes:
        raise ValueError(f"{fname} is {format_bytes(len(data))}, above the upload limit of {format_bytes(max_bytes)}; "
                         "upload a smaller matrix (or save it as float32)")
    if len(data) == 0:
        raise ValueError(f"{fname} is empty")
    ext = os.path.splitext(fname)[1].lower()
    if ext == ".npy":
        if not data.startswith(b"\x93NUMPY"):
            # Without the magic bytes np.load would try (and refuse) pickle, and say so misleadingly.
            raise ValueError(f"{fname} is not a .npy file (it lacks the .npy header); save the matrix with np.save")
        try:
            shape, dtype = npy_header(io.BytesIO(data))
        except ValueError as exc:
            raise ValueError(f"{fname} is not a valid .npy file ({exc}); save it with np.save") from None
        if not dtype.hasobject:  # object arrays get the pickle message below
            check_declared(shape, dtype, max_bytes, fname)
        try:
            arr = np.load(io.BytesIO(data), allow_pickle=False)
        except ValueError as exc:
            msg = str(exc)
            if "pickle" in msg.lower():
                raise ValueError(f"{fname} holds pickled Python objects, which are never loaded (unsafe); save a "
                                 "plain numeric array with np.save(path, W.astype(np.float32))") from exc
            raise ValueError(f"{fname} is not a valid .npy file ({msg}); save it with np.save") from exc
        except Exception as exc:  # noqa: BLE001
            raise ValueError(f"{fname} is not a valid .npy file ({type(exc).__name__}: {exc}); save it with np.save") from exc
        if not isinstance(arr, np.ndarray):
            raise ValueError(f"{fname} did not contain a single array; save one matrix with np.save")
    elif ext in (".pt", ".pth"):
        _check_torch_archive(io.BytesIO(data), max_bytes, fname)
        try:
            obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001
            raise ValueError(f"{fname} cannot be loaded as tensors only (weights_only=True refused it: "
                             f"{type(exc).__name__}); pickled Python objects are never loaded. Save a tensor or a "
                             "dict of tensors with torch.save") from exc
        if isinstance(obj, torch.Tensor):
            t = obj
            if t.is_complex():
                raise ValueError(f"{fname}: complex values are not supported; upload the real part")
            if not (t.is_floating_point() or t.dtype in (torch.int8, torch.int16, torch.int32, torch.int64,
                                                         torch.uint8, torch.bool)):
                raise ValueError(f"{fname}: tensor dtype {t.dtype} is not numeric")
            _check_tensor_size(t, max_bytes, fname)
            arr = t.detach().to("cpu", torch.float64).numpy()
        elif isinstance(obj, dict):
            arr = _pick_matrix(obj, key, expected_shape, fname, max_bytes)
        else:
            raise ValueError(f"{fname} holds a {type(obj).__name__}, not a tensor or a dict of tensors; "
                             "save the matrix with torch.save(W, path)")
    else:
        raise ValueError(f"{fname}: unsupported file type {ext or '(none)'}; upload a .npy (np.save) or .pt "
                         "(torch.save) file")
    if arr.dtype.kind == "c":
        raise ValueError(f"{fname}: complex values are not supported; upload the real part")
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{fname}: dtype {arr.dtype} is not numeric; upload a float or integer array")
    check_matrix(arr, fname)
    W = np.ascontiguousarray(arr, dtype=np.float64)
    check_matrix(W, fname, expected_shape)
    return W
