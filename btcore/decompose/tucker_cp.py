"""Tucker (HOOI) and CP (CP-ALS) fits: the Block-Term fit with one block, or with Tucker rank 1."""

from __future__ import annotations

from ..shapes import check_positive_int
from ..matrices import BTMatrix
from .bt import fit_bt
from .fitinfo import FitInfo

__all__ = ["fit_tucker", "fit_cp"]


def fit_tucker(W, in_modes, out_modes, rank, **kwargs) -> tuple[BTMatrix, FitInfo]:
    """Tucker fit (HOOI from an HOSVD start): :func:`fit_bt` with one block. ``restarts`` defaults to 1."""
    kwargs.setdefault("restarts", 1)
    return fit_bt(W, in_modes, out_modes, rank, 1, **kwargs)


def fit_cp(W, in_modes, out_modes, rank, **kwargs) -> tuple[BTMatrix, FitInfo]:
    """CP fit of rank ``rank`` (CP-ALS): :func:`fit_bt` with Tucker rank 1 and ``rank`` blocks.

    Unlike tensorly's ``parafac`` this stays fast at large rank (each sweep costs about
    2 * I * J * rank multiply-adds plus a rank x rank solve per mode).
    """
    return fit_bt(W, in_modes, out_modes, 1, check_positive_int(rank, "rank"), **kwargs)
