"""Tucker (HOOI) and CP (CP-ALS) fits: the Block-Term fit with one block, or with Tucker rank 1."""

from __future__ import annotations

from ..shapes import check_positive_int
from ..matrices import BTMatrix
from .bt import fit_bt
from .fitinfo import FitInfo
from .settings import FitSettings, for_format

__all__ = ["fit_tucker", "fit_cp"]


def fit_tucker(W, in_modes, out_modes, rank, *, settings: FitSettings | None = None,
               **kwargs) -> tuple[BTMatrix, FitInfo]:
    """Tucker fit (HOOI from an HOSVD start on the full tensor): :func:`fit_bt` with one block.

    ``settings`` are adapted by :func:`~btcore.decompose.settings.for_format` (one start, ALS, no
    compression, at least 100 sweeps); keywords (any :class:`FitSettings` field) override that.
    """
    return fit_bt(W, in_modes, out_modes, rank, 1, settings=for_format(settings, "Tucker"), **kwargs)


def fit_cp(W, in_modes, out_modes, rank, *, settings: FitSettings | None = None,
           **kwargs) -> tuple[BTMatrix, FitInfo]:
    """CP fit of rank ``rank`` (CP-ALS): :func:`fit_bt` with Tucker rank 1 and ``rank`` blocks.

    ``settings`` are adapted by :func:`~btcore.decompose.settings.for_format` (HOSVD and random starts, ALS,
    at least 500 sweeps, tolerance 1e-8); keywords (any :class:`FitSettings` field) override that.
    Each sweep costs about 2 * I * J * rank multiply-adds plus a rank x rank solve per mode.
    """
    return fit_bt(W, in_modes, out_modes, 1, check_positive_int(rank, "rank"),
                  settings=for_format(settings, "CP"), **kwargs)
