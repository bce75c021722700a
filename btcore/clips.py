"""Clip folders in the UCF11 layout: ``root/<class>/.../<clip>``, loaded into :class:`~btcore.data.ClipSet` s.

A clip is a folder of frame images (any Pillow format, or ``.npy`` frames), an animated GIF, or a
``.npy``/``.npz`` array of shape (T, H, W), (T, H, W, C) or (T, C, H, W). Video containers need a
decoder BT Lab does not ship: the error says how to extract their frames. Paths given by a server's
visitors are confined to a data root by :func:`resolve_data_path`.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .data import ClipSet, parse_frame_shape
from .shapes import check_positive_int

__all__ = ["FRAME_EXTENSIONS", "VIDEO_EXTENSIONS", "load_clip_folder", "resolve_data_path"]

#: Image extensions accepted as single frames of a frame folder (Pillow) and ``.npy``.
FRAME_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".ppm", ".pgm", ".webp", ".npy")
#: Video containers recognised (and refused, with instructions, unless a decoder is installed).
VIDEO_EXTENSIONS = (".avi", ".mpg", ".mpeg", ".mp4", ".mov", ".mkv", ".webm", ".wmv", ".flv", ".m4v", ".3gp")
_ARRAY_EXTENSIONS = (".npy", ".npz")
_ACCEPTED = ("frame folders of PNG/JPEG/BMP/GIF/TIFF/WebP or .npy frames, animated .gif files, or .npy/.npz clip "
             "arrays of shape (T, H, W), (T, H, W, C) or (T, C, H, W)")


# ------------------------------------------------------------------------------------------------
# Clip folders (UCF11 layout)
# ------------------------------------------------------------------------------------------------

def _natural_key(p: Path):
    return [int(s) if s.isdigit() else s.lower() for s in re.split(r"(\d+)", p.name)]


def _is_clip_file(p: Path) -> bool:
    s = p.suffix.lower()
    return p.is_file() and (s in _ARRAY_EXTENSIONS or s == ".gif" or s in VIDEO_EXTENSIONS)


def _frame_files(d: Path) -> list[Path]:
    return sorted((p for p in d.iterdir() if p.is_file() and p.suffix.lower() in FRAME_EXTENSIONS
                   and not p.name.startswith(".")), key=_natural_key)


def _find_clips(class_dir: Path) -> list[Path]:
    """Clips under a class folder: frame folders and clip files, searched recursively."""
    clips: list[Path] = []
    for p in sorted(class_dir.iterdir(), key=_natural_key):
        if p.name.startswith("."):
            continue
        if p.is_dir():
            if _frame_files(p):
                clips.append(p)
            else:
                clips.extend(_find_clips(p))
        elif _is_clip_file(p):
            clips.append(p)
    return clips


def _to_chw(arr: np.ndarray, where: Path) -> np.ndarray:
    """One frame (H, W), (H, W, C) or (C, H, W) as float32 (C, H, W) in [0, 1]."""
    a = np.asarray(arr)
    if a.dtype == np.uint8:
        a = a.astype(np.float32) / 255.0
    elif a.dtype == np.uint16:
        a = a.astype(np.float32) / 65535.0
    elif np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer):
        a = a.astype(np.float32)
        if a.size and a.max() > 1.5:
            a = a / 255.0
    else:
        raise ValueError(f"{where}: frame data of type {a.dtype} is not numeric")
    if a.ndim == 2:
        return a[None]
    if a.ndim == 3:
        if a.shape[-1] in (1, 3, 4) and a.shape[0] not in (1, 3):
            return np.moveaxis(a[..., :3], -1, 0)
        if a.shape[0] in (1, 3, 4):
            return a[:3]
        if a.shape[-1] in (1, 3, 4):
            return np.moveaxis(a[..., :3], -1, 0)
    raise ValueError(f"{where}: a frame must be (H, W), (H, W, C) or (C, H, W) with C in 1, 3, 4; got {a.shape}")


def _resize(frame: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """(C, H, W) float frame to the target (C, H, W): channels converted, bilinear resize."""
    c, h, w = shape
    if frame.shape[0] != c:
        if c == 1:
            frame = (0.299 * frame[0] + 0.587 * frame[1] + 0.114 * frame[2])[None] if frame.shape[0] == 3 else frame[:1]
        else:
            frame = np.repeat(frame[:1], 3, axis=0)
    if frame.shape[1:] != (h, w):
        t = torch.from_numpy(np.ascontiguousarray(frame, dtype=np.float32))[None]
        frame = torch.nn.functional.interpolate(t, size=(h, w), mode="bilinear", align_corners=False,
                                                antialias=True)[0].numpy()
    return frame.astype(np.float32)


def _read_image(p: Path) -> np.ndarray:
    if p.suffix.lower() == ".npy":
        try:
            return np.load(p, allow_pickle=False)
        except Exception as exc:
            raise ValueError(f"{p}: not a readable .npy array ({exc})") from exc
    try:
        with Image.open(p) as im:
            im.load()
            return np.asarray(im.convert("RGB" if im.mode not in ("L", "I;16") else "L"))
    except Exception as exc:
        raise ValueError(f"{p}: not a readable image ({type(exc).__name__}: {exc}); accepted: {_ACCEPTED}") from exc


def _read_clip_frames(clip: Path) -> list[np.ndarray]:
    """All frames of a clip as (C, H, W) float arrays in [0, 1]."""
    if clip.is_dir():
        return [_to_chw(_read_image(f), f) for f in _frame_files(clip)]
    s = clip.suffix.lower()
    if s in VIDEO_EXTENSIONS:
        raise ValueError(
            f"{clip}: video files ({s}) need a video decoder (opencv-python or av), which BT Lab does not install. "
            f"Extract the frames into a folder per clip, e.g. `ffmpeg -i {clip.name} {clip.stem}/%04d.png`, "
            f"and point the loader at that tree. Accepted: {_ACCEPTED}"
        )
    if s == ".gif":
        try:
            frames = []
            with Image.open(clip) as im:
                for k in range(getattr(im, "n_frames", 1)):
                    im.seek(k)
                    frames.append(_to_chw(np.asarray(im.convert("RGB")), clip))
            return frames
        except ValueError:
            raise
        except Exception as exc:
            raise ValueError(f"{clip}: not a readable GIF ({exc})") from exc
    try:
        if s == ".npz":
            with np.load(clip, allow_pickle=False) as z:
                if not z.files:
                    raise ValueError(f"{clip}: the .npz archive is empty")
                arr = z[z.files[0]]
        else:
            arr = np.load(clip, allow_pickle=False)
    except ValueError:
        raise
    except Exception as exc:
        raise ValueError(f"{clip}: not a readable array ({exc})") from exc
    if arr.ndim not in (3, 4):
        raise ValueError(f"{clip}: a clip array must be (T, H, W), (T, H, W, C) or (T, C, H, W); got shape {arr.shape}")
    return [_to_chw(f, clip) for f in arr]


def _sample_frames(frames: list[np.ndarray], t_len: int) -> list[np.ndarray]:
    """``t_len`` frames evenly spaced over the clip (frames repeat when the clip is shorter)."""
    pos = np.linspace(0, len(frames) - 1, t_len)
    return [frames[int(round(p))] for p in pos]


def load_clip_folder(root, frame_shape=(3, 32, 32), frames: int = 8, *, val_fraction: float = 0.25,
                     seed: int = 0, max_clips_per_class: int | None = None,
                     max_bytes: int = 2 * 1024**3) -> tuple[ClipSet, ClipSet]:
    """Load a UCF11-style clip folder into (train, validation) :class:`ClipSet` s.

    Parameters
    ----------
    root : path
        ``root/<class name>/...``: one sub-folder per class (sorted names give the labels). Inside,
        clips are found recursively (UCF11 has group folders in between): a folder holding frame
        images is one clip; ``.npy``/``.npz`` arrays and animated ``.gif`` files are clips.
    frame_shape : (C, H, W)
        Every frame is converted to C channels and resized (bilinear, antialiased) to H x W.
    frames : int
        Frames per clip, sampled evenly over each clip.
    val_fraction : float
        Share of each class's clips held out for validation (at least one clip per class when the
        class has two or more), chosen with ``seed``.
    max_clips_per_class : int, optional
        Use at most this many clips per class (the first ones, in natural order).
    max_bytes : int
        Refuse to load more than this many bytes of float32 frames.

    Raises
    ------
    ValueError
        For a missing or empty folder, a class with no clips, unreadable frames, or video files
        (which need a decoder that is not installed); the message lists what is accepted.
    """
    shape = parse_frame_shape(frame_shape)
    t_len = check_positive_int(frames, "frames")
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, (int, float)) or not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be a number in [0, 1), got {val_fraction!r}")
    root = Path(root).expanduser()
    if not root.exists():
        raise ValueError(f"clip folder {root} does not exist")
    if not root.is_dir():
        raise ValueError(f"clip folder {root} is not a folder; expected root/<class>/<clips> ({_ACCEPTED})")
    class_dirs = sorted((p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")), key=_natural_key)
    if not class_dirs:
        raise ValueError(f"clip folder {root} is empty: expected one sub-folder per class, each holding clips "
                         f"({_ACCEPTED})")
    if len(class_dirs) < 2:
        raise ValueError(f"clip folder {root} has one class folder ({class_dirs[0].name}); classification needs "
                         "at least two class sub-folders")
    per_class = []
    for cdir in class_dirs:
        clips = _find_clips(cdir)
        if not clips:
            stray = [p.name for p in cdir.rglob("*") if p.is_file()][:3]
            extra = f" (found files such as {', '.join(stray)})" if stray else ""
            raise ValueError(f"class folder {cdir} holds no clips{extra}; accepted: {_ACCEPTED}")
        if max_clips_per_class is not None:
            clips = clips[: check_positive_int(max_clips_per_class, "max_clips_per_class")]
        per_class.append(clips)
    n_total = sum(len(c) for c in per_class)
    need = n_total * t_len * math.prod(shape) * 4
    if need > max_bytes:
        raise ValueError(f"loading {n_total} clips of {t_len} x {'x'.join(map(str, shape))} frames needs "
                         f"{need / 1024**2:,.0f} MiB, above the {max_bytes / 1024**2:,.0f} MiB limit; use a smaller "
                         "frame size, fewer frames or max_clips_per_class")
    xs, ys, is_val = [], [], []
    rng = np.random.default_rng(seed)
    for label, clips in enumerate(per_class):
        n_val = int(round(len(clips) * val_fraction))
        if val_fraction > 0 and len(clips) >= 2:
            n_val = min(max(n_val, 1), len(clips) - 1)
        val_set = set(rng.permutation(len(clips))[:n_val].tolist())
        for k, clip in enumerate(clips):
            raw = _read_clip_frames(clip)
            if not raw:
                raise ValueError(f"clip {clip} has no frames; accepted: {_ACCEPTED}")
            sampled = [_resize(f, shape) for f in _sample_frames(raw, t_len)]
            xs.append((np.stack(sampled) - 0.5) * 2.0)
            ys.append(label)
            is_val.append(k in val_set)
    x = torch.from_numpy(np.stack(xs).reshape(len(xs), t_len, -1).astype(np.float32))
    y = torch.tensor(ys, dtype=torch.int64)
    mask = torch.tensor(is_val)
    names = tuple(c.name for c in class_dirs)
    src = f"folder:{root}"
    train = ClipSet(x[~mask], y[~mask], shape, names, src)
    val = ClipSet(x[mask], y[mask], shape, names, src)
    return train, val


def resolve_data_path(path, root) -> Path:
    """``path`` (relative to ``root``, or absolute) as a resolved folder inside ``root``; else a ValueError.

    For callers that must not read outside one data root (the app serves whoever opens it): the
    path and the root are resolved first (symlinks followed, ``.`` and ``..`` folded), so neither a
    ``..`` nor a symlink can lead out. A path with a ``..`` part is refused outright.

    Raises
    ------
    ValueError
        When the root is not a folder, the path has a ``..`` part, resolves outside the root, or is
        not an existing folder.
    """
    root_path = Path(root).expanduser()
    if not root_path.is_dir():
        raise ValueError(f"data root {root}: not a folder; create it, or point it at the folder holding the data")
    base = root_path.resolve()
    raw = Path(path).expanduser()
    if ".." in raw.parts:
        raise ValueError(f"data path {path}: '..' is not allowed; name a folder inside the data root {base}")
    full = (raw if raw.is_absolute() else base / raw).resolve()
    if not full.is_relative_to(base):
        raise ValueError(f"data path {path}: leads to {full}, outside the data root {base} (a symlink or an "
                         "absolute path); put the data inside the data root")
    if not full.is_dir():
        raise ValueError(f"data path {path}: no such folder in the data root {base}")
    return full
