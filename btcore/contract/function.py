"""The autograd Function behind ``matmul``, the timing cache (:func:`tune_plan`), and allocator settings.

Backward, by scheme:

* chain: hand-written per row block (:func:`~btcore.contract.chain.chain_backward`: every gradient
  a GEMM on the forward's views, kept by the forward up to ``chain.KEEP_BYTES``, else recomputed);
* single-mode fold: hand-written, every gradient one GEMM or batched GEMM on views
  (x: dT @ G^T; G: x^T @ dT; last factor: dY @ T^T), then the small fold's own backward for the
  core and the folded factors;
* path, general fold, dense: the forward runs with autograd recording on detached leaves (x as a
  leaf only when its gradient is needed) and backward replays that graph, so no gradient that is
  not needed is computed (a layer's input is usually data).
"""

from __future__ import annotations

import ctypes
from collections import OrderedDict

import torch
from torch.autograd.function import once_differentiable

from . import chain, cost, schemes
from .paths import ContractionPlan

__all__ = ["PlannedMatmul", "tune_plan", "keep_memory"]


class PlannedMatmul(torch.autograd.Function):
    """``y = x2 @ W`` along a plan: ``PlannedMatmul.apply(plan, spec, x2, *tensors)`` with x2 (b, I)."""

    @staticmethod
    def forward(ctx, plan: ContractionPlan, spec, x2: torch.Tensor, *tensors):
        ctx.plan, ctx.spec = plan, spec
        need = ctx.needs_input_grad[2:]
        if plan.scheme == "chain":
            mats = chain.chain_weights(spec, [t.detach() for t in tensors])
            ctx.rows = chain.chain_rows(spec, x2.shape[0], x2.device.type)
            ctx.save_for_backward(x2, *tensors)
            ctx.inner = "chain"
            ctx.kept = None
            if chain.kept_bytes(spec, x2.shape[0], x2.element_size()) <= chain.KEEP_BYTES:
                y, ctx.kept = chain.chain_forward(spec, x2, mats, ctx.rows, keep=True)
                return y
            return chain.chain_forward(spec, x2, mats, ctx.rows)
        if schemes.fold_single(plan):
            gm, am = schemes.fold_weights(plan, spec, [t.detach() for t in tensors])
            y, t = schemes.fold_forward(plan, spec, x2, gm, am, keep=True)
            ctx.save_for_backward(x2, gm, am, t, *tensors)
            ctx.inner = None
            return y
        with torch.enable_grad():
            leaves = [v.detach().requires_grad_(n) for v, n in zip((x2,) + tensors, need)]
            y = schemes.run(plan, spec, leaves[0], leaves[1:])
        ctx.inner = (y, leaves)
        return y.detach()

    @staticmethod
    @once_differentiable
    def backward(ctx, gy):
        need = ctx.needs_input_grad[2:]
        if ctx.inner == "chain":
            return (None, None) + _chain_backward(ctx, gy, need)
        if ctx.inner is not None:
            y, leaves = ctx.inner
            wanted = [v for v, n in zip(leaves, need) if n]
            # retain_graph: the inner graph lives as long as this node (a retained outer graph may
            # call backward again); it is freed with the node.
            got = iter(torch.autograd.grad(y, wanted, gy, allow_unused=True, retain_graph=True)) if wanted else iter(())
            return (None, None) + tuple(next(got) if n else None for n in need)
        x2, gm, am, t, *tensors = ctx.saved_tensors
        g_x, g_gm, g_am = schemes.fold_backward(ctx.plan, ctx.spec, gy, x2, gm, am, t, need[0])
        grads = [None] * len(tensors)
        if any(need[1:]):
            with torch.enable_grad():
                leaves = [v.detach().requires_grad_(n) for v, n in zip(tensors, need[1:])]
                gm2, am2 = schemes.fold_weights(ctx.plan, ctx.spec, leaves)
                wanted = [v for v, n in zip(leaves, need[1:]) if n]
                got = iter(torch.autograd.grad((gm2, am2), wanted, (g_gm, g_am), allow_unused=True))
            grads = [next(got) if n else None for n in need[1:]]
        return (None, None, g_x, *grads)


def _chain_backward(ctx, gy, need):
    """The chain's hand-written block backward, then the small weight reshuffle's own autograd."""
    x2, *tensors = ctx.saved_tensors
    with torch.enable_grad():
        leaves = [v.detach().requires_grad_(n) for v, n in zip(tensors, need[1:])]
        mats = chain.chain_weights(ctx.spec, leaves)
    g_x, g_mats = chain.chain_backward(ctx.spec, gy, x2, [m.detach() for m in mats], ctx.rows, need[0], ctx.kept)
    ctx.kept = None
    wanted = [v for v, n in zip(leaves, need[1:]) if n]
    got = iter(torch.autograd.grad(mats, wanted, g_mats, allow_unused=True)) if wanted else iter(())
    return (g_x,) + tuple(next(got) if n else None for n in need[1:])


#: Timed plans by (spec, batch, method, direction, dtype, device), oldest dropped past :data:`_TUNED_MAX`.
_TUNED: "OrderedDict" = OrderedDict()
_TUNED_MAX = 256


def _time_plan(plan, M, xt, direction: str, repeats: int) -> float:
    spec = M.spec
    sync = (lambda: torch.cuda.synchronize(M.device)) if M.device.type == "cuda" else (lambda: None)
    tensors = [t.detach().requires_grad_(direction == "train") for t in M.tensors()]

    def once():
        if direction == "train":
            PlannedMatmul.apply(plan, spec, xt, *tensors).sum().backward()
        else:
            with torch.no_grad():
                schemes.run(plan, spec, xt, tensors)

    return cost.median_time(once, repeats, sync)


def tune_plan(M, batch: int, *, method: str = "contract", direction: str = "forward", slack: float = 1.5,
              max_candidates: int = 3, repeats: int = 3) -> ContractionPlan:
    """The fastest *measured* of the model's best candidates for ``M`` at ``batch`` rows, cached.

    The candidates whose modelled cost is within ``slack`` times the cheapest (at most
    ``max_candidates``) are each run ``repeats`` times on random data of ``M``'s dtype and device
    (forward, or forward + backward for ``direction="train"``) and the fastest median is kept. The
    cache key is (spec, batch, method, direction, dtype, device).
    """
    from dataclasses import replace

    spec = M.spec
    key = (spec, batch, method, direction, M.dtype, str(M.device))
    if key in _TUNED:
        _TUNED.move_to_end(key)
        return _TUNED[key]
    ranked = cost.ranked(spec, batch, method, M.device.type, M.dtype, direction)
    cands = [p for p in ranked if p.cost_s <= slack * ranked[0].cost_s][:max_candidates]
    best = cands[0]
    if len(cands) > 1:
        with torch.random.fork_rng(devices=[M.device] if M.device.type == "cuda" else []):
            xt = torch.randn(batch, spec.in_size, dtype=M.dtype, device=M.device)
        with torch.enable_grad():
            timings = [_time_plan(p, M, xt, direction, repeats) for p in cands]
        best = cands[min(range(len(cands)), key=timings.__getitem__)]
    plan = replace(best, strategy=best.strategy + " (timed)")
    _TUNED[key] = plan
    while len(_TUNED) > _TUNED_MAX:
        _TUNED.popitem(last=False)
    return plan


def keep_memory(threshold_bytes: int = 1 << 30) -> bool:
    """Ask glibc to keep freed blocks up to ``threshold_bytes`` instead of returning them to the OS.

    Large intermediates are otherwise unmapped on free and page-faulted back on the next call
    (docs/reference.md, "Speed, measured side by side": 137k minor faults per call, 11-22 ms spread
    across processes). This changes the whole process's allocator, so it is opt-in: the
    benchmarks and the training CLI call it. Returns False where glibc's ``mallopt`` is missing.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    ok = libc.mallopt(m_trim_threshold, int(threshold_bytes)) == 1
    return bool(ok and libc.mallopt(m_mmap_threshold, min(int(threshold_bytes), 1 << 25)) == 1)
