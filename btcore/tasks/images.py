"""Image grids for the tasks' previews: tiling square images into one array, and PNG bytes of it."""

from __future__ import annotations

import io
import math

import numpy as np
import torch
from PIL import Image

from ..shapes import check_positive_int

__all__ = ["tile", "grid_png_bytes"]


def tile(images, rows: int, cols: int) -> np.ndarray:
    """Tile ``rows * cols`` square images into one array, row by row.

    Parameters
    ----------
    images : array-like or torch.Tensor
        (n, s, s) images, or (n, s * s) flat square images, n = rows * cols.
    rows, cols : int
        Grid shape; image k goes to row k // cols, column k % cols.

    Returns
    -------
    np.ndarray
        float64, shape (rows * s, cols * s).

    Raises
    ------
    ValueError
        If the images are not square or their number is not rows * cols.
    """
    a = np.asarray(images.detach().cpu() if isinstance(images, torch.Tensor) else images, dtype=np.float64)
    rows, cols = check_positive_int(rows, "rows"), check_positive_int(cols, "cols")
    if a.ndim == 2:
        s = math.isqrt(a.shape[1])
        if s * s != a.shape[1]:
            raise ValueError(f"flat images of {a.shape[1]} pixels are not square; pass (n, side, side)")
        a = a.reshape(len(a), s, s)
    if a.ndim != 3 or a.shape[1] != a.shape[2] or a.shape[0] != rows * cols:
        raise ValueError(f"tile needs {rows * cols} square images, got an array of shape {a.shape}")
    s = a.shape[1]
    return a.reshape(rows, cols, s, s).transpose(0, 2, 1, 3).reshape(rows * s, cols * s)


def grid_png_bytes(grid, scale: int = 1) -> bytes:
    """A greyscale PNG (written by Pillow) of a 2-D array of grey levels in [0, 1].

    Parameters
    ----------
    grid : array-like
        (h, w) grey levels in [0, 1] (0 black, 1 white), e.g. a :func:`tile` grid.
    scale : int
        Each value becomes a ``scale x scale`` block of pixels (nearest neighbour), for display.

    Returns
    -------
    bytes
        The PNG file, 8-bit greyscale, (h * scale) x (w * scale) pixels, level round(255 * value).

    Raises
    ------
    ValueError
        For an empty or non-2-D array, or values that are not finite or outside [0, 1].
    """
    a = np.asarray(grid, dtype=np.float64)
    scale = check_positive_int(scale, "scale")
    if a.ndim != 2 or a.size == 0:
        raise ValueError(f"grid must be a non-empty 2-D array, got shape {a.shape}")
    if not np.isfinite(a).all() or a.min() < 0 or a.max() > 1:
        raise ValueError("grid values must be finite and in [0, 1]")
    if scale > 1:
        a = np.kron(a, np.ones((scale, scale)))
    buf = io.BytesIO()
    Image.fromarray(np.round(a * 255).astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()
