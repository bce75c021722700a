"""Tests of btcore.decompose.budget: candidates at a budget, fit tasks, compare_formats."""

import numpy as np
import pytest
import torch

from btcore import bt_params, tr_params, tt_params
from btcore.decompose import BudgetFit, FitInfo, FitTask, budget_candidates, budget_tasks, compare_formats, fit_bt, fit_task
from decompose_cases import bt_dense as _bt, noisy as _noisy


def test_budget_candidates_match_the_param_formulas():
    im, om = (4, 8, 8, 4), (4, 8, 8, 4)
    budget = 5400
    rows = budget_candidates(im, om, budget, per_format=3)
    fmts = [r.format for r in rows]
    assert set(fmts) == {"BT", "TT", "Tucker", "CP", "TR"}
    for r in rows:
        if r.format == "TT":
            assert r.params == tt_params(im, om, r.ranks) and r.blocks is None
        elif r.format == "TR":
            assert r.params == tr_params(im, om, r.ranks) and r.blocks is None and len(r.ranks) == 4
        else:
            assert r.params == bt_params(im, om, r.ranks, r.blocks)
        assert r.diff == r.params - budget
        assert r.compression == pytest.approx(1024 * 1024 / r.params)
    for fmt in ("BT", "TT", "Tucker", "CP", "TR"):
        mine = [r for r in rows if r.format == fmt]
        assert [abs(r.diff) for r in mine] == sorted(abs(r.diff) for r in mine)
    bt = [r for r in rows if r.format == "BT"]
    assert all(r.blocks >= 2 and min(r.ranks) >= 2 for r in bt)
    assert abs(bt[0].diff) / budget < 0.1
    cp = [r for r in rows if r.format == "CP"][0]
    assert cp.blocks == cp.rank and abs(cp.diff) <= 161  # one CP term is 161 parameters


def test_budget_candidates_paper_setting():
    # UCF11: BT R=4, N=2 has 3,392 parameters; TT ranks 4 have 3,360
    rows = budget_candidates((8, 20, 20, 18), (16, 4, 4, 4), 3392, per_format=20)
    assert any(r.format == "BT" and r.ranks == (4, 4, 4, 4) and r.blocks == 2 and r.params == 3392
               for r in rows)
    assert any(r.format == "TT" and r.ranks == (1, 4, 4, 4, 1) and r.params == 3360 for r in rows)
    with pytest.raises(ValueError, match="unknown"):
        budget_candidates((2, 2), (2, 2), 10, formats=("QTT",))


def test_compare_formats_bt_structure_favours_bt():
    im, om = (2, 4, 4, 2), (4, 4, 4, 2)
    W, noise = _noisy(_bt(im, om, 2, 2, seed=0), 0.01)
    budget = bt_params(im, om, 2, 2)
    seen = []
    rows = compare_formats(W, im, om, budget, seed=0, progress=lambda f, it, e: seen.append(f))
    by = {r.format: r for r in rows}
    assert set(by) == {"BT", "TT", "Tucker", "CP", "TR"}
    for r in rows:
        assert r.rel_error is not None and r.seconds >= 0 and isinstance(r.info, FitInfo)
        assert r.compression == pytest.approx(W.numel() / r.params, rel=0.2)
    assert by["BT"].rel_error <= 1.1 * noise
    assert by["BT"].rel_error < by["TT"].rel_error
    assert "BT" in seen


def test_compare_formats_accepts_fit_settings_for_every_format():
    im, om = (2, 4), (4, 2)
    W = np.random.default_rng(1).standard_normal((8, 8))
    rows = compare_formats(W, im, om, 40, seed=0, fit_kwargs={"restarts": 2, "max_iter": 5})
    assert {r.format for r in rows} == {"BT", "TT", "Tucker", "CP", "TR"}
    # the caller's max_iter wins over the at least 100 (Tucker) and 75 (CP) iterations of for_format
    for fmt in ("Tucker", "CP"):
        assert next(r for r in rows if r.format == fmt).info.total_iterations <= 5
    ring = next(r for r in rows if r.format == "TR")
    # the ring's work budget follows the settings: restarts + 1 starts, 2 * max_iter sweeps in all
    assert len(ring.info.start_kinds) <= 3 and ring.info.total_iterations <= 10


def test_budget_tasks_take_bt_choices_bt_candidates_and_one_of_each_other_format():
    im, om = (4, 8, 8, 4), (4, 8, 8, 4)
    cands = budget_candidates(im, om, 5400, per_format=2)
    tasks = budget_tasks(im, om, 5400, formats=("TT", "BT", "CP"), bt_choices=2)
    assert [t.format for t in tasks] == ["TT", "BT", "BT", "CP"]
    assert [t for t in tasks if t.format == "BT"] == [c for c in cands if c.format == "BT"]
    assert all(isinstance(t, FitTask) and t.budget == 5400 for t in tasks)
    with pytest.raises(ValueError, match="bt_choices"):
        budget_tasks(im, om, 5400, bt_choices=0)


def test_fit_task_is_the_fit_of_its_format():
    im, om = (2, 4, 4, 2), (4, 4, 4, 2)
    W = _bt(im, om, 2, 2, seed=0)
    by = {t.format: t for t in budget_tasks(im, om, bt_params(im, om, 2, 2))}
    M, info = fit_task(W, im, om, by["BT"], seed=3, fit_kwargs={"max_iter": 20})
    M2, info2 = fit_bt(W, im, om, by["BT"].ranks, by["BT"].blocks, seed=3, max_iter=20, warn=False)
    assert info.errors == info2.errors and torch.equal(M.core, M2.core)
    _, tucker = fit_task(W, im, om, by["Tucker"])
    assert tucker.start_kinds == ["hosvd"]  # one HOSVD start unless the caller sets restarts
    Mt, tt = fit_task(W, im, om, by["TT"])
    assert tt.ranks == by["TT"].ranks and Mt.num_params == by["TT"].params
    assert by["CP"].label(im, om) == f"rank {by['CP'].blocks}" and by["TT"].label(im, om).startswith("ranks 1-")


def test_compare_formats_skips_cp_above_max_cp_rank():
    im, om = (2, 4), (4, 2)
    W = np.random.default_rng(1).standard_normal((8, 8))
    rows = compare_formats(W, im, om, 40, seed=0, max_cp_rank=1, formats=("CP", "TT"))
    cp = rows[0]
    assert isinstance(cp, BudgetFit) and cp.format == "CP" and cp.info is None and cp.matrix is None
    assert cp.rel_error is None and cp.error_text.startswith("skipped: CP rank") and not cp.at_precision
    assert cp.params == cp.task.params and rows[1].matrix.num_params == rows[1].params


def test_fit_memory_bytes_is_each_formats_own_check():
    from btcore.decompose import als_memory_bytes, fit_memory_bytes

    im, om = (4, 8, 8, 4), (4, 8, 8, 4)
    tasks = {t.format: t for t in budget_tasks(im, om, 5400)}
    sizes = tuple(i * j for i, j in zip(im, om))
    assert fit_memory_bytes(im, om, tasks["BT"]) == als_memory_bytes(sizes, tasks["BT"].ranks, tasks["BT"].blocks)
    assert fit_memory_bytes(im, om, tasks["TR"]) == 8 * 4 * 1024 * 1024  # fit_tr's check_allocation
    assert fit_memory_bytes(im, om, tasks["TT"]) == 8 * 3 * 1024 * 1024
