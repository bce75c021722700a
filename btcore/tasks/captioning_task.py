"""The image-captioning task for the trainer: generated scenes, a dense/TT/BT LSTM captioner, BLEU-4.

:class:`CaptioningTask` puts :mod:`btcore.tasks.captioning` (the model) and :mod:`btcore.tasks.scenes`
(scenes with exact captions) behind the :class:`~btcore.tasks.base.Task` interface, so the trainer,
the race, the sweep and the CLI (``--task captioning``) train it like the action task.

Training examples are (image, caption) pairs, teacher-forced; validation is by image: the greedy
caption against all of the image's references. The metric is corpus BLEU-4 (``"val_bleu"``, 0-100,
sacrebleu) from sufficient statistics summed over batches and processes (:mod:`btcore.tasks.bleu`),
so it equals :func:`btcore.tasks.captioning.evaluate`'s at any batch size and process count; with
it ``val_exact`` (greedy caption equal to a reference) and ``val_token_acc`` (teacher-forced). A
run that learnt nothing scores no better than the image-blind positional-unigram caption
(:meth:`CaptioningTask.chance`).
"""

from __future__ import annotations

import copy
import functools
import json
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..shapes import factorize, prod
from .base import Batch, Chance, Task, lstm_controls, step_memory
from .caption_folder import load_caption_folder
from .bleu import BLEU_KEYS, bleu_from_stats, bleu_stats, corpus_bleu
from .captioning import (BOS, EOS, PAD, CaptionConfig, Captioner, CaptionSet, Vocabulary, positional_unigram_caption,
                         preview as caption_preview)
from .generation_task import rounded
from .scenes import IMAGE_MODES, IMAGE_SHAPE, SceneConfig, scene_split, scene_vocabulary

__all__ = ["CaptionPairs", "CaptionImages", "CaptioningTask", "PREVIEW_CAPTIONS"]

#: Validation images in a preview.
PREVIEW_CAPTIONS = 6
#: How far above the unigram baseline's BLEU-4 a model must score to count as learning (points).
BLEU_MARGIN = 1.0


@functools.lru_cache(maxsize=4)
def _load_folder(folder: str, root: str, seed: int):
    """A caption folder's (train, validation, vocabulary), read once per process and seed."""
    return load_caption_folder(folder, root, seed=seed)


def _token_rows(vocabulary: Vocabulary, captions) -> tuple[torch.Tensor, torch.Tensor]:
    tokens = vocabulary.encode_batch(list(captions))
    return tokens, (tokens != PAD).sum(1)


@dataclass(eq=False)
class CaptionPairs:
    """Training examples: every (image, caption) pair of a :class:`CaptionSet`; ``get -> (images, tokens (B, L))``.

    Tokens are cut to the batch's longest caption, so no step runs past it.
    """

    set: CaptionSet
    vocabulary: Vocabulary

    def __post_init__(self):
        self.image_of, caps = self.set.pairs()
        self.tokens, self.lengths = _token_rows(self.vocabulary, caps)  # unknown words fail here, before training

    def __len__(self) -> int:
        return len(self.image_of)

    @property
    def frame_shape(self) -> tuple[int, int, int]:
        return self.set.frame_shape

    def get(self, indices) -> Batch:
        rows = torch.as_tensor(np.asarray(indices, dtype=np.int64))
        width = int(self.lengths[rows].max()) if len(rows) else 2
        return self.set.images[torch.as_tensor(self.image_of)[rows]], self.tokens[rows, :width]


@dataclass(eq=False)
class CaptionImages:
    """Validation examples: images with all their references; ``get -> (images, tokens (B, K, L))``, empty rows <pad>."""

    set: CaptionSet
    vocabulary: Vocabulary

    def __post_init__(self):
        k = max(len(r) for r in self.set.captions)
        flat, self.lengths = _token_rows(self.vocabulary, [c for refs in self.set.captions for c in refs])
        self.tokens = torch.full((len(self.set), k, flat.shape[1]), PAD, dtype=torch.int64)
        row = 0
        for i, refs in enumerate(self.set.captions):
            self.tokens[i, :len(refs)] = flat[row:row + len(refs)]
            row += len(refs)

    def __len__(self) -> int:
        return len(self.set)

    @property
    def frame_shape(self) -> tuple[int, int, int]:
        return self.set.frame_shape

    def get(self, indices) -> Batch:
        rows = torch.as_tensor(np.asarray(indices, dtype=np.int64))
        tokens = self.tokens[rows]
        width = max(2, int((tokens != PAD).sum(-1).max())) if len(rows) else 2
        return self.set.images[rows], tokens[..., :width]


def _module(model: nn.Module) -> nn.Module:
    return getattr(model, "module", model)


@dataclass(frozen=True)
class CaptioningTask(Task):
    """Image captioning on generated scenes (Ye et al. 2018's third task, MSCOCO replaced by exact scenes).

    Parameters
    ----------
    train_size, val_size : int, optional
        Scenes per split (None: :class:`~btcore.tasks.scenes.SceneConfig`'s 2,000 and 300).
    max_objects, colours, shapes, noise : optional
        Difficulty (None: the scene defaults: 2 objects, 4 colours, 3 shapes, noise 0.05).
    folder : path, optional
        Real data instead of scenes: a folder of images and a captions file (COCO's captions JSON,
        JSON lines or CSV; :func:`~btcore.tasks.caption_folder.load_caption_folder`), read inside
        ``root`` (None: the folder itself is the root, so nothing outside it is read). Images are
        resized to 3 x 32 x 32; the vocabulary is the captions' words; 20% of the images validate.
    root : path, optional
        The data root the folder must lie in (the app's).
    """

    train_size: int | None = None
    val_size: int | None = None
    max_objects: int | None = None
    colours: int | None = None
    shapes: int | None = None
    noise: float | None = None
    folder: str | None = None
    root: str | None = None

    name = "captioning"
    metric = "val_bleu"
    higher_is_better = True
    metric_label = "validation BLEU-4"
    config_type = CaptionConfig
    data_check = "check that the captions describe their images"
    defaults = {"epochs": 4, "batch": 32, "hidden": 128}

    def __post_init__(self):
        self.scene_config()  # validates the options
        if self.folder is not None:
            self._folder(0)  # reads and checks the folder now, before any work

    def _folder(self, seed: int):
        root = self.root if self.root is not None else self.folder
        return _load_folder(str(self.folder), str(root), int(seed))

    def scene_config(self, seed: int = 0) -> SceneConfig:
        """The :class:`~btcore.tasks.scenes.SceneConfig` of these options and ``seed``."""
        d = SceneConfig()
        pick = (lambda name, own: getattr(d, name) if own is None else own)
        return SceneConfig(train=pick("train", self.train_size), val=pick("val", self.val_size),
                           max_objects=pick("max_objects", self.max_objects), colours=pick("colours", self.colours),
                           shapes=pick("shapes", self.shapes), noise=pick("noise", self.noise), seed=int(seed))

    @property
    def frame_shape(self) -> tuple[int, int, int]:
        """(3, 32, 32): the scenes' image, what the image map's input modes factor."""
        return IMAGE_SHAPE

    @property
    def vocabulary(self) -> Vocabulary:
        if self.folder is not None:
            return self._folder(0)[2]
        return scene_vocabulary(self.scene_config())

    # -- data ----------------------------------------------------------------------------------------
    def data(self, seed: int):
        """The scenes (or the folder's images) of ``seed``: ``(train pairs, validation images)``."""
        return self.load_data(seed)

    def load_data(self, seed: int, *, should_stop=None, progress=None):
        """:meth:`data`, stoppable between the splits of the scenes (each split is generated at once; a folder is one piece)."""
        if self.folder is not None:
            pieces = [lambda: self._folder(seed)]
            sizes = [1]
        else:
            config = self.scene_config(seed)
            pieces = [lambda name=name: scene_split(config, name) for name in ("train", "val")]
            sizes = [config.train, config.val]
        made = []
        for k, make in enumerate(pieces):
            if should_stop is not None and should_stop():
                return None
            made.append(make())
            if progress is not None:
                progress(sum(sizes[:k + 1]) / sum(sizes))
        train, val, vocab = made[0] if self.folder is not None else (*made, self.vocabulary)
        return CaptionPairs(train, vocab), CaptionImages(val, vocab)

    def check_data(self, data, model_config, what: str) -> None:
        super().check_data(data, model_config, what)
        shape = getattr(data, "frame_shape", None)
        if shape is not None and prod(shape) != model_config.input_size:
            raise ValueError(f"{what}: images of {'x'.join(map(str, shape))} have {prod(shape):,} values but the "
                             f"model's image modes {'x'.join(map(str, model_config.image_modes))} multiply to "
                             f"{model_config.input_size:,}; choose modes whose product is C*H*W")
        vocab = getattr(data, "vocabulary", None)
        if vocab is not None and tuple(vocab.words) != tuple(model_config.words):
            raise ValueError(f"{what}: the data's vocabulary ({len(vocab.words)} words) is not the model's "
                             f"({len(model_config.words)} words); build the model for this data")

    def data_bytes(self) -> dict[str, int]:
        """Images of each split (float32), cached in-process while the run holds them."""
        if self.folder is not None:  # already read (its size checked by the loader)
            train, val, _ = self._folder(0)
            return {"--data": 4 * prod(IMAGE_SHAPE) * (len(train) + len(val))}
        c = self.scene_config()
        return {"--train-size": 4 * prod(IMAGE_SHAPE) * c.train, "--val-size": 4 * prod(IMAGE_SHAPE) * c.val}

    def example_batch(self, model_config: CaptionConfig, batch: int, frames: int | None) -> Batch:
        g = torch.Generator().manual_seed(0)
        images = torch.rand(batch, *model_config.image_shape, generator=g)
        length = min(model_config.max_len, 9)
        words = torch.randint(3, model_config.vocab_size, (batch, length), generator=g)
        return images, torch.cat([torch.full((batch, 1), BOS), words, torch.full((batch, 1), EOS)], 1)

    # -- model ---------------------------------------------------------------------------------------
    def model_config(self, kind: str, **controls) -> CaptionConfig:
        """A :class:`~btcore.tasks.captioning.CaptionConfig` of ``kind`` for these scenes, with the shared controls.

        ``in_modes`` factor the 3 x 32 x 32 image (default 8x8x8x6 at d = 4, else
        ``factorize(3072, d)``); ``hidden_modes`` default to ``factorize(hidden, d)``. The captioner
        is an LSTM without dropout: ``cell`` other than "lstm" and ``dropout`` above 0 are refused.
        """
        c = lstm_controls(controls, self.defaults["hidden"], cells="the captioner's decoder is an LSTM",
                          model="the captioner")
        d = c.pop("d")
        in_modes = controls.get("in_modes") or (IMAGE_MODES if d == 4 else factorize(prod(IMAGE_SHAPE), d))
        del c["hidden"]  # the hidden modes say it
        return CaptionConfig(words=self.vocabulary.words, kind=kind, image_shape=IMAGE_SHAPE,
                             image_modes=tuple(in_modes), **c)

    def build_model(self, config: CaptionConfig, *, init: torch.Generator) -> nn.Module:
        return Captioner(config, generator=init)

    def step_bytes(self, model_config: CaptionConfig, batch: int, optimizer: str = "adam") -> dict[str, int]:
        """:func:`~btcore.tasks.base.step_memory` of the captioner: its parameters, and per example the image and,
        for each of the ``max_len - 1`` teacher-forced steps a caption of ``max_len`` tokens takes, the gates
        and states (8 H), the word embedding and the logits with their log-softmax (2 V).
        """
        c, b = model_config, int(batch)
        act = b * c.input_size + b * (c.max_len - 1) * (8 * c.hidden_size + c.embed + 2 * c.vocab_size)
        return step_memory(c.num_params(), act, optimizer)

    # -- loss and metrics ----------------------------------------------------------------------------
    def loss(self, model: nn.Module, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        images, tokens = batch
        logits = model(images, tokens)
        target = tokens[:, 1:]
        keep = target != PAD
        loss = nn.functional.cross_entropy(logits[keep], target[keep])
        count = int(keep.sum())
        right = int((logits.detach().argmax(-1) == target)[keep].sum())
        return loss, {"loss": float(loss.detach()) * count, "tokens": count, "right": right,
                      "n": int(tokens.shape[0])}

    def train_means(self, sums: dict[str, float]) -> dict[str, float]:
        t = max(sums["tokens"], 1)
        return {"train_loss": sums["loss"] / t, "train_token_acc": sums["right"] / t}

    def eval_sums(self, model: nn.Module, batch: Batch) -> dict[str, float]:
        images, tokens = batch
        if tokens.dim() == 2:  # a training batch: one reference per image
            tokens = tokens[:, None]
        valid = tokens[..., 0] == BOS
        owner = torch.arange(tokens.shape[0], device=tokens.device)[:, None].expand_as(valid)[valid]
        rows = tokens[valid]
        logits = model(images[owner], rows)
        target = rows[:, 1:]
        keep = target != PAD
        m = _module(model)
        vocab = m.vocabulary
        hyps = [vocab.decode(r) for r in m.generate(images).cpu()]
        cpu = tokens.cpu()
        refs = [[vocab.decode(r) for r, ok in zip(cpu[i], valid[i].tolist()) if ok] for i in range(len(hyps))]
        return {"loss": float(nn.functional.cross_entropy(logits[keep], target[keep], reduction="sum")),
                "tokens": int(keep.sum()), "right": int((logits.argmax(-1) == target)[keep].sum()),
                "exact": sum(h in r for h, r in zip(hyps, refs)), "n": len(hyps), **bleu_stats(hyps, refs)}

    def val_metrics(self, sums: dict[str, float]) -> dict[str, float]:
        t = max(sums["tokens"], 1)
        stats = {k: sums.get(k, 0.0) for k in BLEU_KEYS}
        return {"val_loss": sums["loss"] / t, "val_bleu": bleu_from_stats(stats), "val_exact": sums["exact"] / sums["n"],
                "val_token_acc": sums["right"] / t}

    # -- outcomes ------------------------------------------------------------------------------------
    def chance(self, train_data, val_data, model_config) -> Chance | None:
        """The BLEU-4 of the image-blind positional-unigram caption (:func:`~btcore.tasks.captioning.positional_unigram_caption`) on the validation set."""
        train, val = getattr(train_data, "set", None), getattr(val_data, "set", None)
        if train is None or val is None or len(val) == 0:
            return None
        base = positional_unigram_caption([refs[0] for refs in train.captions])
        return Chance(corpus_bleu([base] * len(val), val.captions), BLEU_MARGIN)

    def format_metric(self, value: float) -> str:
        return f"BLEU-4 {value:.1f}"

    # -- previews ------------------------------------------------------------------------------------
    def _examples(self, model: nn.Module, val_data, count: int, device) -> list:
        model = _module(model)
        if torch.device(device).type != "cpu":  # the library's preview reads the images on the CPU
            model = copy.deepcopy(model).cpu()
        return caption_preview(model, val_data.set, count)

    def preview(self, model: nn.Module, val_data, *, count: int = PREVIEW_CAPTIONS, device="cpu") -> dict:
        """``count`` fixed validation images with their true and greedy captions, wrong words marked.

        ``{"task": "captioning", "kind": "captions", "examples": [{"index", "image" (H x W x 3 in [0, 1],
        4 decimals), "truth", "caption", "correct" (a bool per caption word)}]}``, from
        :func:`btcore.tasks.captioning.preview`.
        """
        return {"task": self.name, "kind": "captions",
                "examples": [{"index": int(e.index), "image": rounded(e.image), "truth": e.truth,
                              "caption": e.caption, "correct": [bool(c) for c in e.correct]}
                             for e in self._examples(model, val_data, count, device)]}

    def result_files(self, model: nn.Module, val_data) -> dict[str, bytes]:
        """``captions.json``: the preview's images by index with their true and greedy captions (no pixels)."""
        rows = [{"index": int(e.index), "truth": e.truth, "caption": e.caption, "correct": [bool(c) for c in e.correct]}
                for e in self._examples(model, val_data, PREVIEW_CAPTIONS, "cpu")]
        return {"captions.json": json.dumps(rows, indent=1).encode()}
