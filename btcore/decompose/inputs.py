"""What every fit checks and shares: input matrices and settings, the interleaved tensor, the error.

All fits work on the interleaved tensor T of order d with mode sizes M_k = I_k * J_k (the pair
(i_k, j_k) maps to i_k * J_k + j_k), in float64.

tensorly is not called by any fit: its backend is process-global and fits run in worker threads.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..shapes import pair_modes, prod

__all__ = ["as_matrix", "out_dtype", "fit_modes", "interleave", "relative_error", "check_nonneg", "check_seed",
           "check_dtype", "scale_of", "safe_norm", "DTYPES"]


# ----------------------------------------------------------------------------------------------
# Inputs
# ----------------------------------------------------------------------------------------------

def as_matrix(W, what: str = "W") -> torch.Tensor:
    """W as a float64 torch tensor (2-D, finite); numpy arrays and torch tensors accepted."""
    if isinstance(W, torch.Tensor):
        t = W.detach()
        if t.is_complex():
            raise ValueError(f"{what}: complex matrices are not supported; pass the real part")
        t = t.to(torch.float64)
    else:
        a = np.asarray(W)
        if a.dtype.kind not in "biuf":
            raise ValueError(f"{what}: expected a real numeric matrix, got dtype {a.dtype}")
        t = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float64))
    if t.dim() != 2:
        raise ValueError(f"{what}: expected a 2-D matrix (I, J), got shape {tuple(t.shape)}")
    if not bool(torch.isfinite(t).all()):
        bad = int((~torch.isfinite(t)).sum())
        raise ValueError(f"{what}: {bad:,} entries are NaN or infinite; clean or drop them before fitting")
    return t


def out_dtype(W, dtype) -> torch.dtype:
    """The dtype a fit returns: ``dtype`` if given, else float32 for float32 input, else float64."""
    dtype = check_dtype(dtype)
    if dtype is not None:
        return dtype
    if isinstance(W, torch.Tensor) and W.dtype == torch.float32:
        return torch.float32
    if isinstance(W, np.ndarray) and W.dtype == np.float32:
        return torch.float32
    return torch.float64


def fit_modes(W: torch.Tensor, in_modes, out_modes) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(in_modes, out_modes) checked against the shape of W, or a ValueError naming both."""
    i, o = pair_modes(in_modes, out_modes)
    if tuple(W.shape) != (prod(i), prod(o)):
        raise ValueError(
            f"W has shape {tuple(W.shape)} but the modes give {prod(i):,} x {prod(o):,} "
            f"({' x '.join(map(str, i))} -> {' x '.join(map(str, o))}); choose modes whose products are the "
            "matrix's sizes"
        )
    return i, o


def interleave(W, in_modes, out_modes, order=None):
    """W (I, J) as the order-d tensor over merged modes (I_1 J_1, .., I_d J_d).

    The pair (i_k, j_k) maps to index i_k * J_k + j_k of merged mode k; this is the tensor that the
    BT core and the TT cores describe. ``W`` may be a torch tensor (the result is a contiguous torch
    tensor of the same dtype and device) or a numpy array (the result is a numpy array). ``order``
    (a permutation of range(d)) lists the merged modes in another order, e.g. the internal one of
    :func:`fit_bt`.
    """
    in_modes, out_modes = tuple(in_modes), tuple(out_modes)
    d = len(in_modes)
    if len(out_modes) != d:
        raise ValueError(f"in_modes has {d} modes but out_modes has {len(out_modes)}; both need the same order d")
    if tuple(W.shape) != (prod(in_modes), prod(out_modes)):
        raise ValueError(f"W has shape {tuple(W.shape)} but the modes give (I, J) = ({prod(in_modes)}, "
                         f"{prod(out_modes)})")
    order = list(range(d)) if order is None else [int(k) for k in order]
    if sorted(order) != list(range(d)):
        raise ValueError(f"order must be a permutation of range({d}), got {order}")
    perm = [p for k in order for p in (k, d + k)]
    shape = [in_modes[k] * out_modes[k] for k in order]
    x = W.reshape(in_modes + out_modes)
    if isinstance(x, torch.Tensor):
        return x.permute(perm).reshape(shape).contiguous()
    return np.ascontiguousarray(np.transpose(x, perm)).reshape(shape)


def relative_error(W, M) -> float:
    """``||W - M.to_dense()|| / ||W||`` in float64 (Frobenius norms).

    ``M`` may be a :class:`BTMatrix`, a :class:`TTMatrix` or a dense matrix. A zero W gives 0.0 if M is
    zero too, else ``inf``.
    """
    Wt = as_matrix(W)
    if hasattr(M, "to_dense"):
        Md = M.to(dtype=torch.float64, device=Wt.device).to_dense().detach()
    else:
        Md = as_matrix(M, "M").to(Wt.device)
    if tuple(Md.shape) != tuple(Wt.shape):
        raise ValueError(f"W has shape {tuple(Wt.shape)} but M has shape {tuple(Md.shape)}")
    # both scaled by the larger entry first: squared norms of entries above ~1e154 overflow float64
    s = max(scale_of(Wt), scale_of(Md))
    if s == 0.0:
        return 0.0
    Ws, Ms = Wt / s, Md / s
    den = float(torch.linalg.norm(Ws))
    num = float(torch.linalg.norm(Ws - Ms))
    if den == 0.0:
        return 0.0 if num == 0.0 else math.inf
    return num / den


# ----------------------------------------------------------------------------------------------
# Settings and scale
# ----------------------------------------------------------------------------------------------

#: Output dtypes a fit can return.
DTYPES = (torch.float32, torch.float64)


def check_nonneg(value, field: str) -> float:
    """``value`` as a finite float >= 0, or a ValueError naming ``field``."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{field} must be a finite number >= 0, got {value!r}")
    v = float(value)
    if not math.isfinite(v) or v < 0:
        raise ValueError(f"{field} must be a finite number >= 0, got {value!r}")
    return v


def check_seed(seed) -> int | None:
    """``seed`` as an int in [0, 2**63) or None, or a ValueError naming ``seed``."""
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= int(seed) < 2**63:
        raise ValueError(f"seed must be None or an integer in [0, 2**63), got {seed!r}")
    return int(seed)


def check_dtype(dtype):
    """``dtype`` (None, a torch dtype or its name) as a supported torch dtype or None."""
    if dtype is None:
        return None
    d = getattr(torch, dtype, None) if isinstance(dtype, str) else dtype
    if d not in DTYPES:
        raise ValueError(f"dtype must be None, torch.float32 or torch.float64 (or 'float32'/'float64'), got {dtype!r}")
    return d


def scale_of(W: torch.Tensor) -> float:
    """max |W| (0.0 for an empty or zero W): fits work on W / scale_of(W), whose squared norms neither
    overflow (entries above ~1e154) nor underflow (below ~1e-163) in float64."""
    return float(W.abs().max()) if W.numel() else 0.0


def safe_norm(W: torch.Tensor) -> float:
    """Frobenius norm without overflow or underflow: max|W| * ||W / max|W|||."""
    s = scale_of(W)
    if s == 0.0 or not math.isfinite(s):
        return s
    return s * float(torch.linalg.norm(W / s))
