"""Factorized linear layers: :class:`BTLinear` (Block-Term), :class:`TTLinear` (TT-matrix), :class:`TRLinear` (ring).

All are drop-in replacements for ``nn.Linear(in_features, out_features)`` whose weight is never
formed: ``forward`` is :func:`btcore.matmul` (the cached contraction path) plus a bias.

Conventions (shared with the rest of ``btcore``): the layer's matrix W has shape (I, J) =
(in_features, out_features) and ``y = x @ W + b``. PyTorch's ``nn.Linear.weight`` is (out, in) =
W.T; :meth:`from_linear` does the transpose for you.

Initialisation
--------------
``reset_parameters`` makes the reconstructed W have the entry variance of PyTorch's default
``nn.Linear`` init for the same fan-in, ``1 / (3 * in_features)`` (std ``1/sqrt(3 I)``), so the output
of a unit-variance input has the same std as the dense layer's (about 0.58). Every factor and core
gets the entry std of :func:`btcore.matrices.bt_init_std` / :func:`~btcore.matrices.tt_init_std`
(derived from the ranks, N and d, as t3f does for TT). Plain Gaussian draws have that variance only
in expectation: with small ranks the realized ``||W||`` of one draw fluctuates by a factor of two or
more (a rank-1 core is a single number). So the draws are made semi-orthogonal with exactly that
entry RMS:

* BT: the unfolded factors ``A_n^(k)`` (I_k J_k x R_k) get orthogonal columns of equal norm, jointly
  over the blocks where ``N * R_k <= I_k J_k`` (so different blocks are orthogonal); each core is a
  Gaussian draw rescaled to RMS exactly ``s``. Then ``||W||_F^2`` is exactly ``I * J * std^2``
  whenever some mode allows the joint draw.
* TT: cores 1..d-1 are left-orthogonal (unfolding (r_{k-1} I_k J_k) x r_k with orthogonal columns),
  the last core a rescaled Gaussian; again ``||W||_F^2 = I * J * std^2`` exactly.
* TR: Gaussian cores at :func:`btcore.ring.tr_init_std`, rescaled together to the exact ``||W||_F``.

Bias: uniform(-1/sqrt(I), 1/sqrt(I)), as ``nn.Linear``. Layers made from existing weights
(:meth:`~BTLinear.from_dense`, :meth:`~BTLinear.from_linear`, :meth:`~BTLinear.from_matrix`) have a bias
only when the source has one (or ``bias=`` is given), so their ``num_params`` is the format's alone
for a bias-free source.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from . import decompose
from .checks import check_device
from .contract import matmul
from .decompose import FitInfo, interleave
from .formats import BTSpec, TRSpec, TTSpec, tr_exact_ranks, tt_rank_caps
from .decompose.tr import fit_tr
from .layer_init import (check_flag, check_init_std, check_method, check_weight, linear_init_std, rms_gaussian,
                         semi_orthogonal, want_bias)
from .matrices import BTMatrix, TTMatrix, bt_init_std, tt_init_std
from .memory import check_allocation, dtype_bytes
from .ring import TRMatrix, tr_frobenius_norm, tr_init_std

__all__ = ["FactorizedLinear", "CoresLinear", "BTLinear", "TTLinear", "TRLinear", "LAYERS", "CONTAINERS", "MAX_PARAMS_RATIO",
           "EXACT_NORM_ENTRIES"]



def _check_init_memory(spec, dtype) -> None:
    """One budget (:func:`btcore.memory.check_allocation`) for the parameters and the float64
    draws of the initialisation (two copies of the largest tensor), before anything is allocated."""
    shapes = spec.factor_shapes() + [spec.core_shape] if isinstance(spec, BTSpec) else spec.core_shapes()
    largest = max(math.prod(s) for s in shapes)
    size = dtype_bytes(dtype if dtype is not None else torch.get_default_dtype())
    check_allocation(spec.params * size + 2 * 8 * largest, f"initialising this {spec.kind} layer",
                     "lower the ranks or the number of blocks")


#: A factorized layer may have at most this many times the parameters of the dense matrix it
#: replaces, unless ``allow_larger=True``: a larger one compresses nothing and is usually a typo.
MAX_PARAMS_RATIO = 100


def _check_size(spec, allow_larger) -> None:
    """Refuse a layer with more than :data:`MAX_PARAMS_RATIO` times the dense matrix's parameters."""
    dense = spec.in_size * spec.out_size
    if not check_flag(allow_larger, "allow_larger") and spec.params > MAX_PARAMS_RATIO * dense:
        raise ValueError(
            f"this {spec.kind} layer would have {spec.params:,} parameters, {spec.params / dense:,.0f}x the {dense:,} "
            f"of the dense {spec.in_size:,} x {spec.out_size:,} matrix it replaces (at most {MAX_PARAMS_RATIO}x "
            "without allow_larger=True); lower the ranks or the number of blocks, or pass allow_larger=True")



class FactorizedLinear(nn.Module):
    """Shared behaviour of :class:`BTLinear`, :class:`TTLinear` and :class:`TRLinear`."""

    spec: BTSpec | TTSpec | TRSpec
    #: The matrix type :meth:`to_matrix` returns and :meth:`from_matrix` accepts.
    matrix_type: type = BTMatrix

    @classmethod
    def from_spec(cls, spec, bias: bool, **kwargs) -> "FactorizedLinear":  # pragma: no cover - overridden
        """A freshly initialised layer of ``spec``'s shape and ranks; ``kwargs`` go to the constructor."""
        raise NotImplementedError

    def _weights(self) -> list[nn.Parameter]:  # pragma: no cover - overridden
        """The format's parameters in the order of :meth:`_matrix_weights`."""
        raise NotImplementedError

    @staticmethod
    def _matrix_weights(M) -> list[torch.Tensor]:  # pragma: no cover - overridden
        raise NotImplementedError

    def _rank_repr(self) -> str:  # pragma: no cover - overridden
        raise NotImplementedError

    def _init_bias(self, bias: bool, factory) -> None:
        if bias:
            self.bias = nn.Parameter(torch.empty(self.out_features, **factory))
        else:
            self.register_parameter("bias", None)

    @property
    def in_modes(self) -> tuple[int, ...]:
        return self.spec.in_modes

    @property
    def out_modes(self) -> tuple[int, ...]:
        return self.spec.out_modes

    @property
    def in_features(self) -> int:
        return self.spec.in_size

    @property
    def out_features(self) -> int:
        return self.spec.out_size

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

    def _reset_bias(self, generator: torch.Generator | None = None) -> None:
        if self.bias is not None:
            bound = 1.0 / math.sqrt(self.in_features)
            with torch.no_grad():
                self.bias.uniform_(-bound, bound, generator=generator)

    def to_matrix(self):  # pragma: no cover - overridden
        raise NotImplementedError

    def weight_matrix(self) -> torch.Tensor:
        """The dense (I, J) matrix W (memory-checked; for inspection, not for the forward pass)."""
        return self.to_matrix().to_dense()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 0 or x.shape[-1] != self.in_features:
            raise ValueError(
                f"{type(self).__name__}: input's last dimension is {tuple(x.shape)[-1:] or '()'}, "
                f"expected in_features = {self.in_features}"
            )
        # tune=True: always the fastest measured scheme (btcore.contract.tune_plan, timed once per
        # shape; not reproducible); otherwise the planner's choice from the shapes (matmul's tune=None).
        # matmul runs btcore.contract.PlannedMatmul, whose backward is planned with the forward.
        y = matmul(x, self.to_matrix(), method=self.method, tune=True if self.tune else None)
        if self.bias is not None:
            y = y + self.bias
        return y

    def _copy_bias(self, bias) -> None:
        if bias is None:
            return
        if self.bias is None:
            raise ValueError("bias: a bias was given but the layer was built with bias=False")
        if not isinstance(bias, torch.Tensor) or tuple(bias.shape) != (self.out_features,):
            shape = tuple(bias.shape) if isinstance(bias, torch.Tensor) else type(bias).__name__
            raise ValueError(f"bias must have shape ({self.out_features},), got {shape}")
        with torch.no_grad():
            self.bias.copy_(bias.detach().to(self.bias))

    def _set_bias(self, bias) -> None:
        """Bias of a layer made from existing weights: copied from a tensor, zero for True."""
        if isinstance(bias, torch.Tensor):
            self._copy_bias(bias)
        elif bias is True:
            with torch.no_grad():
                self.bias.zero_()

    def extra_repr(self) -> str:
        s = self.spec
        return (f"in_modes={s.in_modes}, out_modes={s.out_modes}, {self._rank_repr()}, "
                f"bias={self.bias is not None}, params={self.num_params:,}, compression={s.compression:,.1f}x")

    @classmethod
    def from_matrix(cls, M, bias=None, **kwargs):
        """A layer holding copies of a factorized matrix's tensors.

        ``bias``: a tensor of shape (out_features,) is copied, ``True`` gives a zero bias, ``None`` or
        ``False`` no bias (the default: a matrix has none). ``kwargs`` (method, tune, device, dtype,
        allow_larger) go to the constructor; device and dtype default to the matrix's, allow_larger to True.
        """
        if not isinstance(M, cls.matrix_type):
            raise ValueError(f"M must be a {cls.matrix_type.__name__}, got {type(M).__name__}")
        kwargs.setdefault("dtype", M.dtype)
        kwargs.setdefault("device", M.device)
        kwargs.setdefault("allow_larger", True)  # the matrix, however large, exists already
        layer = cls.from_spec(M.spec, want_bias(bias, M.spec.out_size), **kwargs)
        with torch.no_grad():
            for p, t in zip(layer._weights(), cls._matrix_weights(M)):
                p.copy_(t.detach())
        layer._set_bias(bias)
        return layer

    @classmethod
    def from_linear(cls, linear: nn.Linear, in_modes, out_modes, *args, **kwargs):
        """A layer approximating ``linear`` (its weight is (out, in), so W = linear.weight.T).

        The bias is copied when ``linear`` has one; a bias-free ``linear`` gives a bias-free layer
        (pass ``bias=`` to override). Other arguments as for :meth:`from_dense`.
        """
        if not isinstance(linear, nn.Linear):
            raise ValueError(f"linear must be an nn.Linear, got {type(linear).__name__}")
        kwargs.setdefault("bias", None if linear.bias is None else linear.bias.detach())
        return cls.from_dense(linear.weight.detach().T, in_modes, out_modes, *args, **kwargs)


class BTLinear(FactorizedLinear):
    """``y = x @ W + b`` with W (I, J) a Block-Term matrix, never formed.

    Parameters
    ----------
    in_modes, out_modes : sequence of int
        I_1..I_d and J_1..J_d; in_features = prod(in_modes), out_features = prod(out_modes).
    rank : int or sequence of int
        Tucker rank R (or per-mode R_1..R_d), at most I_k * J_k.
    blocks : int
        Number of blocks N.
    bias : bool
        Add a learnable bias of size out_features.
    method : {"contract", "dense", "auto"}
        Passed to :func:`btcore.matmul`; the default never forms W.
    tune : bool
        Passed to :func:`btcore.matmul`: use the fastest *measured* contraction path (timed once
        per batch size, on the first forward) instead of the one with the fewest multiply-adds.
    allow_larger : bool
        Allow more than :data:`MAX_PARAMS_RATIO` times the parameters of the dense (I, J) matrix
        (refused by default with a ``ValueError``: such a layer compresses nothing).
    device, dtype : optional
        As for ``nn.Linear``; a device this machine does not have is a ``ValueError``.

    Attributes
    ----------
    factors : nn.ParameterList
        ``factors[k]`` of shape (N, I_k, J_k, R_k).
    core : nn.Parameter
        Shape (N, R_1, .., R_d).
    bias : nn.Parameter or None

    Examples
    --------
    >>> layer = BTLinear((8, 20, 20, 18), (16, 4, 4, 4), rank=4, blocks=2)
    >>> layer.num_params  # 3,392 BT parameters + 1,024 bias
    4416
    """

    matrix_type = BTMatrix

    def __init__(self, in_modes, out_modes, rank, blocks: int = 1, bias: bool = True, *, method: str = "contract",
                 tune: bool = False, allow_larger: bool = False, device=None, dtype=None):
        super().__init__()
        self.spec = BTSpec(in_modes, out_modes, rank, blocks)
        self.method = check_method(method)
        self.tune = check_flag(tune, "tune")
        bias = check_flag(bias, "bias")
        _check_init_memory(self.spec, dtype)
        _check_size(self.spec, allow_larger)
        factory = {"device": check_device(device), "dtype": dtype}
        self.factors = nn.ParameterList(
            [nn.Parameter(torch.empty(shape, **factory)) for shape in self.spec.factor_shapes()])
        self.core = nn.Parameter(torch.empty(self.spec.core_shape, **factory))
        self._init_bias(bias, factory)
        self.reset_parameters()

    @property
    def rank(self):
        return self.spec.rank

    @property
    def ranks(self) -> tuple[int, ...]:
        return self.spec.ranks

    @property
    def blocks(self) -> int:
        return self.spec.blocks

    def reset_parameters(self, std: float | None = None, generator: torch.Generator | None = None) -> None:
        """Re-initialise so W has entry std ``std`` (default: ``nn.Linear``'s, 1/sqrt(3 I)); bias as ``nn.Linear``.

        Draws from ``generator`` (default: the global torch RNG).

        Every factor and core has entry RMS ``bt_init_std(spec, std)``; factors are semi-orthogonal
        (jointly over blocks where N R_k <= I_k J_k) and cores are rescaled Gaussians, so the
        realized ``||W||_F`` matches the target rather than only its expectation.
        """
        spec = self.spec
        std = self.init_std if std is None else check_init_std(std)
        s = bt_init_std(spec, std)
        n = spec.blocks
        with torch.no_grad():
            for k, (i, j, r) in enumerate(zip(spec.in_modes, spec.out_modes, spec.ranks)):
                m = i * j
                if n * r <= m:
                    q = semi_orthogonal(m, n * r, s, generator=generator).reshape(m, n, r).permute(1, 0, 2)
                else:
                    q = semi_orthogonal(m, r, s, (n,), generator)
                self.factors[k].copy_(q.reshape(n, i, j, r))
            self.core.copy_(rms_gaussian(spec.ranks, s, (n,), generator))
        self._reset_bias(generator)

    def to_matrix(self) -> BTMatrix:
        """The layer's W as a :class:`BTMatrix` over its parameters (differentiable)."""
        return BTMatrix(list(self.factors), self.core)

    def _rank_repr(self) -> str:
        return f"rank={self.spec.rank}, blocks={self.spec.blocks}"

    @classmethod
    def from_spec(cls, spec: BTSpec, bias: bool, **kwargs) -> "BTLinear":
        return cls(spec.in_modes, spec.out_modes, spec.ranks, spec.blocks, bias=bias, **kwargs)

    def _weights(self) -> list[nn.Parameter]:
        return list(self.factors) + [self.core]

    @staticmethod
    def _matrix_weights(M: BTMatrix) -> list[torch.Tensor]:
        return list(M.factors) + [M.core]

    @classmethod
    def from_dense(cls, weight: torch.Tensor, in_modes, out_modes, rank=None, blocks: int = 1,
                   bias=None, *, seed: int = 0, **fit_kwargs) -> "BTLinear":
        """A layer whose W approximates ``weight`` (shape (I, J), y = x @ W).

        With full rank in every mode (``rank=None``, or R_k = I_k J_k) the fit is exact: block 1 holds
        identity factors and the core is W rearranged to (I_1 J_1, .., I_d J_d); further blocks get
        random factors and zero cores (they start at zero but can learn). Otherwise the weight is
        fitted with :func:`btcore.decompose.fit_bt` (ALS; ``seed`` and ``fit_kwargs`` are passed on).
        The fit's report is kept in ``layer.fit_info``, a :class:`~btcore.decompose.FitInfo`
        (``layer.fit_info.relative_error``; method "exact" for the full-rank copy).

        ``bias``: a tensor of shape (out_features,) is copied, ``True`` gives a zero (trainable) bias,
        ``None`` or ``False`` no bias (the default: a bare weight has none).
        """
        spec_modes = BTSpec(in_modes, out_modes, 1, blocks, max_bytes=None)
        w = check_weight(weight, spec_modes.in_size, spec_modes.out_size, cls.__name__)
        has_bias = want_bias(bias, spec_modes.out_size)
        full = tuple(i * j for i, j in zip(spec_modes.in_modes, spec_modes.out_modes))
        if rank is None:
            rank = full
        spec = BTSpec(in_modes, out_modes, rank, blocks)
        if spec.ranks == full:
            layer = cls.from_spec(spec, has_bias, dtype=w.dtype, device=w.device)
            with torch.no_grad():
                for k, (i, j) in enumerate(zip(spec.in_modes, spec.out_modes)):
                    layer.factors[k][0].copy_(torch.eye(i * j, dtype=w.dtype, device=w.device).reshape(i, j, i * j))
                layer.core.zero_()
                layer.core[0].copy_(interleave(w, spec.in_modes, spec.out_modes))
            layer._set_bias(bias)
            info = FitInfo(format=spec.kind, method="exact", relative_error=0.0, errors=[0.0], converged=True,
                           reason="direct", at_precision=True, ranks=spec.ranks, blocks=spec.blocks,
                           params=spec.params, requested_ranks=spec.ranks)
        else:
            M, info = decompose.fit_bt(w, spec.in_modes, spec.out_modes, spec.rank, spec.blocks, seed=seed,
                                       **fit_kwargs)
            layer = cls.from_matrix(M.to(dtype=w.dtype, device=w.device), bias=bias)
        layer.fit_info = info
        return layer


class CoresLinear(FactorizedLinear):
    """What :class:`TTLinear` and :class:`TRLinear` share: W held as d cores (r_{k-1}, I_k, J_k, r_k).

    A subclass sets :attr:`spec_type` (its spec class), :attr:`matrix_type` (its container) and
    implements ``reset_parameters``.
    """

    spec_type: type = TTSpec

    def __init__(self, in_modes, out_modes, ranks, bias: bool = True, *, method: str = "contract",
                 tune: bool = False, allow_larger: bool = False, device=None, dtype=None):
        super().__init__()
        self.spec = self.spec_type(in_modes, out_modes, ranks)
        self.method = check_method(method)
        self.tune = check_flag(tune, "tune")
        bias = check_flag(bias, "bias")
        _check_init_memory(self.spec, dtype)
        _check_size(self.spec, allow_larger)
        factory = {"device": check_device(device), "dtype": dtype}
        self.cores = nn.ParameterList([nn.Parameter(torch.empty(s, **factory)) for s in self.spec.core_shapes()])
        self._init_bias(bias, factory)
        self.reset_parameters()

    @property
    def ranks(self) -> tuple[int, ...]:
        return self.spec.ranks

    def to_matrix(self):
        """The layer's W as its container (:attr:`matrix_type`) over its parameters (differentiable)."""
        return self.matrix_type(list(self.cores))

    def _rank_repr(self) -> str:
        return f"ranks={self.spec.ranks}"

    @classmethod
    def from_spec(cls, spec, bias: bool, **kwargs) -> "CoresLinear":
        return cls(spec.in_modes, spec.out_modes, spec.ranks, bias=bias, **kwargs)

    def _weights(self) -> list[nn.Parameter]:
        return list(self.cores)

    @staticmethod
    def _matrix_weights(M) -> list[torch.Tensor]:
        return list(M.cores)


class TTLinear(CoresLinear):
    """``y = x @ W + b`` with W (I, J) a TT-matrix, never formed.

    Parameters
    ----------
    in_modes, out_modes : sequence of int
        I_1..I_d and J_1..J_d.
    ranks : int or sequence of int
        One int for all d-1 inner ranks, the d-1 inner ranks, or all d+1 with r_0 = r_d = 1.
    bias, method, tune, allow_larger, device, dtype
        As for :class:`BTLinear`.

    Attributes
    ----------
    cores : nn.ParameterList
        ``cores[k]`` of shape (r_{k-1}, I_k, J_k, r_k).
    """

    matrix_type = TTMatrix

    spec_type = TTSpec

    def reset_parameters(self, std: float | None = None, generator: torch.Generator | None = None) -> None:
        """Re-initialise so W has entry std ``std`` (default: ``nn.Linear``'s, 1/sqrt(3 I)); bias as ``nn.Linear``.

        Draws from ``generator`` (default: the global torch RNG).

        Every core has entry RMS ``tt_init_std(spec, std)``; cores 1..d-1 are left-orthogonal and
        the last one a rescaled Gaussian, so the realized ``||W||_F`` matches the target.
        """
        spec = self.spec
        std = self.init_std if std is None else check_init_std(std)
        s = tt_init_std(spec, std)
        with torch.no_grad():
            for k, shape in enumerate(spec.core_shapes()):
                r0, i, j, r1 = shape
                if k < spec.d - 1:
                    c = semi_orthogonal(r0 * i * j, r1, s, generator=generator)
                else:
                    c = rms_gaussian(shape, s, generator=generator)
                self.cores[k].copy_(c.reshape(shape))
        self._reset_bias(generator)

    @classmethod
    def from_dense(cls, weight: torch.Tensor, in_modes, out_modes, ranks=None, bias=None,
                   **fit_kwargs) -> "TTLinear":
        """A layer whose W approximates ``weight`` (shape (I, J), y = x @ W), by TT-SVD.

        ``ranks=None`` means the full ranks min(prod_{i<=k} I_i J_i, prod_{i>k} I_i J_i), where TT-SVD
        is exact. The fit is :func:`btcore.decompose.fit_tt` (``fit_kwargs`` are passed on); its
        report is in ``layer.fit_info`` (``layer.fit_info.relative_error``). ``bias`` as for
        :meth:`BTLinear.from_dense`.
        """
        spec_modes = TTSpec(in_modes, out_modes, 1, max_bytes=None)
        w = check_weight(weight, spec_modes.in_size, spec_modes.out_size, cls.__name__)
        want_bias(bias, spec_modes.out_size)  # reject a bad bias before fitting
        if ranks is None:
            ranks = tt_rank_caps(spec_modes.in_modes, spec_modes.out_modes)  # full: TT-SVD is exact
        spec = TTSpec(in_modes, out_modes, ranks)  # valid ranks (never capped by the fit) within the size limit
        M, info = decompose.fit_tt(w, spec.in_modes, spec.out_modes, spec.ranks, **({"warn": False} | fit_kwargs))
        layer = cls.from_matrix(M.to(dtype=w.dtype, device=w.device), bias=bias)
        layer.fit_info = info
        return layer


#: Largest transfer-matrix environment (entries) used to rescale a TR layer's initial draw to the exact norm.
EXACT_NORM_ENTRIES = 2**22


class TRLinear(CoresLinear):
    """``y = x @ W + b`` with W (I, J) a Tensor Ring matrix, never formed.

    Parameters
    ----------
    in_modes, out_modes : sequence of int
        I_1..I_d and J_1..J_d.
    ranks : int or sequence of int
        One int for all d bonds, the d bond ranks (the last closes the ring), or d+1 with r_0 = r_d
        (validated by :class:`btcore.TRSpec`).
    bias, method, tune, allow_larger, device, dtype
        As for :class:`BTLinear`.

    Attributes
    ----------
    cores : nn.ParameterList
        ``cores[k]`` of shape (r_{k-1}, I_k, J_k, r_k).

    Examples
    --------
    >>> layer = TRLinear((8, 20, 20, 18), (16, 4, 4, 4), (2, 3, 4, 3), bias=False)
    >>> layer.num_params
    3072
    """

    matrix_type = TRMatrix

    spec_type = TRSpec

    def reset_parameters(self, std: float | None = None, generator: torch.Generator | None = None) -> None:
        """Re-initialise so W has entry std ``std`` (default: ``nn.Linear``'s, 1/sqrt(3 I)); bias as ``nn.Linear``.

        Cores are Gaussian with entry std :func:`btcore.ring.tr_init_std` (Var(W) = prod(r) s^(2d)),
        drawn from ``generator`` (default: the global torch RNG). One draw has that variance only in
        expectation (a ring of small ranks fluctuates by a factor of two or more), so the cores are
        then rescaled together until the realized ``||W||_F`` is exactly ``sqrt(I J) std``; the norm
        comes from transfer matrices (:func:`btcore.ring.tr_frobenius_norm`, W not formed), and where
        that environment would exceed :data:`EXACT_NORM_ENTRIES` entries the draw is kept as it is.
        """
        spec = self.spec
        std = self.init_std if std is None else check_init_std(std)
        s = tr_init_std(spec, std) if std > 0 else 0.0
        cores = [torch.randn(shape, dtype=torch.float64, generator=generator) * s for shape in spec.core_shapes()]
        if std > 0 and (spec.ranks[-1] * max(spec.ranks)) ** 2 <= EXACT_NORM_ENTRIES:
            got = float(tr_frobenius_norm(cores))
            if got > 0:
                factor = (math.sqrt(spec.in_size * spec.out_size) * std / got) ** (1.0 / spec.d)
                cores = [c * factor for c in cores]
        with torch.no_grad():
            for p, c in zip(self.cores, cores):
                p.copy_(c)
        self._reset_bias(generator)

    @classmethod
    def from_dense(cls, weight: torch.Tensor, in_modes, out_modes, ranks=None, bias=None,
                   **fit_kwargs) -> "TRLinear":
        """A layer whose W approximates ``weight`` (shape (I, J), y = x @ W), by :func:`btcore.fit_tr`.

        ``ranks=None`` means :func:`btcore.formats.tr_exact_ranks`, where TR-SVD is exact for every W.
        ``fit_kwargs`` go to the fit; its report is in ``layer.fit_info``. ``bias`` as for
        :meth:`BTLinear.from_dense`.
        """
        modes = TRSpec(in_modes, out_modes, 1, max_bytes=None)
        w = check_weight(weight, modes.in_size, modes.out_size, cls.__name__)
        want_bias(bias, modes.out_size)  # reject a bad bias before fitting
        if ranks is None:
            ranks = tr_exact_ranks(modes.in_modes, modes.out_modes)
        spec = TRSpec(in_modes, out_modes, ranks)  # valid ranks within the size limit
        M, info = fit_tr(w, spec.in_modes, spec.out_modes, spec.ranks, **({"warn": False} | fit_kwargs))
        layer = cls.from_matrix(M.to(dtype=w.dtype, device=w.device), bias=bias)
        layer.fit_info = info
        return layer


#: The layer of every format of :data:`btcore.formats.FORMATS`, by key (dense: ``nn.Linear``).
LAYERS: dict[str, type] = {"dense": nn.Linear, "tt": TTLinear, "bt": BTLinear, "tr": TRLinear}
#: The container of every factorized format of :data:`btcore.formats.FORMATS`, by key.
CONTAINERS: dict[str, type] = {"tt": TTMatrix, "bt": BTMatrix, "tr": TRMatrix}
