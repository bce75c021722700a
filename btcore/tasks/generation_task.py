"""The image-generation task for the trainer: digits, a DRAW-style VAE with dense/TT/BT image maps, nELBO.

:class:`GenerationTask` puts :mod:`btcore.tasks.generation` (the model, its loss) and
:mod:`btcore.tasks.digits` (scikit-learn's handwritten digits, resized) behind the
:class:`~btcore.tasks.base.Task` interface, so the trainer, the race, the sweep and the CLI
(``--task generation``) train it like the action task. The metric is the validation negative ELBO
in nats per image (``"val_nelbo"``, lower is better); a run that learnt nothing keeps the nELBO its
model had at initialisation (:meth:`GenerationTask.chance`).

Randomness: the training latent noise comes from a generator of the run (given by the trainer
through :meth:`GenerationTask.seed_dropout`), the validation noise from a fixed seed
(:data:`~btcore.tasks.generation.NELBO_SEED`, drawn afresh for every validation batch), so the
same seed gives the same history and every evaluation scores the model on the same noise.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..shapes import check_positive_int, factorize
from .base import Batch, Chance, DeferredChance, Task, lstm_controls, step_memory
from .digits import DEFAULT_IMAGE_MODES, DEFAULT_IMAGE_SIZE, DEFAULT_TRAIN, DIGITS_COUNT, MAX_IMAGE_SIZE, digits_split
from .generation import NELBO_SEED, DrawModel, GenerationConfig, preview as draw_preview
from .images import grid_png_bytes

__all__ = ["DigitImages", "GenerationTask", "PREVIEW_GRID", "PREVIEW_DIGITS", "PREVIEW_SEED", "rounded"]

#: The preview's sample grid side (6 x 6 prior samples), reconstructed digits and noise seed.
PREVIEW_GRID = 6
PREVIEW_DIGITS = 8
PREVIEW_SEED = 0
#: Decimals of the floats in a preview (keeps the events small).
DECIMALS = 4


def rounded(a) -> list:
    """``a`` (an array or tensor) as nested lists of floats rounded to :data:`DECIMALS` places."""
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu().double().numpy()
    return np.round(np.asarray(a, dtype=np.float64), DECIMALS).tolist()


@dataclass(frozen=True, eq=False)
class DigitImages:
    """One split of the digits for the trainer: ``len()`` and ``get(indices) -> (images (B, P),)``."""

    images: torch.Tensor
    size: int

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def features(self) -> int:
        """Pixels per image."""
        return int(self.images.shape[1])

    def get(self, indices) -> Batch:
        return (self.images[torch.as_tensor(np.asarray(indices, dtype=np.int64))],)


def _noise_generator(model: nn.Module) -> torch.Generator | None:
    return getattr(getattr(model, "module", model), "noise_generator", None)


def _sums(out, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
    """(mean nELBO, per-batch sums of nELBO, reconstruction and KL terms) of a forward pass."""
    bce = nn.functional.binary_cross_entropy_with_logits(out.logits, x, reduction="none").sum(1)
    kl = out.kl.sum(1)
    per_image = bce + kl
    return per_image.mean(), {"loss": float(per_image.detach().sum()), "bce": float(bce.detach().sum()),
                              "kl": float(kl.detach().sum()), "n": int(x.shape[0])}


@dataclass(frozen=True)
class GenerationTask(Task):
    """Image generation on scikit-learn's handwritten digits (DRAW without attention, Ye et al. 2018's second task).

    Parameters
    ----------
    image_size : int
        Digits are resized to ``image_size x image_size`` (28: the paper's MNIST size, 784 = 4x7x4x7).
    train_size : int, optional
        Training digits of the 1,797 (the rest validate; None: 1,500).
    steps : int
        DRAW steps T.
    latent : int
        Size of each step's Gaussian latent.
    """

    image_size: int = DEFAULT_IMAGE_SIZE
    train_size: int | None = None
    steps: int = 8
    latent: int = 16

    name = "generation"
    metric = "val_nelbo"
    higher_is_better = False
    metric_label = "validation nELBO (nats/image)"
    config_type = GenerationConfig
    data_check = "check that the images are grey levels in [0, 1] (0 background)"
    defaults = {"epochs": 3, "batch": 50, "hidden": 128}

    def __post_init__(self):
        size = check_positive_int(self.image_size, "image_size")
        if size > MAX_IMAGE_SIZE:
            raise ValueError(f"image_size must be at most {MAX_IMAGE_SIZE} pixels, got {size}")
        if self.train_size is not None and not 1 <= int(self.train_size) < DIGITS_COUNT:
            raise ValueError(f"train_size must be from 1 to {DIGITS_COUNT - 1} (the rest of the {DIGITS_COUNT:,} "
                             f"digits validate), got {self.train_size!r}")
        check_positive_int(self.steps, "steps")
        check_positive_int(self.latent, "latent")

    @property
    def frame_shape(self) -> tuple[int, int, int]:
        """(1, size, size): what the image maps' input modes factor."""
        return (1, self.image_size, self.image_size)

    @property
    def pixels(self) -> int:
        return self.image_size * self.image_size

    # -- data ----------------------------------------------------------------------------------------
    def data(self, seed: int):
        """The digits split by ``seed``'s permutation: ``(train, val)`` :class:`DigitImages`."""
        s = digits_split(self.image_size, (self.pixels,), train=self.train_size or DEFAULT_TRAIN, seed=int(seed))
        return DigitImages(s.train, s.size), DigitImages(s.val, s.size)

    def check_data(self, data, model_config, what: str) -> None:
        super().check_data(data, model_config, what)
        feats = getattr(data, "features", None)
        if feats is not None and feats != model_config.pixels:
            raise ValueError(f"{what}: images have {feats:,} pixels but the model's image modes "
                             f"{'x'.join(map(str, model_config.image_modes))} multiply to {model_config.pixels:,}; "
                             "choose modes whose product is the number of pixels")

    def data_bytes(self) -> dict[str, int]:
        """The resized digits held at once: the in-process cache of all of them, its split and the copies handed out."""
        return {"--image-size": 3 * DIGITS_COUNT * self.pixels * 4}

    def example_batch(self, model_config, batch: int, frames: int | None) -> Batch:
        return (torch.rand(batch, model_config.pixels, generator=torch.Generator().manual_seed(0)),)

    # -- model ---------------------------------------------------------------------------------------
    def model_config(self, kind: str, **controls) -> GenerationConfig:
        """A :class:`~btcore.tasks.generation.GenerationConfig` of ``kind`` with the shared controls.

        ``in_modes`` are the image's pixel modes (default 4x7x4x7 for 28 x 28 at d = 4, else
        ``factorize(pixels, d)``), ``hidden_modes`` default to ``factorize(hidden, d)``. DRAW's cells
        are LSTMs without dropout: ``cell`` other than "lstm" and ``dropout`` above 0 are refused.
        """
        c = lstm_controls(controls, self.defaults["hidden"], cells="the DRAW model's encoder and decoder are LSTMs",
                          model="the DRAW model")
        d = c.pop("d")
        in_modes = controls.get("in_modes")
        if in_modes is None:
            in_modes = DEFAULT_IMAGE_MODES if (self.image_size, d) == (DEFAULT_IMAGE_SIZE, 4) else factorize(
                self.pixels, d)
        return GenerationConfig(kind=kind, image_size=self.image_size, image_modes=tuple(in_modes), steps=self.steps,
                                latent=self.latent, hidden_size=c.pop("hidden"), **c)

    def build_model(self, config: GenerationConfig, *, init: torch.Generator) -> nn.Module:
        return DrawModel(config, generator=init)

    def seed_dropout(self, model: nn.Module, generator: torch.Generator) -> None:
        """The run's training latent noise: a CPU generator (the noise is drawn on the CPU) of ``generator``'s seed."""
        model.noise_generator = torch.Generator().manual_seed(generator.initial_seed())

    def step_bytes(self, model_config: GenerationConfig, batch: int, optimizer: str = "adam") -> dict[str, int]:
        """:func:`~btcore.tasks.base.step_memory` of the DRAW model: its parameters, and per example the image and,
        for each of the T steps, the read and canvas images (4 P), both LSTMs' gates and states (16 H) and the latent's
        mean, deviation, noise and sample (4 Z).
        """
        c, b = model_config, int(batch)
        act = b * c.pixels + b * c.steps * (4 * c.pixels + 16 * c.hidden_size + 4 * c.latent)
        return step_memory(c.num_params(), act, optimizer)

    # -- loss and metrics ----------------------------------------------------------------------------
    def loss(self, model: nn.Module, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
        (x,) = batch
        return _sums(model(x, _noise_generator(model)), x)

    def train_means(self, sums: dict[str, float]) -> dict[str, float]:
        n = sums["n"]
        return {"train_loss": sums["loss"] / n, "train_bce": sums["bce"] / n, "train_kl": sums["kl"] / n}

    def eval_sums(self, model: nn.Module, batch: Batch) -> dict[str, float]:
        (x,) = batch
        return _sums(model(x, torch.Generator().manual_seed(NELBO_SEED)), x)[1]

    def val_metrics(self, sums: dict[str, float]) -> dict[str, float]:
        n = sums["n"]
        nelbo = sums["loss"] / n
        return {"val_loss": nelbo, "val_nelbo": nelbo, "val_bce": sums["bce"] / n, "val_kl": sums["kl"] / n}

    # -- outcomes ------------------------------------------------------------------------------------
    def chance(self, train_data, val_data, model_config) -> None:
        """None: without the run's model there is no level to compare with (see :meth:`run_chance`)."""
        return None

    def run_chance(self, model, train_data, val_data, model_config, device="cpu") -> DeferredChance | None:
        """The validation nELBO of the run's model at initialisation; learning is falling 1 % (at least 1 nat) below it.

        Evaluated on a copy of the initial weights when the stall check first asks for it, so the
        run's first steps do not wait for a validation pass.
        """
        if len(val_data) == 0:
            return None
        start = copy.deepcopy(getattr(model, "module", model))

        def compute() -> Chance:
            value = self.evaluate(start, val_data, batch=256, device=device)[self.metric]
            return Chance(value, max(1.0, 0.01 * abs(value)))

        return DeferredChance(compute)

    def format_metric(self, value: float) -> str:
        return f"{value:.1f} nats/image"

    # -- previews ------------------------------------------------------------------------------------
    def _preview(self, model: nn.Module, val_data, count: int):
        n = min(check_positive_int(count, "count"), len(val_data))
        return draw_preview(getattr(model, "module", model), val_data.images, seed=PREVIEW_SEED, grid=PREVIEW_GRID,
                            digits=n)

    def preview(self, model: nn.Module, val_data, *, count: int = PREVIEW_DIGITS, device="cpu") -> dict:
        """Prior samples (a 6 x 6 grid), ``count`` fixed validation digits and their reconstructions, one canvas by step.

        ``{"task": "generation", "kind": "images", "samples": (6*s) x (6*s), "originals": count x s x s,
        "reconstructions": count x s x s, "canvas": T x s x s, "size": s, "grid": 6}``: nested lists
        of grey levels in [0, 1] rounded to 4 decimals, from :func:`btcore.tasks.generation.preview`.
        """
        p = self._preview(model, val_data, count)
        return {"task": self.name, "kind": "images", "samples": rounded(p.samples), "originals": rounded(p.originals),
                "reconstructions": rounded(p.reconstructed), "canvas": rounded(p.canvas),
                "size": int(p.originals.shape[-1]),
                "grid": PREVIEW_GRID}

    def result_files(self, model: nn.Module, val_data) -> dict[str, bytes]:
        """``samples.png``: the preview's 6 x 6 grid of prior samples, 8-bit greyscale."""
        return {"samples.png": grid_png_bytes(self._preview(model, val_data, PREVIEW_DIGITS).samples)}

