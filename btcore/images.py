"""The shipped target images and PNG reading/writing (Pillow).

:data:`ASSET_DIR` holds the grayscale images that :func:`btcore.target_matrices.image` resizes into
targets; :func:`read_png` / :func:`write_png` turn PNG bytes into float64 arrays in [0, 1] and back.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image

__all__ = ["ASSET_DIR", "list_images", "load_image", "resize", "read_png", "write_png"]

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
