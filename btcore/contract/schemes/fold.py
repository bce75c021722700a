"""The ``fold`` scheme: a GEMM-shaped order for Block-Term matrices.

The core and the factors of a set of modes F (a suffix ``k..d`` or a prefix ``1..k`` of the modes)
are folded, over all blocks, into one small matrix G; x, *viewed* (no copy) as a matrix, meets G
in one large GEMM; the factors of the other modes follow. With one mode left over (a *single*
fold), that last step is one (broadcast) GEMM that writes y in its final layout, so no operand is
ever permuted, and the backward is hand-written: every gradient one GEMM or batched GEMM on views
(x: dT @ G^T; G: x^T @ dT; last factor: dY @ T^T), then the small fold's own autograd for the core
and the folded factors. A fold costs more multiply-adds than the optimal path, but every one runs
at the GEMM rate. Folds leaving several modes run their remaining steps as einsums and use the
recorded-graph backward.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ...formats import BTSpec
from ...indices import BLOCK, IN, OUT, RANK
from ...plan import ContractionPlan, make_step
from ..calibration import Rates, copy_seconds, einsum_seconds, gemm_seconds
from .base import Scheme, blocked_rows, leaf_grads, run_steps

__all__ = ["FoldScheme", "FOLD", "fold_single", "fold_weights", "fold_forward", "fold_backward"]


def _fold_layout(spec: BTSpec, folded: tuple[int, ...]):
    """Index strings of a fold: (G, T after the big GEMM, applied modes in the order they are applied).

    Suffix fold (F = k..d): G is (I_F) x (n, r_P, J_F) and T = x(b I_P, I_F) @ G, x a view, has
    indices (b, i_P, n, r_P, j_F). Prefix fold (F = 1..k): G is (j_F, n, r_S) x (I_F), x is copied
    once to (I_F, b, I_S), and T = G @ x has indices (j_F, n, r_S, b, i_S).
    """
    d = spec.d
    blk = BLOCK if spec.blocks > 1 else ""
    applied = tuple(k for k in range(d) if k not in folded)
    i_f = "".join(IN[k] for k in folded)
    j_f = "".join(OUT[k] for k in folded)
    r_a = "".join(RANK[k] for k in applied)
    i_a = "".join(IN[k] for k in applied)
    if folded[-1] == d - 1:  # suffix
        return i_f + blk + r_a + j_f, "b" + i_a + blk + r_a + j_f, applied[::-1]
    return j_f + blk + r_a + i_f, j_f + blk + r_a + "b" + i_a, applied


def _fold_plan(spec: BTSpec, batch: int, folded: tuple[int, ...]) -> ContractionPlan:
    net = spec.network()
    sizes = dict(net.sizes) | {"b": batch}
    terms = dict(zip(net.names, net.terms))
    g_idx, t_idx, order = _fold_layout(spec, folded)
    steps, cur, cur_t = [], "C", terms["C"]
    for n, k in enumerate(folded, 1):
        a = f"A{k + 1}"
        present = set(cur_t + terms[a])
        pending = "".join(terms[f"A{m + 1}"][-1] for m in folded[n:])  # ranks of modes still to fold
        keep = "".join(c for c in g_idx if c in present) + "".join(c for c in pending if c in present)
        name = "G" if n == len(folded) else f"F{n}"
        steps.append(make_step(cur, a, name, cur_t, terms[a], keep, sizes))
        cur, cur_t = name, keep
    steps.append(make_step("x", "G", "T", terms["x"], cur_t, t_idx, sizes))
    cur, cur_t = "T", t_idx
    for n, k in enumerate(order, 1):
        a = f"A{k + 1}"
        last = n == len(order)
        out = net.output if last else "".join(
            c for c in cur_t if c not in terms[a][-1] + terms[a][-3]) + terms[a][-2]
        if not last:  # keep output letters in mode order at the end
            j_letters = "".join(c for c in net.out_indices if c in out)
            out = "".join(c for c in out if c not in j_letters) + j_letters
        name = "y" if last else f"T{n}"
        steps.append(make_step(cur, a, name, cur_t, terms[a], out, sizes))
        cur, cur_t = name, out
    lo, hi = folded[0] + 1, folded[-1] + 1
    label = f"fold {lo}" if lo == hi else f"fold {lo}-{hi}"
    return ContractionPlan("contract", batch, tuple(steps), "fold", net.output, scheme="fold", folded=folded,
                           label=label, spec=spec)


def fold_weights(plan: ContractionPlan, tensors):
    """(G, A) of a single-mode fold as matrices, differentiable: G (I_2..I_d, N R_1 J_2..J_d) and
    A (J_1, I_1 N R_1), so that T = x(b I_1, I_F) @ G and y[b] = A @ T[b]."""
    spec = plan.spec
    net = spec.network()
    env = dict(zip(net.names[1:], tensors))
    fold_steps = plan.steps[: len(plan.folded)]
    g = run_steps(fold_steps, {s: env[s] for s in ["C"] + [f"A{k + 1}" for k in plan.folded]})
    a_t = net.terms[1]  # A1: (n) I J r
    a1 = torch.einsum(f"{a_t}->{a_t[-2]}{a_t[-3]}{a_t[:-3]}{a_t[-1]}", env["A1"])
    return g.reshape(spec.in_size // spec.in_modes[0], -1).contiguous(), a1.reshape(spec.out_modes[0], -1).contiguous()


def fold_forward(plan: ContractionPlan, x2: torch.Tensor, gm, am, keep: bool = False):
    """y (b, J) of a single-mode fold from G and A (see :func:`fold_weights`); also T when ``keep``.

    Without ``keep`` on CPU, rows run in blocks written into one preallocated y (no concatenation).
    """
    spec = plan.spec
    b, i1, i_f = x2.shape[0], spec.in_modes[0], gm.shape[0]
    rows = b if keep else blocked_rows(plan, x2.device.type)
    y = x2.new_empty(b, spec.out_size)
    t = None
    for r0 in range(0, b, rows):
        xb, yb = x2[r0: r0 + rows], y[r0: r0 + rows]
        nb = xb.shape[0]
        t = torch.mm(xb.reshape(nb * i1, i_f), gm)  # (b I_1, N R_1 J_F): x is only viewed
        torch.matmul(am, t.view(nb, am.shape[1], -1), out=yb.view(nb, am.shape[0], -1))
    return y, (t if keep else None)


def fold_backward(plan: ContractionPlan, gy: torch.Tensor, x2, gm, am, t, need_x: bool):
    """Gradients (x, G, A) of a single-mode fold, each one GEMM or batched GEMM on views."""
    b, i1 = gy.shape[0], plan.spec.in_modes[0]
    gy3 = gy.contiguous().view(b, am.shape[0], -1)             # (b, J_1, J_F)
    t3 = t.view(b, am.shape[1], -1)                            # (b, I_1 N R_1, J_F)
    g_t2 = torch.matmul(am.T, gy3).view(b * i1, -1)           # (b I_1, N R_1 J_F)
    g_am = torch.bmm(gy3, t3.transpose(1, 2)).sum(0)           # (J_1, I_1 N R_1)
    g_gm = x2.reshape(b * i1, -1).T @ g_t2
    g_x = (g_t2 @ gm.T).view(b, -1) if need_x else None
    return g_x, g_gm, g_am


def _run_fold_general(plan, x2, tensors):
    """A fold leaving several modes: G by its steps, one GEMM with x, the rest as einsum steps."""
    spec = plan.spec
    net = spec.network()
    env = dict(zip(net.names[1:], tensors))
    nf = len(plan.folded)
    g = run_steps(plan.steps[:nf], {s: env[s] for s in ["C"] + [f"A{k + 1}" for k in plan.folded]})
    b = x2.shape[0]
    i_f = math.prod(spec.in_modes[k] for k in plan.folded)
    t_step = plan.steps[nf]
    if plan.folded[-1] == spec.d - 1:
        t = x2.reshape(-1, i_f) @ g.reshape(i_f, -1)
    else:  # one copy of x puts the folded modes first, so the big step is one GEMM
        t = g.reshape(-1, i_f) @ x2.reshape(b, i_f, -1).transpose(0, 1).reshape(i_f, -1)
    env["T"] = t.reshape(t_step.result_shape)
    y = run_steps(plan.steps[nf + 1:], {"T": env["T"]} | {s.right: env[s.right] for s in plan.steps[nf + 1:]})
    return y.reshape(b, spec.out_size)


def fold_single(plan: ContractionPlan) -> bool:
    """Whether a plan is a suffix fold leaving one mode to apply: no copies, a hand-written backward."""
    return plan.scheme == FOLD.name and len(plan.steps) - len(plan.folded) - 1 == 1 and plan.folded[0] == 1


@dataclass
class _SingleSaved:
    """What a single fold's training forward keeps: x, G and A as matrices, T, the format's tensors."""

    x2: torch.Tensor
    gm: torch.Tensor
    am: torch.Tensor
    t: torch.Tensor
    tensors: tuple


class FoldScheme(Scheme):
    """Every GEMM-shaped fold of a BT spec with d >= 2: a suffix or a prefix of the modes folded into G."""

    name = "fold"
    order = 2
    methods = frozenset({"contract", "auto"})

    def plans(self, spec, batch: int) -> list[ContractionPlan]:
        if not isinstance(spec, BTSpec) or spec.d < 2:
            return []
        d = spec.d
        splits = [tuple(range(k, d)) for k in range(1, d)] + [tuple(range(k)) for k in range(d - 1, 0, -1)]
        return [_fold_plan(spec, batch, f) for f in dict.fromkeys(splits)]

    def rows(self, plan: ContractionPlan, device_type: str = "cpu") -> int:
        return blocked_rows(plan, device_type)

    def run(self, plan: ContractionPlan, x2: torch.Tensor, tensors) -> torch.Tensor:
        """y (b, J); differentiable through torch ops except a single fold's row-blocked writes."""
        if fold_single(plan):
            gm, am = fold_weights(plan, tensors)
            return fold_forward(plan, x2, gm, am)[0]
        return _run_fold_general(plan, x2, tensors)

    def forward(self, plan, x2, tensors, need):
        if not fold_single(plan):
            return super().forward(plan, x2, tensors, need)
        gm, am = fold_weights(plan, [t.detach() for t in tensors])
        y, t = fold_forward(plan, x2, gm, am, keep=True)
        return y, _SingleSaved(x2, gm, am, t, tuple(tensors))

    def backward(self, plan, state, gy, need):
        if not fold_single(plan):
            return super().backward(plan, state, gy, need)
        s = state
        g_x, g_gm, g_am = fold_backward(plan, gy, s.x2, s.gm, s.am, s.t, need[0])
        if not any(need[1:]):
            return (g_x,) + (None,) * len(s.tensors)
        with torch.enable_grad():
            leaves = [v.detach().requires_grad_(n) for v, n in zip(s.tensors, need[1:])]
            gm2, am2 = fold_weights(plan, leaves)
            return (g_x,) + leaf_grads((gm2, am2), (g_gm, g_am), leaves, need[1:])

    def cost(self, plan: ContractionPlan, r: Rates, device_type: str) -> tuple[float, float]:
        nf = len(plan.folded)
        fold = sum(einsum_seconds(s, r) for s in plan.steps[:nf])
        big, rest = plan.steps[nf], plan.steps[nf + 1:]
        b = plan.batch
        sizes = dict(zip(big.left_indices, big.left_shape)) | dict(zip(big.right_indices, big.right_shape))
        summed = math.prod(sizes[c] for c in big.summed)
        cols = math.prod(sizes[c] for c in big.right_indices if c not in big.summed)
        gemm = gemm_seconds(r, 1, big.macs // (summed * cols), cols, summed)
        if fold_single(plan):
            last = rest[0]
            s2 = dict(zip(last.left_indices, last.left_shape)) | dict(zip(last.right_indices, last.right_shape))
            k2 = math.prod(s2[c] for c in last.summed)
            j_k = last.right_shape[-2]
            j_rest = last.result_elements // (b * j_k)
            apply = gemm_seconds(r, b, j_k, j_rest, k2)  # b GEMMs (J_1 x K) @ (K x J_F)
            blocks = math.ceil(b / self.rows(plan, device_type))
            fwd = fold + gemm + apply + (blocks - 1) * 2 * r.call_s
            # backward: the fold's gradient (twice the fold), two GEMMs like the big one, two like the last
            return fwd, 2 * fold + 2 * gemm + 2 * apply
        apply = sum(einsum_seconds(s, r) for s in rest)
        if plan.folded[0] == 0:  # a prefix fold copies x once
            apply += 2 * copy_seconds(r, math.prod(big.left_shape))
        return fold + gemm + apply, 2 * (fold + gemm + apply)


#: The registered instance.
FOLD = FoldScheme()
