"""Every scheme of btcore.contract against the dense product (float64, forward and gradients), the planner."""

import itertools
import sys
from dataclasses import replace

import pytest
import torch

import btcore
from btcore import BTMatrix, TTMatrix, matmul
from btcore.ring import TRMatrix
from btcore.contract import PlannedMatmul, calibration, planner, ranked_plans, run_plan, schemes
from btcore.contract.schemes import base, fold

CASES = [  # (in_modes, out_modes, rank, blocks)
    ((3, 4), (2, 5), 2, 1),
    ((2, 3, 2), (3, 2, 2), 2, 2),
    ((2, 2, 3, 2), (2, 3, 2, 2), (2, 1, 2, 2), 3),
]


def _all_plans(spec, batch):
    return schemes.candidates(spec, batch, "auto")


def _leaves(M):
    return [t.detach().clone().requires_grad_(True) for t in M.tensors()]


@pytest.mark.parametrize("in_modes, out_modes, rank, blocks", CASES)
def test_every_scheme_matches_dense_forward_and_gradients(in_modes, out_modes, rank, blocks):
    M = BTMatrix.random(in_modes, out_modes, rank, blocks, seed=3, dtype=torch.float64)
    W = M.to_dense()
    x = torch.randn(7, W.shape[0], dtype=torch.float64)
    gy = torch.randn(7, W.shape[1], dtype=torch.float64)
    kinds = set()
    for plan in _all_plans(M.spec, 7):
        kinds.add(plan.name)
        with torch.no_grad():
            torch.testing.assert_close(run_plan(plan, x, M.tensors()), x @ W, rtol=1e-10, atol=1e-12)
        ts, xl = _leaves(M), x.clone().requires_grad_(True)
        y = PlannedMatmul.apply(plan, xl, *ts)
        torch.testing.assert_close(y, x @ W, rtol=1e-10, atol=1e-12)
        got = torch.autograd.grad(y, [xl] + ts, gy)
        ts2, xl2 = _leaves(M), x.clone().requires_grad_(True)
        want = torch.autograd.grad(xl2 @ base.reconstruct_tensors(M.spec, ts2), [xl2] + ts2, gy)
        for a, b in zip(got, want):
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11)
    d = len(in_modes)
    assert "dense" in kinds and any(k.startswith("path") for k in kinds)
    assert sum(k.startswith("fold") for k in kinds) == 2 * (d - 1)


@pytest.mark.parametrize("pick", ["path dp", "fold 2-3", "fold 1-2", "fold 3", "fold 1", "dense"])
def test_gradcheck_each_scheme(pick):
    M = BTMatrix.random((2, 3, 2), (2, 2, 3), 2, 2, seed=4, dtype=torch.float64)
    (plan,) = [p for p in _all_plans(M.spec, 3) if p.name == pick][:1]
    x = torch.randn(3, 12, dtype=torch.float64, requires_grad=True)
    torch.autograd.gradcheck(lambda x, *ts: PlannedMatmul.apply(plan, x, *ts), (x, *_leaves(M)))


def test_single_fold_backward_skips_the_input_gradient_when_not_needed():
    M = BTMatrix.random((2, 3, 2), (2, 2, 3), 2, 2, seed=5, dtype=torch.float64)
    (plan,) = [p for p in _all_plans(M.spec, 4) if p.name == "fold 2-3"]
    assert fold.fold_single(plan)
    ts = _leaves(M)
    x = torch.randn(4, 12, dtype=torch.float64)
    y = PlannedMatmul.apply(plan, x, *ts)
    grads = torch.autograd.grad(y.square().sum(), ts)
    want = torch.autograd.grad((x @ base.reconstruct_tensors(M.spec, ts)).square().sum(), ts)
    for a, b in zip(grads, want):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11)


def test_fold_steps_are_consistent_pairwise_contractions():
    spec = btcore.BTSpec((8, 8, 8, 6), (16, 4, 2, 2), 4, 2)
    for plan in fold.FOLD.plans(spec, 256):
        names = {"x", "A1", "A2", "A3", "A4", "C"}
        for step in plan.steps:
            assert step.left in names and step.right in names
            names -= {step.left, step.right}
            names.add(step.result)
        assert names == {"y"} and plan.steps[-1].result_shape == (256, 16, 4, 2, 2)
        big = next(s for s in plan.steps if s.left == "x")
        assert big.right == "G" and set(big.summed) == {"ABCD"[k] for k in plan.folded}
    # The app-size fold of modes 2..4 is the GEMM (2048 x 384) @ (384 x 128).
    (f24,) = [p for p in fold.FOLD.plans(spec, 256) if p.name == "fold 2-4"]
    big = next(s for s in f24.steps if s.left == "x")
    assert big.macs == 2048 * 384 * 128


@pytest.mark.parametrize("spec", [btcore.BTSpec((8, 8, 8, 6), (16, 4, 2, 2), 4, 2),
                                  btcore.BTSpec((8, 20, 20, 18), (16, 4, 4, 4), 4, 2),
                                  btcore.TTSpec((8, 20, 20, 18), (16, 4, 4, 4), 4)])
@pytest.mark.parametrize("method", ["contract", "auto", "path"])
@pytest.mark.parametrize("direction", ["forward", "train"])
def test_planner_picks_the_cheapest_by_its_model(spec, method, direction):
    for batch in (16, 256):
        chosen = btcore.plan_matmul(spec, batch, method, direction=direction)
        r = calibration.rates("cpu", torch.float32)
        costs = [planner.plan_cost(p, r, "cpu", direction) for p in schemes.candidates(spec, batch, method)]
        assert chosen.cost_s == pytest.approx(min(costs))
        assert chosen is btcore.plan_matmul(spec, batch, method, direction=direction)  # cached
        if method == "path":
            assert chosen.scheme == "path"
        if method == "contract":
            assert chosen.method == "contract"
        ranked = ranked_plans(spec, batch, method, direction=direction)
        assert [p.cost_s for p in ranked] == sorted(p.cost_s for p in ranked)


def test_dtype_and_device_mismatch_are_refused_clearly():
    M = BTMatrix.random((2, 3), (2, 2), 2, 2, seed=0)
    with pytest.raises(ValueError, match=r"x has dtype torch.float64 but the matrix's tensors are torch.float32"):
        matmul(torch.zeros(3, 6, dtype=torch.float64), M)
    if torch.cuda.is_available():  # pragma: no cover - GPU machines only
        with pytest.raises(ValueError, match="x is on cuda"):
            matmul(torch.zeros(3, 6, device="cuda"), M)


def test_memory_is_checked_before_a_big_contraction(monkeypatch):
    M = BTMatrix.random((8, 20, 20, 18), (16, 4, 4, 4), 4, 2, seed=0)
    monkeypatch.setattr(btcore.memory, "available_memory", lambda device=None: 1 << 20)
    with pytest.raises(ValueError, match=r"largest intermediate of x @ W \(dense scheme.*smaller batch"):
        matmul(torch.zeros(1, 57_600), M, method="dense")


def test_tt_schemes_and_tuned_train_plan():
    T = TTMatrix.random((2, 3, 2), (2, 2, 3), 2, seed=6, dtype=torch.float64)
    W = T.to_dense()
    x = torch.randn(5, 12, dtype=torch.float64)
    for method in ("contract", "dense", "auto", "path"):
        torch.testing.assert_close(matmul(x, T, method=method), x @ W, rtol=1e-10, atol=1e-12)
    plan = btcore.contract.tune_plan(T, 5, direction="train")
    assert plan.strategy.endswith("(timed)")
    cores = [c.clone().requires_grad_(True) for c in T.cores]
    y = matmul(x, TTMatrix(cores), tune=True)
    torch.testing.assert_close(y, x @ W, rtol=1e-10, atol=1e-12)


def test_row_blocked_fold_equals_whole(monkeypatch):
    M = BTMatrix.random((2, 3, 4), (2, 2, 3), 2, 2, seed=8, dtype=torch.float64)
    (plan,) = [p for p in _all_plans(M.spec, 13) if p.name == "fold 2-3"]
    x = torch.randn(13, 24, dtype=torch.float64)
    gm, am = fold.fold_weights(plan, M.tensors())
    whole, _ = fold.fold_forward(plan, x, gm, am)
    monkeypatch.setattr(base, "CHUNK_ELEMENTS", 16)
    assert btcore.contract.chunk_rows(plan) < 13
    blocked, _ = fold.fold_forward(plan, x, gm, am)
    torch.testing.assert_close(blocked, whole, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(blocked, x @ M.to_dense(), rtol=1e-10, atol=1e-12)


def test_registry_lists_every_scheme_and_plans_know_their_spec():
    spec = btcore.BTSpec((2, 3, 2), (2, 2, 3), 2, 2)
    assert set(schemes.SCHEMES) == {"path", "chain", "fold", "ring", "dense"}
    assert all(s.name == k and isinstance(s, base.Scheme) for k, s in schemes.SCHEMES.items())
    for plan in _all_plans(spec, 5):
        assert plan.spec == spec and schemes.scheme_of(plan) is schemes.SCHEMES[plan.scheme]
    assert {p.scheme for p in schemes.candidates(spec, 5, "path")} == {"path"}
    assert {p.scheme for p in schemes.candidates(spec, 5, "dense")} == {"dense"}


def test_a_scheme_added_to_the_registry_is_planned_run_and_differentiated(monkeypatch):
    from btcore.contract.schemes.dense import DenseScheme

    class Free(DenseScheme):  # a new scheme: W formed, priced at nothing, so the planner must pick it
        name = "free"
        methods = frozenset({"auto"})

        def plans(self, spec, batch):
            return [replace(p, scheme=self.name, label=self.name) for p in super().plans(spec, batch)]

        def cost(self, plan, r, device_type):
            return 0.0, 0.0

    monkeypatch.setitem(schemes.SCHEMES, "free", Free())
    M = BTMatrix.random((2, 3, 2), (2, 2, 3), 2, 2, seed=1, dtype=torch.float64)
    batch = 7919  # a batch size no other test plans, so no cached plan answers
    assert btcore.plan_matmul(M.spec, batch, "auto").name == "free"
    assert btcore.plan_matmul(M.spec, batch, "contract").name != "free"
    ts = _leaves(M)
    x = torch.randn(batch, 12, dtype=torch.float64)
    y = matmul(x, BTMatrix(ts[:-1], ts[-1]), method="auto", tune=False)
    torch.testing.assert_close(y, x @ M.to_dense(), rtol=1e-10, atol=1e-12)
    got = torch.autograd.grad(y.sum(), ts)
    ts2 = _leaves(M)
    want = torch.autograd.grad((x @ base.reconstruct_tensors(M.spec, ts2)).sum(), ts2)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11)


def test_a_new_scheme_is_one_new_module(tmp_path, monkeypatch):
    """The registry collects every module of the schemes package: a scheme needs no other file."""
    (tmp_path / "twin.py").write_text(
        "from btcore.contract.schemes.path import PathScheme\n"
        "class TwinScheme(PathScheme):\n"
        "    name = 'twin'\n"
        "    order = 50\n"
        "TWIN = TwinScheme()\n")
    monkeypatch.setattr(schemes, "__path__", list(schemes.__path__) + [str(tmp_path)])
    found = schemes._discover()
    assert list(found) == ["path", "chain", "ring", "fold", "dense", "twin"]  # by order: 0, 1, 1, 2, 3, 50
    assert type(found["twin"]).__name__ == "TwinScheme"
    sys.modules.pop("btcore.contract.schemes.twin", None)


@pytest.mark.parametrize("make", [
    lambda: TTMatrix.random((3, 4, 2), (2, 3, 4), (3, 2), dtype=torch.float64, seed=1),
    lambda: BTMatrix.random((3, 4, 2), (2, 3, 4), 2, 2, dtype=torch.float64, seed=2),
    lambda: TRMatrix.random((3, 4, 2), (2, 3, 4), (2, 3, 2), dtype=torch.float64, seed=3),
], ids=["tt", "bt", "tr"])
def test_every_plan_gives_the_gradients_of_the_tensors_that_need_one(make):
    """Some tensors frozen (a matrix of the scheme may then be built only from tensors needing no
    gradient): every plan's gradients equal those through the dense reconstruction, None where frozen."""
    M = make()
    stored = list(M.cores) if hasattr(M, "cores") else [M.core, *M.factors]
    x = torch.randn(5, M.spec.in_size, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    plans = _all_plans(M.spec, 5)
    assert {p.scheme for p in plans} >= {"path", "dense"}
    for mask in itertools.product([False, True], repeat=len(stored)):
        if not any(mask):
            continue
        for t, m in zip(stored, mask):
            t.requires_grad_(m)
        want = torch.autograd.grad((x @ M.to_dense()).square().sum(), [t for t, m in zip(stored, mask) if m])
        for plan in plans:
            y = run_plan(plan, x, M.tensors())
            got = torch.autograd.grad(y.square().sum(), [t for t, m in zip(stored, mask) if m])
            for g, w in zip(got, want):
                torch.testing.assert_close(g, w, rtol=1e-10, atol=1e-12, msg=f"{plan.label} {mask}")
    for t in stored:
        t.requires_grad_(False)
