"""btcore.matmul and to_dense against a plain dense computation (Kronecker sums, float64)."""

import itertools
import math

import pytest
import torch

import btcore
from btcore import BTMatrix, TTMatrix, matmul

torch.manual_seed(0)


def kron_all(mats):
    out = mats[0]
    for m in mats[1:]:
        out = torch.kron(out, m)
    return out


def bt_dense_reference(M: BTMatrix) -> torch.Tensor:
    """W = sum_n sum_r C[n, r] kron_k A_k[n, :, :, r_k]: kron of (I_k, J_k) slices is row-major (I, J)."""
    spec = M.spec
    W = torch.zeros(spec.in_size, spec.out_size, dtype=M.dtype)
    for n in range(spec.blocks):
        for r in itertools.product(*(range(R) for R in spec.ranks)):
            W += M.core[(n,) + r] * kron_all([M.factors[k][n, :, :, r[k]] for k in range(spec.d)])
    return W


def tt_dense_reference(M: TTMatrix) -> torch.Tensor:
    spec = M.spec
    W = torch.zeros(spec.in_size, spec.out_size, dtype=M.dtype)
    for a in itertools.product(*(range(r) for r in spec.inner_ranks)):
        idx = (0,) + a + (0,)
        W += kron_all([M.cores[k][idx[k], :, :, idx[k + 1]] for k in range(spec.d)])
    return W


CASES = [  # (in_modes, out_modes, rank, blocks)
    ((3, 4), (2, 5), 2, 1),
    ((3, 4), (2, 5), (1, 3), 3),
    ((2, 3, 2), (3, 2, 2), 2, 2),
    ((2, 2, 3, 2), (2, 3, 2, 2), (2, 1, 2, 2), 4),
    ((2, 2, 2, 2, 2), (2, 2, 2, 2, 2), 2, 2),
    ((5,), (7,), 3, 2),
]


@pytest.mark.parametrize("in_modes, out_modes, rank, blocks", CASES)
@pytest.mark.parametrize("lead", [(), (1,), (5,), (2, 3)])
def test_bt_matmul_matches_dense(in_modes, out_modes, rank, blocks, lead):
    M = BTMatrix.random(in_modes, out_modes, rank, blocks, seed=1, dtype=torch.float64)
    W = bt_dense_reference(M)
    torch.testing.assert_close(M.to_dense(), W, rtol=1e-12, atol=1e-12)
    x = torch.randn(*lead, W.shape[0], dtype=torch.float64)
    y = matmul(x, M)
    assert y.shape == (*lead, W.shape[1])
    torch.testing.assert_close(y, x @ W, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(x @ M, x @ W, rtol=1e-10, atol=1e-12)  # __rmatmul__
    torch.testing.assert_close(matmul(x, M, method="dense"), x @ W, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("in_modes, out_modes, ranks", [
    ((3, 4), (2, 5), 2),
    ((2, 3, 2), (3, 2, 2), (2, 3)),
    ((2, 2, 3, 2), (2, 3, 2, 2), (3, 4, 2)),
    ((2, 2, 2, 2, 2), (2, 2, 2, 2, 2), 3),
    ((6,), (5,), ()),
])
@pytest.mark.parametrize("lead", [(), (4,), (2, 3)])
def test_tt_matmul_matches_dense(in_modes, out_modes, ranks, lead):
    M = TTMatrix.random(in_modes, out_modes, ranks, seed=2, dtype=torch.float64)
    W = tt_dense_reference(M)
    torch.testing.assert_close(M.to_dense(), W, rtol=1e-12, atol=1e-12)
    x = torch.randn(*lead, W.shape[0], dtype=torch.float64)
    torch.testing.assert_close(matmul(x, M), x @ W, rtol=1e-10, atol=1e-12)


def test_empty_batch_and_shape_errors():
    M = BTMatrix.random((2, 3), (2, 2), 2, 2, seed=0)
    assert matmul(torch.zeros(0, 6), M).shape == (0, 4)
    with pytest.raises(ValueError, match=r"x: last dimension is \(5,\), expected I = 6"):
        matmul(torch.zeros(3, 5), M)
    with pytest.raises(ValueError, match="method must be"):
        matmul(torch.zeros(3, 6), M, method="fast")


def test_gradients_bt_and_tt():
    M = BTMatrix.random((2, 3), (3, 2), 2, 2, seed=3, dtype=torch.float64)
    for t in M.factors + [M.core]:
        t.requires_grad_(True)
    x = torch.randn(4, 6, dtype=torch.float64, requires_grad=True)
    torch.autograd.gradcheck(lambda x, *ts: matmul(x, BTMatrix(ts[:-1], ts[-1])), (x, *M.factors, M.core))
    T = TTMatrix.random((2, 3, 2), (2, 2, 3), 2, seed=4, dtype=torch.float64)
    cores = [c.requires_grad_(True) for c in T.cores]
    torch.autograd.gradcheck(lambda x, *cs: matmul(x, TTMatrix(cs)), (x.detach()[:, :6].repeat(1, 2).requires_grad_(), *cores))


def test_grad_matches_dense_path():
    """The gradient w.r.t. factors through the contraction equals the one through to_dense."""
    M = BTMatrix.random((3, 4, 2), (2, 2, 3), 2, 3, seed=5, dtype=torch.float64)
    ts = [t.clone().requires_grad_(True) for t in M.factors + [M.core]]
    x = torch.randn(7, 24, dtype=torch.float64)
    g1 = torch.autograd.grad(matmul(x, BTMatrix(ts[:-1], ts[-1])).square().sum(), ts)
    g2 = torch.autograd.grad((x @ bt_dense_reference(BTMatrix(ts[:-1], ts[-1]))).square().sum(), ts)
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10)


def test_plan_steps_are_consistent():
    spec = btcore.BTSpec((8, 20, 20, 18), (16, 4, 4, 4), 4, 2)
    plan = btcore.plan_matmul(spec, 16)
    assert plan.steps[-1].result == "y" and plan.steps[-1].result_shape == (16, 16, 4, 4, 4)
    names = {"x", "A1", "A2", "A3", "A4", "C"}
    for step in plan.steps:
        assert step.left in names and step.right in names
        names -= {step.left, step.right}
        names.add(step.result)
        sizes = dict(zip(step.left_indices, step.left_shape)) | dict(zip(step.right_indices, step.right_shape))
        assert step.macs == math.prod(sizes[c] for c in set(step.left_indices + step.right_indices))
        assert step.result_shape == tuple(sizes[c] for c in step.result_indices)
    assert names == {"y"}
    # The optimal path beats the greedy one (docs/reference.md: a greedy order can be far from optimal for BT).
    import opt_einsum
    net = spec.network()
    shapes = [(16,) + s[1:] if n == "x" else s for n, s in zip(net.names, net.shapes)]
    _, info = opt_einsum.contract_path(",".join(net.terms) + "->" + net.output, *shapes, shapes=True, optimize="greedy")
    assert plan.macs <= int(info.opt_cost) // 2 + 1


def test_auto_method_prefers_dense_only_when_cheaper():
    spec = btcore.BTSpec((8, 20, 20, 18), (16, 4, 4, 4), 4, 2)
    assert btcore.plan_matmul(spec, 16, "auto").method == "contract"
    tiny = btcore.BTSpec((2, 2), (2, 2), 4, 8)  # a 4x4 matrix: forming it costs nothing
    assert btcore.plan_matmul(tiny, 4096, "auto").method == "dense"
    M = BTMatrix.random((2, 2), (2, 2), 4, 8, seed=0, dtype=torch.float64)
    x = torch.randn(4096, 4, dtype=torch.float64)
    torch.testing.assert_close(matmul(x, M, method="auto"), x @ bt_dense_reference(M))


def test_float32_and_device_follow_inputs():
    M = BTMatrix.random((4, 4), (4, 4), 2, 2, seed=0)
    y = matmul(torch.randn(3, 16), M)
    assert y.dtype == torch.float32 and y.device.type == "cpu"
    if torch.cuda.is_available():  # pragma: no cover - GPU machines only
        Mc = M.to("cuda")
        torch.testing.assert_close(matmul(torch.ones(3, 16, device="cuda"), Mc).cpu(), matmul(torch.ones(3, 16), M),
                                   rtol=1e-4, atol=1e-5)


def test_tuned_plan_is_cached_and_exact():
    M = BTMatrix.random((3, 4, 2), (2, 2, 3), 2, 3, seed=6, dtype=torch.float64)
    x = torch.randn(5, 24, dtype=torch.float64)
    plan = btcore.contract.tune_plan(M, 5)
    assert plan is btcore.contract.tune_plan(M, 5)
    assert plan.strategy.endswith("(timed)")
    assert plan.macs <= 1.5 * btcore.plan_matmul(M.spec, 5).macs
    torch.testing.assert_close(matmul(x, M, tune=True), x @ bt_dense_reference(M), rtol=1e-10, atol=1e-12)


def test_row_blocks_give_the_same_result_and_gradient(monkeypatch):
    M = BTMatrix.random((3, 4, 2), (2, 2, 3), 2, 3, seed=7, dtype=torch.float64)
    ts = [t.clone().requires_grad_(True) for t in M.factors + [M.core]]
    x = torch.randn(13, 24, dtype=torch.float64)
    whole = matmul(x, BTMatrix(ts[:-1], ts[-1]))
    g_whole = torch.autograd.grad(whole.square().sum(), ts)
    monkeypatch.setattr(btcore.contract.schemes.base, "CHUNK_ELEMENTS", 64)
    plan = btcore.plan_matmul(M.spec, 13)
    assert 1 <= btcore.contract.chunk_rows(plan) < 13
    assert btcore.contract.chunk_rows(plan, "cuda") == 13
    blocked = matmul(x, BTMatrix(ts[:-1], ts[-1]))
    torch.testing.assert_close(blocked, whole, rtol=1e-12, atol=1e-12)
    for a, b in zip(torch.autograd.grad(blocked.square().sum(), ts), g_whole):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(blocked, x @ bt_dense_reference(M), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("make", [lambda: BTMatrix.random((2, 3), (2, 2), 2, 2, seed=0, dtype=torch.float64),
                                  lambda: TTMatrix.random((2, 3), (2, 2), 2, seed=0, dtype=torch.float64)])
@pytest.mark.parametrize("lead", [(0,), (3, 0)])
def test_an_empty_batch_gives_zero_gradients_like_nn_linear(make, lead):
    M = make()
    leaves = [t.detach().clone().requires_grad_(True) for t in (M.factors + [M.core] if hasattr(M, "core")
                                                                 else M.cores)]
    M2 = BTMatrix(leaves[:-1], leaves[-1]) if hasattr(M, "core") else TTMatrix(leaves)
    x = torch.zeros(*lead, 6, dtype=torch.float64, requires_grad=True)
    y = matmul(x, M2)
    assert y.shape == (*lead, 4)
    y.sum().backward()
    assert x.grad is not None and x.grad.shape == x.shape
    for t in leaves:
        assert t.grad is not None and t.grad.shape == t.shape and not t.grad.any()
    # the reference: a dense layer's weight gets an all-zero gradient from no rows too
    lin = torch.nn.Linear(6, 4, bias=False).double()
    lin(torch.zeros(*lead, 6, dtype=torch.float64)).sum().backward()
    assert not lin.weight.grad.any()
    with torch.no_grad():  # and without autograd, a plain empty result
        assert matmul(torch.zeros(0, 6, dtype=torch.float64), M2).grad_fn is None


def test_an_output_too_large_for_memory_is_refused_before_allocating():
    M = TTMatrix.random((2, 2), (64, 64), 2, seed=0)
    # 2^26 rows of an expanded (never allocated) x: y alone would be 2^26 * 4096 * 4 B = 1 TiB
    x = torch.zeros(1, 4).expand(1 << 26, 4)
    with pytest.raises(ValueError, match=r"the output of x @ W \(67,108,864 x 4,096\) needs 1.0 TiB.*smaller batch"):
        matmul(x, M)
    with pytest.raises(ValueError, match=r"the output of x @ W"):
        matmul(x.reshape(1 << 13, 1 << 13, 4), M, method="dense")


def test_the_planner_never_times_unless_the_process_opts_in(monkeypatch):
    """Default plans come from the shapes and fixed reference rates, so a loaded machine picks the same scheme."""
    from btcore.contract import calibration

    def no_timing(*args, **kwargs):
        raise AssertionError("the planner timed something")

    calibration.measure_rates(False)
    monkeypatch.setattr(calibration, "_calibrate", no_timing)
    monkeypatch.setattr(btcore.contract, "tune_plan", no_timing)
    assert not calibration.measuring()
    assert calibration.rates("cpu", torch.float64) == calibration.reference_rates("cpu", torch.float64)
    assert calibration.reference_rates("cpu", torch.float64).peak == calibration.reference_rates("cpu").peak / 2
    M = btcore.BTMatrix.random((8, 20, 20, 18), (16, 4, 4, 4), 4, 2, seed=0, dtype=torch.float64)
    x = torch.randn(16, 57600, dtype=torch.float64)
    y = btcore.matmul(x, M)  # a costly shape: with measured rates it would time candidates here
    assert btcore.plan_matmul(M.spec, 16, device="cpu", dtype=torch.float64).cost_s > btcore.contract.AUTO_TUNE_S
    assert torch.allclose(y, x @ M.to_dense(), rtol=1e-10, atol=1e-9)


def test_measured_rates_are_opt_in_and_reversible(monkeypatch):
    from btcore.contract import calibration

    measured = calibration.Rates(peak=1e9, half_dim=8.0, copy_bps=1e8, call_s=1e-5, itemsize=4)
    monkeypatch.setattr(calibration, "_calibrate", lambda device_type, dtype: measured)
    try:
        calibration.measure_rates()
        assert calibration.measuring() and calibration.rates("cpu", torch.float32) == measured
    finally:
        calibration.measure_rates(False)
    assert calibration.rates("cpu", torch.float32) == calibration.reference_rates("cpu", torch.float32)
