"""The rates the cost model is calibrated with on this machine, and its GEMM and einsum models.

Multiply-adds alone do not predict time (docs/reference.md, "y = x W without forming W"): a
pairwise einsum permutes its operands (memory copies), and small GEMMs run far below the large-GEMM
rate. So a GEMM of (batch x m x k) @ (k x n) is modelled as

    time = batch*m*n*k / (peak * eff) + call,   eff = 1 / (1 + h/m + h/n + h/k)

(``h``: the dimension at which GEMM efficiency halves) plus, for each einsum step, one copy of
each operand and of the result at the copy rate.

By default the planner uses fixed reference rates (:func:`reference_rates`, measured on BT Lab's
2-core development machine), so the scheme it picks, and with it the order in which the sums are
added, depends on the shapes alone: the same call gives bit-identical results on a quiet or a
loaded machine. A process that prefers speed on its own hardware to reproducibility calls
:func:`measure_rates`: ``peak``, ``h``, the copy rate and the per-call overhead are then measured
once per (device, dtype) on first use (well under half a second), and ``matmul(tune=None)`` times
the best candidates of costly shapes.
Each scheme (:mod:`btcore.contract.schemes`) composes its cost from :func:`gemm_seconds`,
:func:`einsum_seconds` and :func:`copy_seconds`; the planner (:mod:`btcore.contract.planner`) adds
them up. Nothing here feeds the counts the specs report (those are FLOP counts, not times).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch

__all__ = ["Rates", "rates", "set_rates", "reference_rates", "measure_rates", "measuring", "median_time", "gemm_seconds",
           "einsum_seconds", "copy_seconds"]


@dataclass(frozen=True)
class Rates:
    """Measured speeds of one (device, dtype): MAC/s of a large GEMM, the half-efficiency dimension,
    bytes/s of a strided copy, seconds of per-op overhead, and the element size in bytes."""

    peak: float
    half_dim: float
    copy_bps: float
    call_s: float
    itemsize: int


def median_time(fn, repeats: int, sync=lambda: None) -> float:
    """Median wall seconds of ``fn()`` over ``repeats`` calls after one warm-up call; ``sync`` waits
    for the device (``torch.cuda.synchronize`` on a GPU) before and after each timed call."""
    fn()
    ts = []
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        ts.append(time.perf_counter() - t0)
    return sorted(ts)[len(ts) // 2]


_RATES: dict = {}
_MEASURING = [False]

#: float32 rates per device type: the CPU's measured on BT Lab's 2-core development machine (a GEMM
#: at 40 GMAC/s, copies at 3 GB/s), CUDA's of the order an H200 showed (bench/device_check.py).
_REFERENCE = {
    "cpu": Rates(peak=4e10, half_dim=2.0, copy_bps=3e9, call_s=2e-6, itemsize=4),
    "cuda": Rates(peak=2e13, half_dim=64.0, copy_bps=2e12, call_s=1e-5, itemsize=4),
}


def reference_rates(device_type: str = "cpu", dtype: torch.dtype = torch.float32) -> Rates:
    """The fixed rates the planner uses unless :func:`measure_rates` was called.

    A wider element halves the GEMM and copy rates per element (float64 at half float32's peak).
    """
    base = _REFERENCE.get(device_type, _REFERENCE["cpu"])
    itemsize = torch.empty((), dtype=dtype).element_size()
    scale = base.itemsize / itemsize
    return Rates(base.peak * scale, base.half_dim, base.copy_bps, base.call_s, itemsize)


def measure_rates(on: bool = True) -> None:
    """Opt this process into rates measured on its own hardware (``on=False``: back to the reference).

    Plans may then differ between a quiet and a loaded machine, and so may the last bits of the
    results: use it for speed, never where results must be reproducible. Rates fixed with
    :func:`set_rates` are forgotten either way.
    """
    _MEASURING[0] = bool(on)
    _RATES.clear()


def measuring() -> bool:
    """Whether this process measures its rates (:func:`measure_rates`) instead of using the reference."""
    return _MEASURING[0]


def set_rates(device_type: str, dtype: torch.dtype, value: Rates | None) -> None:
    """Fix (or with ``None`` forget) the rates of a (device type, dtype), e.g. to study the planner."""
    _RATES.pop((device_type, dtype), None)
    if value is not None:
        _RATES[(device_type, dtype)] = value


def rates(device_type: str = "cpu", dtype: torch.dtype = torch.float32) -> Rates:
    """The :class:`Rates` the planner uses for (device type, dtype): fixed ones (:func:`set_rates`), else
    the reference (:func:`reference_rates`), or, after :func:`measure_rates`, measured on first use."""
    key = (device_type, dtype)
    if key not in _RATES:
        _RATES[key] = _calibrate(device_type, dtype) if _MEASURING[0] else reference_rates(device_type, dtype)
    return _RATES[key]


def _calibrate(device_type: str, dtype: torch.dtype) -> Rates:
    dev = torch.device(device_type)
    sync = (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else (lambda: None)
    # A GEMM larger than the caches (as the big steps are): on CPU (1024 x 512) @ (512 x 256).
    m, k, n = (4096, 4096, 4096) if dev.type == "cuda" else (1024, 512, 256)
    a = torch.randn(m, k, dtype=dtype, device=dev)
    bm = torch.randn(k, n, dtype=dtype, device=dev)
    peak = m * k * n / median_time(lambda: a @ bm, 3, sync)
    # Small batched GEMMs (16 x 16 x 32) show how fast efficiency falls with the dimension.
    s = torch.randn(256, 16, 32, dtype=dtype, device=dev)
    w = torch.randn(32, 16, dtype=dtype, device=dev)
    t_small = median_time(lambda: torch.matmul(s, w), 7, sync)
    tiny = torch.randn(2, 2, dtype=dtype, device=dev)
    call = median_time(lambda: tiny @ tiny, 9, sync)
    rate_small = 256 * 16 * 16 * 32 / max(t_small - call, 1e-9)
    half = max((peak / rate_small - 1.0) / (1 / 16 + 1 / 16 + 1 / 32), 0.0)
    c = torch.randn(128, 64, 128, dtype=dtype, device=dev)  # 4 MiB in float32, beyond L2
    t_copy = median_time(lambda: c.permute(2, 0, 1).contiguous(), 7, sync)
    copy_bps = 2 * c.numel() * c.element_size() / max(t_copy - call, 1e-9)  # read + write
    return Rates(peak, half, copy_bps, call, c.element_size())


def gemm_seconds(r: Rates, batch: float, m: float, n: float, k: float) -> float:
    """Modelled seconds of ``batch`` GEMMs (m x k) @ (k x n) in one call."""
    if min(batch, m, n, k) <= 0:
        return r.call_s
    h = r.half_dim
    eff = 1.0 / (1.0 + h / m + h / n + h / k)
    return batch * m * n * k / (r.peak * eff) + r.call_s


def copy_seconds(r: Rates, elements: float) -> float:
    """Modelled seconds of copying ``elements`` elements (a read and a write at the copy rate)."""
    return elements * r.itemsize / r.copy_bps


def einsum_seconds(step, r: Rates) -> float:
    """One pairwise einsum: a batched GEMM plus a copy of each operand and of the result."""
    size = dict(zip(step.left_indices, step.left_shape)) | dict(zip(step.right_indices, step.right_shape))
    lt, rt, ot = set(step.left_indices), set(step.right_indices), set(step.result_indices)
    p = lambda cs: math.prod(size[c] for c in cs)  # noqa: E731
    bt, m, n, k = p(lt & rt & ot), p((lt & ot) - rt), p((rt & ot) - lt), p((lt & rt) - ot)
    elems = math.prod(step.left_shape) + math.prod(step.right_shape) + step.result_elements
    return gemm_seconds(r, bt, m, n, k) + copy_seconds(r, elems)
