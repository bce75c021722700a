"""Helpers on a Block-Term model shared by its solvers (ALS, Gauss-Newton, the algebraic starts).

A BT model of a tensor T (M_1, .., M_d) with N blocks of Tucker rank (R_1, .., R_d) is held as factors
``U[k]`` of shape (N, M_k, R_k) and cores ``C`` of shape (N, R_1, .., R_d):
``model = sum_n C_n x_1 U_n^(1) .. x_d U_n^(d)``. Index letters: modes ``MODE``, ranks ``RANK`` (and
``RANK2`` for a second rank index), blocks ``BLOCK`` (and ``BLOCK2``).
"""

from __future__ import annotations

from typing import Sequence

import opt_einsum
import torch

__all__ = ["MODE", "RANK", "RANK2", "BLOCK", "BLOCK2", "bt_dense", "bt_gradient", "project_modes",
           "orthonormalize", "cached_einsum", "lstsq"]

MODE = "abcdefgh"   # mode letters M_k
RANK = "qrstuvwx"   # rank letters R_k
RANK2 = "ijklmnop"  # second rank letters
BLOCK, BLOCK2 = "z", "y"
_M, _R, _S, _N1 = MODE, RANK, RANK2, BLOCK


def bt_dense(U: Sequence[torch.Tensor], C: torch.Tensor) -> torch.Tensor:
    """sum_n C_n x_1 U_n^(1) .. x_d U_n^(d): shape (M_1, .., M_d)."""
    d = len(U)
    X, lab = C, _N1 + _R[:d]
    for k in range(d):
        out = lab.replace(_R[k], _M[k])
        if k == d - 1:
            out = out.replace(_N1, "")
        X = torch.einsum(f"{lab},{_N1}{_M[k]}{_R[k]}->{out}", X, U[k])
        lab = out
    return X


def project_modes(X: torch.Tensor, lab: str, U, modes) -> tuple[torch.Tensor, str]:
    """Contract the mode letters ``modes`` of X (labels ``lab``) with each block's factor U[j]^T."""
    for j in modes:
        out = lab.replace(_M[j], _R[j])
        if _N1 not in out:
            out = _N1 + out
        X = torch.einsum(f"{lab},{_N1}{_M[j]}{_R[j]}->{out}", X, U[j])
        lab = out
    return X, lab


def bt_gradient(Rt: torch.Tensor, U, C) -> tuple[list, torch.Tensor]:
    """J^T r for the residual Rt = model - T: factor parts (N, M_k, R_k) and core part (N, R..).

    Two-level dimension tree: the residual is contracted once over each half of the modes.
    """
    d = Rt.dim()
    h = (d + 1) // 2
    groups = [g for g in (list(range(h)), list(range(h, d))) if g]
    gU = [None] * d
    gC = None
    core_lab = _N1 + _R[:d]
    for group in groups:
        other = [j for j in range(d) if j not in group]
        # the mode with the largest reduction first (one GEMM over all blocks)
        other.sort(key=lambda j: -Rt.shape[j] / U[j].shape[2])
        X, lab = project_modes(Rt, _M[:d], U, other)
        for k in group:
            Xk, labk = project_modes(X, lab, U, [j for j in group if j != k])
            src = core_lab.replace(_R[k], _S[k])
            gU[k] = torch.einsum(f"{labk},{src}->{_N1}{_M[k]}{_S[k]}", Xk, C)
            if gC is None:
                Xc, labc = project_modes(Xk, labk, U, [k])
                gC = torch.einsum(f"{labc}->{core_lab}", Xc)
    if gC is None:  # pragma: no cover - d >= 1 always sets it
        raise RuntimeError("no modes")
    return gU, gC


def orthonormalize(U, C):
    """QR every factor per block and fold the triangles into the cores (the model is unchanged)."""
    d = len(U)
    Un = []
    for k in range(d):
        Q, Rt = torch.linalg.qr(U[k])
        # sign convention: positive diagonal (continuity between iterations)
        s = torch.sign(torch.diagonal(Rt, dim1=-2, dim2=-1))
        s = torch.where(s == 0, torch.ones_like(s), s)
        Q = Q * s.unsqueeze(-2)
        Rt = Rt * s.unsqueeze(-1)
        cl = _N1 + _R[:d]
        C = torch.einsum(f"{_N1}{_S[k]}{_R[k]},{cl}->{cl.replace(_R[k], _S[k])}", Rt, C)
        Un.append(Q.contiguous())
    return Un, C.contiguous()


_EXPR_CACHE: dict = {}


def cached_einsum(eq: str, *ops: torch.Tensor) -> torch.Tensor:
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


def lstsq(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """The least-squares solution X of A X = B by a LAPACK driver that repeats bit for bit.

    torch's CPU default, MKL's ``gelsy`` (QR with column pivoting), gives different last bits from
    call to call on the same input (21-40 of 40 calls on 12 x 12 to 40 x 40 systems), which made fits
    that reach it differ run to run; ``gelsd`` (SVD) gives the same bits every time.
    """
    return torch.linalg.lstsq(A, B, driver="gelsd" if A.device.type == "cpu" else None).solution
