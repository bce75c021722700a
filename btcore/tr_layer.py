"""A Tensor Ring linear layer, :class:`TRLinear`: ``y = x @ W + b`` with W a TR-matrix, never formed.

Conventions as :class:`btcore.TTLinear`: W has shape (I, J) = (in_features, out_features),
``y = x @ W + b`` (``nn.Linear.weight`` is W.T; :meth:`TRLinear.from_linear` transposes for you).

Initialisation
--------------
``reset_parameters`` gives W the entry variance of PyTorch's default ``nn.Linear`` init for the same
fan-in (std :func:`btcore.layers.linear_init_std`, 1/sqrt(3 I)). Every core is drawn with entry std
:func:`btcore.ring.tr_init_std` (Var(W) = prod(r) s^(2d)); one draw has that variance only in
expectation (a ring of small ranks fluctuates by a factor of two or more), so the cores are then
rescaled together until the realized ``||W||_F^2`` is exactly ``I J std^2``. The norm comes from
transfer matrices (a chain of (r_0 r_0) x (r_k r_k) environments), so W is not formed; where that
environment would exceed :data:`EXACT_NORM_ENTRIES` entries the draw is kept as it is.
"""

from __future__ import annotations

import math

import opt_einsum
import torch
from torch import nn

from .decompose.tr import fit_tr
from .layers import linear_init_std
from .formats import TRSpec, tr_exact_ranks
from .ring import TRMatrix, tr_init_std, tr_matmul
from .shapes import check_choice
from .memory import check_allocation, dtype_bytes

__all__ = ["TRLinear", "EXACT_NORM_ENTRIES", "tr_frobenius_norm"]

#: Largest transfer-matrix environment (entries) used to rescale an initial draw to the exact norm.
EXACT_NORM_ENTRIES = 2**22


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


def _check_flag(value, field: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{field} must be True or False, got {value!r}")
    return value


class TRLinear(nn.Module):
    """``y = x @ W + b`` with W (I, J) a Tensor Ring matrix, never formed.

    Parameters
    ----------
    in_modes, out_modes : sequence of int
        I_1..I_d and J_1..J_d; in_features = prod(in_modes), out_features = prod(out_modes).
    ranks : int or sequence of int
        One int for all d bonds, the d bond ranks (the last closes the ring), or d+1 with r_0 = r_d
        (validated by :class:`btcore.ring.TRSpec`).
    bias : bool
        Add a learnable bias of size out_features.
    method : {"contract", "dense"}
        "contract" (default) runs :func:`btcore.ring.tr_matmul`; "dense" forms W first (small layers).
    device, dtype : optional
        As for ``nn.Linear``.

    Attributes
    ----------
    cores : nn.ParameterList
        ``cores[k]`` of shape (r_{k-1}, I_k, J_k, r_k).
    bias : nn.Parameter or None

    Examples
    --------
    >>> layer = TRLinear((8, 20, 20, 18), (16, 4, 4, 4), (2, 3, 4, 3), bias=False)
    >>> layer.num_params
    3072
    """

    matrix_type = TRMatrix

    def __init__(self, in_modes, out_modes, ranks, bias: bool = True, *, method: str = "contract", device=None,
                 dtype=None):
        super().__init__()
        self.spec = TRSpec(in_modes, out_modes, ranks)
        self.method = check_choice(method, ("contract", "dense"), "method")
        bias = _check_flag(bias, "bias")
        largest = max(math.prod(s) for s in self.spec.core_shapes())
        size = dtype_bytes(dtype if dtype is not None else torch.get_default_dtype())
        check_allocation(self.spec.params * size + 2 * 8 * largest, "initialising this TR layer", "lower the ranks")
        factory = {"device": device, "dtype": dtype}
        self.cores = nn.ParameterList([nn.Parameter(torch.empty(s, **factory)) for s in self.spec.core_shapes()])
        if bias:
            self.bias = nn.Parameter(torch.empty(self.spec.out_size, **factory))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    in_modes = property(lambda self: self.spec.in_modes)
    out_modes = property(lambda self: self.spec.out_modes)
    in_features = property(lambda self: self.spec.in_size)
    out_features = property(lambda self: self.spec.out_size)
    ranks = property(lambda self: self.spec.ranks)

    @property
    def num_params(self) -> int:
        """Trainable parameters: the format's (``spec.params``) plus the bias."""
        return sum(p.numel() for p in self.parameters())

    @property
    def compression(self) -> float:
        """Dense weight entries (I * J) per factorized weight parameter (bias not counted)."""
        return self.spec.compression

    @property
    def init_std(self) -> float:
        """Entry std of W at init: that of ``nn.Linear`` with the same fan-in."""
        return linear_init_std(self.in_features)

    def reset_parameters(self, std: float | None = None, generator: torch.Generator | None = None) -> None:
        """Re-initialise so W has entry std ``std`` (default: ``nn.Linear``'s, 1/sqrt(3 I)); bias as ``nn.Linear``.

        Draws from ``generator`` (default: the global torch RNG). Cores are Gaussian with entry std
        ``tr_init_std(spec, std)``, then rescaled together so the realized ``||W||_F`` is exactly
        ``sqrt(I J) std`` (see the module docstring).
        """
        spec = self.spec
        if std is None:
            std = self.init_std
        elif isinstance(std, bool) or not isinstance(std, (int, float)) or not math.isfinite(std) or std < 0:
            raise ValueError(f"std must be a finite number >= 0 (or None for nn.Linear's), got {std!r}")
        s = tr_init_std(spec, float(std)) if std > 0 else 0.0
        cores = [torch.randn(shape, dtype=torch.float64, generator=generator) * s for shape in spec.core_shapes()]
        r0, rmax = spec.ranks[-1], max(spec.ranks)
        if std > 0 and (r0 * rmax) ** 2 <= EXACT_NORM_ENTRIES:
            got = float(tr_frobenius_norm(cores))
            if got > 0:
                factor = (math.sqrt(spec.in_size * spec.out_size) * std / got) ** (1.0 / spec.d)
                cores = [c * factor for c in cores]
        with torch.no_grad():
            for p, c in zip(self.cores, cores):
                p.copy_(c)
            if self.bias is not None:
                bound = 1.0 / math.sqrt(self.in_features)
                self.bias.uniform_(-bound, bound, generator=generator)

    def to_matrix(self) -> TRMatrix:
        """The layer's W as a :class:`~btcore.ring.TRMatrix` over its parameters (differentiable)."""
        return TRMatrix(list(self.cores))

    def weight_matrix(self) -> torch.Tensor:
        """The dense (I, J) matrix W (memory-checked; for inspection, not for the forward pass)."""
        return self.to_matrix().to_dense()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 0 or x.shape[-1] != self.in_features:
            raise ValueError(f"{type(self).__name__}: input's last dimension is {tuple(x.shape)[-1:] or '()'}, "
                             f"expected in_features = {self.in_features}")
        M = self.to_matrix()
        y = x @ M.to_dense() if self.method == "dense" else tr_matmul(x, M)
        return y + self.bias if self.bias is not None else y

    def extra_repr(self) -> str:
        s = self.spec
        return (f"in_modes={s.in_modes}, out_modes={s.out_modes}, ranks={s.ranks}, bias={self.bias is not None}, "
                f"params={self.num_params:,}, compression={s.compression:,.1f}x")

    @classmethod
    def from_matrix(cls, M: TRMatrix, bias=None, **kwargs) -> "TRLinear":
        """A layer holding copies of a :class:`~btcore.ring.TRMatrix`'s cores.

        ``bias``: a tensor of shape (out_features,) is copied, ``True`` gives a zero bias, ``None`` or
        ``False`` no bias. ``kwargs`` (method, device, dtype) go to the constructor; device and dtype
        default to the matrix's.
        """
        if not isinstance(M, TRMatrix):
            raise ValueError(f"M must be a TRMatrix, got {type(M).__name__}")
        kwargs.setdefault("dtype", M.dtype)
        kwargs.setdefault("device", M.device)
        want = cls._want_bias(bias, M.spec.out_size)
        layer = cls(M.spec.in_modes, M.spec.out_modes, M.spec.ranks, bias=want, **kwargs)
        with torch.no_grad():
            for p, c in zip(layer.cores, M.cores):
                p.copy_(c.detach())
            if isinstance(bias, torch.Tensor):
                layer.bias.copy_(bias.detach().to(layer.bias))
            elif want:
                layer.bias.zero_()
        return layer

    @staticmethod
    def _want_bias(bias, out_features: int) -> bool:
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

    @classmethod
    def from_dense(cls, weight: torch.Tensor, in_modes, out_modes, ranks=None, bias=None,
                   **fit_kwargs) -> "TRLinear":
        """A layer whose W approximates ``weight`` (shape (I, J), y = x @ W), by :func:`btcore.decompose.tr.fit_tr`.

        ``ranks=None`` means :func:`btcore.ring.tr_exact_ranks`, where TR-SVD is exact for every W.
        ``fit_kwargs`` go to the fit; its report is in ``layer.fit_info``. ``bias`` as for
        :meth:`from_matrix`.
        """
        if not isinstance(weight, torch.Tensor) or weight.dim() != 2 or not weight.is_floating_point():
            raise ValueError(f"weight must be a 2-D floating-point torch.Tensor (I, J), got "
                             f"{tuple(weight.shape) if isinstance(weight, torch.Tensor) else type(weight).__name__}")
        spec = TRSpec(in_modes, out_modes, 1, max_bytes=None)
        if tuple(weight.shape) != spec.shape:
            hint = (" It looks transposed: btcore uses W of shape (in, out) with y = x @ W; pass weight.T or use "
                    "TRLinear.from_linear") if tuple(weight.shape) == spec.shape[::-1] else ""
            raise ValueError(f"weight has shape {tuple(weight.shape)} but the modes give (I, J) = {spec.shape}.{hint}")
        cls._want_bias(bias, spec.out_size)  # reject a bad bias before fitting
        if ranks is None:
            ranks = tr_exact_ranks(spec.in_modes, spec.out_modes)
        ranks = TRSpec(in_modes, out_modes, ranks).ranks  # valid ranks within the size limit
        M, info = fit_tr(weight.detach(), spec.in_modes, spec.out_modes, ranks, **({"warn": False} | fit_kwargs))
        layer = cls.from_matrix(M.to(dtype=weight.dtype, device=weight.device), bias=bias)
        layer.fit_info = info
        return layer

    @classmethod
    def from_linear(cls, linear: nn.Linear, in_modes, out_modes, *args, **kwargs) -> "TRLinear":
        """A layer approximating ``linear`` (W = linear.weight.T); its bias is copied when it has one."""
        if not isinstance(linear, nn.Linear):
            raise ValueError(f"linear must be an nn.Linear, got {type(linear).__name__}")
        kwargs.setdefault("bias", None if linear.bias is None else linear.bias.detach())
        return cls.from_dense(linear.weight.detach().T, in_modes, out_modes, *args, **kwargs)
