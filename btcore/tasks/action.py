"""Action recognition: clips (synthetic motions or a clip folder), a dense/TT/BT recurrent classifier, cross-entropy.

The task of Ye et al. 2018's UCF11 experiment. Its data are :class:`~btcore.data.SyntheticActions`
splits or a clip folder (:func:`~btcore.clips.load_clip_folder`); its model a
:class:`~btcore.classifier.SequenceClassifier` whose input-to-hidden map is dense, TT or BT
(:func:`model_config`); its loss the mean cross-entropy; its metric validation accuracy
(``"val_acc"``); a run that learnt nothing stays at the accuracy of guessing (:func:`chance_level`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from ..classifier import ClassifierConfig, SequenceClassifier
from ..clips import clip_folder_estimate, load_clip_folder
from ..data import ACTION_NAMES, SyntheticActions, parse_frame_shape
from ..shapes import check_positive_int, factorize
from .base import Batch, Chance, Task

__all__ = ["ActionTask", "model_config", "fit_model_config", "chance_level", "stall_margin"]


def model_config(kind: str = "bt", cell: str = "lstm", *, frame_shape=(3, 32, 32), hidden: int = 64, d: int = 4,
                 rank=4, blocks: int = 2, tt_ranks=4, classes: int = 8, dropout: float = 0.0, readout: str = "last",
                 in_modes=None, hidden_modes=None, recurrent_init: str = "orthogonal", tr_ranks=4) -> ClassifierConfig:
    """A :class:`~btcore.classifier.ClassifierConfig` for frames of ``frame_shape``.

    Input modes default to ``factorize(C*H*W, d)`` (3x32x32 = 3,072 -> 8x8x8x6), hidden modes to
    ``factorize(hidden, d)`` (64 -> 4x4x2x2, 256 -> 4x4x4x4). Raises ``ValueError`` (from the
    config's validation) when a rank does not fit the modes.
    """
    c, h, w = parse_frame_shape(frame_shape)
    d = check_positive_int(d, "d")
    in_modes = tuple(in_modes) if in_modes is not None else factorize(c * h * w, d)
    hidden_modes = tuple(hidden_modes) if hidden_modes is not None else factorize(check_positive_int(hidden, "hidden"), d)
    return ClassifierConfig(kind=kind, cell=cell, in_modes=in_modes, hidden_modes=hidden_modes, rank=rank,
                            blocks=blocks, tt_ranks=tt_ranks, classes=classes, dropout=dropout, readout=readout,
                            recurrent_init=recurrent_init, tr_ranks=tr_ranks)


def fit_model_config(kind: str, cell: str = "lstm", *, frame_shape=(3, 32, 32), hidden: int = 64, d: int = 4,
                     rank=4, blocks: int = 2, tt_ranks=4, classes: int = 8, dropout: float = 0.0,
                     readout: str = "last", in_modes=None, hidden_modes=None, tr_ranks=4) -> tuple[ClassifierConfig, list[str]]:
    """Like :func:`model_config`, falling back to defaults (d=4, R=4, N=2, TT ranks 4) for what does not fit.

    ``in_modes`` / ``hidden_modes`` (e.g. the Shapes page's 8x20x20x18) are used when their product is
    the frame size / hidden size and their order is ``d``; otherwise the sizes are factorized.
    Returns ``(config, notes)``; each note says what was replaced and why.
    """
    c, h, w = parse_frame_shape(frame_shape)
    if in_modes is not None and (math.prod(in_modes) != c * h * w or len(in_modes) != d):
        in_modes = None
    if hidden_modes is not None and (math.prod(hidden_modes) != hidden or len(hidden_modes) != d):
        hidden_modes = None
    notes: list[str] = []
    tries = [dict(d=d, rank=rank, blocks=blocks, tt_ranks=tt_ranks, in_modes=in_modes, hidden_modes=hidden_modes)]
    if in_modes is not None or hidden_modes is not None:
        tries.append(dict(d=d, rank=rank, blocks=blocks, tt_ranks=tt_ranks, in_modes=None, hidden_modes=None))
    if d != 4:
        tries.append(dict(d=4, rank=rank, blocks=blocks, tt_ranks=tt_ranks))
    tries += [dict(d=4, rank=4, blocks=blocks, tt_ranks=4), dict(d=4, rank=4, blocks=2, tt_ranks=4),
              dict(d=4, rank=2, blocks=2, tt_ranks=2), dict(d=3, rank=2, blocks=1, tt_ranks=2)]
    first_error = None
    for t in tries:
        try:
            cfg = model_config(kind, cell, frame_shape=frame_shape, hidden=hidden, classes=classes, dropout=dropout,
                               readout=readout, tr_ranks=tr_ranks, **t)
        except ValueError as exc:
            first_error = first_error or exc
            continue
        if t != tries[0]:
            changed = ", ".join(f"{k}={t.get(k)}" for k in t if t.get(k) != tries[0].get(k) and t.get(k) is not None)
            notes.append(f"{kind.upper()}: {first_error} -> using {changed or 'factorized modes'}")
        return cfg, notes
    raise first_error  # type: ignore[misc]


def chance_level(classes: int) -> float:
    """Accuracy of guessing among ``classes`` balanced classes."""
    return 1.0 / max(int(classes), 1)


def stall_margin(chance: float, n_val: int) -> float:
    """How far above chance an accuracy must be to count as learning: two binomial standard errors, at least 2 points."""
    return max(0.02, 2.0 * math.sqrt(chance * (1.0 - chance) / max(int(n_val), 1)))


@dataclass(frozen=True)
class ActionTask(Task):
    """Action recognition on synthetic clips (``data="synthetic"``) or on a clip folder (``data=PATH``).

    Parameters
    ----------
    data : "synthetic" or a path
        The synthetic motions of :class:`~btcore.data.SyntheticActions`, or a folder
        ``root/<class>/<clip>`` read by :func:`~btcore.clips.load_clip_folder`.
    frame_shape : (C, H, W)
        Frames are rendered (or resized) to this size.
    frames : int
        Frames per clip.
    classes, train_size, val_size, noise : optional
        Synthetic data only (None: :class:`~btcore.data.SyntheticActions`' defaults).
    val_fraction : float, optional
        Clip folder only: the share of each class held out (None: 0.25).
    """

    data_source: str = "synthetic"
    frame_shape: tuple = (3, 32, 32)
    frames: int = 8
    classes: int | None = None
    train_size: int | None = None
    val_size: int | None = None
    noise: float | None = None
    val_fraction: float | None = None

    name = "action"
    metric = "val_acc"
    higher_is_better = True
    metric_label = "validation accuracy"
    config_type = ClassifierConfig

    @property
    def data_check(self) -> str:  # type: ignore[override]
        """What a stall message asks to check: a clip folder's class folders; synthetic labels are right by construction."""
        return "train for more epochs" if self.synthetic else "check that each class folder holds clips of its class"

    def __post_init__(self):
        object.__setattr__(self, "frame_shape", parse_frame_shape(self.frame_shape))

    @property
    def synthetic(self) -> bool:
        return str(self.data_source) == "synthetic"

    def synthetic_task(self, seed: int = 0) -> SyntheticActions:
        """The :class:`~btcore.data.SyntheticActions` of these options (synthetic data only)."""
        d = SyntheticActions()
        return SyntheticActions(frame_shape=self.frame_shape, frames=self.frames, seed=seed,
                                classes=d.classes if self.classes is None else self.classes,
                                train_size=d.train_size if self.train_size is None else self.train_size,
                                val_size=d.val_size if self.val_size is None else self.val_size,
                                noise=d.noise if self.noise is None else self.noise)

    def data(self, seed: int):
        """``(train, val)``: the synthetic splits of ``seed``, or the clip folder split with ``seed``."""
        return self.load_data(seed)

    def folder_estimate(self, sample: int = 4) -> dict:
        """A clip folder's ``{"classes", "train", "val", "seconds"}`` before it is read (:func:`~btcore.clips.clip_folder_estimate`)."""
        if self.synthetic:
            raise ValueError("folder_estimate is for a clip folder; these are the synthetic clips")
        return clip_folder_estimate(self.data_source, self.frame_shape, self.frames, sample=sample,
                                    val_fraction=0.25 if self.val_fraction is None else self.val_fraction)

    def load_data(self, seed: int, *, should_stop=None, progress=None):
        """:meth:`data`, stoppable: per chunk of 256 synthetic clips (rendered now), or per file of a clip folder.

        The synthetic training split takes the first half of the progress, the validation split the second.
        """
        if not self.synthetic:
            return load_clip_folder(self.data_source, self.frame_shape, self.frames, seed=seed,
                                    val_fraction=0.25 if self.val_fraction is None else self.val_fraction,
                                    should_stop=should_stop, progress=progress)
        splits = self.synthetic_task(seed).splits()
        if should_stop is None and progress is None:
            return splits  # rendered when first used
        for k, part in enumerate(splits):
            report = None if progress is None else (lambda f, k=k: progress((k + f) / 2))
            if not part.prepare(should_stop=should_stop, progress=report):
                return None
        if progress is not None:
            progress(1.0)
        return splits

    def check_data(self, data, model_config, what: str) -> None:
        super().check_data(data, model_config, what)
        feats = getattr(data, "features", None)
        if feats is not None and feats != model_config.input_size:
            raise ValueError(f"{what}: frames have {feats:,} features but the model's input modes "
                             f"{'x'.join(map(str, model_config.in_modes))} multiply to {model_config.input_size:,}; "
                             "choose input modes whose product is the frame size")
        classes = getattr(data, "classes", None)
        if classes is not None and classes > model_config.classes:
            raise ValueError(f"{what}: the data has {classes} classes but the model only {model_config.classes}")

    def example_batch(self, model_config, batch: int, frames: int | None) -> Batch:
        g = torch.Generator().manual_seed(0)
        x = torch.rand(batch, frames or self.frames, model_config.input_size, generator=g)
        return x, torch.randint(0, model_config.classes, (batch,), generator=g)

    # -- model -----------------------------------------------------------------------------------------
    def model_config(self, kind: str, **controls) -> ClassifierConfig:
        """:func:`model_config` for this task's frames (``classes`` defaults to the synthetic classes, else 8)."""
        classes = controls.pop("classes", None) or self.classes or (SyntheticActions().classes if self.synthetic
                                                                     else len(ACTION_NAMES))
        return model_config(kind, frame_shape=self.frame_shape, classes=classes, **controls)

    def build_model(self, config: ClassifierConfig, *, init: torch.Generator) -> nn.Module:
        return SequenceClassifier(config, generator=init)

    def seed_dropout(self, model: nn.Module, generator: torch.Generator) -> None:
        model.rnn.dropout_generator = generator

    # -- loss and metrics ------------------------------------------------------------------------------
    def loss(self, model: nn.Module, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        x, y = batch
        logits = model(x)
        loss = nn.functional.cross_entropy(logits, y)
        n = y.numel()
        correct = int((logits.detach().argmax(1) == y).sum())
        return loss, {"loss": float(loss.detach()) * n, "correct": correct, "n": n}

    def train_means(self, sums: dict[str, float]) -> dict[str, float]:
        return {"train_loss": sums["loss"] / sums["n"], "train_acc": sums["correct"] / sums["n"]}

    def eval_sums(self, model: nn.Module, batch: Batch) -> dict[str, float]:
        x, y = batch
        logits = model(x)
        return {"loss": float(nn.functional.cross_entropy(logits, y, reduction="sum")),
                "correct": int((logits.argmax(1) == y).sum()), "n": int(y.numel())}

    def val_metrics(self, sums: dict[str, float]) -> dict[str, float]:
        return {"val_loss": sums["loss"] / sums["n"], "val_acc": sums["correct"] / sums["n"]}

    # -- outcomes --------------------------------------------------------------------------------------
    def chance(self, train_data, val_data, model_config) -> Chance:
        level = chance_level(getattr(train_data, "classes", None) or model_config.classes)
        n = max(len(val_data), 1)
        return Chance(level, stall_margin(level, n), math.sqrt(level * (1.0 - level) / n))

    def format_metric(self, value: float) -> str:
        return f"{value:.1%}"

    def preview(self, model: nn.Module, val_data, *, count: int = 8, device="cpu") -> dict:
        """The model's predictions on the first ``count`` validation clips: label, prediction, its probability."""
        n = min(int(count), len(val_data))
        names = tuple(getattr(val_data, "class_names", ()) or ())
        x, y = val_data.get(list(range(n)))
        was = model.training
        model.eval()
        with torch.no_grad():
            prob = torch.softmax(model(x.to(device)), dim=1).cpu()
        model.train(was)
        conf, pred = prob.max(1)
        name = (lambda k: names[k] if k < len(names) else str(k))
        return {"task": self.name, "kind": "predictions",
                "examples": [{"index": i, "label": int(y[i]), "label_name": name(int(y[i])),
                              "predicted": int(pred[i]), "predicted_name": name(int(pred[i])),
                              "probability": float(conf[i]), "correct": bool(pred[i] == y[i])} for i in range(n)]}

    def data_bytes(self) -> dict[str, int]:
        """Bytes each synthetic split holds at once, keyed by its size flag: its labels, and its clips when cached."""
        if not self.synthetic:
            return {}
        d = SyntheticActions()
        per_clip = 4 * self.frames * math.prod(self.frame_shape)
        out = {}
        for flag, size in (("--train-size", self.train_size or d.train_size),
                           ("--val-size", self.val_size or d.val_size)):
            clips = size * per_clip
            out[flag] = 8 * size + (clips if clips <= d.cache_bytes else 0)
        return out
