"""The ``ring`` contraction scheme for Tensor Ring matrices: every plan against the dense product (float64,
forward and gradients), its steps, its row blocks, and the planner's choice of it."""

import random

import pytest
import torch

import btcore
from btcore.contract import PlannedMatmul, calibration, planner, run_plan, schemes
from btcore.contract.schemes import base, ring
from btcore.formats import TRSpec
from btcore.ring import TRMatrix

F64 = torch.float64


def _ring_plans(spec, batch):
    return schemes.SCHEMES["ring"].plans(spec, batch)


def _random_case(rng: random.Random):
    """Modes, ranks (d = 2..4, each bond 1..4, redrawn until TRSpec accepts them) and a batch 0..5."""
    while True:
        d = rng.randint(2, 4)
        im = tuple(rng.randint(1, 3) for _ in range(d))
        om = tuple(rng.randint(1, 3) for _ in range(d))
        rk = tuple(rng.randint(1, 4) for _ in range(d))
        try:
            TRSpec(im, om, rk)
        except ValueError:
            continue
        return im, om, rk, rng.randint(0, 5)


def _dense_grads(M, x, gy):
    cores = [c.detach().clone().requires_grad_(True) for c in M.cores]
    xr = x.detach().clone().requires_grad_(True)
    y = xr @ TRMatrix(cores).to_dense()
    return y, torch.autograd.grad(y, [xr] + cores, gy)


@pytest.mark.parametrize("seed", range(40))
def test_fuzz_every_ring_plan_equals_the_dense_product_and_its_gradients(seed):
    rng = random.Random(seed)
    im, om, rk, batch = _random_case(rng)
    M = TRMatrix.random(im, om, rk, seed=seed, dtype=F64)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, M.shape[0], dtype=F64, generator=g)
    gy = torch.randn(batch, M.shape[1], dtype=F64, generator=g)
    want, want_g = _dense_grads(M, x, gy)
    plans = _ring_plans(M.spec, batch)
    assert [p.name for p in plans] == ["ring"] + [f"ring fold {f + 1}-{len(im)}" for f in range(len(im) - 2, 0, -1)]
    for plan in plans:
        with torch.no_grad():  # without grad: the plain forward
            torch.testing.assert_close(run_plan(plan, x, M.tensors()), want, rtol=1e-12, atol=1e-12)
        cores = [c.detach().clone().requires_grad_(True) for c in M.cores]
        xl = x.clone().requires_grad_(True)
        y = PlannedMatmul.apply(plan, xl, *cores)
        torch.testing.assert_close(y, want, rtol=1e-12, atol=1e-12)
        got = torch.autograd.grad(y, [xl] + cores, gy)
        for a, b in zip(got, want_g):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("seed", range(8))
def test_fuzz_through_matmul_including_empty_batches(seed):
    """btcore.matmul with whatever the planner picks (the ring for these), with and without gradients."""
    rng = random.Random(100 + seed)
    im, om, rk, batch = _random_case(rng)
    batch = 0 if seed < 2 else batch
    M = TRMatrix.random(im, om, rk, seed=seed, dtype=F64)
    x = torch.randn(batch, M.shape[0], dtype=F64)
    gy = torch.randn(batch, M.shape[1], dtype=F64)
    want, want_g = _dense_grads(M, x, gy)
    with torch.no_grad():
        torch.testing.assert_close(btcore.matmul(x, M), want, rtol=1e-12, atol=1e-12)
    cores = [c.detach().clone().requires_grad_(True) for c in M.cores]
    xl = x.clone().requires_grad_(True)
    y = btcore.matmul(xl, TRMatrix(cores))
    assert y.shape == (batch, M.shape[1])
    got = torch.autograd.grad(y, [xl] + cores, gy)
    for a, b in zip(got, want_g):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
        if batch == 0:
            assert not b.any() and not a.any()


def test_a_zero_row_batch_through_the_scheme_itself():
    M = TRMatrix.random((2, 3, 2), (2, 2, 3), (2, 3, 2), seed=1, dtype=F64)
    for plan in _ring_plans(M.spec, 0):
        x = torch.zeros(0, 12, dtype=F64, requires_grad=True)
        cores = [c.clone().requires_grad_(True) for c in M.cores]
        y = PlannedMatmul.apply(plan, x, *cores)
        assert y.shape == (0, 12)
        grads = torch.autograd.grad(y, [x] + cores, torch.zeros(0, 12, dtype=F64))
        assert grads[0].shape == (0, 12) and all(not g.any() for g in grads[1:])


@pytest.mark.parametrize("pick", ["ring", "ring fold 3-4", "ring fold 2-4"])
def test_gradcheck_each_ring_plan(pick):
    M = TRMatrix.random((2, 1, 3, 2), (1, 2, 2, 2), (2, 1, 2, 3), seed=4, dtype=F64)
    (plan,) = [p for p in _ring_plans(M.spec, 3) if p.name == pick]
    x = torch.randn(3, 12, dtype=F64, requires_grad=True)
    cores = [c.clone().requires_grad_(True) for c in M.cores]
    assert torch.autograd.gradcheck(lambda x, *cs: PlannedMatmul.apply(plan, x, *cs), (x, *cores))


def test_only_the_gradients_asked_for_are_computed():
    M = TRMatrix.random((2, 3, 2), (2, 2, 3), (2, 3, 2), seed=2, dtype=F64)
    x = torch.randn(4, 12, dtype=F64)
    gy = torch.randn(4, 12, dtype=F64)
    _, want = _dense_grads(M, x, gy)
    for plan in _ring_plans(M.spec, 4):
        cores = [c.clone().requires_grad_(k == 1) for k, c in enumerate(M.cores)]
        y = PlannedMatmul.apply(plan, x, *cores)  # x needs no gradient
        (g1,) = torch.autograd.grad(y, [cores[1]], gy)
        torch.testing.assert_close(g1, want[2], rtol=1e-10, atol=1e-12)


def test_row_blocks_and_recomputed_backward_equal_the_whole(monkeypatch):
    M = TRMatrix.random((2, 3, 4), (2, 2, 3), (2, 3, 2), seed=8, dtype=F64)
    x = torch.randn(13, 24, dtype=F64)
    gy = torch.randn(13, 12, dtype=F64)
    want, want_g = _dense_grads(M, x, gy)
    monkeypatch.setattr(base, "CHUNK_ELEMENTS", 512)  # blocks of a few rows, the last one partial
    monkeypatch.setattr(ring, "KEEP_BYTES", 0)      # the backward recomputes each block's forward
    for plan in _ring_plans(M.spec, 13):
        assert 1 < btcore.contract.chunk_rows(plan) < 13 and 13 % btcore.contract.chunk_rows(plan)
        cores = [c.clone().requires_grad_(True) for c in M.cores]
        xl = x.clone().requires_grad_(True)
        y = PlannedMatmul.apply(plan, xl, *cores)
        torch.testing.assert_close(y, want, rtol=1e-12, atol=1e-12)
        for a, b in zip(torch.autograd.grad(y, [xl] + cores, gy), want_g):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_steps_are_the_pairwise_contractions_that_run():
    """The plan's steps, evaluated as einsums on the cores, give y; their multiply-adds are the GEMMs' and at
    least the FLOP-optimal count."""
    M = TRMatrix.random((2, 3, 2, 3), (3, 2, 2, 1), (2, 3, 1, 2), seed=5, dtype=F64)
    x = torch.randn(3, 36, dtype=F64)
    net = M.spec.network()
    for plan in _ring_plans(M.spec, 3):
        env = dict(zip(net.names[1:], M.tensors())) | {"x": x.reshape((3,) + M.spec.in_modes)}
        y = base.run_steps(plan.steps, env)
        torch.testing.assert_close(y.reshape(3, -1), x @ M.to_dense(), rtol=1e-12, atol=1e-12)
        assert plan.macs >= M.spec.macs(3) * 3
        assert plan.steps[-1].result_indices == net.output
    # the unfolded ring: x meets the last core (c r_2 j_4 x i_4 per row), then each core as a GEMM over its I_k
    spec, (plan, *_) = M.spec, _ring_plans(M.spec, 3)
    c, (r0, r1, r2) = spec.ranks[-1], spec.ranks[:3]
    ins, outs = spec.in_modes, spec.out_modes
    expected = 3 * (ins[0] * ins[1] * ins[2] * ins[3] * c * r2 * outs[3]
                    + ins[0] * ins[1] * ins[2] * c * r2 * r1 * outs[2] * outs[3]
                    + ins[0] * ins[1] * c * r1 * r0 * outs[1] * outs[2] * outs[3]
                    + ins[0] * c * r0 * outs[0] * outs[1] * outs[2] * outs[3])
    assert plan.macs == expected


UCF11 = TRSpec((8, 20, 20, 18), (16, 4, 4, 4), (4, 3, 2, 3))
APP = TRSpec((8, 8, 8, 6), (16, 4, 2, 2), (3, 3, 2, 4))


@pytest.mark.parametrize("spec, batch, direction, scheme", [
    (UCF11, 16, "forward", "ring"), (UCF11, 256, "forward", "ring"), (UCF11, 256, "train", "ring"),
    (APP, 256, "forward", "ring fold 3-4"), (APP, 256, "train", "ring fold 3-4"),
])
def test_planner_picks_the_ring_where_it_measured_fastest(spec, batch, direction, scheme):
    """With the fixed reference rates the choice is a function of the shapes (bench/ring.py measured these
    plans fastest at 1 thread); it is the cheapest candidate by the model, and the same on every call."""
    choice = btcore.planner_choice(spec, batch, direction=direction)
    assert choice.scheme == scheme
    r = calibration.reference_rates("cpu", torch.float32)
    costs = {p.name: planner.plan_cost(p, r, "cpu", direction) for p in schemes.candidates(spec, batch, "contract")}
    assert choice.modelled_s == pytest.approx(min(costs.values()))
    assert costs[scheme] < min(v for k, v in costs.items() if k.startswith("path"))
    assert btcore.planner_choice(spec, batch, direction=direction) == choice
    assert choice.macs_per_sample == choice.plan.macs / batch


def test_the_ring_applies_only_to_rings_of_two_or_more_cores():
    assert _ring_plans(btcore.TTSpec((2, 3), (2, 2), 2), 4) == []
    assert _ring_plans(btcore.BTSpec((2, 3), (2, 2), 2, 2), 4) == []
    assert _ring_plans(TRSpec((3,), (4,), 1), 4) == []
    assert "ring" not in {p.scheme for p in schemes.candidates(APP, 4, "path")}
    assert "ring" not in {p.scheme for p in schemes.candidates(APP, 4, "dense")}


def test_working_memory_counts_the_fold_and_one_row_block():
    (plan,) = [p for p in _ring_plans(UCF11, 256) if p.name == "ring fold 2-4"]
    g = plan.steps[len(plan.folded) - 2]  # the fold's last step writes G
    assert g.result == "G" and g.result_elements == 3 * 4 * 64 * 7200
    scheme = schemes.scheme_of(plan)
    assert scheme.working_elements(plan, 1) == g.result_elements  # G outweighs one row's intermediates
    (plain,) = [p for p in _ring_plans(UCF11, 256) if p.name == "ring"]
    first = plain.steps[0]  # x meets the last core: (c, r_3, j_4, b, i_1..i_3)
    assert first.result_shape == (3, 2, 4, 256, 8, 20, 20)
    assert scheme.working_elements(plain, 4) == first.result_elements // 64
