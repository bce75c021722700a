"""Argument checks shared by the layers, the recurrent models and the data loaders.

Each check returns the value in its canonical form or raises ``TypeError`` (wrong kind of value)
or ``ValueError`` (right kind, bad value) with a message naming the argument.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["check_tensor", "check_dropout", "check_matrix"]


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
