"""The chain scheme (btcore.contract.schemes.chain) against the dense product in float64, and its plan and cost."""

import pytest
import torch

import btcore
from btcore import BTMatrix, matmul
from btcore.contract import PlannedMatmul, Rates, calibration, planner, run_plan, set_rates
from btcore.contract.schemes import base, chain, path

CASES = [  # (in_modes, out_modes, rank, blocks): d = 2 and 4, one block, per-mode ranks
    ((3, 4), (2, 5), 2, 1),
    ((2, 3, 2), (3, 2, 2), 2, 2),
    ((2, 2, 3, 2), (2, 3, 2, 2), (2, 1, 3, 2), 3),
    ((4, 5, 3), (2, 3, 4), (3, 2, 2), 1),
]


def _leaves(M):
    return [t.detach().clone().requires_grad_(True) for t in M.tensors()]


def _dense_grads(M, x, gy, with_x=True):
    ts, xl = _leaves(M), x.clone().requires_grad_(with_x)
    y = xl @ base.reconstruct_tensors(M.spec, ts)
    return torch.autograd.grad(y, ([xl] if with_x else []) + ts, gy)


@pytest.mark.parametrize("in_modes, out_modes, rank, blocks", CASES)
@pytest.mark.parametrize("elements", [chain.CHAIN_ELEMENTS, 40])
@pytest.mark.parametrize("keep", [True, False])
def test_chain_matches_dense_forward_and_gradients(in_modes, out_modes, rank, blocks, elements, keep, monkeypatch):
    monkeypatch.setattr(chain, "CHAIN_ELEMENTS", elements)  # 40: many row blocks, a ragged last one
    monkeypatch.setattr(chain, "KEEP_BYTES", chain.KEEP_BYTES if keep else 0)  # False: backward recomputes
    M = BTMatrix.random(in_modes, out_modes, rank, blocks, seed=3, dtype=torch.float64)
    W = M.to_dense()
    b = 11
    x = torch.randn(b, W.shape[0], dtype=torch.float64)
    gy = torch.randn(b, W.shape[1], dtype=torch.float64)
    (plan,) = chain.chain_plan(M.spec, b)
    if elements == 40:
        assert chain.chain_rows(M.spec, b) < b
    with torch.no_grad():
        torch.testing.assert_close(run_plan(plan, x, M.tensors()), x @ W, rtol=1e-10, atol=1e-12)
    ts, xl = _leaves(M), x.clone().requires_grad_(True)
    y = PlannedMatmul.apply(plan, xl, *ts)
    torch.testing.assert_close(y, x @ W, rtol=1e-10, atol=1e-12)
    for got, want in zip(torch.autograd.grad(y, [xl] + ts, gy), _dense_grads(M, x, gy)):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-11)
    # a layer's input is usually data: without x's gradient the factors' gradients are still exact
    ts = _leaves(M)
    y = PlannedMatmul.apply(plan, x, *ts)
    for got, want in zip(torch.autograd.grad(y, ts, gy), _dense_grads(M, x, gy, with_x=False)):
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-11)


def test_chain_gradcheck():
    M = BTMatrix.random((2, 3, 2), (2, 2, 3), (2, 1, 2), 2, seed=4, dtype=torch.float64)
    (plan,) = chain.chain_plan(M.spec, 3)
    x = torch.randn(3, 12, dtype=torch.float64, requires_grad=True)
    torch.autograd.gradcheck(lambda x, *ts: PlannedMatmul.apply(plan, x, *ts), (x, *_leaves(M)))


def test_chain_steps_are_the_pairwise_contractions_that_run():
    spec = btcore.BTSpec((8, 20, 20, 18), (16, 4, 4, 4), 4, 2)
    (plan,) = chain.chain_plan(spec, 64)
    names = {"x", "A1", "A2", "A3", "A4", "C"}
    for step in plan.steps:
        assert step.left in names and step.right in names
        names -= {step.left, step.right}
        names.add(step.result)
    assert names == {"y"} and plan.steps[-1].result_shape == (64, 16, 4, 4, 4)
    # the core folded into mode 2's factor (weights only), then x meets modes 4, 3, G, 1
    assert [(s.left, s.right) for s in plan.steps] == [("C", "A2"), ("x", "A4"), ("T1", "A3"), ("T2", "G"),
                                                       ("Z", "A1")]
    assert btcore.plan.uses_x(plan.steps) == [False, True, True, True, True]
    # the first x step is one GEMM over all blocks: (2*4*4 x 18) @ (18 x 64*8*20*20)
    assert plan.steps[1].macs == 32 * 18 * 64 * 3200
    # within 15% of the FLOP-optimal path, 11x fewer multiply-adds than the dense product
    best = min(p.macs for p in path.PATH.plans(spec, 64))
    assert best <= plan.macs <= 1.15 * best
    assert plan.macs * 11 < 64 * spec.in_size * spec.out_size
    assert plan.spec == spec  # a plan knows its spec
    assert chain.chain_plan(btcore.TTSpec((2, 3), (2, 2), 2), 4) == []
    assert chain.chain_plan(btcore.BTSpec((6,), (4,), 2, 2), 4) == []


def test_chain_rows_keep_blocks_in_cache():
    spec = btcore.BTSpec((8, 20, 20, 18), (16, 4, 4, 4), 4, 2)
    per_row = max(s.result_elements for s in chain.chain_plan(spec, 1)[0].steps)
    for batch in (1, 5, 16, 64, 256):
        rows = chain.chain_rows(spec, batch)
        assert 1 <= rows <= batch and rows & (rows - 1) == 0
        assert rows == 1 or rows * per_row <= chain.CHAIN_ELEMENTS
    assert chain.chain_rows(spec, 256, "cuda") == 256
    (plan,) = chain.chain_plan(spec, 256)
    assert btcore.contract.chunk_rows(plan) == chain.chain_rows(spec, 256)


def test_the_model_prefers_the_chain_at_ucf11_size():
    # Rates of the kind measured on a loaded 1-thread CPU; fixed so the test does not depend on timing
    set_rates("cpu", torch.float32, Rates(peak=4e10, half_dim=2.0, copy_bps=3e9, call_s=2e-6, itemsize=4))
    try:
        spec = btcore.BTSpec((8, 20, 20, 18), (16, 4, 4, 4), 4, 2)
        for batch in (16, 64, 256):
            for direction in ("forward", "train"):
                ranked = btcore.contract.ranked_plans(spec, batch, "auto", direction=direction)
                assert ranked[0].scheme == "chain"
                assert btcore.plan_matmul(spec, batch, "auto", direction=direction).scheme == "chain"
                r = calibration.rates("cpu", torch.float32)
                assert ranked[0].cost_s == pytest.approx(planner.plan_cost(ranked[0], r, "cpu", direction))
    finally:
        set_rates("cpu", torch.float32, None)


def test_matmul_runs_the_chain_with_autograd():
    M = BTMatrix.random((4, 5, 3), (2, 3, 4), 2, 2, seed=9, dtype=torch.float64)
    x = torch.randn(2, 3, 60, dtype=torch.float64)
    ts = _leaves(M)
    y = matmul(x, BTMatrix(ts[:-1], ts[-1]), method="contract", tune=False)
    torch.testing.assert_close(y, x @ M.to_dense(), rtol=1e-10, atol=1e-12)
    (plan,) = chain.chain_plan(M.spec, 6)
    with torch.enable_grad():
        y2 = run_plan(plan, x.reshape(6, 60), ts)  # differentiable through the Function
    g = torch.autograd.grad(y2.sum(), ts)
    want = _dense_grads(M, x.reshape(6, 60), torch.ones(6, 24, dtype=torch.float64), with_x=False)
    for a, b in zip(g, want):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11)
