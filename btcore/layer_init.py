"""Initialisation draws and weight checks shared by the factorized layers (:mod:`btcore.layers`) and the cells.

``nn.Linear``'s default init (:func:`reset_linear`, :func:`linear_init_std`), semi-orthogonal and
exact-RMS Gaussian draws for the matched-variance inits, and the checks a layer made from an
existing weight runs before any fitting (:func:`check_weight`, :func:`want_bias`).
"""

from __future__ import annotations

import math

from numpy import bool_ as np_bool
import torch
from torch import nn

from .shapes import check_choice

__all__ = ["linear_init_std", "reset_linear", "semi_orthogonal", "rms_gaussian", "check_weight", "want_bias", "check_init_std",
           "check_flag", "check_method"]


def linear_init_std(fan_in: int) -> float:
    """Entry std of PyTorch's default ``nn.Linear`` weight init (kaiming_uniform, a=sqrt(5)): 1/sqrt(3 fan_in)."""
    return 1.0 / math.sqrt(3.0 * fan_in)


def reset_linear(layer: nn.Linear, generator: torch.Generator | None = None) -> None:
    """``layer.reset_parameters()`` (PyTorch's default init) drawing from ``generator``.

    Parameters
    ----------
    layer : torch.nn.Linear
        The layer, re-initialised in place.
    generator : torch.Generator, optional
        Source of the random draws (reproducible inits); the global one if None.
    """
    with torch.no_grad():
        nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=generator)
        if layer.bias is not None:
            bound = 1.0 / math.sqrt(layer.in_features) if layer.in_features > 0 else 0.0
            layer.bias.uniform_(-bound, bound, generator=generator)


def semi_orthogonal(m: int, r: int, std: float, batch: tuple[int, ...] = (),
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """``batch`` independent (m, r) float64 matrices with entry RMS exactly ``std`` and orthogonal
    columns (m >= r) or rows, in one batched QR (so N blocks cost one call, not a Python loop).

    Drawn from ``generator`` (default: the global torch RNG, so ``torch.manual_seed`` makes it reproducible).
    """
    g = torch.randn(batch + (max(m, r), min(m, r)), dtype=torch.float64, generator=generator)
    q, rr = torch.linalg.qr(g)
    q = q * torch.where(torch.diagonal(rr, dim1=-2, dim2=-1) < 0, -1.0, 1.0)[..., None, :]  # Haar sign fix
    if m < r:
        q = q.transpose(-2, -1)
    return q * (std * math.sqrt(m * r / min(m, r)))


def rms_gaussian(shape, std: float, batch: tuple[int, ...] = (),
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """``batch`` Gaussian draws of ``shape``, each rescaled so its entry RMS is exactly ``std`` (float64).

    Drawn from ``generator`` (default: the global torch RNG).
    """
    g = torch.randn(batch + tuple(shape), dtype=torch.float64, generator=generator)
    dims = tuple(range(len(batch), g.dim()))
    rms = g.pow(2).mean(dim=dims, keepdim=True).sqrt() if dims else g.abs()
    return torch.where(rms > 0, g * (std / torch.where(rms > 0, rms, 1.0)), g)


def check_weight(weight, in_size: int, out_size: int, what: str) -> torch.Tensor:
    if not isinstance(weight, torch.Tensor):
        raise ValueError(f"weight must be a torch.Tensor of shape (I, J) = ({in_size}, {out_size}), "
                         f"got {type(weight).__name__}")
    if weight.dim() != 2:
        raise ValueError(f"weight must be a 2-D (I, J) matrix, got shape {tuple(weight.shape)}")
    if tuple(weight.shape) != (in_size, out_size):
        hint = ""
        if tuple(weight.shape) == (out_size, in_size):
            hint = (" It looks transposed: btcore uses W of shape (in, out) with y = x @ W, while nn.Linear.weight "
                    f"is (out, in); pass weight.T or use {what}.from_linear")
        raise ValueError(
            f"weight has shape {tuple(weight.shape)} but the modes give (I, J) = ({in_size}, {out_size}).{hint}"
        )
    if not weight.is_floating_point():
        raise ValueError(f"weight must be a floating-point tensor, got {weight.dtype}")
    bad = int((~torch.isfinite(weight)).sum())
    if bad:
        # Checked before any path, the exact full-rank copy included: NaN would come back as "exact".
        raise ValueError(f"weight has {bad:,} NaN or infinite entries; replace them before converting")
    return weight.detach()


def want_bias(bias, out_features: int) -> bool:
    """Whether a layer made from existing weights gets a bias: a tensor or True yes, None or False no.

    A tensor's shape is checked here, before any fitting.
    """
    if bias is None or bias is False:
        return False
    if bias is True:
        return True
    if isinstance(bias, torch.Tensor):
        if tuple(bias.shape) != (out_features,):
            raise ValueError(f"bias must have shape ({out_features},), got {tuple(bias.shape)}")
        if not bias.is_floating_point() or not bool(torch.isfinite(bias).all()):
            raise ValueError("bias must be a floating-point tensor with finite entries")
        return True
    raise ValueError(f"bias must be a tensor of shape (out_features,), True (a zero bias), False or None, "
                     f"got {type(bias).__name__}")


def check_init_std(std) -> float:
    """``std`` as a float, or ``ValueError`` unless it is a finite number >= 0."""
    if isinstance(std, bool) or not isinstance(std, (int, float)) or not math.isfinite(std) or std < 0:
        raise ValueError(f"std must be a finite number >= 0 (or None for nn.Linear's), got {std!r}")
    return float(std)


def check_flag(value, field: str) -> bool:
    """``value`` as a bool (numpy bools too), or ``TypeError`` naming ``field``."""
    if not isinstance(value, (bool, np_bool)):
        raise TypeError(f"{field} must be True or False, got {value!r}")
    return bool(value)


def check_method(method: str) -> str:
    """A layer's ``method``: one of "contract", "dense", "auto" (:func:`btcore.matmul`)."""
    return check_choice(method, ("contract", "dense", "auto"), "method")
