"""Image generation: a DRAW-style recurrent VAE whose image maps are dense, TT or BT.

The model follows Gregor et al. 2015 (DRAW) without attention, as used by Ye et al. 2018 for their
image-generation experiment. For t = 1..T, with the canvas c_0 = 0 and the decoder state h_0 = 0:

* read: r_t = [x, x - sigmoid(c_{t-1})], a 2 x P vector (P pixels);
* encoder LSTM: h^enc_t = LSTM_enc(r_t, h^dec_{t-1}); its input map from the 2P read is dense, TT
  or BT (input modes: the image modes with the first one doubled, 8x7x4x7 for 28 x 28 images, since
  the read is the two images stacked along the slowest index); h^dec_{t-1} enters through a small
  dense map;
* latent: (mu_t, log sigma_t) = a dense map of h^enc_t; z_t = mu_t + sigma_t * eps_t, eps_t ~ N(0, I);
* decoder LSTM: h^dec_t = LSTM_dec(z_t) (dense, z is small);
* write: c_t = c_{t-1} + write(h^dec_t), a dense, TT or BT map from the hidden modes to the image modes.

The loss is the negative ELBO per image in nats: the Bernoulli reconstruction term (BCE with logits
c_T on the grey levels, summed over pixels) plus sum_t KL(N(mu_t, sigma_t^2) || N(0, I)). Sampling
runs the decoder on z_t from the prior.

The weights are the same at all T steps of a pass, so a factorized map whose contraction costs more
multiply-adds per row than the dense product (the BT write map by default) is formed once per pass
and applied as a matrix; the others are contracted at every step (see ``_per_pass``).

The loss is on grey levels (not binarized digits), so its values are not comparable with the
binarized-MNIST nats of the DRAW paper: a grey pixel has a positive Bernoulli cross-entropy floor.

Everything random takes a ``torch.Generator``, so a seed gives bit-identical samples, validation
scores and training runs.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ..plan import plan_reconstruct
from ..formats import spec_for
from ..rnn import GATES, KINDS, LSTMCell, make_input_map
from ..shapes import check_choice, check_modes, check_positive_int, factorize, format_ints, prod
from .base import ImageMapConfig
from .digits import DEFAULT_IMAGE_MODES, DEFAULT_IMAGE_SIZE, check_image_modes
from .images import tile

__all__ = [
    "GenerationConfig",
    "DrawOutput",
    "DrawModel",
    "nelbo",
    "train_epochs",
    "GenerationPreview",
    "preview",
]

_LSTM_GATES = GATES["lstm"]
#: Seed of the latent noise in :func:`nelbo` (a fixed draw, so the score is a deterministic metric).
NELBO_SEED = 1234


def _field_int(value, field_name: str, what: str) -> int:
    try:
        return check_positive_int(value, field_name)
    except ValueError:
        raise ValueError(f"{field_name} ({what}) must be a positive integer, got {value!r}") from None


@dataclass
class GenerationConfig(ImageMapConfig):
    """Everything that defines a :class:`DrawModel`; validated on construction, JSON round trip.

    Fields
    ------
    kind : "dense" | "tt" | "bt"
        Format of the two image maps (the encoder's read map and the decoder's write map).
    image_size : int
        Image side in pixels (28: 784 pixels).
    image_modes : tuple of int
        Pixel modes, multiplying to image_size ** 2 (4x7x4x7 for 784).
    steps : int
        DRAW steps T.
    latent : int
        Size of each step's Gaussian latent z_t.
    hidden_size : int
        Hidden units of the encoder and of the decoder LSTM.
    hidden_modes : tuple of int
        Modes of the hidden size, multiplying to it; for "tt"/"bt" the same order d as image_modes.
    rank, blocks : BT Tucker rank R (int or per-mode) and blocks N, kind "bt".
    tt_ranks : TT ranks, kind "tt".
    tr_ranks : TR ranks, kind "tr".
    """

    model_label = "DRAW"  # a class attribute (not annotated): not a field

    kind: str = "bt"
    image_size: int = DEFAULT_IMAGE_SIZE
    image_modes: tuple = DEFAULT_IMAGE_MODES
    steps: int = 8
    latent: int = 16
    hidden_size: int = 128
    hidden_modes: tuple = (4, 4, 4, 2)
    rank: Any = 4
    blocks: int = 2
    tt_ranks: Any = 4
    tr_ranks: Any = 4

    def __post_init__(self):
        self.validate()

    def validate(self) -> "GenerationConfig":
        """Check every field (lists become tuples); raise ``ValueError`` naming the field and the fix."""
        check_choice(self.kind, KINDS, "kind")
        self.image_size = _field_int(self.image_size, "image_size", "the image side in pixels")
        self.image_modes = check_image_modes(self.image_size, self.image_modes)
        self.steps = _field_int(self.steps, "steps", "the number of DRAW steps T, e.g. 8")
        self.latent = _field_int(self.latent, "latent", "the size of each step's latent z, e.g. 16")
        self.hidden_size = _field_int(self.hidden_size, "hidden_size", "the LSTM hidden units, e.g. 128")
        self.hidden_modes = check_modes(self.hidden_modes, "hidden_modes")
        if prod(self.hidden_modes) != self.hidden_size:
            example = format_ints(factorize(self.hidden_size, len(self.hidden_modes), max_mode=None))
            raise ValueError(f"hidden_modes {format_ints(self.hidden_modes)} multiply to {prod(self.hidden_modes):,}, "
                             f"not hidden_size = {self.hidden_size:,}; choose modes whose product is the hidden "
                             f"size (for example {example}) or change hidden_size")
        self.check_rank_fields()
        if self.kind != "dense":
            if len(self.image_modes) != len(self.hidden_modes):
                raise ValueError(f"hidden_modes has {len(self.hidden_modes)} modes but image_modes has "
                                 f"{len(self.image_modes)}; {self.kind.upper()} image maps need the same order d for "
                                 f"both (e.g. hidden {self.hidden_size} as "
                                 f"{format_ints(factorize(self.hidden_size, len(self.image_modes), max_mode=None))})")
            for name in ("read", "write"):
                try:
                    self._spec(name)
                except ValueError as e:  # the spec's message names rank[k] / ranks[k] / blocks
                    raise self.map_error(f"{name} map", *self.map_modes(name), e) from None
        return self

    # -- derived sizes ---------------------------------------------------------------------------
    @property
    def pixels(self) -> int:
        """Pixels per image, image_size ** 2."""
        return self.image_size * self.image_size

    @property
    def read_modes(self) -> tuple[int, ...]:
        """Input modes of the read map: the 2 x P read [x, x - sigmoid(c)], first image mode doubled."""
        return (2 * self.image_modes[0],) + self.image_modes[1:]

    def map_modes(self, name: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """(input modes, output modes) of the "read" map (2P -> 4H, gates folded) or the "write" map (H -> P)."""
        check_choice(name, ("read", "write"), "map")
        if name == "read":
            h = self.hidden_modes
            return self.read_modes, (_LSTM_GATES * h[0],) + h[1:]
        return self.hidden_modes, self.image_modes

    def _spec(self, name: str):
        i, o = self.map_modes(name)
        if self.kind == "dense":  # any hidden modes: a dense map sees only the sizes
            i, o = (prod(i),), (prod(o),)
        return spec_for(self.kind, i, o, **self.controls())

    def spec(self, name: str):
        """Format (a spec of :data:`btcore.formats.FORMATS`) of the "read" or "write" image map."""
        return self._spec(name)

    def image_map_params(self) -> dict[str, int]:
        """Weight parameters (bias excluded) of the image maps: ``{"read": n, "write": n}``."""
        return {name: self.spec(name).params for name in ("read", "write")}

    def input_map_params(self) -> int:
        """Weight parameters of both image maps together (what the trainer reports as the input maps' size)."""
        return sum(self.image_map_params().values())

    def num_params(self) -> int:
        """All trainable parameters of the model (= ``sum(p.numel())`` of the built :class:`DrawModel`)."""
        g, h, z, p = _LSTM_GATES, self.hidden_size, self.latent, self.pixels
        maps = self.image_map_params()
        return (maps["read"] + g * h  # read map + b_ih
                + h * g * h  # decoder state into the encoder
                + 2 * (g * h * h + g * h)  # both hidden-to-hidden maps
                + h * 2 * z + 2 * z  # latent head
                + z * g * h + g * h  # decoder input map
                + maps["write"] + p)  # write map + bias


@dataclass
class DrawOutput:
    """What :meth:`DrawModel.forward` returns.

    Attributes
    ----------
    logits : torch.Tensor
        (B, P) the final canvas c_T (Bernoulli logits of the pixels).
    kl : torch.Tensor
        (B, T) KL(q(z_t | x) || N(0, I)) of every step, in nats (non-negative).
    canvases : torch.Tensor or None
        (T, B, P) the canvases c_1..c_T, when asked for.
    """

    logits: torch.Tensor
    kl: torch.Tensor
    canvases: torch.Tensor | None = None


def _init_linear(layer: nn.Linear, generator: torch.Generator | None) -> None:
    """PyTorch's default ``nn.Linear`` init (kaiming_uniform a=sqrt(5), bias U(+-1/sqrt(fan_in))) from ``generator``."""
    with torch.no_grad():
        nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=generator)
        if layer.bias is not None:
            bound = 1.0 / math.sqrt(layer.in_features)
            layer.bias.uniform_(-bound, bound, generator=generator)


def _reset_map(layer: nn.Module, generator: torch.Generator | None) -> None:
    if isinstance(layer, nn.Linear):
        _init_linear(layer, generator)
    else:
        layer.reset_parameters(generator=generator)


def _per_pass(layer: nn.Module, batch: int, steps: int):
    """``layer`` as a function for the ``steps`` steps of one pass over ``batch`` rows.

    A factorized map whose FLOP-optimal contraction costs more multiply-adds per row than a dense
    product (the BT write map 4x4x4x2 -> 4x7x4x7 at R=4, N=2: 110k against 100k) is formed once per
    pass, its reconstruction shared by all steps since the weights are the same at every step, and
    applied as a dense matrix; every other map runs as it is. The decision counts multiply-adds of
    the FLOP-optimal path only (no timing), so it is the same on every machine.
    """
    spec = getattr(layer, "spec", None)
    if spec is None:
        return layer
    batch = max(1, batch)
    contracted = spec.macs(batch)  # per row, FLOP-optimal path at this batch
    formed = plan_reconstruct(spec).macs / (batch * steps) + spec.in_size * spec.out_size
    if contracted <= formed:
        return layer
    weight, bias = layer.weight_matrix(), layer.bias
    if bias is None:
        return lambda v: v @ weight
    return lambda v: torch.addmm(bias, v, weight)


def _generator(generator: torch.Generator | None = None, seed: int | None = None) -> torch.Generator | None:
    if generator is not None and seed is not None:
        raise ValueError("give a generator or a seed, not both")
    if seed is not None:
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
        return torch.Generator().manual_seed(seed)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise ValueError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    return generator


class DrawModel(nn.Module):
    """A DRAW-style recurrent VAE (no attention) with dense, TT or BT image maps; see the module docstring.

    Parameters
    ----------
    config : GenerationConfig or dict
    generator : torch.Generator, optional
        Every initial weight is drawn from it (default: the global RNG).

    Submodules: ``encoder`` (an :class:`~btcore.rnn.LSTMCell` whose ``input_map`` is the read map),
    ``dec_to_enc`` (dense), ``latent_head`` (dense), ``decoder`` (a dense LSTMCell) and ``write``
    (the write map).
    """

    def __init__(self, config: GenerationConfig, *, generator: torch.Generator | None = None):
        super().__init__()
        if isinstance(config, dict):
            config = GenerationConfig.from_dict(config)
        if not isinstance(config, GenerationConfig):
            raise ValueError(f"config must be a GenerationConfig, got {type(config).__name__}")
        self.config = c = dataclasses.replace(config)  # a validated copy
        g, h = _LSTM_GATES, c.hidden_size
        ranks = c.controls()
        self.encoder = LSTMCell(c.read_modes, c.hidden_modes, c.kind, **ranks)
        self.dec_to_enc = nn.Linear(h, g * h, bias=False)
        self.latent_head = nn.Linear(h, 2 * c.latent)
        self.decoder = LSTMCell(c.latent, h, "dense")
        self.write = make_input_map(c.kind, c.hidden_modes, c.image_modes, 1, **ranks)
        if generator is not None:
            self.reset_parameters(generator)

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Re-initialise every weight, drawing from ``generator`` (default: the global RNG)."""
        self.encoder.reset_parameters(generator)
        _init_linear(self.dec_to_enc, generator)
        _init_linear(self.latent_head, generator)
        self.decoder.reset_parameters(generator)
        _reset_map(self.write, generator)

    @property
    def num_params(self) -> int:
        """Trainable parameters (equal to ``config.num_params()``)."""
        return sum(p.numel() for p in self.parameters())

    @property
    def read_map(self) -> nn.Module:
        """The encoder's input map from the 2P read (``nn.Linear``, TTLinear or BTLinear)."""
        return self.encoder.input_map

    def _ref(self) -> torch.Tensor:
        return self.latent_head.weight

    def _check_x(self, x) -> torch.Tensor:
        p = self.config.pixels
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise ValueError(f"x must be a floating-point tensor of images, got "
                             f"{getattr(x, 'dtype', type(x).__name__)}")
        if x.dim() == 3 and x.shape[1] * x.shape[2] == p:
            x = x.flatten(1)
        if x.dim() != 2 or x.shape[1] != p:
            s = self.config.image_size
            raise ValueError(f"x must have shape (batch, {p}) (flat {s} x {s} images) or (batch, {s}, {s}), "
                             f"got {tuple(x.shape)}")
        return x.to(self._ref())

    def _noise(self, batch: int, generator: torch.Generator | None) -> torch.Tensor:
        """eps of shape (batch, T, latent), drawn image by image.

        One (T, latent) draw per image, because torch's CPU ``randn`` fills tensors of 16 or more
        entries in a different order than smaller ones: so image i's noise does not depend on the
        batch size, and ``sample(36, seed=s)[0]`` is ``sample(1, seed=s)[0]``.
        """
        c, ref = self.config, self._ref()
        if batch == 0:
            return torch.zeros((0, c.steps, c.latent), dtype=ref.dtype, device=ref.device)
        eps = [torch.randn((c.steps, c.latent), generator=generator, dtype=torch.float64) for _ in range(batch)]
        return torch.stack(eps).to(ref)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None, *,
                keep_canvases: bool = False) -> DrawOutput:
        """Encode and redraw ``x`` (B, P) in [0, 1]; the latent noise comes from ``generator``.

        Returns a :class:`DrawOutput` (final logits, per-step KL, optionally every canvas).
        """
        x = self._check_x(x)
        c = self.config
        b = x.shape[0]
        eps = self._noise(b, _generator(generator))
        canvas = x.new_zeros(b, c.pixels)
        h_dec = x.new_zeros(b, c.hidden_size)
        enc_state = dec_state = None
        kls, canvases = [], []
        read_map = _per_pass(self.encoder.input_map, b, c.steps)
        write = _per_pass(self.write, b, c.steps)
        for t in range(c.steps):
            read = torch.cat([x, x - torch.sigmoid(canvas)], dim=1)
            gx = read_map(read) + self.dec_to_enc(h_dec)
            enc_state = self.encoder.step(gx, enc_state)
            mu, log_sigma = self.latent_head(enc_state[0]).chunk(2, dim=-1)
            z = mu + torch.exp(log_sigma) * eps[:, t]
            # 0.5 * (mu^2 + sigma^2 - 1 - log sigma^2) with expm1: exactly >= 0 in floating point too
            kls.append(0.5 * (mu.square() + (torch.expm1(2 * log_sigma) - 2 * log_sigma)).sum(-1))
            dec_state = self.decoder(z, dec_state)
            h_dec = dec_state[0]
            canvas = canvas + write(h_dec)
            if keep_canvases:
                canvases.append(canvas)
        return DrawOutput(logits=canvas, kl=torch.stack(kls, 1),
                          canvases=torch.stack(canvases, 0) if keep_canvases else None)

    def loss(self, x: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict]:
        """Mean negative ELBO per image (nats) and ``{"bce", "kl", "nelbo"}``, per-image means as floats.

        bce is the Bernoulli reconstruction term summed over pixels, kl the KL terms summed over steps.
        """
        x = self._check_x(x)
        if x.shape[0] == 0:
            raise ValueError("x is an empty batch; the loss needs at least one image")
        out = self(x, generator)
        bce = nn.functional.binary_cross_entropy_with_logits(out.logits, x, reduction="none").sum(1)
        kl = out.kl.sum(1)
        total = (bce + kl).mean()
        return total, {"bce": float(bce.detach().mean()), "kl": float(kl.detach().mean()), "nelbo": float(total.detach())}

    def _decode(self, z: torch.Tensor) -> torch.Tensor:
        """Canvases (T, n, P) of the decoder run on z (n, T, latent)."""
        c = self.config
        canvas = z.new_zeros(z.shape[0], c.pixels)
        state, out = None, []
        write = _per_pass(self.write, z.shape[0], c.steps)
        for t in range(c.steps):
            state = self.decoder(z[:, t], state)
            canvas = canvas + write(state[0])
            out.append(canvas)
        return torch.stack(out, 0)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, *, seed: int | None = None) -> torch.Tensor:
        """``n`` images (n, P) in [0, 1]: sigmoid of the canvas drawn from z_t ~ N(0, I).

        The same ``seed`` (or an identically seeded ``generator``) gives bit-identical samples.
        """
        n = check_positive_int(n, "n")
        z = self._noise(n, _generator(generator, seed))
        return torch.sigmoid(self._decode(z)[-1])

    @torch.no_grad()
    def canvas_steps(self, seed: int = 0) -> torch.Tensor:
        """The step-by-step canvas of one prior sample, sigmoid(c_t) for t = 1..T: shape (T, P).

        Its last row is ``sample(1, seed=seed)[0]``.
        """
        z = self._noise(1, _generator(seed=seed))
        return torch.sigmoid(self._decode(z)[:, 0])

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, generator: torch.Generator | None = None, *,
                    seed: int | None = None) -> torch.Tensor:
        """Reconstructions sigmoid(c_T) of ``x`` (B, P) through the posterior, in [0, 1]."""
        return torch.sigmoid(self(x, _generator(generator, seed)).logits)


def _batches(n: int, batch_size) -> range:
    batch_size = check_positive_int(batch_size, "batch_size")
    return range(0, n, batch_size)


@torch.no_grad()
def nelbo(model: DrawModel, data: torch.Tensor, batch_size: int = 256, *, seed: int = NELBO_SEED) -> float:
    """Negative ELBO of ``data`` in nats per image (the validation metric; no gradients).

    The latent noise comes from a generator seeded with ``seed``, drawn batch by batch, so the same
    model, data and batch size give the same score on any run.
    """
    x = model._check_x(data)
    if x.shape[0] == 0:
        raise ValueError("data is empty; nelbo needs at least one image")
    was_training = model.training
    model.eval()
    generator = _generator(seed=seed)
    total = 0.0
    try:
        for start in _batches(x.shape[0], batch_size):
            xb = x[start:start + batch_size]
            loss, _ = model.loss(xb, generator)
            total += float(loss) * xb.shape[0]
    finally:
        model.train(was_training)
    return total / x.shape[0]


def train_epochs(model: DrawModel, train: torch.Tensor, val: torch.Tensor, epochs: int = 3, batch: int = 100,
                 lr: float = 3e-3, seed: int = 0, clip: float | None = 10.0) -> list[dict]:
    """Train with Adam for ``epochs`` and return one record per epoch (a small helper for tests and benchmarks).

    The batch order and the latent noise come from generators seeded with ``seed``, so models of
    different kinds trained with the same seed see the same batches. ``clip`` bounds the gradient's
    global norm (None: no clipping).

    Returns
    -------
    list of dict
        ``{"epoch", "train_loss" (mean nELBO over the epoch's batches), "val_nelbo", "seconds",
        "examples_per_s"}``; the times are wall clock, for benchmarks only.
    """
    epochs = check_positive_int(epochs, "epochs")
    batch = check_positive_int(batch, "batch")
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr > 0 or not math.isfinite(lr):
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    x = model._check_x(train)
    order_gen = torch.Generator().manual_seed(seed)
    noise_gen = torch.Generator().manual_seed(seed + 1)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    history = []
    for epoch in range(1, epochs + 1):
        model.train()
        perm = torch.randperm(x.shape[0], generator=order_gen)
        start_time = time.perf_counter()
        losses = []
        for start in _batches(x.shape[0], batch):
            loss, _ = model.loss(x[perm[start:start + batch]], noise_gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if clip is not None:
                nn.utils.clip_grad_norm_(model.parameters(), clip)
            opt.step()
            losses.append(float(loss.detach()) * min(batch, x.shape[0] - start))
        seconds = time.perf_counter() - start_time
        history.append({"epoch": epoch, "train_loss": sum(losses) / x.shape[0], "val_nelbo": nelbo(model, val),
                        "seconds": seconds, "examples_per_s": x.shape[0] / seconds})
    return history


# -- previews -------------------------------------------------------------------------------------

@dataclass
class GenerationPreview:
    """What the Training page draws for a generation model (all arrays float64 in [0, 1]).

    Attributes
    ----------
    samples : np.ndarray
        (rows * s, cols * s) grid of prior samples of a fixed seed.
    reconstructions : np.ndarray
        (2 s, n * s): the n fixed validation digits on top, their reconstructions below.
    originals, reconstructed : np.ndarray
        (n, s, s) the same digits and reconstructions, one by one.
    canvas : np.ndarray
        (T, s, s) the step-by-step canvas of one sample (the first of the grid's seed).
    """

    samples: np.ndarray
    reconstructions: np.ndarray
    originals: np.ndarray
    reconstructed: np.ndarray
    canvas: np.ndarray


def preview(model: DrawModel, val: torch.Tensor, *, seed: int = 0, grid: int = 6,
            digits: int = 8) -> GenerationPreview:
    """Sample grid (``grid x grid`` samples of ``seed``), reconstructions of ``digits`` fixed validation images.

    The validation digits are evenly spaced through ``val`` (always the same ones for the same set),
    reconstructed with latent noise of ``seed``. See :class:`GenerationPreview`.
    """
    grid, digits = check_positive_int(grid, "grid"), check_positive_int(digits, "digits")
    x = model._check_x(val)
    if x.shape[0] < digits:
        raise ValueError(f"val has {x.shape[0]} images; the preview reconstructs {digits}")
    s = model.config.image_size
    was_training = model.training
    model.eval()
    try:
        samples = model.sample(grid * grid, seed=seed)
        idx = torch.as_tensor(np.linspace(0, x.shape[0] - 1, digits).round().astype(np.int64))
        originals = x[idx]
        recon = model.reconstruct(originals, seed=seed)
        canvas = model.canvas_steps(seed)
    finally:
        model.train(was_training)
    orig_np = originals.detach().cpu().double().numpy().reshape(digits, s, s)
    recon_np = recon.cpu().double().numpy().reshape(digits, s, s)
    return GenerationPreview(samples=tile(samples, grid, grid),
                             reconstructions=tile(np.concatenate([orig_np, recon_np]), 2, digits),
                             originals=orig_np, reconstructed=recon_np,
                             canvas=canvas.cpu().double().numpy().reshape(-1, s, s))
