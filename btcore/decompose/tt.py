"""TT-matrix fit by TT-SVD (:func:`fit_tt`) and TT rank capping (:func:`cap_tt_ranks`).

The TT-SVD here is the same algorithm as tensorly's ``tensor_train_matrix`` (the tests compare them);
tensorly is not called because its backend is process-global and fits run in worker threads.
"""

from __future__ import annotations

import math
import time
import warnings

import torch

from ..formats import TTSpec, normalize_ranks, tt_rank_caps
from ..shapes import check_modes
from ..matrices import TTMatrix
from ..memory import check_allocation
from .fitinfo import AT_PRECISION, EXACT_BELOW, FitInfo
from .inputs import as_matrix, fit_modes, interleave, out_dtype, scale_of

__all__ = ["fit_tt", "cap_tt_ranks"]


def cap_tt_ranks(in_modes, out_modes, ranks) -> tuple[tuple[int, ...], list[str]]:
    """All d+1 TT ranks (r_0 = r_d = 1) with each inner rank capped at min(prod left M, prod right M).

    ``ranks`` is one int, the d-1 inner ranks or all d+1 ranks. Returns ``(ranks, notes)``.
    """
    i = check_modes(in_modes, "in_modes")
    o = check_modes(out_modes, "out_modes")
    inner = normalize_ranks(ranks, len(i), tt=True)
    caps = tt_rank_caps(i, o)
    out = tuple(min(r, c) for r, c in zip(inner, caps))
    notes = [f"TT rank {k + 1} capped from {r} to {c}, the largest useful rank between cores {k + 1} and {k + 2}"
             for k, (r, c) in enumerate(zip(inner, caps)) if r > c]
    return TTSpec(i, o, out, max_bytes=None).ranks, notes


def fit_tt(W, in_modes, out_modes, ranks, *, dtype=None, warn: bool = True) -> tuple[TTMatrix, FitInfo]:
    """TT-matrix fit by TT-SVD (sequential truncated SVDs of the interleaved tensor).

    ``ranks``: one int, the d-1 inner ranks, or all d+1 ranks. Ranks above the largest useful ones
    are capped (``info.notes``). Same algorithm as tensorly's ``tensor_train_matrix``; quasi-optimal
    (error at most sqrt(d-1) times the best TT error) and exact when W has TT structure.
    """
    t0 = time.perf_counter()
    odt = out_dtype(W, dtype)
    Wt = as_matrix(W)
    im, om = fit_modes(Wt, in_modes, out_modes)
    d = len(im)
    requested = (1,) + normalize_ranks(ranks, d, tt=True) + (1,)
    rk, notes = cap_tt_ranks(im, om, ranks)
    if notes and warn:
        warnings.warn("; ".join(notes), UserWarning, stacklevel=2)
    check_allocation(8 * 3 * Wt.numel(), f"TT-SVD of a {Wt.shape[0]:,} x {Wt.shape[1]:,} matrix",
                     "use a smaller matrix", Wt.device)
    # work on W / max|W|: squared norms of W itself overflow above ~1e154 and underflow below ~1e-163
    scale = scale_of(Wt)
    if scale > 0:
        Wt = Wt / scale
    norm = float(torch.linalg.norm(Wt))
    T = interleave(Wt, im, om)
    sizes = [i * j for i, j in zip(im, om)]
    cores, r_prev = [], 1
    rest = T.reshape(sizes[0], -1)
    actual = [1]
    discarded = 0.0
    for k in range(d - 1):
        rest = rest.reshape(r_prev * sizes[k], -1)
        U, S, Vh = torch.linalg.svd(rest, full_matrices=False)
        r = min(rk[k + 1], S.shape[0])
        discarded += float((S[r:] ** 2).sum())
        cores.append(U[:, :r].reshape(r_prev, im[k], om[k], r))
        rest = S[:r, None] * Vh[:r]
        r_prev = r
        actual.append(r)
    cores.append(rest.reshape(r_prev, im[-1], om[-1], 1))
    actual.append(1)
    out = [c * scale if k == 0 and scale > 0 else c for k, c in enumerate(cores)]
    M = TTMatrix([c.to(odt) for c in out])
    if norm == 0:
        err = 0.0
    else:
        err = math.sqrt(discarded) / norm
        if err < EXACT_BELOW * 10:
            dense = TTMatrix(cores).to_dense()
            err = float(torch.linalg.norm(Wt - dense)) / norm
    info = FitInfo(format="TT", method="TT-SVD", relative_error=err, errors=[err], iterations=0,
                   total_iterations=0, seconds=time.perf_counter() - t0, converged=True, reason="direct",
                   at_precision=err < AT_PRECISION, ranks=tuple(actual), blocks=None, params=M.num_params,
                   requested_ranks=tuple(requested), notes=notes,
                   spec=TTSpec(im, om, tuple(actual), max_bytes=None))
    return M, info
