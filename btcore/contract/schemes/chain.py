"""The ``chain`` scheme for Block-Term matrices: one mode at a time, every step a GEMM on views.

The FLOP-optimal order applies the factors of modes d..2 one after another, then the core, then
mode 1's factor. Run as einsums, each step permutes its operands (copies of multi-MB
intermediates) and runs as a small batched GEMM. Here every intermediate is laid out so that the
next step reads it as a plain (possibly transposed) matrix, and the core is folded into mode 2's
factor (the same multiply-adds when R_1 = R_2, and one step fewer):

* x (b, I_1..I_d) is viewed as a matrix (b I_1..I_{d-1}, I_d); the first step is *one* GEMM with
  every block's factor of mode d stacked, written transposed so the new indices lead:
  ``T[n, r_d, j_d, (b, i_1..i_{d-1})] = A_d[n]^T @ x^T``. The block index N is a GEMM row dimension.
* mode k (d-1 .. 3): the contracted input index is the last one again, so for every block and
  every rank combination p of the modes already applied, ``T'[n, p, r_k, j_k, rest] =
  A_k[n] @ T[n, p]^T`` is one GEMM whose output is contiguous. Ranks gather in front
  (r_d, .., r_k) and output indices after them (j_k, .., j_d): never interleaved.
* mode 2, with the core folded into its factor (G, weights only): ``Z[n] = sum_p G[n, p] @
  T[n, p]^T``, all (n, p) GEMMs in one broadcast matmul, then a sum over p; Z is
  (n, r_1, j_2..j_d, b, i_1);
* mode 1: ``sum_{n, r_1} Z[n, r_1](j_2..j_d b, i_1) @ A_1[n, r_1](i_1, j_1)``, one batched GEMM and
  a sum; the result (j_2..j_d, b, j_1) is copied once into y (b, j_1..j_d), the only copy.

The batch runs in row blocks so each block's intermediates stay in cache. The backward is
hand-written (each gradient a GEMM on the same views); the training forward keeps each block's
step inputs for it up to :data:`KEEP_BYTES`, beyond which the backward recomputes a block's forward.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch

from ...formats import BTSpec
from ...indices import BLOCK, IN, OUT, RANK
from ...plan import ContractionPlan, make_step
from ..calibration import Rates, copy_seconds, gemm_seconds
from .base import Scheme, leaf_grads

__all__ = ["CHAIN_ELEMENTS", "KEEP_BYTES", "ChainScheme", "CHAIN", "kept_bytes", "chain_plan", "chain_rows",
           "chain_weights", "chain_forward", "chain_backward"]

#: The training forward keeps every step's input for the backward up to this many bytes (beyond,
#: the backward recomputes each block's forward instead).
KEEP_BYTES = 1 << 29

#: Row blocks keep the largest per-block intermediate under this many elements (4 MiB in float32).
#: Measured on the UCF11 map at batch 256 (N=2, 1 thread, CPU time): blocks of 4, 8, 16 rows
#: (0.4, 0.8, 1.6 M elements) took 63, 50, 58 ms: fewer GEMM calls until the blocks leave the caches.
CHAIN_ELEMENTS = 1 << 20


def chain_plan(spec, batch: int) -> list[ContractionPlan]:
    """The chain scheme of a BT spec with d >= 2 (empty list otherwise), its steps in the layouts that run."""
    if not isinstance(spec, BTSpec) or spec.d < 2:
        return []
    net = spec.network()
    d, blk = spec.d, (BLOCK if spec.blocks > 1 else "")
    sizes = dict(net.sizes) | {"b": batch}
    terms = dict(zip(net.names, net.terms))
    others = "".join(RANK[k] for k in range(d - 1, 1, -1))  # r_d..r_3: ranks applied before G
    g_t = blk + others + RANK[0] + OUT[1] + IN[1]
    steps = [make_step("C", "A2", "G", terms["C"], terms["A2"], g_t, sizes)]
    cur, cur_t, ranks, outs = "x", terms["x"], "", ""
    for k in range(d - 1, 1, -1):
        ranks += RANK[k]
        outs = OUT[k] + outs
        res = blk + ranks + outs + "b" + IN[:k]
        name = f"T{d - k}"
        steps.append(make_step(cur, f"A{k + 1}", name, cur_t, terms[f"A{k + 1}"], res, sizes))
        cur, cur_t = name, res
    res = blk + RANK[0] + OUT[1] + outs + "b" + IN[0]
    steps.append(make_step(cur, "G", "Z", cur_t, g_t, res, sizes))
    steps.append(make_step("Z", "A1", "y", res, terms["A1"], net.output, sizes))
    return [ContractionPlan("contract", batch, tuple(steps), "chain", net.output, scheme="chain", spec=spec)]


def chain_rows(spec: BTSpec, batch: int, device_type: str = "cpu") -> int:
    """Rows of x per block (a power of two; the whole batch on GPUs)."""
    return _rows(spec, batch, device_type, CHAIN_ELEMENTS)


@lru_cache(maxsize=1024)
def _rows(spec: BTSpec, batch: int, device_type: str, elements: int) -> int:
    if device_type != "cpu":
        return batch
    per_row = max(s.result_elements for s in chain_plan(spec, 1)[0].steps)
    rows = 1
    while rows * 2 * per_row <= elements and rows * 2 <= batch:
        rows *= 2
    return min(rows, batch)


def chain_weights(spec: BTSpec, tensors):
    """The chain's weight matrices from the format's tensors (differentiable): for modes d..3
    ``(N, R_k J_k, I_k)``; G, the core folded with mode 2's factor, ``(N, R_d..R_3, R_1 J_2, I_2)``;
    mode 1's factor ``(N R_1, I_1, J_1)``."""
    d = spec.d
    facs = [t if spec.blocks > 1 else t.unsqueeze(0) for t in tensors[:d]]
    core = tensors[d] if spec.blocks > 1 else tensors[d].unsqueeze(0)
    n = core.shape[0]
    mats = [facs[k].permute(0, 3, 2, 1).reshape(n, -1, spec.in_modes[k]).contiguous() for k in range(d - 1, 1, -1)]
    others = "".join(RANK[k] for k in range(d - 1, 1, -1))
    g = torch.einsum(f"n{RANK[:d]},n{IN[1]}{OUT[1]}{RANK[1]}->n{others}{RANK[0]}{OUT[1]}{IN[1]}", core, facs[1])
    g = g.reshape(n, -1, spec.ranks[0] * spec.out_modes[1], spec.in_modes[1]).contiguous()
    a1 = facs[0].permute(0, 3, 1, 2).reshape(n * spec.ranks[0], spec.in_modes[0], spec.out_modes[0]).contiguous()
    return mats + [g, a1]


def _block_forward(spec: BTSpec, xb: torch.Tensor, mats, saved: list | None):
    """(j_2..j_d, b, j_1) result of one row block; appends each step's input to ``saved`` if given."""
    *steps, g, a1 = mats
    n = g.shape[0]
    x0 = xb.reshape(-1, spec.in_modes[-1])
    first = steps[0] if steps else g
    t = torch.mm(first.reshape(-1, x0.shape[1]), x0.T)  # (n r_d j_d, b i_1..i_{d-1}): one GEMM, all blocks
    if saved is not None:
        saved.append(x0)
    p = 1
    for s, k in zip(steps[1:] + [g] if steps else [], range(spec.d - 2, 0, -1)):
        p *= spec.ranks[k + 1]
        tin = t.view(n, p, -1, spec.in_modes[k])
        if saved is not None:
            saved.append(tin)
        if k == 1:  # G sums over the ranks applied so far: n*p GEMMs in one call, then a sum
            out = t.new_empty(n, g.shape[2], tin.shape[2])
            torch.sum(torch.matmul(g, tin.transpose(-1, -2)), 1, out=out)
        else:
            out = t.new_empty(n, p, s.shape[1], tin.shape[2])
            torch.matmul(s.unsqueeze(1), tin.transpose(-1, -2), out=out)  # n*p GEMMs, one call
        t = out
    z = t.view(a1.shape[0], -1, spec.in_modes[0])  # (n r_1, j_2..j_d b, i_1)
    if saved is not None:
        saved.append(z)
    u = torch.bmm(z, a1)  # (n r_1, j_2..j_d b, j_1)
    return u.sum(0) if u.shape[0] > 1 else u[0]


def _write(spec, yb, yy):
    nb = yb.shape[0]
    yb.view(nb, spec.out_modes[0], -1).copy_(yy.view(-1, nb, spec.out_modes[0]).permute(1, 2, 0))


def chain_forward(spec: BTSpec, x2: torch.Tensor, mats, rows: int, keep: bool = False):
    """y (b, J) for x2 (b, I) in blocks of ``rows`` rows written into one preallocated y.

    With ``keep``, returns (y, each block's saved step inputs) for :func:`chain_backward`.
    """
    y = x2.new_empty(x2.shape[0], spec.out_size)
    kept = []
    for r0 in range(0, x2.shape[0], rows):
        saved = [] if keep else None
        _write(spec, y[r0: r0 + rows], _block_forward(spec, x2[r0: r0 + rows], mats, saved))
        kept.append(saved)
    return (y, kept) if keep else y


def kept_bytes(spec: BTSpec, batch: int, itemsize: int) -> int:
    """Bytes the forward keeps for the backward when it saves every step's input (x excluded)."""
    steps = chain_plan(spec, 1)[0].steps
    return batch * itemsize * sum(s.result_elements for s in steps[1:-1])


def _block_backward(spec: BTSpec, gyb, saved, mats, grads, need_x: bool):
    """Accumulate the weight matrices' gradients into ``grads``; return the block's x gradient."""
    *steps, g, a1 = mats
    n, nb = g.shape[0], gyb.shape[0]
    g_yy = gyb.reshape(nb, spec.out_modes[0], -1).permute(2, 0, 1).reshape(-1, spec.out_modes[0])
    z = saved[-1]
    grads[-1] += torch.matmul(z.transpose(1, 2), g_yy)           # (n r_1, i_1, j_1)
    g_t = torch.matmul(g_yy, a1.transpose(1, 2)).view(n, g.shape[2], -1)  # (n, r_1 j_2, rest)
    if steps:
        tin = saved[-2]
        grads[-2] += torch.matmul(g_t.unsqueeze(1), tin)          # (n, p, r_1 j_2, i_2)
        g_t = torch.matmul(g_t.unsqueeze(1).transpose(-1, -2), g)  # (n, p, X, i_2)
    for j in range(len(steps) - 1, 0, -1):
        s, tin = steps[j], saved[j]
        g_o = g_t.view(n, tin.shape[1], s.shape[1], -1)
        grads[j] += torch.matmul(g_o, tin).sum(1)
        g_t = torch.matmul(g_o.transpose(-1, -2), s.unsqueeze(1))  # (n, p, X, i_k)
    x0, first = saved[0], (steps[0] if steps else g)
    g_o = g_t.reshape(-1, x0.shape[0])                             # (n r_d j_d, b i_1..i_{d-1})
    gi = 0 if steps else len(mats) - 2
    grads[gi] += torch.mm(g_o, x0).view(grads[gi].shape)
    return torch.mm(g_o.T, first.reshape(-1, x0.shape[1])).view(nb, -1) if need_x else None


def chain_backward(spec: BTSpec, gy: torch.Tensor, x2: torch.Tensor, mats, rows: int, need_x: bool, kept=None):
    """(x gradient or None, gradients of the weight matrices of :func:`chain_weights`), block by block.

    ``kept``: the blocks' step inputs saved by the forward (:func:`chain_forward` with ``keep``);
    without it each block's forward is recomputed first (nothing of the batch's size is kept).
    """
    grads = [torch.zeros_like(m) for m in mats]
    g_x = x2.new_empty(x2.shape) if need_x else None
    gy = gy.contiguous()
    for blk, r0 in enumerate(range(0, x2.shape[0], rows)):
        if kept is not None:
            saved = kept[blk]
        else:
            saved = []
            _block_forward(spec, x2[r0: r0 + rows], mats, saved)
        gxb = _block_backward(spec, gy[r0: r0 + rows], saved, mats, grads, need_x)
        if need_x:
            g_x[r0: r0 + rows] = gxb
    return g_x, grads


def _chain_block(spec, nb: int, r: Rates) -> float:
    """Seconds of one row block of ``nb`` rows of the chain scheme (each GEMM as it is called)."""
    n, d = spec.blocks, spec.d
    ins, outs, rk = spec.in_modes, spec.out_modes, list(spec.ranks)
    rows = [rk[k] * outs[k] for k in range(d)]
    rows[1] = rk[0] * outs[1]  # mode 2's factor carries the folded core: rows (r_1, j_2)
    cols = nb * spec.in_size // ins[-1]  # (b, i_1..i_{d-1})
    t = gemm_seconds(r, 1, n * rows[-1], cols, ins[-1])
    p, e = 1, outs[-1] * cols  # rank combinations applied, elements per (block, combination)
    if d > 2:
        p = rk[-1]
    for k in range(d - 2, 0, -1):
        x_k = e // ins[k]
        # n*p GEMMs (rows x I_k) @ (I_k x X) in one broadcast matmul; G's are summed over p after
        t += gemm_seconds(r, n * p, rows[k], x_k, ins[k])
        if k == 1 and p > 1:
            t += copy_seconds(r, n * p * rows[k] * x_k)
        p, e = (p * rk[k], outs[k] * x_k) if k > 1 else (1, outs[k] * x_k)
    jb = e // ins[0]
    t += gemm_seconds(r, n * rk[0], jb, outs[0], ins[0])
    if n * rk[0] > 1:
        t += copy_seconds(r, n * rk[0] * jb * outs[0])  # the sum over (n, r_1)
    return t + 2 * copy_seconds(r, nb * spec.out_size)  # the one copy into y


def _chain_cost(plan: ContractionPlan, spec, r: Rates, device_type: str) -> tuple[float, float]:
    b = plan.batch
    rows = chain_rows(spec, b, device_type)
    full, left = divmod(b, rows)
    fwd = full * _chain_block(spec, rows, r) + (_chain_block(spec, left, r) if left else 0.0)
    # backward: two GEMMs per forward GEMM, after recomputing the forward where it is not kept
    kept = kept_bytes(spec, b, r.itemsize) <= KEEP_BYTES
    return fwd, (2 if kept else 3) * fwd


@dataclass
class _Saved:
    """What the chain's training forward keeps: x, the format's tensors, the row block size, and each
    block's step inputs (None where the backward recomputes them)."""

    x2: torch.Tensor
    tensors: tuple
    rows: int
    kept: list | None


class ChainScheme(Scheme):
    """The chain of a BT spec with d >= 2: one mode at a time, every step a GEMM on views."""

    name = "chain"
    order = 1
    methods = frozenset({"contract", "auto"})

    def plans(self, spec, batch: int) -> list[ContractionPlan]:
        return chain_plan(spec, batch)

    def rows(self, plan: ContractionPlan, device_type: str = "cpu") -> int:
        return chain_rows(plan.spec, plan.batch, device_type)

    def run(self, plan: ContractionPlan, x2: torch.Tensor, tensors) -> torch.Tensor:
        """y (b, J) in row blocks written into one preallocated y (not differentiable: see :meth:`forward`)."""
        spec = plan.spec
        return chain_forward(spec, x2, chain_weights(spec, tensors), chain_rows(spec, x2.shape[0], x2.device.type))

    def forward(self, plan, x2, tensors, need):
        spec = plan.spec
        mats = chain_weights(spec, [t.detach() for t in tensors])
        rows = chain_rows(spec, x2.shape[0], x2.device.type)
        if kept_bytes(spec, x2.shape[0], x2.element_size()) <= KEEP_BYTES:
            y, kept = chain_forward(spec, x2, mats, rows, keep=True)
        else:
            y, kept = chain_forward(spec, x2, mats, rows), None
        return y, _Saved(x2, tuple(tensors), rows, kept)

    def backward(self, plan, state, gy, need):
        """The hand-written block backward, then the small weight reshuffle's own autograd."""
        with torch.enable_grad():
            leaves = [v.detach().requires_grad_(n) for v, n in zip(state.tensors, need[1:])]
            mats = chain_weights(plan.spec, leaves)
        g_x, g_mats = chain_backward(plan.spec, gy, state.x2, [m.detach() for m in mats], state.rows, need[0],
                                     state.kept)
        state.kept = None
        return (g_x,) + leaf_grads(mats, g_mats, leaves, need[1:])

    def cost(self, plan: ContractionPlan, r: Rates, device_type: str) -> tuple[float, float]:
        return _chain_cost(plan, plan.spec, r, device_type)


#: The registered instance.
CHAIN = ChainScheme()
