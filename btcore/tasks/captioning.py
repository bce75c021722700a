"""Image captioning with an LSTM decoder whose image input goes through a dense, TT or BT map.

The model (:class:`Captioner`) follows the captioning setting of Ye et al. 2018 with the pixels in
place of CNN features: at every step t the LSTM's gates are

    z_t = W_img x + b_ih  +  W_emb e(w_{t-1})  +  W_hh h_{t-1} + b_hh

where x is the flattened image (3 x 32 x 32 = 3,072 = 8x8x8x6 features in [0, 1]),
``W_img`` (3,072 x 4H) is the tensorized input-to-hidden map (``nn.Linear``, :class:`~btcore.layers.TTLinear`
or :class:`~btcore.layers.BTLinear`, made by :func:`btcore.rnn.make_input_map` with 4 gates and
computed once per image), ``e`` a word embedding and ``W_emb`` a dense (E x 4H) map. The hidden state
goes through a linear head to next-word logits. Training is teacher forcing (cross-entropy on the
next tokens, padding ignored); decoding is greedy (deterministic).

Metrics: corpus BLEU-4 from sacrebleu (whitespace tokens, its default exponential smoothing),
exact-caption accuracy (the greedy caption equals one of the references) and token accuracy
(teacher-forced next-token argmax, padding ignored).
"""

from __future__ import annotations

import dataclasses
import math
import re
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from ..formats import spec_for
from ..rnn import KINDS, LSTMCell, folded_out_modes, make_input_map
from ..shapes import check_choice, check_modes, check_positive_int, prod
from .base import ImageMapConfig
from .bleu import corpus_bleu

__all__ = ["PAD", "BOS", "EOS", "SPECIALS", "Vocabulary", "normalize_caption", "CaptionSet", "CaptionConfig",
           "Captioner", "corpus_bleu", "evaluate", "CaptionPreview", "preview", "word_flags",
           "positional_unigram_caption", "train_epochs"]

PAD, BOS, EOS = 0, 1, 2
#: Token strings of the special ids, in id order.
SPECIALS = ("<pad>", "<bos>", "<eos>")
_GATES = 4
_WORD = re.compile(r"[^\s<>]+")


# ------------------------------------------------------------------------------------------------
# Vocabulary and data
# ------------------------------------------------------------------------------------------------

def normalize_caption(text: str) -> str:
    """Lower case, letters/digits/apostrophes kept, everything else a space: ``'A Dog.'`` -> ``'a dog'``."""
    if not isinstance(text, str):
        raise ValueError(f"a caption must be a string, got {type(text).__name__}")
    return " ".join(re.sub(r"[^a-z0-9']+", " ", text.lower()).split())


@dataclass(frozen=True)
class Vocabulary:
    """Words <-> ids: ``<pad>`` = 0, ``<bos>`` = 1, ``<eos>`` = 2, then ``words`` in order.

    A caption is its words separated by whitespace (see :func:`normalize_caption`); a word not in
    the vocabulary is refused by :meth:`encode` with a message naming it.
    """

    words: tuple

    def __post_init__(self):
        words = tuple(self.words) if isinstance(self.words, (list, tuple)) else None
        if words is None:
            raise ValueError(f"words must be a list of strings, got {type(self.words).__name__}")
        if not words:
            raise ValueError("the vocabulary has 0 words; a captioner needs at least one word besides "
                             f"{', '.join(SPECIALS)} (build one with Vocabulary.from_captions(captions))")
        seen = set()
        for k, w in enumerate(words):
            if not isinstance(w, str) or not _WORD.fullmatch(w):
                raise ValueError(f"words[{k}] = {w!r} is not a word: one non-empty string without spaces or <>")
            if w in seen:
                raise ValueError(f"words[{k}] = {w!r} appears twice in the vocabulary")
            seen.add(w)
        object.__setattr__(self, "words", words)
        object.__setattr__(self, "_ids", {w: k for k, w in enumerate(SPECIALS + words)})

    @classmethod
    def from_captions(cls, captions: Sequence[str]) -> "Vocabulary":
        """The words of ``captions``, most frequent first (ties alphabetical, so the order is reproducible)."""
        counts: dict[str, int] = {}
        for c in captions:
            for w in c.split():
                counts[w] = counts.get(w, 0) + 1
        return cls(tuple(sorted(counts, key=lambda w: (-counts[w], w))))

    @property
    def tokens(self) -> tuple[str, ...]:
        """All token strings by id (specials first)."""
        return SPECIALS + self.words

    def __len__(self) -> int:
        return len(SPECIALS) + len(self.words)

    def __contains__(self, word) -> bool:
        return word in self.words

    def encode(self, caption: str) -> list[int]:
        """``[<bos>, ids of the words, <eos>]``; ``ValueError`` naming the first unknown word."""
        ids = [BOS]
        for w in caption.split():
            k = self._ids.get(w)
            if k is None or k < len(SPECIALS):
                raise ValueError(f"unknown word {w!r} in caption {caption!r}: it is not in the vocabulary of "
                                 f"{len(self.words)} words; add it to the vocabulary or build the vocabulary "
                                 "from these captions")
            ids.append(k)
        return ids + [EOS]

    def encode_batch(self, captions: Sequence[str], length: int | None = None) -> torch.Tensor:
        """(N, L) int64 ids of ``captions`` (each with <bos>/<eos>), padded with <pad> to the longest or ``length``."""
        rows = [self.encode(c) for c in captions]
        width = max((len(r) for r in rows), default=2) if length is None else check_positive_int(length, "length")
        out = torch.full((len(rows), width), PAD, dtype=torch.int64)
        for k, r in enumerate(rows):
            if len(r) > width:
                raise ValueError(f"caption {captions[k]!r} has {len(r)} tokens with <bos>/<eos>, more than length "
                                 f"{width}")
            out[k, :len(r)] = torch.tensor(r)
        return out

    def decode(self, ids) -> str:
        """The words of ``ids`` up to the first <eos>; <bos> and <pad> are skipped."""
        words = []
        for k in (ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)):
            if k == EOS:
                break
            if k >= len(SPECIALS):
                words.append(self.tokens[k])
        return " ".join(words)


@dataclass(frozen=True, eq=False)  # tensors: compare the fields yourself
class CaptionSet:
    """Images with their reference captions.

    images : float32 tensor (N, C, H, W) in [0, 1]
    captions : tuple of N tuples of str
        The references of each image (at least one; MSCOCO has five); normalised words.
    source : str
        Where the set came from (``"scenes:..."``, ``"folder:..."``).
    """

    images: torch.Tensor
    captions: tuple
    source: str = ""

    def __post_init__(self):
        x = self.images
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.dtype != torch.float32:
            raise ValueError("images must be a float32 tensor of shape (N, C, H, W)")
        caps = tuple(tuple(c) if isinstance(c, (list, tuple)) else (c,) for c in self.captions)
        if len(caps) != x.shape[0]:
            raise ValueError(f"{x.shape[0]} images but {len(caps)} caption lists; give every image its captions")
        for k, refs in enumerate(caps):
            if not refs or not all(isinstance(c, str) and c.split() for c in refs):
                raise ValueError(f"image {k} needs at least one non-empty caption, got {refs!r}")
        object.__setattr__(self, "captions", caps)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def frame_shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.images.shape[1:])

    def pairs(self) -> tuple[np.ndarray, list[str]]:
        """Every (image index, caption) training pair: the index array and the captions."""
        idx = [k for k, refs in enumerate(self.captions) for _ in refs]
        return np.asarray(idx, dtype=np.int64), [c for refs in self.captions for c in refs]


# ------------------------------------------------------------------------------------------------
# Configuration and model
# ------------------------------------------------------------------------------------------------

@dataclass
class CaptionConfig(ImageMapConfig):
    """Everything that defines a :class:`Captioner`; validated on construction, JSON round trip.

    Fields
    ------
    words : tuple of str
        The vocabulary's words (the specials <pad>, <bos>, <eos> come first and are not listed).
    kind : "dense" | "tt" | "bt"
        Format of the image-to-hidden map.
    image_shape : (C, H, W)
        Image size; C*H*W must equal prod(image_modes).
    image_modes : tuple of int
        Modes of the flattened image (3x32x32 = 3,072 = 8x8x8x6).
    hidden_modes : tuple of int
        Hidden modes (4x4x4x2 = 128); for "tt"/"bt" the same order as ``image_modes``.
    embed : int
        Word embedding size E.
    max_len : int
        Most words greedy decoding emits (the <eos> included).
    rank, blocks : BT Tucker rank and number of blocks (kind "bt").
    tt_ranks : TT ranks (kind "tt").
    tr_ranks : TR ranks (kind "tr").
    """

    model_label = "LSTM captioner"  # a class attribute (not annotated): not a field

    words: tuple = ()
    kind: str = "bt"
    image_shape: tuple = (3, 32, 32)
    image_modes: tuple = (8, 8, 8, 6)
    hidden_modes: tuple = (4, 4, 4, 2)
    embed: int = 32
    max_len: int = 12
    rank: Any = 4
    blocks: int = 2
    tt_ranks: Any = 4
    tr_ranks: Any = 4

    def __post_init__(self):
        self.validate()

    def validate(self) -> "CaptionConfig":
        """Check every field (lists become tuples); ``ValueError`` naming the field and the fix."""
        self.words = Vocabulary(self.words).words
        check_choice(self.kind, KINDS, "kind")
        self.image_shape = check_modes(self.image_shape, "image_shape")
        if len(self.image_shape) != 3:
            raise ValueError(f"image_shape must be (channels, height, width), got {self.image_shape}")
        self.image_modes = check_modes(self.image_modes, "image_modes")
        self.hidden_modes = check_modes(self.hidden_modes, "hidden_modes")
        if prod(self.image_modes) != prod(self.image_shape):
            raise ValueError(f"image_modes {'x'.join(map(str, self.image_modes))} multiply to {prod(self.image_modes):,}"
                             f" but an image of {'x'.join(map(str, self.image_shape))} has {prod(self.image_shape):,}"
                             " values; choose modes whose product is C*H*W (3x32x32 -> 8x8x8x6)")
        self.embed = check_positive_int(self.embed, "embed")
        self.max_len = check_positive_int(self.max_len, "max_len")
        self.check_rank_fields()
        if self.kind != "dense" and len(self.image_modes) != len(self.hidden_modes):
            raise ValueError(f"hidden_modes has {len(self.hidden_modes)} modes but image_modes has "
                             f"{len(self.image_modes)}; a {self.kind.upper()} image map needs the same order for both")
        try:
            self.spec()
        except ValueError as e:
            raise self.map_error("image map", self.image_modes, self.out_modes, e) from None
        return self

    @property
    def vocabulary(self) -> Vocabulary:
        return Vocabulary(self.words)

    @property
    def vocab_size(self) -> int:
        """Tokens including the three specials."""
        return len(SPECIALS) + len(self.words)

    @property
    def input_size(self) -> int:
        return prod(self.image_modes)

    @property
    def hidden_size(self) -> int:
        return prod(self.hidden_modes)

    @property
    def out_modes(self) -> tuple[int, ...]:
        """Output modes of the image map, (4 H_1, H_2, .., H_d)."""
        return folded_out_modes(self.hidden_modes, _GATES)

    def spec(self):
        """The image map's format (a spec of :data:`btcore.formats.FORMATS`)."""
        if self.kind == "dense":  # any hidden modes: a dense map sees only the sizes
            return spec_for("dense", (self.input_size,), (_GATES * self.hidden_size,))
        return spec_for(self.kind, self.image_modes, self.out_modes, **self.controls())

    def image_map_params(self) -> int:
        """Parameters of the image-to-hidden matrix W_img, bias excluded."""
        return self.spec().params

    def input_map_params(self) -> int:
        """The image map's parameters (the trainer's name for :meth:`image_map_params`)."""
        return self.image_map_params()

    def num_params(self) -> int:
        """All trainable parameters of the captioner (= ``sum(p.numel())`` of the built model)."""
        g, h, e, v = _GATES, self.hidden_size, self.embed, self.vocab_size
        return (self.image_map_params() + g * h  # W_img + b_ih
                + g * h * h + g * h  # W_hh + b_hh
                + v * e + e * g * h  # embedding + W_emb
                + h * v + v)  # head


def _uniform_(t: torch.Tensor, fan_in: int, generator) -> None:
    bound = 1.0 / math.sqrt(fan_in)
    t.uniform_(-bound, bound, generator=generator)


class Captioner(nn.Module):
    """LSTM caption decoder fed the previous word and the image (through a dense/TT/BT map) at every step.

    ``forward(images, tokens) -> logits`` (teacher forcing); :meth:`loss`; :meth:`generate` (greedy).
    ``generator`` (a seeded ``torch.Generator``): every initial weight is drawn from it.
    """

    def __init__(self, config: CaptionConfig, *, generator: torch.Generator | None = None):
        super().__init__()
        if isinstance(config, dict):
            config = CaptionConfig.from_dict(config)
        if not isinstance(config, CaptionConfig):
            raise ValueError(f"config must be a CaptionConfig, got {type(config).__name__}")
        self.config = c = dataclasses.replace(config)
        self.vocabulary = c.vocabulary
        image_map = make_input_map(c.kind, c.image_modes, c.hidden_modes, _GATES, **c.controls())
        self.cell = LSTMCell(c.image_modes, c.hidden_modes, c.kind, input_map=image_map, recurrent_init="orthogonal")
        self.embedding = nn.Embedding(c.vocab_size, c.embed)
        self.word_map = nn.Linear(c.embed, _GATES * c.hidden_size, bias=False)
        self.head = nn.Linear(c.hidden_size, c.vocab_size)
        self.reset_parameters(generator)

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Initialise every weight (``nn.Linear``-style bounds), drawing from ``generator``."""
        self.cell.reset_parameters(generator)
        with torch.no_grad():
            self.embedding.weight.normal_(0.0, 1.0, generator=generator)
            _uniform_(self.word_map.weight, self.config.embed, generator)
            _uniform_(self.head.weight, self.config.hidden_size, generator)
            _uniform_(self.head.bias, self.config.hidden_size, generator)

    @property
    def image_map(self) -> nn.Module:
        """W_img: ``nn.Linear``, :class:`TTLinear` or :class:`BTLinear`."""
        return self.cell.input_map

    def image_map_params(self) -> int:
        """Parameters of W_img, bias excluded (equal to ``config.image_map_params()``)."""
        return self.cell.input_map_params

    @property
    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def image_gates(self, images: torch.Tensor) -> torch.Tensor:
        """``W_img x + b_ih`` (B, 4H) of images (B, C, H, W) or (B, C*H*W) in [0, 1]."""
        if not isinstance(images, torch.Tensor) or not images.is_floating_point():
            raise ValueError("images must be a floating-point tensor")
        x = images.flatten(1) if images.dim() > 2 else images
        if x.dim() != 2 or x.shape[1] != self.config.input_size:
            raise ValueError(f"images must have shape (batch, {', '.join(map(str, self.config.image_shape))}) or "
                             f"(batch, {self.config.input_size}), got {tuple(images.shape)}")
        return self.image_map(x)

    def forward(self, images: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Next-token logits (B, L-1, V) for tokens (B, L) that start with <bos> (teacher forcing)."""
        if tokens.dim() != 2 or tokens.shape[1] < 2 or tokens.shape[0] != images.shape[0]:
            raise ValueError(f"tokens must have shape ({images.shape[0]}, L >= 2), got {tuple(tokens.shape)}")
        gx = self.image_gates(images)
        words = self.word_map(self.embedding(tokens[:, :-1]))  # every step's word gates in one product
        state, outs = None, []
        for t in range(words.shape[1]):
            state = self.cell.step(gx + words[:, t], state)
            outs.append(state[0])
        return self.head(torch.stack(outs, 1))

    def loss(self, images: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy of the next tokens, <pad> targets ignored."""
        logits = self(images, tokens)
        return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1),
                                           ignore_index=PAD)

    @torch.no_grad()
    def generate(self, images: torch.Tensor, max_len: int | None = None) -> torch.Tensor:
        """Greedy ids (B, T <= max_len): the likeliest word or <eos> at each step, <pad> after each <eos>."""
        steps = self.config.max_len if max_len is None else check_positive_int(max_len, "max_len")
        gx = self.image_gates(images)
        tok = torch.full((gx.shape[0],), BOS, dtype=torch.int64, device=gx.device)
        done = torch.zeros(gx.shape[0], dtype=torch.bool, device=gx.device)
        state, out = None, []
        for _ in range(steps):
            state = self.cell.step(gx + self.word_map(self.embedding(tok)), state)
            logits = self.head(state[0])
            logits[:, :BOS + 1] = -torch.inf  # <pad> and <bos> are never targets, so never emitted
            tok = torch.where(done, PAD, logits.argmax(-1))
            out.append(tok)
            done = done | (tok == EOS)
            if bool(done.all()):
                break
        return torch.stack(out, 1) if out else tok.new_zeros(gx.shape[0], 0)

    def caption(self, images: torch.Tensor, batch: int = 256) -> list[str]:
        """Greedy captions of ``images`` as strings (eval mode, in batches of ``batch``)."""
        was = self.training
        self.eval()
        try:
            ids = [self.generate(images[k:k + batch]) for k in range(0, images.shape[0], batch)]
        finally:
            self.train(was)
        return [self.vocabulary.decode(r) for part in ids for r in part]


# ------------------------------------------------------------------------------------------------
# Metrics and previews
# ------------------------------------------------------------------------------------------------

def _batches(n: int, batch: int):
    for k in range(0, n, batch):
        yield slice(k, min(k + batch, n))


@torch.no_grad()
def evaluate(model: Captioner, val: CaptionSet, batch: int = 256) -> dict[str, float]:
    """Validation metrics: ``val_loss``, ``val_bleu`` (0-100), ``val_exact``, ``val_token_acc``.

    Loss and token accuracy are teacher-forced over every (image, reference) pair, per token
    (padding ignored); BLEU-4 and exact accuracy use the greedy captions against all references.
    """
    batch = check_positive_int(batch, "batch")
    was = model.training
    model.eval()
    try:
        idx, caps = val.pairs()
        tokens = model.vocabulary.encode_batch(caps)
        loss_sum, right, count = 0.0, 0, 0
        for s in _batches(len(idx), batch):
            logits = model(val.images[idx[s]], tokens[s])
            target = tokens[s, 1:]
            keep = target != PAD
            loss_sum += float(nn.functional.cross_entropy(logits[keep], target[keep], reduction="sum"))
            right += int((logits.argmax(-1) == target)[keep].sum())
            count += int(keep.sum())
        hyps = model.caption(val.images, batch)
    finally:
        model.train(was)
    exact = sum(h in refs for h, refs in zip(hyps, val.captions)) / len(val)
    return {"val_loss": loss_sum / count, "val_bleu": corpus_bleu(hyps, val.captions), "val_exact": exact,
            "val_token_acc": right / count}


def word_flags(caption: str, truth: str) -> tuple[bool, ...]:
    """For each word of ``caption``: whether ``truth`` has the same word at the same position."""
    t = truth.split()
    return tuple(k < len(t) and w == t[k] for k, w in enumerate(caption.split()))


@dataclass(frozen=True, eq=False)  # arrays: compare the fields yourself
class CaptionPreview:
    """One validation image with its first reference and the model's greedy caption.

    image : float32 array (H, W, C) in [0, 1]; ``correct[k]``: word k of ``caption`` matches the truth.
    """

    index: int
    image: np.ndarray
    truth: str
    caption: str
    correct: tuple


def preview(model: Captioner, val: CaptionSet, count: int = 6) -> list[CaptionPreview]:
    """``count`` fixed validation images (evenly spaced indices) with true and predicted captions."""
    count = min(check_positive_int(count, "count"), len(val))
    indices = np.unique(np.linspace(0, len(val) - 1, count).round().astype(np.int64))
    hyps = model.caption(val.images[torch.from_numpy(indices)])
    out = []
    for k, h in zip(indices.tolist(), hyps):
        truth = val.captions[k][0]
        img = val.images[k].permute(1, 2, 0).numpy().astype(np.float32, copy=True)
        out.append(CaptionPreview(k, img, truth, h, word_flags(h, truth)))
    return out


def positional_unigram_caption(captions: Sequence[str]) -> str:
    """The image-blind baseline: the most common word at each position, for the most common length.

    Ties go to the alphabetically first word or the shortest length, so the baseline is reproducible.
    """
    split = [c.split() for c in captions]
    if not split:
        raise ValueError("the baseline needs at least one caption")
    lengths: dict[int, int] = {}
    for s in split:
        lengths[len(s)] = lengths.get(len(s), 0) + 1
    n = min(lengths, key=lambda k: (-lengths[k], k))
    words = []
    for pos in range(n):
        counts: dict[str, int] = {}
        for s in split:
            if pos < len(s):
                counts[s[pos]] = counts.get(s[pos], 0) + 1
        words.append(min(counts, key=lambda w: (-counts[w], w)))
    return " ".join(words)


# ------------------------------------------------------------------------------------------------
# A small training helper
# ------------------------------------------------------------------------------------------------

def train_epochs(model: Captioner, train: CaptionSet, val: CaptionSet, epochs: int, batch: int = 32,
                 lr: float = 3e-3, seed: int = 0, *, clip: float = 5.0,
                 on_epoch: Callable[[dict], Any] | None = None) -> list[dict]:
    """Adam with teacher forcing over every (image, caption) pair of ``train``; evaluated after each epoch.

    The order of the pairs comes from ``seed``. Returns one dict per epoch: ``epoch``,
    ``train_loss`` (mean over batches), ``examples`` (pairs seen so far), ``seconds`` (training
    time of the epoch, evaluation excluded) and the :func:`evaluate` metrics; ``on_epoch`` gets
    each one as it is made.
    """
    epochs, batch = check_positive_int(epochs, "epochs"), check_positive_int(batch, "batch")
    if not (isinstance(lr, (int, float)) and lr > 0):
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    idx, caps = train.pairs()
    tokens = model.vocabulary.encode_batch(caps)  # unknown words fail here, before any training
    lengths = (tokens != PAD).sum(1)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(int(seed))
    history, seen = [], 0
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.randperm(len(idx), generator=gen)
        t0, losses = time.perf_counter(), []
        for s in _batches(len(order), batch):
            rows = order[s]
            width = int(lengths[rows].max())  # no steps past the batch's longest caption
            loss = model.loss(train.images[idx[rows.numpy()]], tokens[rows, :width])
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), clip)
            opt.step()
            losses.append(loss.item())
            seen += len(rows)
        record = {"epoch": epoch, "train_loss": float(np.mean(losses)), "examples": seen,
                  "seconds": time.perf_counter() - t0, **evaluate(model, val)}
        history.append(record)
        if on_epoch is not None:
            on_epoch(record)
    return history
