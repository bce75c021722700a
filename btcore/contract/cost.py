"""A cost model of the schemes, calibrated on this machine, and the planner that uses it.

Multiply-adds alone do not predict time (docs/reference.md, "Speed, measured side by side"): a
pairwise einsum permutes its operands (memory copies), and small GEMMs run far below the large-GEMM
rate. So a GEMM of (batch x m x k) @ (k x n) is modelled as

    time = batch*m*n*k / (peak * eff) + call,   eff = 1 / (1 + h/m + h/n + h/k)

(``h``: the dimension at which GEMM efficiency halves) plus, for each einsum step, one copy of
each operand and of the result at the measured copy rate. ``peak``, ``h``, the copy rate and the
per-call overhead are measured once per (device, dtype) on first use, in well under half a second.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from functools import lru_cache

import torch

from .paths import ContractionPlan, split_steps
from ..formats import DenseSpec
from . import chain as chain_module
from .chain import chain_plan, chain_rows, chain_spec, kept_bytes
from .schemes import chunk_rows, dense_plan, fold_plans, fold_single, path_plans

__all__ = ["Rates", "rates", "set_rates", "plan_cost", "candidates", "choose", "ranked", "median_time"]


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


def set_rates(device_type: str, dtype: torch.dtype, value: Rates | None) -> None:
    """Fix (or with ``None`` forget) the rates of a (device type, dtype), e.g. for reproducible plans."""
    _RATES.pop((device_type, dtype), None)
    if value is not None:
        _RATES[(device_type, dtype)] = value
    choose.cache_clear()


def rates(device_type: str = "cpu", dtype: torch.dtype = torch.float32) -> Rates:
    """The calibrated :class:`Rates` of this process for (device type, dtype), measured on first use."""
    key = (device_type, dtype)
    if key not in _RATES:
        _RATES[key] = _calibrate(device_type, dtype)
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


def _gemm(r: Rates, batch: float, m: float, n: float, k: float) -> float:
    if min(batch, m, n, k) <= 0:
        return r.call_s
    h = r.half_dim
    eff = 1.0 / (1.0 + h / m + h / n + h / k)
    return batch * m * n * k / (r.peak * eff) + r.call_s


def _einsum_cost(step, r: Rates) -> float:
    """One pairwise einsum: a batched GEMM plus a copy of each operand and of the result."""
    size = dict(zip(step.left_indices, step.left_shape)) | dict(zip(step.right_indices, step.right_shape))
    lt, rt, ot = set(step.left_indices), set(step.right_indices), set(step.result_indices)
    p = lambda cs: math.prod(size[c] for c in cs)  # noqa: E731
    bt, m, n, k = p(lt & rt & ot), p((lt & ot) - rt), p((rt & ot) - lt), p((lt & rt) - ot)
    elems = math.prod(step.left_shape) + math.prod(step.right_shape) + step.result_elements
    return _gemm(r, bt, m, n, k) + elems * r.itemsize / r.copy_bps


def _path_cost(plan: ContractionPlan, r: Rates, device_type: str) -> tuple[float, float]:
    weight_only, x_steps = split_steps(plan.steps)
    w = sum(_einsum_cost(s, r) for s in weight_only)
    blocks = math.ceil(plan.batch / chunk_rows(plan, device_type))
    x = sum(_einsum_cost(s, r) for s in x_steps) + (blocks - 1) * len(x_steps) * r.call_s
    if blocks > 1:
        x += plan.steps[-1].result_elements * r.itemsize / r.copy_bps  # torch.cat of the row blocks
    # backward: each einsum step's two gradient einsums; the weight-only steps likewise
    return w + x, 2 * (w + x)


def _fold_cost(plan: ContractionPlan, r: Rates, device_type: str) -> tuple[float, float]:
    nf = len(plan.folded)
    fold = sum(_einsum_cost(s, r) for s in plan.steps[:nf])
    big, rest = plan.steps[nf], plan.steps[nf + 1:]
    b = plan.batch
    sizes = dict(zip(big.left_indices, big.left_shape)) | dict(zip(big.right_indices, big.right_shape))
    summed = math.prod(sizes[c] for c in big.summed)
    cols = math.prod(sizes[c] for c in big.right_indices if c not in big.summed)
    gemm = _gemm(r, 1, big.macs // (summed * cols), cols, summed)
    if fold_single(plan):
        last = rest[0]
        s2 = dict(zip(last.left_indices, last.left_shape)) | dict(zip(last.right_indices, last.right_shape))
        k2 = math.prod(s2[c] for c in last.summed)
        j_k = last.right_shape[-2]
        j_rest = last.result_elements // (b * j_k)
        apply = _gemm(r, b, j_k, j_rest, k2)  # b GEMMs (J_1 x K) @ (K x J_F)
        blocks = math.ceil(b / chunk_rows(plan, device_type))
        fwd = fold + gemm + apply + (blocks - 1) * 2 * r.call_s
        # backward: the fold's gradient (twice the fold), two GEMMs like the big one, two like the last
        return fwd, 2 * fold + 2 * gemm + 2 * apply
    apply = sum(_einsum_cost(s, r) for s in rest)
    if plan.folded[0] == 0:  # a prefix fold copies x once
        apply += 2 * math.prod(big.left_shape) * r.itemsize / r.copy_bps
    return fold + gemm + apply, 2 * (fold + gemm + apply)


def _chain_block(spec, nb: int, r: Rates) -> float:
    """Seconds of one row block of ``nb`` rows of the chain scheme (each GEMM as it is called)."""
    n, d = spec.blocks, spec.d
    ins, outs, rk = spec.in_modes, spec.out_modes, list(spec.ranks)
    rows = [rk[k] * outs[k] for k in range(d)]
    rows[1] = rk[0] * outs[1]  # mode 2's factor carries the folded core: rows (r_1, j_2)
    cols = nb * spec.in_size // ins[-1]  # (b, i_1..i_{d-1})
    t = _gemm(r, 1, n * rows[-1], cols, ins[-1])
    p, e = 1, outs[-1] * cols  # rank combinations applied, elements per (block, combination)
    if d > 2:
        p = rk[-1]
    for k in range(d - 2, 0, -1):
        x_k = e // ins[k]
        # n*p GEMMs (rows x I_k) @ (I_k x X) in one broadcast matmul; G's are summed over p after
        t += _gemm(r, n * p, rows[k], x_k, ins[k])
        if k == 1 and p > 1:
            t += n * p * rows[k] * x_k * r.itemsize / r.copy_bps
        p, e = (p * rk[k], outs[k] * x_k) if k > 1 else (1, outs[k] * x_k)
    jb = e // ins[0]
    t += _gemm(r, n * rk[0], jb, outs[0], ins[0])
    if n * rk[0] > 1:
        t += n * rk[0] * jb * outs[0] * r.itemsize / r.copy_bps  # the sum over (n, r_1)
    return t + 2 * nb * spec.out_size * r.itemsize / r.copy_bps  # the one copy into y


def _chain_cost(plan: ContractionPlan, spec, r: Rates, device_type: str) -> tuple[float, float]:
    b = plan.batch
    rows = chain_rows(spec, b, device_type)
    full, left = divmod(b, rows)
    fwd = full * _chain_block(spec, rows, r) + (_chain_block(spec, left, r) if left else 0.0)
    # backward: two GEMMs per forward GEMM, after recomputing the forward where it is not kept
    kept = kept_bytes(spec, b, r.itemsize) <= chain_module.KEEP_BYTES
    return fwd, (2 if kept else 3) * fwd


def _dense_cost(plan: ContractionPlan, r: Rates) -> tuple[float, float]:
    rec = sum(_einsum_cost(s, r) for s in plan.steps[:-1])
    g = plan.steps[-1]
    gemm = _gemm(r, 1, g.left_shape[0], g.right_shape[1], g.left_shape[1])
    return rec + gemm, 2 * rec + 2 * gemm


def plan_cost(plan: ContractionPlan, r: Rates, device_type: str = "cpu", direction: str = "forward") -> float:
    """The model's seconds for ``plan``: forward, or forward + backward with ``direction="train"``."""
    if plan.scheme == "chain":
        fwd, bwd = _chain_cost(plan, chain_spec(plan), r, device_type)
    elif plan.scheme == "dense":
        fwd, bwd = _dense_cost(plan, r)
    elif plan.scheme == "fold":
        fwd, bwd = _fold_cost(plan, r, device_type)
    else:
        fwd, bwd = _path_cost(plan, r, device_type)
    return fwd + (bwd if direction == "train" else 0.0)


def candidates(spec, batch: int, method: str) -> list[ContractionPlan]:
    """The schemes ``method`` allows: "contract" (W never formed: paths, the chain, folds), "dense", "auto" (all),
    "path" (the opt_einsum paths only)."""
    if isinstance(spec, DenseSpec):  # one GEMM whatever the method
        return path_plans(spec, batch)
    if method == "dense":
        return [dense_plan(spec, batch)]
    out = path_plans(spec, batch)
    if method in ("contract", "auto"):
        out += chain_plan(spec, batch) + fold_plans(spec, batch)
    if method == "auto":
        out.append(dense_plan(spec, batch))
    return out


@lru_cache(maxsize=1024)
def choose(spec, batch: int, method: str, device_type: str, dtype: torch.dtype, direction: str) -> ContractionPlan:
    """The candidate with the least modelled cost (its ``cost_s`` filled in); cached per process."""
    r = rates(device_type, dtype)
    scored = [(plan_cost(p, r, device_type, direction), i, p) for i, p in enumerate(candidates(spec, batch, method))]
    cost, _, best = min(scored)
    return _with_cost(best, cost)


def ranked(spec, batch: int, method: str, device_type: str, dtype: torch.dtype, direction: str):
    """All candidates with their modelled costs, cheapest first."""
    r = rates(device_type, dtype)
    scored = [(plan_cost(p, r, device_type, direction), i, p) for i, p in enumerate(candidates(spec, batch, method))]
    return [_with_cost(p, c) for c, _, p in sorted(scored)]


def _with_cost(plan: ContractionPlan, cost: float) -> ContractionPlan:
    return replace(plan, cost_s=float(cost))
