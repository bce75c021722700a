"""The ``ring`` scheme for Tensor Ring matrices: the batch through the ring as a sequence of GEMMs.

Core k (0-based) has shape (r_{k-1}, I_k, J_k, r_k); bond c = r_{d-1} closes the ring. The FLOP-
optimal path, run as einsums, permutes its multi-MB intermediates at every step. Here the closing
bond is opened and carried in front of every intermediate like an extra batch dimension, and the
ring is run from its last core down to its first, every intermediate laid out so that the next step
reads it as plain (possibly transposed) matrices:

* cores f..d-1 (a suffix; f = d-1: the last core alone) are folded into one small matrix
  G (c r_{f-1} J_f..J_{d-1}, I_f..I_{d-1}) (weights only); x (b, I_0..I_{d-1}), *viewed* as the matrix
  (b I_0..I_{f-1}, I_f..I_{d-1}), meets it in one GEMM written transposed, so the new indices lead:
  ``T[c, r_{f-1}, J_F, (b, i_0..i_{f-1})] = G @ x^T``;
* core k (f-1 .. 1): the contracted input index i_k is T's last index and the contracted bond r_k
  follows c, so ``T'[c, r_{k-1} j_k, rest] = sum_{r_k} G_k[r_k] (r_{k-1} j_k, i_k) @ T[c, r_k]^T``:
  r_k GEMMs accumulated into one output (each over all c at once), every one with the long
  dimension ``rest = (J_{k+1}.., b, i_0..i_{k-1})``;
* core 0 closes the ring: ``sum_{c, r_0} T[c, r_0] (J_1.. b, i_0) @ G_0[c, :, :, r_0] (i_0, j_0)``,
  one batched GEMM and a sum over (c, r_0) (the trace), copied once into y (b, j_0, J_1..).

Every multiply-add is one the pairwise contraction in this order needs (the trace costs nothing
extra). The batch runs in row blocks so each block's intermediates stay in cache. The backward is
hand-written, every gradient a GEMM on the same views; the training forward keeps each block's
step inputs up to :data:`btcore.contract.schemes.chain.KEEP_BYTES`, beyond which the backward
recomputes a block's forward. The planner weighs every fold point f against the other schemes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch

from ...formats import TRSpec
from ...indices import IN, OUT, RANK
from ...plan import ContractionPlan, make_step
from ..calibration import Rates, copy_seconds, einsum_seconds, gemm_seconds
from .base import Scheme, blocked_rows, leaf_grads, run_steps
from .chain import KEEP_BYTES

__all__ = ["RingScheme", "RING", "ring_plan", "ring_weights", "ring_forward", "ring_backward", "ring_kept_bytes",
           "NARROW_FACTOR", "BACKWARD_FACTOR"]

#: The ring's GEMMs have dimensions of a mode or a bond (4-20), where the GEMM falls further below
#: its large-size rate than the shared model (``Rates.half_dim``) says: they are priced with this many
#: times the half-efficiency dimension. With 2 (and :data:`BACKWARD_FACTOR` 3) the model picks the
#: fastest measured scheme in all eight cases of bench/ring.py (UCF11 and the app size, batch 16 and
#: 256, forward and forward+backward, 1 thread); with 1 it kept the unfolded ring for training at the
#: app size, measured twice as slow as the fold of cores 3-4.
NARROW_FACTOR = 2.0
#: The backward's input gradients are GEMMs with a narrow output (rows x I_k), measured 3-5x slower
#: than the forward GEMM of the same multiply-adds: the backward is priced as this many forwards
#: (one more where the forward's step inputs are not kept and each block is recomputed).
BACKWARD_FACTOR = 3.0


def ring_plan(spec, batch: int, fold_from: int) -> ContractionPlan:
    """The ring scheme's plan with cores ``fold_from``..d-1 folded (0-based; d-1: no fold), its steps in
    the layouts that run."""
    d = spec.d
    net = spec.network()
    sizes = dict(net.sizes) | {"b": batch}
    terms = dict(zip(net.names, net.terms))
    c, f = RANK[d - 1], fold_from
    g_t = c + RANK[f - 1] + OUT[f:d] + IN[f:d]
    steps, cur, cur_t = [], f"G{f + 1}", terms[f"G{f + 1}"]
    for k in range(f + 1, d):  # fold left to right; the last fold step writes G's layout
        core = f"G{k + 1}"
        keep = g_t if k == d - 1 else RANK[f - 1] + IN[f:k + 1] + OUT[f:k + 1] + RANK[k]
        name = "G" if k == d - 1 else f"F{k - f}"
        steps.append(make_step(cur, core, name, cur_t, terms[core], keep, sizes))
        cur, cur_t = name, keep
    if f == d - 1:
        cur_t = terms[cur]
    res = c + RANK[f - 1] + OUT[f:d] + "b" + IN[:f]
    steps.append(make_step("x", cur, "T0", terms["x"], cur_t, res, sizes))
    cur, cur_t = "T0", res
    for k in range(f - 1, 0, -1):
        res = c + RANK[k - 1] + OUT[k:d] + "b" + IN[:k]
        name = f"T{f - k}"
        steps.append(make_step(cur, f"G{k + 1}", name, cur_t, terms[f"G{k + 1}"], res, sizes))
        cur, cur_t = name, res
    steps.append(make_step(cur, "G1", "y", cur_t, terms["G1"], net.output, sizes))
    label = "ring" if f == d - 1 else f"ring fold {f + 1}-{d}"
    return ContractionPlan("contract", batch, tuple(steps), "ring", net.output, scheme="ring",
                           folded=tuple(range(f, d)), label=label, spec=spec)


def ring_weights(plan: ContractionPlan, tensors):
    """The ring's matrices from the cores (differentiable): G (c r_{f-1} J_F, I_F); for cores f-1..1
    ``(r_k, r_{k-1} J_k, I_k)``; core 0 as ``(c r_0, I_0, J_0)``."""
    spec = plan.spec
    d, f = spec.d, plan.folded[0]
    net = spec.network()
    env = dict(zip(net.names[1:], tensors))
    nf = len(plan.folded) - 1
    if nf:
        g = run_steps(plan.steps[:nf], {f"G{k + 1}": env[f"G{k + 1}"] for k in plan.folded})
    else:
        g = tensors[f].permute(3, 0, 2, 1)
    g = g.reshape(-1, math.prod(spec.in_modes[f:])).contiguous()
    mids = [tensors[k].permute(3, 0, 2, 1).reshape(spec.ranks[k], -1, spec.in_modes[k]).contiguous()
            for k in range(f - 1, 0, -1)]
    c0 = tensors[0]
    a0 = c0.permute(0, 3, 1, 2).reshape(-1, spec.in_modes[0], spec.out_modes[0]).contiguous()
    return [g] + mids + [a0]


def _block_forward(spec: TRSpec, f: int, xb: torch.Tensor, mats, saved: list | None) -> torch.Tensor:
    """(J_1..J_{d-1} b, j_0) result of one row block; appends each step's input to ``saved`` if given."""
    g, *mids, a0 = mats
    c = spec.ranks[-1]
    x0 = xb.reshape(-1, g.shape[1])
    t = torch.mm(g, x0.T)  # (c r_{f-1} J_F, b i_0..i_{f-1}): one GEMM, x only viewed
    if saved is not None:
        saved.append(x0)
    for k, w in zip(range(f - 1, 0, -1), mids):
        tv = t.view(c, w.shape[0], -1, spec.in_modes[k])  # (c, r_k, rest, i_k)
        if saved is not None:
            saved.append(tv)
        out = t.new_empty(c, w.shape[1], tv.shape[2])
        torch.bmm(w[0].expand(c, -1, -1), tv[:, 0].transpose(1, 2), out=out)
        for r in range(1, w.shape[0]):  # the bond r_k: GEMMs accumulated into one output
            out.baddbmm_(w[r].expand(c, -1, -1), tv[:, r].transpose(1, 2))
        t = out
    z = t.view(a0.shape[0], -1, spec.in_modes[0])  # (c r_0, J_1.. b, i_0)
    if saved is not None:
        saved.append(z)
    u = torch.bmm(z, a0)
    return u.sum(0) if u.shape[0] > 1 else u[0]  # the trace: a sum over (c, r_0)


def ring_forward(plan: ContractionPlan, x2: torch.Tensor, mats, rows: int, keep: bool = False):
    """y (b, J) for x2 (b, I) in blocks of ``rows`` rows written into one preallocated y.

    With ``keep``, returns (y, each block's saved step inputs) for :func:`ring_backward`.
    """
    spec, f = plan.spec, plan.folded[0]
    j0 = spec.out_modes[0]
    y = x2.new_empty(x2.shape[0], spec.out_size)
    kept = []
    for r0 in range(0, x2.shape[0], rows):
        saved = [] if keep else None
        yy = _block_forward(spec, f, x2[r0: r0 + rows], mats, saved)
        yb = y[r0: r0 + rows]
        nb = yb.shape[0]
        yb.view(nb, j0, -1).copy_(yy.view(-1, nb, j0).permute(1, 2, 0))
        kept.append(saved)
    return (y, kept) if keep else y


def ring_kept_bytes(plan: ContractionPlan, itemsize: int) -> int:
    """Bytes the training forward keeps for the backward when it saves every step's input (x excluded)."""
    x_steps = plan.steps[len(plan.folded) - 1:]
    return itemsize * sum(s.result_elements for s in x_steps[:-1])


def _block_backward(spec: TRSpec, gyb, saved, mats, grads, g_xb):
    """Accumulate the ring matrices' gradients into ``grads``; write the block's x gradient into ``g_xb``
    (rows of the preallocated x gradient, or None where it is not needed)."""
    g, *mids, a0 = mats
    c, nb, j0 = spec.ranks[-1], gyb.shape[0], spec.out_modes[0]
    g_yy = gyb.reshape(nb, j0, -1).permute(2, 0, 1).reshape(-1, j0)  # (J_1.. b, j_0)
    z = saved[-1]
    grads[-1] += torch.matmul(z.transpose(1, 2), g_yy)          # (c r_0, i_0, j_0)
    g_t = torch.matmul(g_yy, a0.transpose(1, 2))                 # (c r_0, J_1.. b, i_0)
    for j in range(len(mids) - 1, -1, -1):
        w, tv = mids[j], saved[1 + j]
        g_out = g_t.view(c, w.shape[1], -1)                      # (c, r_{k-1} j_k, rest)
        g_tv = tv.new_empty(tv.shape)
        for r in range(w.shape[0]):
            grads[1 + j][r] += torch.bmm(g_out, tv[:, r]).sum(0)
        for cc in range(c):
            torch.matmul(g_out[cc].T, w, out=g_tv[cc])           # (r_k, rest, i_k)
        g_t = g_tv
    x0 = saved[0]
    g_o = g_t.reshape(g.shape[0], -1)                            # (c r_{f-1} J_F, b i_0..i_{f-1})
    grads[0] += torch.mm(g_o, x0)
    if g_xb is not None:
        torch.mm(g_o.T, g, out=g_xb.view(x0.shape))


def ring_backward(plan: ContractionPlan, gy: torch.Tensor, x2: torch.Tensor, mats, rows: int, need_x: bool,
                  kept=None):
    """(x gradient or None, gradients of the matrices of :func:`ring_weights`), block by block.

    ``kept``: the blocks' step inputs saved by :func:`ring_forward` with ``keep``; without it each
    block's forward is recomputed first.
    """
    spec, f = plan.spec, plan.folded[0]
    grads = [torch.zeros_like(m) for m in mats]
    g_x = x2.new_empty(x2.shape) if need_x else None
    gy = gy.contiguous()
    for blk, r0 in enumerate(range(0, x2.shape[0], rows)):
        saved = kept[blk] if kept is not None else []
        if kept is None:
            _block_forward(spec, f, x2[r0: r0 + rows], mats, saved)
        _block_backward(spec, gy[r0: r0 + rows], saved, mats, grads, g_x[r0: r0 + rows] if need_x else None)
    return g_x, grads


def _ring_block(plan: ContractionPlan, nb: int, r: Rates) -> float:
    """Modelled seconds of one row block of ``nb`` rows (each GEMM as it is called)."""
    r = replace(r, half_dim=r.half_dim * NARROW_FACTOR)
    spec, f = plan.spec, plan.folded[0]
    ins, outs, rk = spec.in_modes, spec.out_modes, spec.ranks
    c = rk[-1]
    rows_g = c * rk[f - 1] * math.prod(outs[f:])
    rest = nb * math.prod(ins[:f])
    t = gemm_seconds(r, 1, rows_g, rest, math.prod(ins[f:]))
    e = rows_g * rest  # elements of the current intermediate
    for k in range(f - 1, 0, -1):
        x_k = e // (c * rk[k] * ins[k])
        n_k = rk[k - 1] * outs[k]
        t += rk[k] * gemm_seconds(r, c, n_k, x_k, ins[k])  # r_k accumulated batched GEMMs
        e = c * n_k * x_k
    z = e // (c * rk[0] * ins[0])
    t += gemm_seconds(r, c * rk[0], z, outs[0], ins[0])
    if c * rk[0] > 1:
        t += copy_seconds(r, c * rk[0] * z * outs[0])  # the sum over (c, r_0)
    return t + 2 * copy_seconds(r, nb * spec.out_size)  # the one copy into y


@dataclass
class _Saved:
    """The training forward's state: x, the cores, the row block size, each block's step inputs (or None)."""

    x2: torch.Tensor
    tensors: tuple
    rows: int
    kept: list | None


class RingScheme(Scheme):
    """The ring of a TR spec with d >= 2, one plan per fold point: every step a GEMM on views."""

    name = "ring"
    order = 1
    methods = frozenset({"contract", "auto"})

    def plans(self, spec, batch: int) -> list[ContractionPlan]:
        if not isinstance(spec, TRSpec) or spec.d < 2:
            return []
        return [ring_plan(spec, batch, f) for f in range(spec.d - 1, 0, -1)]

    def rows(self, plan: ContractionPlan, device_type: str = "cpu") -> int:
        """Rows per block (at least 1, so a 0-row batch runs no block)."""
        return max(blocked_rows(plan, device_type), 1)

    def working_elements(self, plan: ContractionPlan, rows: int) -> int:
        """The folded G (whatever the batch) or the largest x-step intermediate of one block."""
        nf = len(plan.folded) - 1
        fold = max((s.result_elements for s in plan.steps[:nf]), default=0)
        per_row = max(s.result_elements for s in plan.steps[nf:]) / max(plan.batch, 1)
        return max(fold, math.ceil(per_row * rows))

    def run(self, plan: ContractionPlan, x2: torch.Tensor, tensors) -> torch.Tensor:
        """y (b, J) in row blocks written into one preallocated y (not differentiable: see :meth:`forward`)."""
        return ring_forward(plan, x2, ring_weights(plan, tensors), self.rows(plan, x2.device.type))

    def forward(self, plan, x2, tensors, need):
        mats = ring_weights(plan, [t.detach() for t in tensors])
        rows = self.rows(plan, x2.device.type)
        if ring_kept_bytes(plan, x2.element_size()) <= KEEP_BYTES:
            y, kept = ring_forward(plan, x2, mats, rows, keep=True)
        else:
            y, kept = ring_forward(plan, x2, mats, rows), None
        return y, _Saved(x2, tuple(tensors), rows, kept)

    def backward(self, plan, state, gy, need):
        """The hand-written block backward, then the small weight reshuffle's (and fold's) own autograd."""
        with torch.enable_grad():
            leaves = [v.detach().requires_grad_(n) for v, n in zip(state.tensors, need[1:])]
            mats = ring_weights(plan, leaves)
        g_x, g_mats = ring_backward(plan, gy, state.x2, [m.detach() for m in mats], state.rows, need[0], state.kept)
        state.kept = None
        return (g_x,) + leaf_grads(mats, g_mats, leaves, need[1:])

    def cost(self, plan: ContractionPlan, r: Rates, device_type: str) -> tuple[float, float]:
        nf = len(plan.folded) - 1
        fold = sum(einsum_seconds(s, r) for s in plan.steps[:nf])
        rows = self.rows(plan, device_type)
        full, left = divmod(plan.batch, rows)
        fwd = full * _ring_block(plan, rows, r) + (_ring_block(plan, left, r) if left else 0.0)
        kept = ring_kept_bytes(plan, r.itemsize) <= KEEP_BYTES
        # backward: two GEMMs per forward GEMM (after recomputing the forward where it is not kept),
        # and the fold's own gradient (twice the fold)
        return fold + fwd, 2 * fold + (BACKWARD_FACTOR if kept else BACKWARD_FACTOR + 1) * fwd


#: The registered instance.
RING = RingScheme()
