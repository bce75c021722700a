"""What every fit shares: the result record, input checks, the interleaved tensor, the error.

All fits work on the interleaved tensor T of order d with mode sizes M_k = I_k * J_k (the pair
(i_k, j_k) maps to i_k * J_k + j_k), in float64, and return ``(matrix, info)``: a
:class:`~btcore.BTMatrix` or :class:`~btcore.TTMatrix` of torch tensors and a :class:`FitInfo`.

tensorly is not called by any fit: its backend is process-global and fits run in worker threads.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import opt_einsum
import torch

from ..shapes import pair_modes, prod

__all__ = ["FitInfo", "AT_PRECISION", "STATUSES", "interleave", "relative_error", "safe_norm"]

#: Values of :attr:`FitInfo.status`.
STATUSES = ("converged", "stalled", "max_iter", "stopped")
#: Relative errors below this are "at numerical precision" (float64): differences between formats
#: there mean nothing.
AT_PRECISION = 1e-8
#: Gram-formula errors below this are recomputed from the explicit residual: the Gram formula
#: ||T||^2 - 2<B, C> + <C, A C> loses about 1e-13 absolute to rounding on tensors of 1e6-1e7 entries.
_EXACT_BELOW = 1e-3


# ----------------------------------------------------------------------------------------------
# Result record
# ----------------------------------------------------------------------------------------------

@dataclass
class FitInfo:
    """What a fit did (read its attributes: ``info.relative_error``; :meth:`to_dict` for a plain dict).

    Attributes
    ----------
    format : str
        "BT", "Tucker", "CP" or "TT".
    method : str
        What ran: "ALS", "NLS", "ALS+NLS" (ALS starts handed over to Gauss-Newton), "TT-SVD" or "exact"
        (:meth:`btcore.BTLinear.from_dense` at full rank: identity factors, no fit).
    relative_error : float
        Final ||W - M|| / ||W||, computed from the explicit residual when small.
    errors : list of float
        Relative error per iteration of the kept run; ``errors[0]`` is the start, and the list never
        increases. The last entry equals ``relative_error`` (exact); entries of sweeps on large
        tensors above 1e-6 come from Gram formulas (about 1e-12 absolute in the squared error).
        TT-SVD has one entry.
    iterations : int
        ALS sweeps of the kept run (0 for TT-SVD).
    total_iterations : int
        Sweeps over all starts (screening included).
    seconds : float
        Wall time of the whole fit.
    converged : bool
        ``status == "converged"``: a first-order criterion holds at the result (the gradient norm of
        0.5 ||W - M||^2 is below ``gtol`` ||W||^2, or the error is at numerical precision), and the
        run was not cut off while its error still fell by more than 1% over its last 10 iterations;
        direct methods (TT-SVD) are converged by construction. A first-order point can be a local
        minimum: "converged" says the fit stopped for the right reason, not that no lower error exists.
    status : str
        One of :data:`STATUSES`: "converged"; "stalled" (the error stopped falling while the gradient is
        not small: a swamp or a poor local minimum; more restarts or ``method="nls"`` may help);
        "max_iter" (an iteration or time cap ended the fit while it was still improving); "stopped"
        (``should_stop``).
    reason : str
        The detailed stop reason: "first-order", "at numerical precision", "stalled", "max_iter",
        "stopped" or "direct" (TT-SVD, and the exact full-rank BT copy).
    phases : list of (str, int, int)
        (method, first, last) per phase of the kept run: ``errors[first..last]`` were made by
        ``method`` ("ALS" or "NLS"), ``errors[first]`` being the phase's start.
    grad_norm : float
        ||gradient of 0.5 ||W - M||^2|| / ||W||^2 at the result (NaN when not computed: at numerical
        precision, or a direct method).
    at_precision : bool
        ``relative_error`` < :data:`AT_PRECISION`: the fit is exact to float64 precision.
    ranks, blocks, params
        The fitted format (ranks after capping; TT: all d+1 ranks; blocks None for TT).
    spec : BTSpec or TTSpec or None
        The fitted format as a spec (the same ranks and blocks), for describing the result
        (:func:`btcore.formats.describe`) without rebuilding it; None for a record made by hand.
    requested_ranks : tuple
        The ranks asked for, normalised (per mode for BT; all d+1 for TT) but not capped.
    notes : list of str
        Messages for the user (capped ranks, ...).
    start_kinds, start_errors : list
        The starts that were screened ("hosvd"/"random") and their errors after screening.
    chosen_start : int
        Index of the start that was continued.
    """

    format: str
    method: str
    relative_error: float
    errors: list = field(default_factory=list)
    iterations: int = 0
    total_iterations: int = 0
    seconds: float = 0.0
    converged: bool = False
    reason: str = ""
    status: str = "converged"
    at_precision: bool = False
    ranks: tuple = ()
    blocks: int | None = None
    params: int = 0
    requested_ranks: tuple = ()
    notes: list = field(default_factory=list)
    start_kinds: list = field(default_factory=list)
    start_errors: list = field(default_factory=list)
    chosen_start: int = 0
    spec: object = None
    phases: list = field(default_factory=list)
    grad_norm: float = math.nan

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def history(self) -> list:
        """The error per iteration (an alias of :attr:`errors`, aligned with :attr:`phases`)."""
        return self.errors

    @property
    def error_text(self) -> str:
        """The final error for display ("at numerical precision" when below :data:`AT_PRECISION`)."""
        if self.at_precision:
            return f"{self.relative_error:.1e} (at numerical precision)"
        if self.status == "stalled":
            return f"{self.relative_error:.4g} (stalled: more restarts may lower it)"
        return f"{self.relative_error:.4g}"


# ----------------------------------------------------------------------------------------------
# Inputs
# ----------------------------------------------------------------------------------------------

def _as_matrix(W, what: str = "W") -> torch.Tensor:
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


def _out_dtype(W, dtype) -> torch.dtype:
    dtype = check_dtype(dtype)
    if dtype is not None:
        return dtype
    if isinstance(W, torch.Tensor) and W.dtype == torch.float32:
        return torch.float32
    if isinstance(W, np.ndarray) and W.dtype == np.float32:
        return torch.float32
    return torch.float64


def _modes(W: torch.Tensor, in_modes, out_modes) -> tuple[tuple[int, ...], tuple[int, ...]]:
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
    Wt = _as_matrix(W)
    if hasattr(M, "to_dense"):
        Md = M.to(dtype=torch.float64, device=Wt.device).to_dense().detach()
    else:
        Md = _as_matrix(M, "M").to(Wt.device)
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
# Shared einsum path cache
# ----------------------------------------------------------------------------------------------

_EXPR_CACHE: dict = {}


def _einsum(eq: str, *ops: torch.Tensor) -> torch.Tensor:
    """einsum along an opt_einsum path computed once per (equation, shapes)."""
    if len(ops) <= 2:
        return torch.einsum(eq, *ops)
    key = (eq,) + tuple(tuple(o.shape) for o in ops)
    expr = _EXPR_CACHE.get(key)
    if expr is None:
        if len(_EXPR_CACHE) > 2048:
            _EXPR_CACHE.clear()
        expr = opt_einsum.contract_expression(eq, *[tuple(o.shape) for o in ops], optimize="dp")
        _EXPR_CACHE[key] = expr
    return expr(*ops, backend="torch")



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
