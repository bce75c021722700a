"""The shipped target images, real photos and PNG reading/writing (Pillow).

:data:`ASSET_DIR` holds the grayscale images that :func:`btcore.target_matrices.image` resizes into
targets; :func:`read_png` / :func:`write_png` turn PNG bytes into float64 arrays in [0, 1] and back.

:data:`PHOTOS` are real photographs bundled inside scikit-image's wheel (``skimage.data``; none of
them needs a download), turned grey and centre-cropped to sides that are multiples of 16, so their
rows and columns factor into small modes. :func:`load_photo` reads one; :func:`digits_matrix` is
scikit-learn's bundled digits data matrix (1,797 images of 8 x 8 pixels, one per row) with its last
5 rows dropped: 1,792 = 2^8 * 7 rows factor well, 1,797 = 3^2 * 199 does not.
"""

from __future__ import annotations

import io
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from PIL import Image

__all__ = ["ASSET_DIR", "list_images", "load_image", "resize", "read_png", "write_png", "PHOTOS", "load_photo",
           "photo_shape", "DIGITS_SHAPE", "digits_matrix"]

#: Folder of the shipped target images.
ASSET_DIR = Path(__file__).resolve().parent.parent / "assets" / "targets"


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


#: scikit-image's bundled photos: name -> (``skimage.data`` function, what it shows). All are in the wheel.
PHOTOS: dict[str, tuple[str, str]] = {
    "camera": ("camera", "a cameraman, 512 x 512"),
    "astronaut": ("astronaut", "astronaut Eileen Collins (colour, as grey), 512 x 512"),
    "coins": ("coins", "Greek coins, 288 x 384 (cropped from 303 x 384)"),
    "brick": ("brick", "a brick wall (texture), 512 x 512"),
    "moon": ("moon", "the surface of the moon, 512 x 512"),
    "text": ("text", "hand-drawn text, 160 x 448 (cropped from 172 x 448)"),
    "page": ("page", "a scanned book page, 176 x 384 (cropped from 191 x 384)"),
}
#: Shape of :func:`digits_matrix`: 1,792 images (the first 1,792 of the 1,797) x 64 pixels.
DIGITS_SHAPE = (1792, 64)


def _grey(px: np.ndarray) -> np.ndarray:
    """An 8-bit (or boolean) image, grey or RGB(A), as float64 grey in [0, 1] (RGB by luma weights)."""
    a = np.asarray(px)
    scale = 1.0 if a.dtype == bool else float(np.iinfo(a.dtype).max) if a.dtype.kind in "ui" else 1.0
    a = a.astype(np.float64) / scale
    if a.ndim == 3:
        a = a[..., :3] @ _LUMA
    return a


@lru_cache(maxsize=None)
def _photo(name: str) -> np.ndarray:
    import skimage.data  # scikit-image is imported only when a photo is asked for (it is slow to import)

    img = _grey(getattr(skimage.data, PHOTOS[name][0])())
    h, w = (n - n % 16 for n in img.shape)
    top, left = (img.shape[0] - h) // 2, (img.shape[1] - w) // 2
    out = np.ascontiguousarray(img[top:top + h, left:left + w])
    out.flags.writeable = False  # one copy per process, shared by every caller
    return out


def load_photo(name: str) -> np.ndarray:
    """One of :data:`PHOTOS` as a float64 grey array in [0, 1], centre-cropped to multiples of 16.

    Raises
    ------
    ValueError
        For a name not in :data:`PHOTOS`.
    """
    if name not in PHOTOS:
        raise ValueError(f"photo {name!r} is not one of {', '.join(PHOTOS)}")
    return _photo(name).copy()


def photo_shape(name: str) -> tuple[int, int]:
    """The (rows, columns) of :func:`load_photo` ``(name)``."""
    if name not in PHOTOS:
        raise ValueError(f"photo {name!r} is not one of {', '.join(PHOTOS)}")
    return tuple(_photo(name).shape)


@lru_cache(maxsize=1)
def _digits() -> np.ndarray:
    from sklearn.datasets import load_digits  # bundled with scikit-learn; imported only when asked for

    out = np.ascontiguousarray(load_digits().data[: DIGITS_SHAPE[0]] / 16.0, dtype=np.float64)
    out.flags.writeable = False
    return out


def digits_matrix() -> np.ndarray:
    """scikit-learn's digits as a 1,792 x 64 float64 matrix in [0, 1] (pixel values / 16, one image a row)."""
    return _digits().copy()
