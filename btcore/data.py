"""Action-recognition clips for training: the clip container and a synthetic video task.

Nothing here downloads anything.

Synthetic task (:class:`SyntheticActions`)
------------------------------------------
Short colour clips of one shape (disc, square, diamond or bar) on a cluttered, noisy background.
The class is the *motion*:

====  ====================  ===========================================================
 id   name                  what happens over the clip
====  ====================  ===========================================================
 0    move right            the shape slides right
 1    move left             the shape slides left
 2    move down             the shape slides down
 3    move up               the shape slides up
 4    grow                  the shape scales up around a fixed centre
 5    shrink                the shape scales down
 6    rotate clockwise      the shape turns about a pivot off its centre (clockwise)
 7    rotate anticlockwise  the same, anticlockwise
====  ====================  ===========================================================

Classes come in time-reversed pairs with the same distribution of *mean frames*: a right-moving
shape leaves the same smear as a left-moving one, a growing shape the same blob as a shrinking
one. So a model that only sees the mean frame can at best tell the pairs apart (about 50% with 8
classes), while a recurrent model that sees the order of the frames can reach close to 100%.
Start positions, shape, colours, sizes, speeds, the static clutter and the per-frame noise are all
random per clip, drawn from a generator seeded by ``(seed, split, index)``: clip ``i`` of a split
is the same whatever else is generated, in any batch, in any process.

Frames are float32, channels first (C, H, W), flattened per frame to ``C*H*W`` features, scaled
to roughly [-1, 1]. The layout is (B, T, C*H*W), batch first, what
:class:`btcore.classifier.SequenceClassifier` takes.

Clip folders (:func:`btcore.clips.load_clip_folder`)
----------------------------------------------------
The UCF11 layout: ``root/<class>/.../<clip>`` where a clip is a folder of frame images
(PNG/JPEG/BMP/GIF/TIFF, read with Pillow, or ``.npy`` single frames), an animated GIF, or a
``.npy``/``.npz`` array of shape (T, H, W), (T, H, W, C) or (T, C, H, W). Video files
(.avi/.mpg/.mp4...) need a video decoder (opencv or PyAV) that BT Lab does not ship: the error
says how to extract their frames instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .shapes import check_choice, check_positive_int, parse_ints
from .memory import check_allocation

__all__ = [
    "ACTION_NAMES",
    "ClipSet",
    "SyntheticActions",
    "parse_frame_shape",
    "mean_frame_features",
]

#: Names of the synthetic classes, in label order.
ACTION_NAMES = ("move right", "move left", "move down", "move up", "grow", "shrink",
                "rotate clockwise", "rotate anticlockwise")

_SPLITS = {"train": 0, "val": 1, "test": 2}


def _what(v) -> str:
    return f"a {v.dtype} tensor" if isinstance(v, torch.Tensor) else type(v).__name__


def _number(value, field: str, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{field} must be a number, got {value!r}")
    if not lo <= float(value) <= hi:  # NaN fails this too
        raise ValueError(f"{field} must be between {lo:g} and {hi:g}, got {value!r}")
    return float(value)


def parse_frame_shape(value) -> tuple[int, int, int]:
    """``(C, H, W)`` from ``"3x32x32"``, ``(3, 32, 32)``, ``"32x32"`` (grey) or ``32`` (3 x 32 x 32)."""
    if isinstance(value, str):
        try:
            value = parse_ints(value, "frame shape")
        except ValueError:
            raise ValueError(f"frame shape: write channels x height x width, e.g. 3x32x32, got {value!r}") from None
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = (3, int(value), int(value))
    if isinstance(value, (bytes, dict, set)) or not hasattr(value, "__len__"):
        raise TypeError(f"frame shape must be (C, H, W), (H, W), an int or a string like 3x32x32, got {value!r}")
    value = tuple(value)
    if len(value) == 2:
        value = (1,) + value
    if len(value) != 3:
        raise ValueError(f"frame shape: need (C, H, W) or (H, W), got {value!r}")
    c, h, w = (check_positive_int(v, n) for v, n in zip(value, ("channels", "frame height", "frame width")))
    if c not in (1, 3):
        raise ValueError(f"frame shape: channels must be 1 (grey) or 3 (RGB), got {c}")
    if min(h, w) < 8 or max(h, w) > 4096:
        raise ValueError(f"frame shape: height and width must be at least 8 pixels and at most 4096, got {h}x{w}")
    return c, h, w


@dataclass
class ClipSet:
    """Clips held in memory: ``x`` (N, T, C*H*W) float32 and ``y`` (N,) int64.

    The common interface of the training data (also implemented by :class:`SyntheticSplit`):
    ``len()``, :attr:`labels`, :meth:`get` for a batch of indices, :attr:`frame_shape`,
    :attr:`frames`, :attr:`classes`, :attr:`class_names`.
    """

    x: torch.Tensor
    y: torch.Tensor
    frame_shape: tuple[int, int, int]
    class_names: tuple[str, ...]
    source: str = "memory"

    def __post_init__(self):
        if not isinstance(self.x, torch.Tensor) or not self.x.is_floating_point():
            raise TypeError(f"ClipSet: x must be a floating-point torch.Tensor, got {_what(self.x)}")
        if not isinstance(self.y, torch.Tensor) or self.y.is_floating_point() or self.y.is_complex() \
                or self.y.dtype == torch.bool:
            raise TypeError(f"ClipSet: y must be an integer torch.Tensor of class labels, got {_what(self.y)}")
        if self.x.dim() != 3 or self.y.dim() != 1 or self.x.shape[0] != self.y.shape[0]:
            raise ValueError(f"ClipSet: x must be (N, T, F) and y (N,) with N = len(y); got x {tuple(self.x.shape)}, "
                             f"y {tuple(self.y.shape)}")
        bad = int((~torch.isfinite(self.x)).sum())
        if bad:  # NaN/inf frames would train to NaN weights without a word
            raise ValueError(f"ClipSet: {bad:,} of the {self.x.numel():,} entries of x are NaN or infinite; "
                             "replace or drop those clips")
        self.frame_shape = parse_frame_shape(self.frame_shape)
        if math.prod(self.frame_shape) != self.x.shape[2]:
            raise ValueError(f"ClipSet: frame_shape {self.frame_shape} has {math.prod(self.frame_shape):,} features "
                             f"but x has {self.x.shape[2]:,} per frame")
        if isinstance(self.class_names, str) or not all(isinstance(n, str) for n in self.class_names):
            raise TypeError(f"ClipSet: class_names must be a sequence of strings, got {self.class_names!r}")
        self.class_names = tuple(self.class_names)
        if len(self.class_names) < 1:
            raise ValueError("ClipSet: class_names must name at least one class")
        self.y = self.y.to(torch.int64)
        if len(self.y) and (int(self.y.min()) < 0 or int(self.y.max()) >= len(self.class_names)):
            raise ValueError(f"ClipSet: labels must be integers in [0, {len(self.class_names) - 1}] (one per class "
                             f"name), got labels from {int(self.y.min())} to {int(self.y.max())}; fix y or add "
                             "class names")

    def __len__(self) -> int:
        return int(self.y.shape[0])

    @property
    def frames(self) -> int:
        return int(self.x.shape[1])

    @property
    def features(self) -> int:
        return int(self.x.shape[2])

    @property
    def classes(self) -> int:
        return len(self.class_names)

    @property
    def labels(self) -> np.ndarray:
        return self.y.numpy()

    def get(self, indices) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.as_tensor(np.asarray(indices, dtype=np.int64))
        return self.x[idx], self.y[idx]

    def class_counts(self) -> dict[str, int]:
        counts = np.bincount(self.labels, minlength=self.classes)
        return {n: int(c) for n, c in zip(self.class_names, counts)}


# ------------------------------------------------------------------------------------------------
# Synthetic task
# ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SyntheticActions:
    """Configuration of the synthetic action-recognition task; :meth:`split` gives the data.

    Parameters
    ----------
    frame_shape : (C, H, W)
        Frame size; C*H*W is the input size of the RNN (default 3x32x32 = 3,072; the paper's
        UCF11 frames are 3x120x160 = 57,600).
    frames : int
        Clip length T (default 8).
    classes : int
        Number of motion classes, 2..8 (the first ``classes`` of :data:`ACTION_NAMES`; the default 6
        leaves out the two rotations, the hardest pair).
    train_size, val_size : int
        Clips per split (labels balanced to within one clip per class).
    seed : int
        Everything is a function of the seed.
    noise : float
        Std of the per-frame pixel noise (pixel values in [0, 1] before scaling).
    clutter : int
        Static background objects per clip.
    cache_bytes : int
        Splits smaller than this are generated once and kept in memory; larger ones are generated
        batch by batch when used.
    """

    frame_shape: tuple[int, int, int] = (3, 32, 32)
    frames: int = 8
    classes: int = 6
    train_size: int = 1024
    val_size: int = 256
    seed: int = 0
    noise: float = 0.1
    clutter: int = 3
    cache_bytes: int = 512 * 1024**2

    def __post_init__(self):
        object.__setattr__(self, "frame_shape", parse_frame_shape(self.frame_shape))
        check_positive_int(self.frames, "frames")
        if self.frames < 3:
            raise ValueError(f"frames: clips need at least 3 frames to show a motion, got {self.frames}")
        k = check_positive_int(self.classes, "classes")
        if not 2 <= k <= len(ACTION_NAMES):
            raise ValueError(f"classes must be between 2 and {len(ACTION_NAMES)}, got {k}")
        check_positive_int(self.train_size, "train_size")
        check_positive_int(self.val_size, "val_size")
        # A split's labels are drawn as one permutation (about four int64 copies of its size) as
        # soon as it is made; the clips themselves are rendered batch by batch when too large to keep.
        for field in ("train_size", "val_size"):
            n = getattr(self, field)
            check_allocation(4 * 8 * int(n), f"the labels of {n:,} clips ({field})", f"lower {field}")
        # Rendering holds a clip's float32 frames, its noise and float64 per-pixel work arrays at once.
        c, h, w = self.frame_shape
        check_allocation(4 * self.bytes_per_clip(), f"rendering one clip of {self.frames:,} frames of {c}x{h}x{w}",
                         "use fewer frames or a smaller frame size")
        if isinstance(self.cache_bytes, bool) or not isinstance(self.cache_bytes, (int, np.integer)) \
                or self.cache_bytes < 0:
            raise ValueError(f"cache_bytes must be an integer >= 0 (0: never cache), got {self.cache_bytes!r}")
        _number(self.noise, "noise", 0.0, 1.0)
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {self.seed!r}")
        if isinstance(self.clutter, bool) or not isinstance(self.clutter, (int, np.integer)) \
                or not 0 <= self.clutter <= 64:
            raise ValueError(f"clutter must be an integer from 0 to 64 (background objects per clip), "
                             f"got {self.clutter!r}")

    @property
    def features(self) -> int:
        c, h, w = self.frame_shape
        return c * h * w

    @property
    def class_names(self) -> tuple[str, ...]:
        return ACTION_NAMES[: self.classes]

    def bytes_per_clip(self) -> int:
        return 4 * self.frames * self.features

    def split(self, name: str = "train") -> "SyntheticSplit":
        """The ``"train"``, ``"val"`` or ``"test"`` split (``test`` has ``val_size`` clips)."""
        check_choice(name, sorted(_SPLITS), "split")
        n = self.train_size if name == "train" else self.val_size
        return SyntheticSplit(self, name, n)

    def splits(self) -> tuple["SyntheticSplit", "SyntheticSplit"]:
        """(train, validation)."""
        return self.split("train"), self.split("val")


class SyntheticSplit:
    """One split of a :class:`SyntheticActions` task (same interface as :class:`ClipSet`)."""

    source = "synthetic"

    def __init__(self, task: SyntheticActions, name: str, size: int):
        self.task = task
        self.name = name
        self.size = size
        k = task.classes
        rng = np.random.default_rng([task.seed, _SPLITS[name], 7919])
        self._labels = rng.permutation(np.arange(size) % k).astype(np.int64)
        self._cache: tuple[torch.Tensor, torch.Tensor] | None = None

    def __len__(self) -> int:
        return self.size

    @property
    def frame_shape(self) -> tuple[int, int, int]:
        return self.task.frame_shape

    @property
    def frames(self) -> int:
        return self.task.frames

    @property
    def features(self) -> int:
        return self.task.features

    @property
    def classes(self) -> int:
        return self.task.classes

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.task.class_names

    @property
    def labels(self) -> np.ndarray:
        return self._labels.copy()

    @property
    def cached(self) -> bool:
        return self.size * self.task.bytes_per_clip() <= self.task.cache_bytes

    def class_counts(self) -> dict[str, int]:
        counts = np.bincount(self._labels, minlength=self.classes)
        return {n: int(c) for n, c in zip(self.class_names, counts)}

    def generate(self, indices) -> tuple[torch.Tensor, torch.Tensor]:
        """Render clips ``indices`` (no cache): x (B, T, C*H*W) float32, y (B,) int64."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= self.size):
            raise IndexError(f"clip index out of range for a split of {self.size} clips")
        x = _render(self.task, _SPLITS[self.name], idx, self._labels[idx])
        return torch.from_numpy(x), torch.from_numpy(self._labels[idx].copy())

    def prepare(self, should_stop=None, progress=None) -> bool:
        """Fill the in-memory cache now (when the split fits), in chunks of 256 clips.

        ``should_stop()`` is checked between chunks (False is returned, nothing kept);
        ``progress(fraction)`` is called after each chunk. True when the data are ready.
        """
        if not self.cached or self._cache is not None:
            return True
        chunks = []
        for s in range(0, self.size, 256):
            if should_stop is not None and should_stop():
                return False
            chunks.append(self.generate(np.arange(s, min(s + 256, self.size))))
            if progress is not None:
                progress(min(1.0, (s + 256) / self.size))
        self._cache = (torch.cat([c[0] for c in chunks]), torch.cat([c[1] for c in chunks]))
        return True

    def get(self, indices) -> tuple[torch.Tensor, torch.Tensor]:
        """Clips ``indices``: from the in-memory cache when the split fits, else rendered now."""
        if not self.cached:
            return self.generate(indices)
        if self._cache is None:
            self.prepare()
        idx = torch.as_tensor(np.asarray(indices, dtype=np.int64))
        return self._cache[0][idx], self._cache[1][idx]


def _shape_rho(kind: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Normalised distance (< 1 inside) of local coordinates (u, v) for each clip's shape kind."""
    k = kind.reshape((-1,) + (1,) * (u.ndim - 1))
    au, av = np.abs(u), np.abs(v)
    disc = np.sqrt(u * u + v * v)
    square = np.maximum(au, av)
    diamond = au + av
    bar = np.maximum(au * u.dtype.type(1 / 1.4), av * u.dtype.type(1 / 0.45))
    return np.where(k == 0, disc, np.where(k == 1, square, np.where(k == 2, diamond, bar)))


def _render(task: SyntheticActions, split: int, idx: np.ndarray, labels: np.ndarray) -> np.ndarray:
    c, h, w = task.frame_shape
    t_len = task.frames
    b = idx.size
    unit = min(h, w) / 32.0  # geometry is defined on a 32-pixel frame and scaled
    t = np.linspace(0.0, 1.0, t_len)

    # Per-clip random draws, each clip from its own generator.
    cx = np.empty((b, t_len)); cy = np.empty((b, t_len)); size = np.empty((b, t_len)); ang = np.empty((b, t_len))
    kind = np.empty(b, np.int64)
    fg = np.empty((b, 3)); bg = np.empty((b, 3)); grad = np.empty((b, 2))
    n_clutter = int(task.clutter)
    cl_xy = np.empty((b, n_clutter, 2)); cl_r = np.empty((b, n_clutter)); cl_col = np.empty((b, n_clutter, 3))
    cl_kind = np.empty((b, n_clutter), np.int64)
    noise = np.empty((b, t_len, c, h, w), np.float32)
    for n, (i, lab) in enumerate(zip(idx, labels)):
        rng = np.random.default_rng([task.seed, split, int(i)])
        kind[n] = rng.integers(0, 4)
        r0 = rng.uniform(3.0, 4.5) * unit
        theta0 = rng.uniform(0, 2 * np.pi)
        if lab < 4:  # translations
            travel = rng.uniform(10.0, 14.0) * unit
            margin = r0 * 1.5
            direction = [(1, 0), (-1, 0), (0, 1), (0, -1)][lab]
            span_x = w - 2 * margin - (travel if direction[0] else 0)
            span_y = h - 2 * margin - (travel if direction[1] else 0)
            x0 = margin + rng.uniform(0, max(span_x, 0)) + (travel if direction[0] < 0 else 0)
            y0 = margin + rng.uniform(0, max(span_y, 0)) + (travel if direction[1] < 0 else 0)
            cx[n] = x0 + direction[0] * travel * t
            cy[n] = y0 + direction[1] * travel * t
            size[n] = r0
            ang[n] = theta0
        elif lab < 6:  # scaling
            lo, hi = rng.uniform(0.45, 0.6), rng.uniform(1.5, 1.8)
            s = lo + (hi - lo) * t
            if lab == 5:
                s = s[::-1]
            margin = r0 * hi * 1.2
            cx[n] = rng.uniform(margin, max(w - margin, margin))
            cy[n] = rng.uniform(margin, max(h - margin, margin))
            size[n] = r0 * s
            ang[n] = theta0
        else:  # rotation about a pivot one "arm" away from the shape's centre
            arm = rng.uniform(5.0, 7.0) * unit
            sweep = rng.uniform(0.8, 1.1) * np.pi
            sign = 1.0 if lab == 6 else -1.0  # image y points down: +angle is clockwise on screen
            phi = theta0 + sign * sweep * t
            margin = arm + r0 * 1.5
            px = rng.uniform(margin, max(w - margin, margin))
            py = rng.uniform(margin, max(h - margin, margin))
            cx[n] = px + arm * np.cos(phi)
            cy[n] = py + arm * np.sin(phi)
            size[n] = r0
            ang[n] = phi
        hue = rng.uniform(0, 1)
        fg[n] = _hsv_to_rgb(hue, rng.uniform(0.6, 1.0), rng.uniform(0.8, 1.0))
        bg[n] = _hsv_to_rgb(rng.uniform(0, 1), rng.uniform(0.2, 0.6), rng.uniform(0.15, 0.4))
        grad[n] = rng.normal(0, 0.15, 2)
        if n_clutter:
            cl_xy[n] = rng.uniform(0, 1, (n_clutter, 2)) * (w, h)
            cl_r[n] = rng.uniform(1.5, 4.0, n_clutter) * unit
            cl_col[n] = [_hsv_to_rgb(rng.uniform(0, 1), rng.uniform(0.3, 0.9), rng.uniform(0.3, 0.8))
                         for _ in range(n_clutter)]
            cl_kind[n] = rng.integers(0, 4, n_clutter)
        noise[n] = rng.standard_normal((t_len, c, h, w), dtype=np.float32)

    # Rendering in float32 (half the memory traffic of float64; pixels need no more).
    f32 = np.float32
    cx, cy, size, ang = cx.astype(f32), cy.astype(f32), size.astype(f32), ang.astype(f32)
    fg, bg, grad = fg.astype(f32), bg.astype(f32), grad.astype(f32)
    cl_xy, cl_r, cl_col = cl_xy.astype(f32), cl_r.astype(f32), cl_col.astype(f32)
    ys, xs = np.meshgrid(np.arange(h, dtype=f32) + f32(0.5), np.arange(w, dtype=f32) + f32(0.5), indexing="ij")
    # Background: colour + gradient + static clutter (B, 3, H, W).
    gx, gy = (xs / f32(w) - f32(0.5)), (ys / f32(h) - f32(0.5))
    back = bg[:, :, None, None] + (grad[:, 0, None, None] * gx + grad[:, 1, None, None] * gy)[:, None]
    for j in range(n_clutter):
        u = (xs[None] - cl_xy[:, j, 0, None, None]) / cl_r[:, j, None, None]
        v = (ys[None] - cl_xy[:, j, 1, None, None]) / cl_r[:, j, None, None]
        rho = _shape_rho(cl_kind[:, j], u, v)
        alpha = f32(0.6) * _soft_inside(rho, cl_r[:, j, None, None])
        back = back * (1 - alpha[:, None]) + cl_col[:, j, :, None, None] * alpha[:, None]
    # The moving shape (B, T, H, W).
    ca, sa = np.cos(ang)[..., None, None], np.sin(ang)[..., None, None]
    dx = xs[None, None] - cx[..., None, None]
    dy = ys[None, None] - cy[..., None, None]
    r = size[..., None, None]
    u = (ca * dx + sa * dy) / r
    v = (-sa * dx + ca * dy) / r
    alpha = _soft_inside(_shape_rho(kind, u, v), r)
    frames = back[:, None] * (1 - alpha[:, :, None]) + fg[:, None, :, None, None] * alpha[:, :, None]
    if c == 1:
        frames = (f32(0.299) * frames[:, :, 0] + f32(0.587) * frames[:, :, 1] + f32(0.114) * frames[:, :, 2])[:, :, None]
    frames = frames.astype(f32) + f32(task.noise) * noise
    out = (frames - f32(0.5)) * f32(2.0)
    return np.ascontiguousarray(out.reshape(b, t_len, c * h * w), dtype=np.float32)


def _soft_inside(rho: np.ndarray, radius) -> np.ndarray:
    """Anti-aliased inside mask: 1 inside, 0 outside, a one-pixel ramp at the edge."""
    one, half = rho.dtype.type(1.0), rho.dtype.type(0.5)
    return np.clip((one - rho) * radius + half, 0, one)


def _hsv_to_rgb(hh: float, s: float, v: float) -> np.ndarray:
    i = int(hh * 6) % 6
    f = hh * 6 - int(hh * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    return np.array([(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i])


def mean_frame_features(x: torch.Tensor) -> torch.Tensor:
    """The mean frame of each clip, (B, T, F) -> (B, F): the input of the static baseline."""
    return x.mean(dim=1)
