"""BT and TT matrix containers (TR's is :class:`btcore.ring.TRMatrix`, on the same base): the tensors of a factorized (I, J) matrix, as torch tensors.

Above :mod:`btcore.contract` (``M.to_dense()`` and ``x @ M`` run its schemes); the memory budget
they ask before allocating is :mod:`btcore.memory`.

The containers hold plain tensors (or ``nn.Parameter``s, when a layer owns them), so everything
built from them is differentiable and follows their device and dtype.
"""

from __future__ import annotations

import math
from numbers import Integral
from typing import Sequence

import torch

from .contract import matmul, reconstruct
from .formats import BTSpec, TTSpec
from .memory import check_allocation, dtype_bytes
from .plan import plan_reconstruct
from .shapes import prod

__all__ = ["FactorizedMatrix", "BTMatrix", "TTMatrix", "check_std", "check_dtype", "check_device", "seeded_generator",
           "bt_init_std", "tt_init_std"]


def bt_init_std(spec: BTSpec, std: float) -> float:
    """Entry std of every BT factor and core so the reconstructed matrix has entry std ``std``.

    An entry of W is a sum of N * prod_k R_k products of d + 1 independent zero-mean entries, so
    Var(W) = N * prod(R) * s^(2(d+1)) for a common std s.
    """
    return (std**2 / (spec.blocks * prod(spec.ranks))) ** (1.0 / (2 * (spec.d + 1)))


def tt_init_std(spec: TTSpec, std: float) -> float:
    """Entry std of every TT core so the reconstructed matrix has entry std ``std`` (as t3f does).

    An entry of W is a sum of prod_k r_k products of d independent entries: Var(W) = prod(r) s^(2d).
    """
    return (std**2 / prod(spec.inner_ranks)) ** (1.0 / (2 * spec.d))


def check_std(std, field: str = "std") -> float:
    """``std`` as a float, or ``ValueError`` unless it is a finite number > 0."""
    if isinstance(std, bool) or not isinstance(std, (int, float)) or not math.isfinite(std) or std <= 0:
        raise ValueError(f"{field} must be a finite number > 0, got {std!r}")
    return float(std)


def check_dtype(dtype) -> torch.dtype:
    """``dtype`` if it is a real floating-point torch dtype, else ``TypeError``."""
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point or dtype.is_complex:
        raise TypeError(f"dtype must be a real floating-point torch.dtype such as torch.float32, got {dtype!r}")
    return dtype


def check_device(device, field: str = "device") -> torch.device | None:
    """``device`` as a ``torch.device`` (``None`` stays ``None``: the default device), or ``ValueError``
    naming it when it is not a device or not usable here (``"cuda"`` on a machine without CUDA)."""
    if device is None:
        return None
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"{field} must be a torch device such as 'cpu' or 'cuda', got {device!r}") from exc
    if dev.type != "cpu":
        try:  # torch raises AssertionError or RuntimeError for a device type it was not built for
            torch.empty(0, device=dev)
        except (AssertionError, RuntimeError) as exc:
            raise ValueError(f"{field} {str(dev)!r} is not available on this machine ({exc}); "
                             "use device='cpu' or a device torch.cuda.is_available() reports") from exc
    return dev


def seeded_generator(seed, device) -> torch.Generator | None:
    """A CPU/device generator seeded with ``seed`` (None: the global RNG); ``ValueError`` for a bad seed."""
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, Integral) or not 0 <= seed < 2**63:
        raise ValueError(f"seed must be an integer in [0, 2^63) or None, got {seed!r}")
    g = torch.Generator(device=torch.device(device or "cpu"))
    g.manual_seed(int(seed))
    return g


def _common(tensors, what):
    for k, t in enumerate(tensors):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{what}: every factor and core must be a torch.Tensor, got {type(t).__name__} at {k}")
        if not t.is_floating_point():
            raise TypeError(f"{what}: tensors must be floating point, got {t.dtype}")
    dtypes = {t.dtype for t in tensors}
    devices = {t.device for t in tensors}
    if len(dtypes) > 1:
        raise ValueError(f"{what}: all tensors need one dtype, got {sorted(map(str, dtypes))}")
    if len(devices) > 1:
        raise ValueError(f"{what}: all tensors need one device, got {sorted(map(str, devices))}")


class FactorizedMatrix:
    """What the containers share: sizes from the spec, ``to_dense`` and ``x @ M`` through :mod:`btcore.contract`.

    A subclass sets ``spec`` (a :class:`btcore.formats.FormatSpec`) and implements :meth:`tensors`
    (the operands of ``spec.network()`` after x).
    """

    spec: object

    def tensors(self) -> list[torch.Tensor]:  # pragma: no cover - overridden
        raise NotImplementedError

    @property
    def shape(self) -> tuple[int, int]:
        return self.spec.shape

    @property
    def in_modes(self) -> tuple[int, ...]:
        return self.spec.in_modes

    @property
    def out_modes(self) -> tuple[int, ...]:
        return self.spec.out_modes

    @property
    def num_params(self) -> int:
        return self.spec.params

    @property
    def dtype(self) -> torch.dtype:
        return self.tensors()[0].dtype

    @property
    def device(self) -> torch.device:
        return self.tensors()[0].device

    def to_dense(self) -> torch.Tensor:
        """The (I, J) matrix. Checks the memory it needs before allocating."""
        size = dtype_bytes(self.dtype)
        need = max(plan_reconstruct(self.spec).largest_intermediate, self.spec.in_size * self.spec.out_size)
        check_allocation(need * size, f"the dense {self.spec.in_size:,} x {self.spec.out_size:,} matrix",
                         "use btcore.matmul, which never forms it", self.device)
        return reconstruct(self)

    def __rmatmul__(self, x: torch.Tensor) -> torch.Tensor:
        return matmul(x, self)


class BTMatrix(FactorizedMatrix):
    """A Block-Term matrix: ``W = sum_n C_n x_1 A_n^(1) .. x_d A_n^(d)`` over interleaved modes.

    Parameters
    ----------
    factors : sequence of d tensors
        ``factors[k]`` of shape (N, I_k, J_k, R_k), the k-th factor of every block.
    core : tensor
        Shape (N, R_1, .., R_d), the cores of all blocks.

    Examples
    --------
    >>> M = BTMatrix.random((4, 4), (4, 4), rank=2, blocks=3, seed=0, dtype=torch.float64)
    >>> x = torch.randn(5, 16, dtype=torch.float64)
    >>> torch.allclose(btcore.matmul(x, M), x @ M.to_dense())
    True
    """

    def __init__(self, factors: Sequence[torch.Tensor], core: torch.Tensor):
        factors = list(factors)
        if not factors:
            raise ValueError("factors: need at least one factor (one per mode)")
        _common(factors + [core], "BTMatrix")
        for k, f in enumerate(factors):
            if f.dim() != 4:
                raise ValueError(f"factors[{k}] must have shape (N, I_k, J_k, R_k), got {tuple(f.shape)}")
        d = len(factors)
        n = factors[0].shape[0]
        if core.dim() != d + 1:
            raise ValueError(f"core must have shape (N, R_1, .., R_{d}) with {d + 1} axes, got {tuple(core.shape)}")
        ranks = tuple(f.shape[3] for f in factors)
        if tuple(core.shape) != (n,) + ranks or any(f.shape[0] != n for f in factors):
            raise ValueError(
                f"core shape {tuple(core.shape)} does not match the factors: expected (N, R_1..R_d) = {(n,) + ranks}"
            )
        _common(factors + [core], "BTMatrix")
        self.spec = BTSpec([f.shape[1] for f in factors], [f.shape[2] for f in factors], ranks, n, max_bytes=None)
        self.factors = factors
        self.core = core

    @classmethod
    def random(cls, in_modes, out_modes, rank, blocks=1, *, std: float = 1.0, seed: int | None = None,
               dtype: torch.dtype = torch.float32, device=None) -> "BTMatrix":
        """Gaussian factors and cores scaled so the dense matrix has entry std ``std``."""
        spec = BTSpec(in_modes, out_modes, rank, blocks)
        std, dtype, device = check_std(std), check_dtype(dtype), check_device(device)
        check_allocation(spec.params * dtype_bytes(dtype), "the BT tensors", "lower the rank or blocks", device)
        s = bt_init_std(spec, std)
        g = seeded_generator(seed, device)
        factors = [torch.randn(shape, generator=g, dtype=dtype, device=device) * s for shape in spec.factor_shapes()]
        core = torch.randn(spec.core_shape, generator=g, dtype=dtype, device=device) * s
        return cls(factors, core)

    def tensors(self) -> list[torch.Tensor]:
        """The operands in :meth:`BTSpec.network` order (block axis dropped when N = 1)."""
        if self.spec.blocks == 1:
            return [f[0] for f in self.factors] + [self.core[0]]
        return list(self.factors) + [self.core]

    def to(self, *args, **kwargs) -> "BTMatrix":
        return BTMatrix([f.to(*args, **kwargs) for f in self.factors], self.core.to(*args, **kwargs))

    def block(self, n: int) -> "BTMatrix":
        """Block ``n`` alone, as a one-block (Tucker) BTMatrix."""
        return BTMatrix([f[n : n + 1] for f in self.factors], self.core[n : n + 1])

    def __repr__(self) -> str:
        s = self.spec
        return (f"BTMatrix(in_modes={s.in_modes}, out_modes={s.out_modes}, rank={s.rank}, blocks={s.blocks}, "
                f"params={s.params:,}, dtype={self.dtype})")


class TTMatrix(FactorizedMatrix):
    """A TT-matrix: ``W[(i_1..i_d), (j_1..j_d)] = G_1[i_1, j_1] .. G_d[i_d, j_d]``.

    Parameters
    ----------
    cores : sequence of d tensors
        ``cores[k]`` of shape (r_{k-1}, I_k, J_k, r_k) with r_0 = r_d = 1.
    """

    def __init__(self, cores: Sequence[torch.Tensor]):
        cores = list(cores)
        if not cores:
            raise ValueError("cores: need at least one core (one per mode)")
        _common(cores, "TTMatrix")
        for k, c in enumerate(cores):
            if c.dim() != 4:
                raise ValueError(f"cores[{k}] must have shape (r_{k}, I_{k + 1}, J_{k + 1}, r_{k + 1}), got {tuple(c.shape)}")
        if cores[0].shape[0] != 1 or cores[-1].shape[3] != 1:
            raise ValueError("cores: the first core's leading rank and the last core's trailing rank must be 1")
        for k in range(len(cores) - 1):
            if cores[k].shape[3] != cores[k + 1].shape[0]:
                raise ValueError(
                    f"cores[{k}] ends with rank {cores[k].shape[3]} but cores[{k + 1}] starts with {cores[k + 1].shape[0]}"
                )
        _common(cores, "TTMatrix")
        ranks = [c.shape[3] for c in cores[:-1]]
        self.spec = TTSpec([c.shape[1] for c in cores], [c.shape[2] for c in cores], ranks, max_bytes=None)
        self.cores = cores

    @classmethod
    def random(cls, in_modes, out_modes, ranks, *, std: float = 1.0, seed: int | None = None,
               dtype: torch.dtype = torch.float32, device=None) -> "TTMatrix":
        """Gaussian cores scaled so the dense matrix has entry std ``std``."""
        spec = TTSpec(in_modes, out_modes, ranks)
        std, dtype, device = check_std(std), check_dtype(dtype), check_device(device)
        check_allocation(spec.params * dtype_bytes(dtype), "the TT cores", "lower the ranks", device)
        s = tt_init_std(spec, std)
        g = seeded_generator(seed, device)
        return cls([torch.randn(shape, generator=g, dtype=dtype, device=device) * s for shape in spec.core_shapes()])

    def tensors(self) -> list[torch.Tensor]:
        """The operands in :meth:`TTSpec.network` order (boundary rank axes of size 1 dropped)."""
        d = len(self.cores)
        out = []
        for k, c in enumerate(self.cores):
            if k == 0:
                c = c[0]
            if k == d - 1:
                c = c[..., 0]
            out.append(c)
        return out

    def to(self, *args, **kwargs) -> "TTMatrix":
        return TTMatrix([c.to(*args, **kwargs) for c in self.cores])

    def __repr__(self) -> str:
        s = self.spec
        return (f"TTMatrix(in_modes={s.in_modes}, out_modes={s.out_modes}, ranks={s.ranks}, "
                f"params={s.params:,}, dtype={self.dtype})")

