"""Tensor Ring (TR) matrices as tensors: the container :class:`TRMatrix` and TR-SVD.

The format (spec, counts, rank rules and the tensor network) is :mod:`btcore.formats.tr`; this module
holds the cores. ``x @ M`` and :func:`btcore.matmul` run the ring through the planner
(:mod:`btcore.contract`) like every other format: the ring scheme (:mod:`btcore.contract.schemes.ring`,
every step a GEMM on views, the closing bond carried like a batch dimension), the FLOP-optimal path,
or W formed first where the planner's cost model says so (``method="dense"`` / ``"auto"``), forward
and backward without forming W by default. TR-SVD (:func:`tr_svd`) is tensorly's ``tensor_ring`` on numpy arrays, never touching
tensorly's global backend.
"""

from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np
import opt_einsum
import torch

from .contract import matmul
from .formats.tr import TRSpec, normalize_tr_ranks
from .matrices import FactorizedMatrix, check_device, check_dtype, check_std, seeded_generator
from .memory import check_allocation, dtype_bytes
from .shapes import pair_modes, prod

__all__ = ["TRMatrix", "tr_matmul", "tr_init_std", "tr_frobenius_norm", "tr_svd", "check_dense", "interleaved",
           "grow_bonds"]


def tr_init_std(spec: "TRSpec", std: float) -> float:
    """Entry std of every TR core so the reconstructed matrix has entry std ``std``.

    An entry of W is a trace: a sum over all d bond indices of prod_k r_k products of d independent
    zero-mean entries, so Var(W) = prod(r) s^(2d) for a common std s.
    """
    return (std**2 / prod(spec.ranks)) ** (1.0 / (2 * spec.d))


def tr_frobenius_norm(cores) -> torch.Tensor:
    """``||W||_F`` of the TR-matrix with these cores, from transfer matrices (W is not formed).

    ||W||_F^2 = trace(prod_k E_k) with E_k = sum_{i,j} G_k[:, i, j, :] (x) G_k[:, i, j, :]; the chain is
    contracted as an environment of shape (r_0, r_0, r_k, r_k).
    """
    cores = list(cores)
    if len(cores) == 1:
        return torch.linalg.norm(torch.diagonal(cores[0], dim1=0, dim2=3).sum(-1))
    env = torch.einsum("aijb,cijd->acbd", cores[0], cores[0])
    for c in cores[1:]:
        env = opt_einsum.contract("acbd,bije,dijf->acef", env, c, c, backend="torch")
    return torch.einsum("abab->", env).clamp_min(0).sqrt()


def _check_cores(cores) -> list[torch.Tensor]:
    cores = list(cores)
    if not cores:
        raise ValueError("cores: need at least one core (one per mode)")
    for k, c in enumerate(cores):
        if not isinstance(c, torch.Tensor) or not c.is_floating_point() or c.is_complex():
            raise TypeError(f"TRMatrix: every core must be a real floating-point torch.Tensor, got "
                            f"{type(c).__name__ if not isinstance(c, torch.Tensor) else c.dtype} at {k}")
        if c.dim() != 4:
            raise ValueError(f"cores[{k}] must have shape (r_{k}, I_{k + 1}, J_{k + 1}, r_{k + 1}), got {tuple(c.shape)}")
    if len({c.dtype for c in cores}) > 1 or len({c.device for c in cores}) > 1:
        raise ValueError("TRMatrix: all cores need one dtype and one device, got "
                         f"{sorted({str(c.dtype) for c in cores} | {str(c.device) for c in cores})}")
    d = len(cores)
    for k in range(d):
        if cores[k].shape[3] != cores[(k + 1) % d].shape[0]:
            what = "the first core (the bond closing the ring)" if k == d - 1 else f"cores[{k + 1}]"
            raise ValueError(f"cores[{k}] ends with rank {cores[k].shape[3]} but {what} starts with "
                             f"{cores[(k + 1) % d].shape[0]}")
    return cores



class TRMatrix(FactorizedMatrix):
    """A TR-matrix: ``W[(i_1..i_d), (j_1..j_d)] = trace(G_1[:, i_1, j_1, :] .. G_d[:, i_d, j_d, :])``.

    Parameters
    ----------
    cores : sequence of d tensors
        ``cores[k]`` of shape (r_{k-1}, I_k, J_k, r_k), the last core's trailing rank equal to the
        first core's leading one.

    Examples
    --------
    >>> M = TRMatrix.random((4, 4), (4, 2), 2, seed=0, dtype=torch.float64)
    >>> x = torch.randn(5, 16, dtype=torch.float64)
    >>> torch.allclose(btcore.matmul(x, M), x @ M.to_dense())
    True
    """

    def __init__(self, cores: Sequence[torch.Tensor]):
        self.cores = _check_cores(cores)
        self.spec = TRSpec([c.shape[1] for c in self.cores], [c.shape[2] for c in self.cores],
                           [c.shape[3] for c in self.cores], max_bytes=None)

    @classmethod
    def random(cls, in_modes, out_modes, ranks, *, std: float = 1.0, seed: int | None = None,
               dtype: torch.dtype = torch.float32, device=None) -> "TRMatrix":
        """Gaussian cores scaled (:func:`tr_init_std`) so the dense matrix has entry std ``std``."""
        spec = TRSpec(in_modes, out_modes, ranks)
        std, dtype, device = check_std(std), check_dtype(dtype), check_device(device)
        check_allocation(spec.params * dtype_bytes(dtype), "the TR cores", "lower the ranks", device)
        s, g = tr_init_std(spec, std), seeded_generator(seed, device)
        return cls([torch.randn(shape, generator=g, dtype=dtype, device=device) * s for shape in spec.core_shapes()])

    @classmethod
    def from_dense(cls, W, in_modes, out_modes, ranks) -> "TRMatrix":
        """The TR-SVD of ``W`` (shape (I, J), y = x @ W) at most at ``ranks``, in W's dtype (float64 for numpy).

        Runs :func:`tr_svd` (tensorly's ``tensor_ring``) on the interleaved tensor; a bond that comes
        out smaller (a smaller unfolding) gets zero slices up to its rank (:func:`grow_bonds`). Exact for every W at
        :func:`btcore.formats.tr_exact_ranks`; :func:`btcore.fit_tr` adds ALS and reports the error.
        """
        dtype = W.dtype if isinstance(W, torch.Tensor) and W.is_floating_point() else torch.float64
        device = W.device if isinstance(W, torch.Tensor) else None
        spec = TRSpec(in_modes, out_modes, ranks)
        T = interleaved(check_dense(W, spec.in_modes, spec.out_modes), spec.in_modes, spec.out_modes)
        cores = grow_bonds(tr_svd(T, spec.ranks), spec.ranks)
        return cls([torch.from_numpy(c.reshape(c.shape[0], i, j, c.shape[2])).to(dtype=dtype, device=device)
                    for c, i, j in zip(cores, spec.in_modes, spec.out_modes)])

    def tensors(self) -> list[torch.Tensor]:
        """The operands in :meth:`TRSpec.network` order (d = 1: the traced core, (I, J))."""
        if self.spec.d == 1:
            return [torch.diagonal(self.cores[0], dim1=0, dim2=3).sum(-1)]
        return list(self.cores)

    def to(self, *args, **kwargs) -> "TRMatrix":
        return TRMatrix([c.to(*args, **kwargs) for c in self.cores])

    def __repr__(self) -> str:
        s = self.spec
        return (f"TRMatrix(in_modes={s.in_modes}, out_modes={s.out_modes}, ranks={s.ranks}, "
                f"params={s.params:,}, dtype={self.dtype})")


def tr_matmul(x: torch.Tensor, M: TRMatrix, **kwargs) -> torch.Tensor:
    """``x @ W`` for a :class:`TRMatrix` W: :func:`btcore.matmul` (the planner's scheme, W never formed by
    default), kept for callers of the TR module; ``kwargs`` (method, tune) go to it."""
    if not isinstance(M, TRMatrix):
        raise TypeError(f"M must be a TRMatrix, got {type(M).__name__}")
    return matmul(x, M, **kwargs)


def check_dense(W, in_modes, out_modes) -> np.ndarray:
    """``W`` (a torch tensor or array of shape (I, J), real and finite) as a float64 numpy array.

    Raises ``ValueError`` naming ``W`` and the fix (wrong shape for the modes, complex, NaN or inf).
    """
    i, o = pair_modes(in_modes, out_modes)
    if isinstance(W, torch.Tensor):
        if W.is_complex():
            raise ValueError("W: complex matrices are not supported; pass the real part")
        a = W.detach().cpu().to(torch.float64).numpy()
    else:
        a = np.asarray(W)
        if a.dtype.kind not in "biuf":
            raise ValueError(f"W: expected a real numeric matrix, got dtype {a.dtype}")
        a = a.astype(np.float64)
    if a.shape != (prod(i), prod(o)):
        raise ValueError(f"W has shape {a.shape} but the modes give (I, J) = ({prod(i):,}, {prod(o):,}) "
                         f"({' x '.join(map(str, i))} -> {' x '.join(map(str, o))}); choose modes whose products "
                         "are the matrix's sizes")
    bad = int((~np.isfinite(a)).sum())
    if bad:
        raise ValueError(f"W: {bad:,} entries are NaN or infinite; clean or drop them before fitting")
    return a


def interleaved(a: np.ndarray, in_modes, out_modes) -> np.ndarray:
    """The (I, J) array as the order-d tensor over merged modes I_k J_k (pair (i_k, j_k) -> i_k J_k + j_k)."""
    d = len(in_modes)
    t = np.transpose(a.reshape(tuple(in_modes) + tuple(out_modes)), [p for k in range(d) for p in (k, d + k)])
    return np.ascontiguousarray(t).reshape([i * j for i, j in zip(in_modes, out_modes)])


def tr_svd(T: np.ndarray, ranks, first: int | None = None) -> list[np.ndarray]:
    """TR-SVD of an order-d numpy tensor (tensorly's ``tensor_ring``, on numpy arrays).

    ``ranks`` are the d bond ranks (bond k after core k, the last closing the ring). TR-SVD starts
    at a core m (0-based ``first``) whose two bonds need r_{m-1} r_m <= the rank of the m-th
    unfolding; by default the first core where that holds (if none, or if ``first``'s bonds do not
    fit, its trailing bond is lowered to fit). Later bonds come out at most at their requested rank
    (smaller when an unfolding is smaller). Returns d numpy cores of shape (r_{k-1}, M_k, r_k).
    """
    # imported here, not at the top: tensorly takes seconds to import and only TR-SVD needs it
    import tensorly as tl
    from tensorly.decomposition import tensor_ring

    T = np.asarray(T, dtype=np.float64)
    d = T.ndim
    rk = list(normalize_tr_ranks(ranks, d))
    if d == 1:
        return [T.reshape(1, -1, 1).copy()]
    rho = [min(T.shape[m], T.size // T.shape[m]) for m in range(d)]
    mode = next((m for m in range(d) if rk[m - 1] * rk[m] <= rho[m]), 0) if first is None else first % d
    if rk[mode - 1] * rk[mode] > rho[mode]:
        rk[mode - 1] = min(rk[mode - 1], rho[mode])
        rk[mode] = max(1, min(rk[mode], rho[mode] // rk[mode - 1]))
    # Rotate by hand so core ``mode`` comes first: tensorly's own ``mode`` argument rotates its d+1
    # rank list as if it had d entries, which mixes up per-bond ranks.
    T = np.ascontiguousarray(np.transpose(T, [(mode + t) % d for t in range(d)]))
    rot = [rk[(mode + t) % d] for t in range(d)]
    tl_rank = [rot[-1]] + rot  # tensorly: rank[k] is core k's leading rank, rank[0] = rank[d]
    with warnings.catch_warnings():
        # tensorly warns that an order-2 tensor is "trivial"; the rank here is given, not determined
        warnings.filterwarnings("ignore", message="Determining the TR-rank")
        if tl.get_backend() == "numpy":
            factors = tensor_ring(T, tl_rank).factors
        else:  # another thread's choice of tensorly backend is left alone: this thread uses numpy
            with tl.backend_context("numpy", local_threadsafe=True):
                factors = tensor_ring(T, tl_rank).factors
    factors = [factors[(t - mode) % d] for t in range(d)]
    return [np.asarray(f, dtype=np.float64) for f in factors]


def grow_bonds(cores: Sequence[np.ndarray], ranks, rng: np.random.Generator | None = None) -> list[np.ndarray]:
    """Cores (r_{k-1}, M_k, r_k) grown to the bond ranks ``ranks`` without changing the tensor they give.

    A smaller bond gets new slices that are zero on the core after it, and zero (``rng`` None) or
    Gaussian at the core's scale on the core before it: every new term of the trace has a zero
    factor, and an ALS sweep can still use the new slices.
    """
    out = [np.array(c, dtype=np.float64) for c in cores]
    for k, want in enumerate(ranks):
        have, nxt = out[k].shape[2], (k + 1) % len(out)
        if have < want:
            new = (0.0 if rng is None else rng.standard_normal(out[k].shape[:2] + (want - have,))
                   * (float(np.abs(out[k]).max()) or 1.0))
            out[k] = np.concatenate([out[k], np.broadcast_to(new, out[k].shape[:2] + (want - have,))], axis=2)
            out[nxt] = np.concatenate([out[nxt], np.zeros((want - have,) + out[nxt].shape[1:])], axis=0)
    return out
