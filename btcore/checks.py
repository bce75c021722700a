"""Argument checks shared by the layers, the recurrent models and the data loaders.

Each check returns the value in its canonical form or raises ``TypeError`` (wrong kind of value)
or ``ValueError`` (right kind, bad value) with a message naming the argument.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["check_tensor", "check_dropout", "check_matrix", "check_device"]


def check_tensor(x, name: str) -> None:
    """``TypeError`` unless ``x`` is a floating-point ``torch.Tensor``.

    Parameters
    ----------
    x : object
        The value to check.
    name : str
        The argument's name, used in the message.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {x.dtype}")


def check_dropout(p, name: str) -> float:
    """A dropout probability as a float in [0, 1); ``ValueError`` otherwise.

    Parameters
    ----------
    p : int or float
        The probability.
    name : str
        The argument's name, used in the message.

    Returns
    -------
    float
    """
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not (0.0 <= float(p) < 1.0):
        raise ValueError(f"{name} must be a number in [0, 1), got {p!r}")
    return float(p)


def check_matrix(W: np.ndarray, source: str, expected_shape=None) -> None:
    """``ValueError`` unless ``W`` is a non-empty 2-D finite array (of ``expected_shape`` if given).

    Parameters
    ----------
    W : numpy.ndarray
        The matrix.
    source : str
        What the matrix is (a file name, a target), used to start the message.
    expected_shape : tuple of int, optional
        The required (I, J); a transposed matrix gets a hint.
    """
    if W.ndim != 2:
        raise ValueError(f"{source}: the array is {W.ndim}-D with shape {W.shape}; a weight matrix must be 2-D "
                         "(I, J). Reshape it before saving (for example W.reshape(I, J))")
    if W.size == 0:
        raise ValueError(f"{source}: the matrix is empty (shape {W.shape})")
    bad = int(W.size - np.isfinite(W).sum())
    if bad:
        nan = int(np.isnan(W).sum())
        raise ValueError(f"{source}: {bad:,} entries are not finite ({nan:,} NaN, {bad - nan:,} infinite); "
                         "replace or drop them before uploading")
    if expected_shape is not None and tuple(W.shape) != tuple(expected_shape):
        e = tuple(expected_shape)
        hint = " It looks transposed: save W.T." if tuple(W.shape) == e[::-1] else ""
        raise ValueError(f"{source}: shape {W.shape} does not match the chosen modes, which need {e} "
                         f"(I = prod(in_modes), J = prod(out_modes)).{hint} Or change the modes to fit the matrix")


def check_device(device) -> torch.device | None:
    """``device`` as a ``torch.device`` that can hold tensors here, or None; ``ValueError`` otherwise.

    Torch answers a CUDA device on a machine without CUDA with an ``AssertionError`` from deep in the
    allocator; this names the device and the fix before anything is built.

    Parameters
    ----------
    device : str, torch.device, int or None
        ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ... (None: torch's default).

    Returns
    -------
    torch.device or None
    """
    if device is None:
        return None
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise ValueError(f"device {device!r} is not a torch device; use 'cpu' or 'cuda' ({exc})") from None
    if dev.type in ("cpu", "meta"):
        return dev
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r}: CUDA is not available on this machine (this torch "
                             f"{'has no CUDA support' if torch.version.cuda is None else 'finds no GPU'}); "
                             "use device='cpu'")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device {device!r}: this machine has {torch.cuda.device_count()} CUDA device(s), "
                             f"numbered 0..{torch.cuda.device_count() - 1}")
    try:  # any other backend: one empty allocation says whether it is usable
        torch.empty(0, device=dev)
    except Exception as exc:  # noqa: BLE001 - torch raises several types for a missing backend
        raise ValueError(f"device {device!r} is not available on this machine ({type(exc).__name__}); "
                         "use device='cpu'") from None
    return dev
