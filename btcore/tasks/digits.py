"""Real handwritten digits for the image-generation task: scikit-learn's bundled 8 x 8 scans, resized.

scikit-learn ships 1,797 scans of handwritten digits (8 x 8 pixels, grey levels 0..16, 10 classes;
``sklearn.datasets.load_digits``, no download). Here they are scaled to [0, 1] and resized with
bilinear interpolation (``torch.nn.functional.interpolate``, ``align_corners=False``) to
``size x size`` pixels, 28 x 28 by default: the MNIST size of the DRAW experiment in Ye et al. 2018,
784 = 4 x 7 x 4 x 7 pixels. A fixed seeded permutation splits them into 1,500 training and 297
validation images. Everything is deterministic and cached in-process: a repeated call costs a copy.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.datasets import load_digits

from ..shapes import check_modes, check_positive_int, factorize, format_ints, prod

__all__ = [
    "DIGITS_COUNT",
    "DIGITS_SIDE",
    "DEFAULT_IMAGE_SIZE",
    "DEFAULT_IMAGE_MODES",
    "DEFAULT_TRAIN",
    "DigitsSplit",
    "check_image_modes",
    "digit_images",
    "digits_split",
]

#: Scans in scikit-learn's digits set, and their side in pixels.
DIGITS_COUNT = 1797
DIGITS_SIDE = 8
#: The paper's MNIST size: 28 x 28 = 784 pixels, tensorized as 4 x 7 x 4 x 7.
DEFAULT_IMAGE_SIZE = 28
DEFAULT_IMAGE_MODES = (4, 7, 4, 7)
#: Training images of the default split (the other 297 are the validation set).
DEFAULT_TRAIN = 1500
#: Largest side accepted (a 256 x 256 digit set is already 118 million floats).
MAX_IMAGE_SIZE = 256


def check_image_modes(size: int, modes) -> tuple[int, ...]:
    """Validate that ``modes`` factor the pixels of a ``size x size`` image; return them as a tuple.

    Parameters
    ----------
    size : int
        Image side in pixels.
    modes : sequence of int
        Pixel modes; their product must be ``size ** 2``.

    Returns
    -------
    tuple of int

    Raises
    ------
    ValueError
        If ``size`` is not a positive integer, a mode is not, or the modes do not multiply to the
        number of pixels (the message names a factorization that does).
    """
    size = check_positive_int(size, "image_size")
    modes = check_modes(modes, "image_modes")
    pixels = size * size
    if prod(modes) != pixels:
        example = format_ints(factorize(pixels, len(modes), max_mode=None))
        raise ValueError(
            f"image_modes {format_ints(modes)} multiply to {prod(modes):,}, but a {size} x {size} image has "
            f"{pixels:,} pixels; choose modes whose product is {pixels:,} (for example {example})"
        )
    return modes


def _check_size(size) -> int:
    size = check_positive_int(size, "image_size")
    if size > MAX_IMAGE_SIZE:
        raise ValueError(f"image_size must be at most {MAX_IMAGE_SIZE} pixels, got {size}")
    return size


@functools.lru_cache(maxsize=8)
def _images(size: int) -> tuple[np.ndarray, np.ndarray]:
    digits = load_digits()
    scans = torch.as_tensor(digits.images, dtype=torch.float32)[:, None] / 16.0  # (N, 1, 8, 8) in [0, 1]
    if size != DIGITS_SIDE:
        scans = torch.nn.functional.interpolate(scans, size=(size, size), mode="bilinear", align_corners=False)
    # Bilinear weights are convex, so only rounding can leave [0, 1]; clamp that away.
    images = scans.clamp_(0.0, 1.0).reshape(len(scans), size * size).numpy()
    images.setflags(write=False)
    labels = np.asarray(digits.target, dtype=np.int64)
    labels.setflags(write=False)
    return images, labels


def digit_images(size: int = DEFAULT_IMAGE_SIZE) -> tuple[torch.Tensor, torch.Tensor]:
    """All 1,797 digits as flat grey-level images in [0, 1], and their labels.

    Parameters
    ----------
    size : int
        Side of the resized images (8 keeps the scans as they are).

    Returns
    -------
    images : torch.Tensor
        float32, shape (1797, size * size), rows the images flattened row-major.
    labels : torch.Tensor
        int64, shape (1797,), the digit 0..9 of each image.

    Raises
    ------
    ValueError
        If ``size`` is not an integer between 1 and 256.
    """
    images, labels = _images(_check_size(size))
    return torch.from_numpy(images.copy()), torch.from_numpy(labels.copy())


@dataclass(frozen=True)
class DigitsSplit:
    """A fixed training / validation split of the digits (see :func:`digits_split`).

    Attributes
    ----------
    train, val : torch.Tensor
        float32 images of shape (n, size * size) in [0, 1].
    train_labels, val_labels : torch.Tensor
        int64 digits 0..9.
    size : int
        Image side in pixels.
    modes : tuple of int
        Pixel modes, multiplying to size * size.
    seed : int
        Seed of the permutation that made the split.
    """

    train: torch.Tensor
    val: torch.Tensor
    train_labels: torch.Tensor
    val_labels: torch.Tensor
    size: int
    modes: tuple[int, ...]
    seed: int

    @property
    def pixels(self) -> int:
        """Pixels per image, size * size."""
        return self.size * self.size


@functools.lru_cache(maxsize=16)
def _split(size: int, train: int, seed: int) -> tuple[np.ndarray, ...]:
    """(train images, val images, train labels, val labels) as read-only arrays."""
    images, labels = _images(size)
    order = np.random.default_rng(seed).permutation(DIGITS_COUNT)
    tr, va = np.sort(order[:train]), np.sort(order[train:])
    parts = (images[tr], images[va], labels[tr], labels[va])
    for a in parts:
        a.setflags(write=False)
    return parts


def digits_split(size: int = DEFAULT_IMAGE_SIZE, modes=DEFAULT_IMAGE_MODES, *, train: int = DEFAULT_TRAIN,
                 seed: int = 0) -> DigitsSplit:
    """The digits resized to ``size x size``, split by a seeded permutation into training and validation.

    Parameters
    ----------
    size : int
        Image side in pixels (28 by default, 8 for the original scans).
    modes : sequence of int
        Pixel modes for the models' factorized maps; must multiply to ``size ** 2``.
    train : int
        Number of training images (1 .. 1,796); the rest are the validation set.
    seed : int
        Seed of the permutation (numpy's ``default_rng``); the same seed gives the same split.

    Returns
    -------
    DigitsSplit
        Fresh tensors (copies of an in-process cache), each set in the original order of the scans.

    Raises
    ------
    ValueError
        For a bad ``size``, modes that do not factor the pixels, or a ``train`` count that leaves
        no training or no validation image.
    """
    size = _check_size(size)
    modes = check_image_modes(size, modes)
    if isinstance(train, bool) or not isinstance(train, (int, np.integer)) or not 1 <= train < DIGITS_COUNT:
        raise ValueError(f"train must be an integer from 1 to {DIGITS_COUNT - 1} (the rest of the {DIGITS_COUNT:,} "
                         f"digits are the validation set), got {train!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    tr, va, tr_labels, va_labels = (torch.from_numpy(a.copy()) for a in _split(size, int(train), int(seed)))
    return DigitsSplit(train=tr, val=va, train_labels=tr_labels, val_labels=va_labels, size=size, modes=modes,
                       seed=int(seed))
