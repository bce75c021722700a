"""Target matrices for the approximation experiments: generators and the registry the app shows.

Every generator takes ``(in_modes or in_size, out_modes or out_size, seed=0, ...)`` and returns a
float64 numpy array of shape (I, J) (y = x @ W convention; I = prod(in_modes)). Generators that need
the tensorization (the structured ones) require mode tuples; the others accept plain sizes too.

* :func:`gaussian` - i.i.d. N(0, 1) entries: no structure at all, the hardest case for every format.
* :func:`bt_structured` - an exact Block-Term matrix plus Gaussian noise of a given relative size.
* :func:`tt_structured` - an exact TT-matrix plus noise.
* :func:`smooth_kernel` - a Gaussian (RBF) kernel between two point sets on [0, 1]: smooth, so it
  compresses well.
* :func:`image` - one of the grayscale images shipped in ``assets/targets/`` (:mod:`btcore.images`), resized.
* :func:`photo` - a real photo bundled with scikit-image, in grey (:data:`btcore.images.PHOTOS`), at its
  own size or resized.
* :func:`digits` - scikit-learn's digits data matrix, 1,792 x 64 (one 8 x 8 image a row).

:data:`TARGETS` maps the names the app shows to the generators; :func:`make_target` dispatches.
A user's own matrix (an upload, a trained model's weight) is read by :mod:`btcore.uploads`.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from .checks import check_matrix
from .decompose import cap_tt_ranks
from .images import ASSET_DIR, DIGITS_SHAPE, PHOTOS, digits_matrix, list_images, load_image, load_photo, resize
from .shapes import size_and_modes
from .matrices import BTMatrix, TTMatrix
from .memory import check_allocation

__all__ = [
    "TARGETS",
    "MAX_TARGET_ENTRIES",
    "make_target",
    "gaussian",
    "bt_structured",
    "tt_structured",
    "smooth_kernel",
    "image",
    "photo",
    "digits",
    "IMAGE_TARGETS",
    "natural_shape",
]


def _modes_required(in_modes, out_modes, what: str):
    _, im = size_and_modes(in_modes, "in_modes")
    _, om = size_and_modes(out_modes, "out_modes")
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
    i, _ = size_and_modes(in_modes, "in_modes")
    j, _ = size_and_modes(out_modes, "out_modes")
    return np.random.default_rng(_seed(seed)).standard_normal((i, j)) * _finite(std, "std", positive=True)


def bt_structured(in_modes, out_modes, seed: int = 0, *, rank=3, blocks: int = 2,
                  noise: float = 0.01) -> np.ndarray:
    """An exact BT matrix (``blocks`` blocks of Tucker rank ``rank``) plus noise.

    The noise is Gaussian with ``||E|| = noise * ||W_exact||``, so the best achievable relative
    error at the true ranks is about ``noise``.
    """
    im, om = _modes_required(in_modes, out_modes, "bt_structured")
    M = BTMatrix.random(im, om, rank, blocks, seed=seed, dtype=torch.float64)
    W = M.to_dense().numpy()
    return _add_noise(W, noise, np.random.default_rng([seed, 1]))


def tt_structured(in_modes, out_modes, seed: int = 0, *, ranks=4, noise: float = 0.01) -> np.ndarray:
    """An exact TT-matrix with the given ranks plus noise of relative size ``noise``."""
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
    i, _ = size_and_modes(in_modes, "in_modes")
    j, _ = size_and_modes(out_modes, "out_modes")
    length_scale = _finite(length_scale, "length_scale", positive=True)
    seed = _seed(seed)
    x = np.linspace(0.0, 1.0, i)
    shift = 0.0 if seed == 0 else np.random.default_rng(seed).uniform(-0.5, 0.5) / max(j - 1, 1)
    y = np.linspace(0.0, 1.0, j) + shift
    return np.exp(-((x[:, None] - y[None, :]) ** 2) / (2.0 * length_scale**2))


def image(in_modes, out_modes, seed: int = 0, *, name: str | None = None) -> np.ndarray:
    """A shipped grayscale image resized to (I, J), values in [0, 1].

    ``name`` picks the image (see :func:`list_images`); without it ``seed`` picks one.
    """
    i, _ = size_and_modes(in_modes, "in_modes")
    j, _ = size_and_modes(out_modes, "out_modes")
    names = list_images()
    if not names:
        raise ValueError(f"no images found in {ASSET_DIR}")
    if name is None:
        name = names[_seed(seed) % len(names)]
    return np.clip(resize(load_image(name), (i, j)), 0.0, 1.0)


def photo(in_modes, out_modes, seed: int = 0, *, name: str = "camera") -> np.ndarray:
    """A real photo (one of :data:`btcore.images.PHOTOS`) in grey, values in [0, 1].

    At its own size (:func:`natural_shape`) the photo is returned as it is; any other (I, J) resizes it
    (bilinear, antialiased when shrinking). ``seed`` is accepted for the common signature and unused.
    """
    i, _ = size_and_modes(in_modes, "in_modes")
    j, _ = size_and_modes(out_modes, "out_modes")
    img = load_photo(name)
    return img if img.shape == (i, j) else np.clip(resize(img, (i, j)), 0.0, 1.0)


def digits(in_modes, out_modes, seed: int = 0) -> np.ndarray:
    """scikit-learn's digits data matrix: 1,792 images (rows) x 64 pixels, values in [0, 1].

    The 1,797 images of the data set lose their last 5 so the rows factor well (1,792 = 2^8 * 7). A data
    matrix is not resized: the modes must multiply to 1,792 and 64.
    """
    i, _ = size_and_modes(in_modes, "in_modes")
    j, _ = size_and_modes(out_modes, "out_modes")
    if (i, j) != DIGITS_SHAPE:
        raise ValueError(f"the digits matrix is {DIGITS_SHAPE[0]:,} x {DIGITS_SHAPE[1]}, not {i:,} x {j:,}: choose "
                         "input modes whose product is 1,792 (e.g. 7x16x16) and output modes whose product is 64 "
                         "(e.g. 4x4x4)")
    return digits_matrix()


def natural_shape(kind: str, **kwargs) -> tuple[int, int] | None:
    """The (I, J) a target has of its own (a photo's size, the digits matrix), None when it takes any."""
    if kind == "photo":
        return tuple(load_photo(kwargs.get("name", "camera")).shape)
    if kind == "digits":
        return DIGITS_SHAPE
    return None


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
    "photo": (photo, "a real photo bundled with scikit-image, in grey: " + ", ".join(PHOTOS)),
    "digits": (digits, "scikit-learn's digits data matrix: 1,792 images of 8 x 8 pixels, one a row"),
}

#: The targets that are pictures (drawn as grey images, not heatmaps).
IMAGE_TARGETS = ("image", "photo")


#: Most entries a generated target may have (2^25: 256 MiB in float64, e.g. 57,600 x 576).
MAX_TARGET_ENTRIES = 2**25


def make_target(kind: str, in_modes, out_modes, seed: int = 0, **kwargs) -> np.ndarray:
    """The target ``kind`` (a key of :data:`TARGETS`) of shape (prod(in_modes), prod(out_modes))."""
    if not isinstance(kind, str) or kind not in TARGETS:
        raise ValueError(f"unknown target {kind!r}; choose from {', '.join(TARGETS)}")
    i, _ = size_and_modes(in_modes, "in_modes")
    j, _ = size_and_modes(out_modes, "out_modes")
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
    check_matrix(W, f"target {kind!r}")  # never hand on NaN/inf as if it were a matrix
    return W
