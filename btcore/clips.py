"""Clip folders in the UCF11 layout: ``root/<class>/.../<clip>``, loaded into :class:`~btcore.data.ClipSet` s.

A clip is a folder of frame images (any Pillow format, or ``.npy`` frames), an animated GIF, or a
``.npy``/``.npz`` array of shape (T, H, W), (T, H, W, C) or (T, C, H, W). Video containers need a
decoder BT Lab does not ship: the error says how to extract their frames. Paths given by a server's
visitors are confined to a data root by :func:`resolve_data_path`.
"""

from __future__ import annotations

import math
import os
import re
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image

from .array_files import load_npy, load_npz
from .data import ClipSet, parse_frame_shape
from .shapes import check_positive_int

__all__ = ["FRAME_EXTENSIONS", "VIDEO_EXTENSIONS", "MAX_CLIP_BYTES", "load_clip_folder", "clip_folder_estimate",
           "resolve_data_path"]

#: Image extensions accepted as single frames of a frame folder (Pillow) and ``.npy``.
FRAME_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".ppm", ".pgm", ".webp", ".npy")
#: Video containers recognised (and refused, with instructions, unless a decoder is installed).
VIDEO_EXTENSIONS = (".avi", ".mpg", ".mpeg", ".mp4", ".mov", ".mkv", ".webm", ".wmv", ".flv", ".m4v", ".3gp")
_ARRAY_EXTENSIONS = (".npy", ".npz")
#: Most bytes one clip file or frame may declare (its array header, or its decoded pixels) before
#: it is read: a 2 MB .npz can inflate to gigabytes. A UCF11 clip (180 frames, 240 x 320 RGB, uint8)
#: is 41 MB.
MAX_CLIP_BYTES = 512 * 1024**2
#: Bounds of the walk of a clip folder (a backstop; link loops are detected on the way).
MAX_DEPTH = 32
MAX_ENTRIES = 2_000_000
_ACCEPTED = ("frame folders of PNG/JPEG/BMP/GIF/TIFF/WebP or .npy frames, animated .gif files, or .npy/.npz clip "
             "arrays of shape (T, H, W), (T, H, W, C) or (T, C, H, W)")


# ------------------------------------------------------------------------------------------------
# Clip folders (UCF11 layout)
# ------------------------------------------------------------------------------------------------

def _natural_key(name: str):
    return [int(s) if s.isdigit() else s.lower() for s in re.split(r"(\d+)", name)]


def _is_clip_file(p: Path) -> bool:
    s = p.suffix.lower()
    return s in _ARRAY_EXTENSIONS or s == ".gif" or s in VIDEO_EXTENSIONS


class _Stopped(Exception):
    """Raised inside the loader when its ``should_stop`` asks it to stop (caught by :func:`load_clip_folder`)."""


class _Tree:
    """The walk of one data root: every entry resolved, nothing outside the root, each folder once.

    A folder or file that is a symlink leading outside the root (or a broken or looping link) is
    skipped as if absent, so it is never listed, read or named in a message. A link back to a folder
    already walked is not followed again, and the walk is bounded in depth and in entries.
    ``should_stop`` is asked before every folder is listed and every file is read (:meth:`check`).
    """

    def __init__(self, root: Path, should_stop: Callable[[], bool] | None = None):
        self.should_stop = should_stop
        self.root = root.resolve()
        self.seen: set[Path] = set()  # the folders walked in the current class
        self.entries = 0
        self.strays: list[str] = []  # files that are not clips, for the "holds no clips" message

    def check(self) -> None:
        """Raise :class:`_Stopped` when a stop was requested."""
        if self.should_stop is not None and self.should_stop():
            raise _Stopped

    def listing(self, d: Path) -> tuple[list[tuple[str, Path]], list[tuple[str, Path]]]:
        """(folders, files) of the resolved folder ``d`` as (entry name, resolved path), inside the root only."""
        dirs, files = [], []
        self.check()
        try:
            with os.scandir(d) as it:
                items = sorted(it, key=lambda e: _natural_key(e.name))
        except OSError:
            return dirs, files
        for e in items:
            self.entries += 1
            if self.entries > MAX_ENTRIES:
                raise ValueError(f"clip folder {self.root} has more than {MAX_ENTRIES:,} entries; point the loader "
                                 "at a smaller tree")
            if e.name.startswith("."):
                continue
            p = Path(e.path)
            try:  # a plain entry of a resolved folder stays inside it; only links need resolving
                r = p.resolve(strict=True) if e.is_symlink() else p
                is_dir = r.is_dir()
            except (OSError, RuntimeError):  # broken link, link loop
                continue
            if r == self.root or not r.is_relative_to(self.root):  # outside, or a link back to the root
                continue
            (dirs if is_dir else files).append((e.name, r))
        return dirs, files

    def frame_files(self, d: Path) -> list[Path]:
        return [f for _, f in self.listing(d)[1] if f.suffix.lower() in FRAME_EXTENSIONS]

    def class_clips(self, d: Path) -> list[Path]:
        """The clips of the class folder ``d`` (each class is walked on its own: a clip may be linked into two)."""
        self.seen, self.strays = set(), []
        return self.find_clips(d)

    def find_clips(self, d: Path, depth: int = 0) -> list[Path]:
        """Clips under the resolved folder ``d``: frame folders and clip files, searched recursively."""
        if depth > MAX_DEPTH:
            raise ValueError(f"clip folder {self.root}: folders nest deeper than {MAX_DEPTH} levels under "
                             f"{d.relative_to(self.root)}; flatten the tree")
        self.seen.add(d)
        clips: list[Path] = []
        dirs, files = self.listing(d)
        for _, sub in dirs:
            if sub in self.seen:  # a link back to a folder already walked (a loop)
                continue
            if self.frame_files(sub):
                self.seen.add(sub)
                clips.append(sub)
            else:
                clips.extend(self.find_clips(sub, depth + 1))
        for name, f in files:
            if _is_clip_file(f):
                clips.append(f)
            elif len(self.strays) < 3:
                self.strays.append(name)
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


def _check_pixels(im, frames: int, where: Path) -> None:
    """Refuse an image whose decoded pixels (``frames`` of them) would exceed :data:`MAX_CLIP_BYTES`."""
    w, h = im.size
    nbytes = w * h * 4 * frames  # RGBA is the widest mode read here
    if nbytes > MAX_CLIP_BYTES:
        raise ValueError(f"{where}: {frames:,} frame(s) of {w:,} x {h:,} pixels would decode to "
                         f"{nbytes / 1024**2:,.0f} MiB, above the {MAX_CLIP_BYTES / 1024**2:,.0f} MiB a clip may take; "
                         "use smaller frames")


def _read_image(p: Path) -> np.ndarray:
    if p.suffix.lower() == ".npy":
        try:
            return load_npy(p, MAX_CLIP_BYTES, str(p))
        except ValueError:
            raise
        except Exception as exc:
            raise ValueError(f"{p}: not a readable .npy array ({exc})") from exc
    try:
        with Image.open(p) as im:
            _check_pixels(im, 1, p)  # the header is read, the pixels not yet
            im.load()
            return np.asarray(im.convert("RGB" if im.mode not in ("L", "I;16") else "L"))
    except ValueError:
        raise
    except Exception as exc:
        raise ValueError(f"{p}: not a readable image ({type(exc).__name__}: {exc}); accepted: {_ACCEPTED}") from exc


def _sample(n: int, t_len: int) -> list[int]:
    """``t_len`` frame indices evenly spaced over a clip of ``n`` frames (repeating when it is shorter)."""
    return [int(round(p)) for p in np.linspace(0, n - 1, t_len)] if n else []


def _read_gif(clip: Path, t_len: int) -> list[np.ndarray]:
    try:
        with Image.open(clip) as im:
            n = getattr(im, "n_frames", 1)
            _check_pixels(im, n, clip)  # seeking to a frame decodes the ones before it
            frames = {}
            for k in sorted(set(_sample(n, t_len))):
                im.seek(k)
                frames[k] = _to_chw(np.asarray(im.convert("RGB")), clip)
        return [frames[k] for k in _sample(n, t_len)]
    except ValueError:
        raise
    except Exception as exc:
        raise ValueError(f"{clip}: not a readable GIF ({exc})") from exc


def _read_clip(clip: Path, t_len: int, tree: _Tree) -> list[np.ndarray]:
    """``t_len`` frames of a clip, evenly spaced over it, as (C, H, W) float arrays in [0, 1].

    Only the sampled frames are decoded; every array or image declares its size before it is read.
    """
    tree.check()
    if clip.is_dir():
        files = tree.frame_files(clip)
        frames = []
        for k in _sample(len(files), t_len):
            tree.check()  # a clip is many files: a stop does not wait for the whole clip
            frames.append(_to_chw(_read_image(files[k]), files[k]))
        return frames
    s = clip.suffix.lower()
    if s in VIDEO_EXTENSIONS:
        raise ValueError(
            f"{clip}: video files ({s}) need a video decoder (opencv-python or av), which BT Lab does not install. "
            f"Extract the frames into a folder per clip, e.g. `ffmpeg -i {clip.name} {clip.stem}/%04d.png`, "
            f"and point the loader at that tree. Accepted: {_ACCEPTED}"
        )
    if s == ".gif":
        return _read_gif(clip, t_len)
    try:
        arr = (load_npz if s == ".npz" else load_npy)(clip, MAX_CLIP_BYTES, str(clip))
    except ValueError:
        raise
    except Exception as exc:
        raise ValueError(f"{clip}: not a readable array ({exc})") from exc
    if arr.ndim not in (3, 4):
        raise ValueError(f"{clip}: a clip array must be (T, H, W), (T, H, W, C) or (T, C, H, W); got shape {arr.shape}")
    return [_to_chw(arr[k], clip) for k in _sample(len(arr), t_len)]


def load_clip_folder(root, frame_shape=(3, 32, 32), frames: int = 8, *, val_fraction: float = 0.25,
                     seed: int = 0, max_clips_per_class: int | None = None, max_bytes: int = 2 * 1024**3,
                     should_stop: Callable[[], bool] | None = None,
                     progress: Callable[[float], None] | None = None) -> tuple[ClipSet, ClipSet] | None:
    """Load a UCF11-style clip folder into (train, validation) :class:`ClipSet` s; None when stopped.

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
    should_stop : callable, optional
        Asked before every folder is listed and every file is read: when it returns True the load
        ends there and returns None (a large or deep tree does not keep a stopped job busy).
    progress : callable, optional
        Called with the share of clips read (0 after the walk, then after each clip, 1 at the end).

    Raises
    ------
    ValueError
        For a missing or empty folder, a class with no clips, unreadable frames, or video files
        (which need a decoder that is not installed); the message lists what is accepted.
    """
    root, shape, t_len = _checked_root(root, frame_shape, frames, val_fraction)
    tree = _Tree(root, should_stop)
    try:
        return _load(tree, root, shape, t_len, val_fraction, seed, max_clips_per_class, max_bytes, progress)
    except _Stopped:
        return None


def _walk(tree: _Tree, root: Path, max_clips_per_class) -> tuple[tuple[str, ...], list[list[Path]]]:
    """``(class names, each class's clips)`` of the walked ``tree`` (of ``root``, as the caller named it)."""
    entries = tree.listing(tree.root)[0]
    class_names, class_dirs = tuple(n for n, _ in entries), [d for _, d in entries]
    if not class_dirs:
        raise ValueError(f"clip folder {root} is empty: expected one sub-folder per class, each holding clips "
                         f"({_ACCEPTED})")
    if len(class_dirs) < 2:
        raise ValueError(f"clip folder {root} has one class folder ({class_names[0]}); classification needs "
                         "at least two class sub-folders")
    per_class = []
    for cname, cdir in zip(class_names, class_dirs):
        clips = tree.class_clips(cdir)
        if not clips:
            extra = f" (found files such as {', '.join(tree.strays)})" if tree.strays else ""
            raise ValueError(f"class folder {cname} of {tree.root} holds no clips{extra}; "
                             f"accepted: {_ACCEPTED}")
        if max_clips_per_class is not None:
            clips = clips[: check_positive_int(max_clips_per_class, "max_clips_per_class")]
        per_class.append(clips)
    return class_names, per_class


def _val_count(clips: int, val_fraction: float) -> int:
    """Clips of a class held out: ``val_fraction`` of them, at least one and not all when it has two or more."""
    n_val = int(round(clips * val_fraction))
    if val_fraction > 0 and clips >= 2:
        n_val = min(max(n_val, 1), clips - 1)
    return n_val


def _checked_root(root, frame_shape, frames, val_fraction) -> tuple[Path, tuple[int, int, int], int]:
    """``(root, frame shape, frames)`` checked, before any work; ValueError naming what is wrong."""
    shape = parse_frame_shape(frame_shape)
    t_len = check_positive_int(frames, "frames")
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, (int, float)) or not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be a number in [0, 1), got {val_fraction!r}")
    root = Path(root).expanduser()
    if not root.exists():
        raise ValueError(f"clip folder {root} does not exist")
    if not root.is_dir():
        raise ValueError(f"clip folder {root} is not a folder; expected root/<class>/<clips> ({_ACCEPTED})")
    return root, shape, t_len


def clip_folder_estimate(root, frame_shape=(3, 32, 32), frames: int = 8, *, val_fraction: float = 0.25,
                         max_clips_per_class: int | None = None, sample: int = 4) -> dict:
    """What :func:`load_clip_folder` will take, before it runs: ``{"classes", "train", "val", "seconds", "low_s", "high_s"}``.

    The folder is walked (as the loader walks it: the counts are exact) and ``sample`` clips, spread
    over the classes, are read and resized; ``seconds`` is the walk plus the mean time of a sampled
    clip times the clips, ``low_s`` / ``high_s`` the same at the fastest / slowest sampled clip (clips
    differ in length and frame size). Raises the loader's ``ValueError`` for a folder it would refuse.
    """
    t0 = time.perf_counter()
    root, shape, t_len = _checked_root(root, frame_shape, frames, val_fraction)
    tree = _Tree(root)
    _, per_class = _walk(tree, root, max_clips_per_class)
    walk_s = time.perf_counter() - t0
    picks = []  # the first clip of each class, then the second of each, ...
    for k in range(check_positive_int(sample, "sample")):
        clips, j = per_class[k % len(per_class)], k // len(per_class)
        if j < len(clips):
            picks.append(clips[j])
    times = []
    for clip in picks:
        t0 = time.perf_counter()
        [_resize(f, shape) for f in _read_clip(clip, t_len, tree)]
        times.append(time.perf_counter() - t0)
    n_val = sum(_val_count(len(c), val_fraction) for c in per_class)
    n_total = sum(len(c) for c in per_class)
    return {"classes": len(per_class), "train": n_total - n_val, "val": n_val,
            "seconds": walk_s + float(np.mean(times)) * n_total, "low_s": walk_s + min(times) * n_total,
            "high_s": walk_s + max(times) * n_total}


def _load(tree: _Tree, root: Path, shape, t_len: int, val_fraction: float, seed: int, max_clips_per_class,
          max_bytes: int, progress) -> tuple[ClipSet, ClipSet]:
    """:func:`load_clip_folder` once its arguments are checked: walk ``tree`` (of ``root``), read and split its clips."""
    class_names, per_class = _walk(tree, root, max_clips_per_class)
    n_total = sum(len(c) for c in per_class)
    need = n_total * t_len * math.prod(shape) * 4
    if need > max_bytes:
        raise ValueError(f"loading {n_total} clips of {t_len} x {'x'.join(map(str, shape))} frames needs "
                         f"{need / 1024**2:,.0f} MiB, above the {max_bytes / 1024**2:,.0f} MiB limit; use a smaller "
                         "frame size, fewer frames or max_clips_per_class")
    if progress is not None:
        progress(0.0)
    xs, ys, is_val = [], [], []
    rng = np.random.default_rng(seed)
    for label, clips in enumerate(per_class):
        val_set = set(rng.permutation(len(clips))[:_val_count(len(clips), val_fraction)].tolist())
        for k, clip in enumerate(clips):
            raw = _read_clip(clip, t_len, tree)
            if not raw:
                raise ValueError(f"clip {clip} has no frames; accepted: {_ACCEPTED}")
            sampled = [_resize(f, shape) for f in raw]
            xs.append((np.stack(sampled) - 0.5) * 2.0)
            ys.append(label)
            is_val.append(k in val_set)
            if progress is not None:
                progress(len(xs) / n_total)
    x = torch.from_numpy(np.stack(xs).reshape(len(xs), t_len, -1).astype(np.float32))
    y = torch.tensor(ys, dtype=torch.int64)
    mask = torch.tensor(is_val)
    names = tuple(class_names)
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
        # The target is not named: what lies outside the root is none of the visitor's business.
        raise ValueError(f"data path {path}: leads outside the data root {base} (a symlink or an absolute path); "
                         "put the data inside the data root")
    if not full.is_dir():
        raise ValueError(f"data path {path}: no such folder in the data root {base}")
    return full
