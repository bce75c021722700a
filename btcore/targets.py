"""Target matrices for the approximation experiments, and safe loading of user files.

Every generator takes ``(in_modes or in_size, out_modes or out_size, seed=0, ...)`` and returns a
float64 numpy array of shape (I, J) (y = x @ W convention; I = prod(in_modes)). Generators that need
the tensorization (the structured ones) require mode tuples; the others accept plain sizes too.

* :func:`gaussian` - i.i.d. N(0, 1) entries: no structure at all, the hardest case for every format.
* :func:`bt_structured` - an exact Block-Term matrix plus Gaussian noise of a given relative size.
* :func:`tt_structured` - an exact TT-matrix plus noise.
* :func:`smooth_kernel` - a Gaussian (RBF) kernel between two point sets on [0, 1]: smooth, so it
  compresses well.
* :func:`image` - one of the grayscale images shipped in ``assets/targets/``, resized.
* :func:`trained_weights` - a 2-D weight of a saved model (``torch.save`` state dict).
* :func:`load_uploaded` - a user-uploaded ``.npy`` / ``.pt`` with strict checks and clear messages.

:data:`TARGETS` maps the names the app shows to the generators; :func:`make_target` dispatches.
No pickled objects are ever loaded: ``.npy`` uses ``allow_pickle=False``, ``.pt`` ``weights_only=True``.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image

from .shapes import check_modes, check_positive_int, prod

__all__ = [
    "TARGETS",
    "ASSET_DIR",
    "DEFAULT_MAX_UPLOAD_BYTES",
    "make_target",
    "gaussian",
    "bt_structured",
    "tt_structured",
    "smooth_kernel",
    "image",
    "list_images",
    "load_image",
    "resize",
    "trained_weights",
    "load_uploaded",
    "read_png",
    "write_png",
]

#: Folder of the shipped target images.
ASSET_DIR = Path(__file__).resolve().parent.parent / "assets" / "targets"
#: Default size limit of an uploaded file (200 MiB: a 57,600 x 256 float64 matrix is 113 MiB).
DEFAULT_MAX_UPLOAD_BYTES = 200 * 1024**2


def _size(x, field: str) -> tuple[int, tuple[int, ...] | None]:
    """(size, modes or None) from an int or a sequence of modes."""
    if isinstance(x, (int, np.integer)) and not isinstance(x, bool):
        return check_positive_int(x, field), None
    modes = check_modes(x, field)
    return prod(modes), modes


def _modes_required(in_modes, out_modes, what: str):
    _, im = _size(in_modes, "in_modes")
    _, om = _size(out_modes, "out_modes")
    if im is None or om is None:
        raise ValueError(f"{what} needs mode tuples (e.g. in_modes=(4, 8, 8, 4)), not plain sizes")
    if len(im) != len(om):
        raise ValueError(f"in_modes has {len(im)} modes but out_modes has {len(om)}; both need the same order d")
    return im, om


def _finite(value, field: str, *, positive: bool = False) -> float:
    """``value`` as a float; ``TypeError`` unless a real number, ``ValueError`` unless finite and >= 0 (> 0)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{field} must be a number, got {value!r}")
    v = float(value)
    if not np.isfinite(v) or v < 0 or (positive and v == 0):
        raise ValueError(f"{field} must be a finite number {'> 0' if positive else '>= 0'}, got {value!r}")
    return v


def _seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**63:
        raise ValueError(f"seed must be an integer in [0, 2^63), got {seed!r}")
    return int(seed)


def _add_noise(W: np.ndarray, noise: float, rng: np.random.Generator) -> np.ndarray:
    noise = _finite(noise, "noise")
    if noise == 0:
        return W
    E = rng.standard_normal(W.shape)
    return W + E * (noise * np.linalg.norm(W) / np.linalg.norm(E))


# ----------------------------------------------------------------------------------------------
# Generators
# ----------------------------------------------------------------------------------------------

def gaussian(in_modes, out_modes, seed: int = 0, *, std: float = 1.0) -> np.ndarray:
    """I.i.d. Gaussian entries with standard deviation ``std``."""
    i, _ = _size(in_modes, "in_modes")
    j, _ = _size(out_modes, "out_modes")
    return np.random.default_rng(_seed(seed)).standard_normal((i, j)) * _finite(std, "std", positive=True)


def bt_structured(in_modes, out_modes, seed: int = 0, *, rank=3, blocks: int = 2,
                  noise: float = 0.01) -> np.ndarray:
    """An exact BT matrix (``blocks`` blocks of Tucker rank ``rank``) plus noise.

    The noise is Gaussian with ``||E|| = noise * ||W_exact||``, so the best achievable relative
    error at the true ranks is about ``noise``.
    """
    from .matrices import BTMatrix

    im, om = _modes_required(in_modes, out_modes, "bt_structured")
    M = BTMatrix.random(im, om, rank, blocks, seed=seed, dtype=torch.float64)
    W = M.to_dense().numpy()
    return _add_noise(W, noise, np.random.default_rng([seed, 1]))


def tt_structured(in_modes, out_modes, seed: int = 0, *, ranks=4, noise: float = 0.01) -> np.ndarray:
    """An exact TT-matrix with the given ranks plus noise of relative size ``noise``."""
    from .decompose import cap_tt_ranks
    from .matrices import TTMatrix

    im, om = _modes_required(in_modes, out_modes, "tt_structured")
    rk, _ = cap_tt_ranks(im, om, ranks)
    M = TTMatrix.random(im, om, rk, seed=seed, dtype=torch.float64)
    W = M.to_dense().numpy()
    return _add_noise(W, noise, np.random.default_rng([seed, 2]))


def smooth_kernel(in_modes, out_modes, seed: int = 0, *, length_scale: float = 0.1) -> np.ndarray:
    """Gaussian kernel ``exp(-(x_i - y_j)^2 / (2 l^2))`` between I points and J points on [0, 1].

    The points are evenly spaced; ``seed`` shifts the second set by a random offset of up to half a
    spacing so different seeds give different (equally smooth) matrices.
    """
    i, _ = _size(in_modes, "in_modes")
    j, _ = _size(out_modes, "out_modes")
    length_scale = _finite(length_scale, "length_scale", positive=True)
    seed = _seed(seed)
    x = np.linspace(0.0, 1.0, i)
    shift = 0.0 if seed == 0 else np.random.default_rng(seed).uniform(-0.5, 0.5) / max(j - 1, 1)
    y = np.linspace(0.0, 1.0, j) + shift
    return np.exp(-((x[:, None] - y[None, :]) ** 2) / (2.0 * length_scale**2))


def list_images() -> list[str]:
    """Names (file stems) of the images shipped in ``assets/targets/``."""
    if not ASSET_DIR.is_dir():
        return []
    return sorted(p.stem for p in ASSET_DIR.glob("*.png"))


def load_image(name: str) -> np.ndarray:
    """A shipped image as a float64 grayscale array in [0, 1]."""
    names = list_images()
    if name not in names:
        raise ValueError(f"image {name!r} not found in {ASSET_DIR}; available: {', '.join(names) or 'none'}")
    return read_png((ASSET_DIR / f"{name}.png").read_bytes())


def resize(img: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear resize (antialiased when shrinking) of a 2-D array to ``shape``, via torch."""
    t = torch.from_numpy(np.ascontiguousarray(img, dtype=np.float64))[None, None]
    h, w = shape
    shrink = h < t.shape[2] or w < t.shape[3]
    out = torch.nn.functional.interpolate(t, size=(int(h), int(w)), mode="bilinear", align_corners=False,
                                          antialias=shrink)
    return out[0, 0].numpy()


def image(in_modes, out_modes, seed: int = 0, *, name: str | None = None) -> np.ndarray:
    """A shipped grayscale image resized to (I, J), values in [0, 1].

    ``name`` picks the image (see :func:`list_images`); without it ``seed`` picks one.
    """
    i, _ = _size(in_modes, "in_modes")
    j, _ = _size(out_modes, "out_modes")
    names = list_images()
    if not names:
        raise ValueError(f"no images found in {ASSET_DIR}")
    if name is None:
        name = names[_seed(seed) % len(names)]
    return np.clip(resize(load_image(name), (i, j)), 0.0, 1.0)


# ----------------------------------------------------------------------------------------------
# Trained weights and uploads
# ----------------------------------------------------------------------------------------------

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


def _pick_matrix(state, name, expected_shape, source: str) -> np.ndarray:
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
    t = tensors[candidates[0]].detach().to("cpu", torch.float64)
    W = t.numpy().copy()
    if expected_shape is not None:
        e = tuple(expected_shape)
        if W.shape != e and W.T.shape == e:
            W = np.ascontiguousarray(W.T)  # nn.Linear / LSTM weights are stored (out, in)
    return W


def trained_weights(path, in_modes=None, out_modes=None, seed: int = 0, *, name: str | None = None) -> np.ndarray:
    """A weight matrix of a trained model saved with ``torch.save`` (loaded with ``weights_only=True``).

    With ``in_modes``/``out_modes`` the tensor of shape (I, J) or (J, I) is chosen (input-to-hidden
    weights preferred, transposed to (I, J)); else ``name`` or the only 2-D tensor. ``seed`` is unused.
    """
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"no trained model at {p}; train one first or choose another target")
    expected = None
    if in_modes is not None and out_modes is not None:
        expected = (_size(in_modes, "in_modes")[0], _size(out_modes, "out_modes")[0])
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure gets the same clear message
        raise ValueError(f"{p.name}: cannot be read as a weights-only torch file ({type(exc).__name__}); "
                         "save tensors or a state dict with torch.save") from exc
    W = _pick_matrix(state, name, expected, p.name)
    _check_matrix(W, p.name, expected)
    return W


def _check_matrix(W: np.ndarray, source: str, expected_shape=None) -> None:
    if W.ndim != 2:
        raise ValueError(f"{source}: the array is {W.ndim}-D with shape {W.shape}; a weight matrix must be 2-D "
                         "(I, J). Reshape it before saving (for example W.reshape(I, J))")
    if W.size == 0:
        raise ValueError(f"{source}: the matrix is empty (shape {W.shape})")
    bad = int(W.size - np.isfinite(W).sum())
    if bad:
        nan = int(np.isnan(W).sum())
        raise ValueError(f"{source}: {bad:,} entries are not finite ({nan:,} NaN, {bad - nan:,} infinite); "
                         "replace or drop them before uploading")
    if expected_shape is not None and tuple(W.shape) != tuple(expected_shape):
        e = tuple(expected_shape)
        hint = " It looks transposed: save W.T." if tuple(W.shape) == e[::-1] else ""
        raise ValueError(f"{source}: shape {W.shape} does not match the chosen modes, which need {e} "
                         f"(I = prod(in_modes), J = prod(out_modes)).{hint} Or change the modes to fit the matrix")


def load_uploaded(name: str, data: bytes, expected_shape: tuple[int, int] | None = None, *,
                  max_bytes: int = DEFAULT_MAX_UPLOAD_BYTES, key: str | None = None) -> np.ndarray:
    """Load a user-uploaded matrix from a ``.npy`` or ``.pt`` file's bytes, safely.

    ``.npy`` is read with ``allow_pickle=False``; ``.pt`` with ``torch.load(weights_only=True)`` and
    may hold a tensor or a (nested) dict of tensors (``key`` picks one, else the one of
    ``expected_shape`` or the only 2-D one). Returns a float64 (I, J) array.

    Raises
    ------
    ValueError
        With a message naming the problem and the fix: file too large, unknown extension, pickled
        or unreadable content, non-numeric or complex dtype, not 2-D, NaN/inf entries, or a shape
        other than ``expected_shape``.
    """
    from .memory import format_bytes

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
            arr = t.detach().to("cpu", torch.float64).numpy()
        elif isinstance(obj, dict):
            arr = _pick_matrix(obj, key, expected_shape, fname)
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
    _check_matrix(arr, fname)
    W = np.ascontiguousarray(arr, dtype=np.float64)
    _check_matrix(W, fname, expected_shape)
    return W


# ----------------------------------------------------------------------------------------------
# Registry
# ----------------------------------------------------------------------------------------------

#: name -> (generator, one-line description). Generators take (in_modes, out_modes, seed, **kwargs).
TARGETS: dict[str, tuple[Callable[..., np.ndarray], str]] = {
    "gaussian": (gaussian, "Gaussian random: no structure; every format does badly at high compression"),
    "bt": (bt_structured, "exact BT structure (N=2, R=3) + 1% noise: BT and Tucker/CP recover it"),
    "tt": (tt_structured, "exact TT structure (ranks 4) + 1% noise: TT recovers it"),
    "kernel": (smooth_kernel, "smooth Gaussian kernel matrix: compresses well in every format"),
    "image": (image, "a grayscale image resized to the matrix shape"),
}


#: Most entries a generated target may have (2^25: 256 MiB in float64, e.g. 57,600 x 576).
MAX_TARGET_ENTRIES = 2**25


def make_target(kind: str, in_modes, out_modes, seed: int = 0, **kwargs) -> np.ndarray:
    """The target ``kind`` (a key of :data:`TARGETS`) of shape (prod(in_modes), prod(out_modes))."""
    from .memory import check_allocation

    if not isinstance(kind, str) or kind not in TARGETS:
        raise ValueError(f"unknown target {kind!r}; choose from {', '.join(TARGETS)}")
    i, _ = _size(in_modes, "in_modes")
    j, _ = _size(out_modes, "out_modes")
    seed = _seed(seed)
    if i * j > MAX_TARGET_ENTRIES:
        raise ValueError(f"the {i:,} x {j:,} target has {i * j:,} entries, above the {MAX_TARGET_ENTRIES:,} a target "
                         "may have (fits of larger matrices take minutes); choose smaller modes")
    # A few float64 copies of the (I, J) matrix exist while it is generated.
    check_allocation(3 * 8 * i * j, f"the {i:,} x {j:,} target", "choose smaller modes")
    try:
        W = TARGETS[kind][0](in_modes, out_modes, seed, **kwargs)
    except TypeError as exc:  # an unknown keyword for this generator
        raise TypeError(f"target {kind!r}: {exc}") from None
    W = np.ascontiguousarray(W, dtype=np.float64)
    _check_matrix(W, f"target {kind!r}")  # never hand on NaN/inf as if it were a matrix
    return W


# ----------------------------------------------------------------------------------------------
# PNG images (Pillow)
# ----------------------------------------------------------------------------------------------

#: ITU-R 601 luma weights, used to turn RGB images into one grayscale matrix.
_LUMA = np.array([0.299, 0.587, 0.114])


def write_png(img: np.ndarray) -> bytes:
    """PNG bytes of a 2-D array in [0, 1] (8-bit grayscale)."""
    a = np.asarray(img, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"write_png needs a 2-D array, got shape {a.shape}")
    buf = io.BytesIO()
    Image.fromarray(np.clip(np.rint(a * 255.0), 0, 255).astype(np.uint8), mode="L").save(buf, format="PNG")
    return buf.getvalue()


def read_png(data: bytes) -> np.ndarray:
    """Decode PNG bytes to a float64 grayscale array in [0, 1] (RGB by luma weights, alpha dropped)."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data must be the PNG file's bytes, got {type(data).__name__}")
    data = bytes(data)
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG file")
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            if im.mode in ("L", "LA", "1"):
                px = np.asarray(im.convert("L"), dtype=np.float64) / 255.0
            elif im.mode.startswith("I"):
                px = np.asarray(im, dtype=np.float64)
                px = px / (65535.0 if px.max() > 255 else 255.0)
            else:
                px = (np.asarray(im.convert("RGB"), dtype=np.float64) / 255.0) @ _LUMA
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise ValueError(f"could not decode the PNG file: {exc}") from None
    return np.ascontiguousarray(px)
