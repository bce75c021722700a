"""Schemes for ``y = x @ W``: their steps (for display and cost) and how each one runs.

* ``path``: the FLOP-optimal pairwise order from opt_einsum; each step is one ``torch.einsum``
  (which permutes its operands into a batched GEMM). On CPU the batch runs in row blocks so the
  intermediates stay in cache.
* ``fold``: a GEMM-shaped order for Block-Term matrices. The core and the factors of a set of
  modes F (a suffix ``k..d`` or a prefix ``1..k`` of the modes) are folded, over all blocks, into
  one small matrix G; x, *viewed* (no copy) as a matrix, meets G in one large GEMM; the factors of
  the other modes follow. With one mode left over, that last step is one (broadcast) GEMM that
  writes y in its final layout, so no operand is ever permuted. This costs more multiply-adds
  than the optimal path, but every one runs at the GEMM rate.
* ``chain`` (:mod:`btcore.contract.chain`): the FLOP-optimal order of a BT matrix (one mode at a
  time, then the core, then mode 1) with every step a GEMM on views of laid-out intermediates.
* ``dense``: reconstruct W, then one GEMM.

Each scheme is a :class:`~btcore.contract.paths.ContractionPlan` (its steps are pairwise
contractions between named tensors, like the path's). :func:`run` evaluates one without
autograd bookkeeping; :func:`fold_backward` is the fold scheme's hand-written backward.
"""

from __future__ import annotations

import math

import torch

from ..formats import BTSpec, DenseSpec, Network
from .paths import (ContractionPlan, Step, candidate_paths, make_step, network_with_batch, plan_reconstruct, split_steps,
                    steps_for)

__all__ = ["CHUNK_ELEMENTS", "chunk_rows", "path_plans", "fold_plans", "dense_plan", "run", "run_steps",
           "reconstruct_tensors", "fold_single", "fold_weights", "fold_forward", "fold_backward"]

#: On CPU the batch is processed in row blocks whose largest intermediate stays under this many
#: elements (4 MiB in float32), so each block's intermediates stay in cache. Measured on the UCF11
#: map at batch 64 (N=2, 1 thread): one block 206 ms, blocks of 8 rows 43 ms.
CHUNK_ELEMENTS = 1 << 20


def _sizes(net: Network, batch: int) -> dict[str, int]:
    return dict(net.sizes) | {"b": batch}


def path_plans(spec, batch: int, slack: float = 1.5, limit: int = 4) -> list[ContractionPlan]:
    """The opt_einsum candidate paths within ``slack`` times the fewest multiply-adds (at most ``limit``)."""
    net = spec.network()
    names, terms, shapes = network_with_batch(net, batch)
    if isinstance(spec, DenseSpec):
        steps = steps_for(names, terms, shapes, net.output, ((0, 1),))
        return [ContractionPlan("dense", batch, steps, "none", net.output, scheme="dense")]
    cands = candidate_paths(names, terms, shapes, net.output)
    least = sum(s.macs for s in cands[0][2])
    keep = [c for c in cands if sum(s.macs for s in c[2]) <= slack * least][:limit]
    return [ContractionPlan("contract", batch, steps, label, net.output) for _, label, steps in keep]


def dense_plan(spec, batch: int) -> ContractionPlan:
    """Reconstruct W (the plan of :func:`plan_reconstruct`), then one (batch, I) x (I, J) GEMM."""
    rec = plan_reconstruct(spec)
    net = spec.network()
    i, j = spec.in_size, spec.out_size
    gemm = Step("x", "W", "y", "bA", "AI", "bI", (batch, i), (i, j), (batch, j), "A", batch * i * j)
    return ContractionPlan("dense", batch, rec.steps + (gemm,), rec.strategy, net.output, scheme="dense")


def _fold_layout(spec: BTSpec, folded: tuple[int, ...]):
    """Index strings of a fold: (G, T after the big GEMM, applied modes in the order they are applied).

    Suffix fold (F = k..d): G is (I_F) x (n, r_P, J_F) and T = x(b I_P, I_F) @ G, x a view, has
    indices (b, i_P, n, r_P, j_F). Prefix fold (F = 1..k): G is (j_F, n, r_S) x (I_F), x is copied
    once to (I_F, b, I_S), and T = G @ x has indices (j_F, n, r_S, b, i_S).
    """
    from ..formats import _BLOCK, _IN, _OUT, _RANK

    d = spec.d
    blk = _BLOCK if spec.blocks > 1 else ""
    applied = tuple(k for k in range(d) if k not in folded)
    i_f = "".join(_IN[k] for k in folded)
    j_f = "".join(_OUT[k] for k in folded)
    r_a = "".join(_RANK[k] for k in applied)
    i_a = "".join(_IN[k] for k in applied)
    if folded[-1] == d - 1:  # suffix
        return i_f + blk + r_a + j_f, "b" + i_a + blk + r_a + j_f, applied[::-1]
    return j_f + blk + r_a + i_f, j_f + blk + r_a + "b" + i_a, applied


def fold_plans(spec, batch: int) -> list[ContractionPlan]:
    """Every GEMM-shaped fold of a BT spec: the factors of a suffix or a prefix of the modes into G."""
    if not isinstance(spec, BTSpec) or spec.d < 2:
        return []
    d = spec.d
    splits = [tuple(range(k, d)) for k in range(1, d)] + [tuple(range(k)) for k in range(d - 1, 0, -1)]
    return [_fold_plan(spec, batch, f) for f in dict.fromkeys(splits)]


def _fold_plan(spec: BTSpec, batch: int, folded: tuple[int, ...]) -> ContractionPlan:
    net = spec.network()
    sizes = _sizes(net, batch)
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
    return ContractionPlan("contract", batch, tuple(steps), "fold", net.output, scheme="fold", folded=folded)


def chunk_rows(plan: ContractionPlan, device_type: str = "cpu") -> int:
    """Rows of x per block when executing ``plan`` (the whole batch on GPUs)."""
    if plan.scheme == "chain":
        from .chain import chain_rows, chain_spec

        return chain_rows(chain_spec(plan), plan.batch, device_type)
    if device_type != "cpu" or plan.batch <= 1 or plan.scheme == "dense":
        return plan.batch
    _, x_steps = split_steps(plan.steps)
    per_row = max((s.result_elements for s in x_steps), default=0) / plan.batch
    rows = 1
    while rows * 2 * per_row <= CHUNK_ELEMENTS and rows * 2 < plan.batch:
        rows *= 2
    return min(rows, plan.batch)


def run_steps(steps, operands: dict):
    """Evaluate pairwise einsum steps by operand name; returns the last result."""
    env = dict(operands)
    for step in steps:
        env[step.result] = torch.einsum(step.equation, env.pop(step.left), env.pop(step.right))
    return env[steps[-1].result] if steps else next(iter(env.values()))


def reconstruct_tensors(spec, tensors) -> torch.Tensor:
    """The dense (I, J) matrix from the format's tensors (network order)."""
    plan = plan_reconstruct(spec)
    full = run_steps(plan.steps, dict(zip(spec.network().names[1:], tensors)))
    # Result indices are in_modes then out_modes, already row-major for (I, J).
    return full.reshape(spec.in_size, spec.out_size)


def _run_path(plan: ContractionPlan, spec, x2: torch.Tensor, tensors) -> torch.Tensor:
    """Weight-only steps once, then the x-steps in row blocks (same multiply-adds, less traffic)."""
    names = spec.network().names[1:]
    weights = dict(zip(names, tensors))
    weight_only, x_steps = split_steps(plan.steps)
    for step in weight_only:
        weights[step.result] = torch.einsum(step.equation, weights.pop(step.left), weights.pop(step.right))
    xt = x2.reshape((x2.shape[0],) + spec.in_modes)
    rows = chunk_rows(plan, x2.device.type)
    if rows >= xt.shape[0]:
        y = run_steps(x_steps, weights | {"x": xt})
    else:
        y = torch.cat([run_steps(x_steps, weights | {"x": part}) for part in xt.split(rows)])
    return y.reshape(x2.shape[0], spec.out_size)


def fold_single(plan: ContractionPlan) -> bool:
    """Whether a plan is a suffix fold leaving one mode to apply: no copies, a hand-written backward."""
    return plan.scheme == "fold" and _applied(plan) == 1 and plan.folded[0] == 1


def _applied(plan: ContractionPlan) -> int:
    return len(plan.steps) - len(plan.folded) - 1


def fold_weights(plan: ContractionPlan, spec: BTSpec, tensors):
    """(G, A) of a single-mode fold as matrices, differentiable: G (I_2..I_d, N R_1 J_2..J_d) and
    A (J_1, I_1 N R_1), so that T = x(b I_1, I_F) @ G and y[b] = A @ T[b]."""
    net = spec.network()
    env = dict(zip(net.names[1:], tensors))
    fold_steps = plan.steps[: len(plan.folded)]
    g = run_steps(fold_steps, {s: env[s] for s in ["C"] + [f"A{k + 1}" for k in plan.folded]})
    a_t = net.terms[1]  # A1: (n) I J r
    a1 = torch.einsum(f"{a_t}->{a_t[-2]}{a_t[-3]}{a_t[:-3]}{a_t[-1]}", env["A1"])
    return g.reshape(spec.in_size // spec.in_modes[0], -1).contiguous(), a1.reshape(spec.out_modes[0], -1).contiguous()


def fold_forward(plan: ContractionPlan, spec: BTSpec, x2: torch.Tensor, gm, am, keep: bool = False):
    """y (b, J) of a single-mode fold from G and A (see :func:`fold_weights`); also T when ``keep``.

    Without ``keep`` on CPU, rows run in blocks written into one preallocated y (no concatenation).
    """
    b, i1, i_f = x2.shape[0], spec.in_modes[0], gm.shape[0]
    rows = b if keep else chunk_rows(plan, x2.device.type)
    y = x2.new_empty(b, spec.out_size)
    t = None
    for r0 in range(0, b, rows):
        xb, yb = x2[r0: r0 + rows], y[r0: r0 + rows]
        nb = xb.shape[0]
        t = torch.mm(xb.reshape(nb * i1, i_f), gm)  # (b I_1, N R_1 J_F): x is only viewed
        torch.matmul(am, t.view(nb, am.shape[1], -1), out=yb.view(nb, am.shape[0], -1))
    return y, (t if keep else None)


def fold_backward(plan: ContractionPlan, spec: BTSpec, gy: torch.Tensor, x2, gm, am, t, need_x: bool):
    """Gradients (x, G, A) of a single-mode fold, each one GEMM or batched GEMM on views."""
    b, i1 = gy.shape[0], spec.in_modes[0]
    gy3 = gy.contiguous().view(b, am.shape[0], -1)             # (b, J_1, J_F)
    t3 = t.view(b, am.shape[1], -1)                            # (b, I_1 N R_1, J_F)
    g_t2 = torch.matmul(am.T, gy3).view(b * i1, -1)           # (b I_1, N R_1 J_F)
    g_am = torch.bmm(gy3, t3.transpose(1, 2)).sum(0)           # (J_1, I_1 N R_1)
    g_gm = x2.reshape(b * i1, -1).T @ g_t2
    g_x = (g_t2 @ gm.T).view(b, -1) if need_x else None
    return g_x, g_gm, g_am


def run(plan: ContractionPlan, spec, x2: torch.Tensor, tensors) -> torch.Tensor:
    """y (b, J) for x2 (b, I) along ``plan`` (differentiable through torch ops, except single folds'
    row-blocked writes, which callers run without autograd)."""
    if plan.scheme == "dense":
        return x2 @ reconstruct_tensors(spec, tensors)
    if plan.scheme == "chain":
        from .chain import chain_forward, chain_rows, chain_weights

        if torch.is_grad_enabled() and any(t.requires_grad for t in list(tensors) + [x2]):
            from .function import PlannedMatmul

            return PlannedMatmul.apply(plan, spec, x2, *tensors)
        return chain_forward(spec, x2, chain_weights(spec, tensors), chain_rows(spec, x2.shape[0], x2.device.type))
    if plan.scheme == "fold":
        if fold_single(plan):
            if torch.is_grad_enabled() and any(t.requires_grad for t in list(tensors) + [x2]):
                gm, am = fold_weights(plan, spec, tensors)
                return _fold_autograd(plan, spec, x2, gm, am)
            gm, am = fold_weights(plan, spec, tensors)
            return fold_forward(plan, spec, x2, gm, am)[0]
        return _run_fold_general(plan, spec, x2, tensors)
    return _run_path(plan, spec, x2, tensors)


def _fold_autograd(plan, spec, x2, gm, am):
    """The single fold with plain torch ops (no ``out=``), for recording an autograd graph."""
    b = x2.shape[0]
    t = x2.reshape(b * spec.in_modes[0], gm.shape[0]) @ gm
    return torch.matmul(am, t.view(b, am.shape[1], -1)).reshape(b, -1)


def _run_fold_general(plan, spec, x2, tensors):
    """A fold leaving several modes: G by its steps, one GEMM with x, the rest as einsum steps."""
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
