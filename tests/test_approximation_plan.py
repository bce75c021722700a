"""Unit tests of app/approximation/plan.py: the page's inputs as a validated run, without AppTest."""

from __future__ import annotations

import pytest

import btcore
from app.approximation import plan
from btcore import decompose as dec


def test_sweep_budgets():
    b = plan.sweep_budgets(1000, 65536, 5)
    assert b == [250, 500, 1000, 2000, 4000]
    assert plan.sweep_budgets(1000, 65536, 0) == []
    assert plan.sweep_budgets(1000, 65536, 1) == [1000]
    four = plan.sweep_budgets(1000, 65536, 4)
    assert len(four) == 4 and four == sorted(four) and 1000 not in four
    # capped at half the dense size, de-duplicated
    capped = plan.sweep_budgets(30000, 65536, 5)
    assert max(capped) == 32768 and len(capped) == len(set(capped))
    assert min(plan.sweep_budgets(10, 65536, 5)) >= 8


def test_fit_bytes_is_btcores_estimate_of_the_largest_fit():
    im = om = (4, 4, 4, 4)
    sizes = (16,) * 4
    tt = dec.FitTask("TT", (1, 4, 4, 4, 1), None, 0)
    small = dec.FitTask("BT", (2,) * 4, 2, 0)
    big_cp = dec.FitTask("CP", (1,) * 4, 300, 0)
    three_dense = 8 * 3 * 65536
    assert plan.fit_bytes(im, om, [tt]) == three_dense  # TT-SVD, and the page's target + reconstruction + residual
    assert plan.fit_bytes(im, om, []) == three_dense
    # the fits need at least what fit_bt checks before allocating, for each of them
    for t in (small, big_cp):
        assert plan.fit_bytes(im, om, [tt, small, big_cp]) >= dec.als_memory_bytes(sizes, t.ranks, t.blocks)
    assert plan.fit_bytes(im, om, [tt, small, big_cp]) == dec.als_memory_bytes(sizes, (1,) * 4, 300) > three_dense
    assert plan.fit_bytes(im, om, [big_cp]) > plan.fit_bytes(im, om, [small])  # the Gram work arrays grow as N^2


DEFAULT = plan.SpecInputs("4x4x4x4", "4x4x4x4")


def test_build_spec_at_a_budget_plans_the_main_fits_and_the_sweep():
    spec = plan.build_spec(DEFAULT)
    assert spec.in_modes == spec.out_modes == (4, 4, 4, 4) and spec.budgets == [250, 500, 1000, 2000, 4000]
    main = spec.main
    assert [t.task.format for t in main] == ["BT", "BT", "TT", "Tucker", "CP", "TR"]  # two BT candidates
    assert [t.task for t in main] == dec.budget_tasks((4,) * 4, (4,) * 4, 1000, bt_choices=2, formats=plan.PAGE_FORMATS)
    assert [t.label for t in main] == ["R=2, N=7", "R=4, N=2", "ranks 1-5-5-5-1", "R=5", "rank 15", "ring ranks 4-4-4-4"]
    assert {t.budget for t in spec.tasks if t.role == "sweep"} == set(spec.budgets)
    assert spec.key[4] == tuple(t.task.key + (t.role,) for t in spec.tasks)
    assert spec.fit_key(main[0].task) == (spec.target_key,) + main[0].task.key + ("quick", 0)
    assert spec.desc.endswith("budget 1,000") and spec.peak_bytes >= 8 * 3 * 65536


def test_build_spec_explicit_ranks_and_its_errors():
    inp = plan.SpecInputs("4x4x4x4", "4x4x4x4", mode="explicit ranks", bt_rank="3", blocks=2, tt_ranks="4",
                          sweep_points=0)
    spec = plan.build_spec(inp)
    assert spec.budgets == [] and [t.label for t in spec.tasks] == ["R=3, N=2", "ranks 1-4-4-4-1", "R=3", "rank 8",
                                                                  "ring ranks 3-3-3-3"]
    with pytest.raises(ValueError, match="BT:.*mode size"):
        plan.build_spec(plan.SpecInputs("4x4x4x4", "4x4x4x4", mode="explicit ranks", bt_rank="17"))
    with pytest.raises(ValueError, match="too large to compress"):
        plan.build_spec(plan.SpecInputs("4x4x4x4", "4x4x4x4", mode="explicit ranks", bt_rank="16"))


@pytest.mark.parametrize("inp, shape, match", [
    (plan.SpecInputs("4x4x4", "4x4x4x4"), None, "same order"),
    (plan.SpecInputs("8x20x20x18", "16x4x4x4"), None, "above this page's limit"),
    (plan.SpecInputs("4x4x4x4", "4x4x4x4"), (48, 36), "48 x 36"),
    (plan.SpecInputs("4x4x4x4", "4x4x4x4", formats=()), None, "at least one format"),
    (plan.SpecInputs("16", "16"), None, "TT and TR need at least 2 modes"),
    (plan.SpecInputs("4x4x4x4", "4x4x4x4", budget=70000), None, "not below the dense"),
])
def test_build_spec_refuses_bad_inputs(inp, shape, match):
    with pytest.raises(ValueError, match=match):
        plan.build_spec(inp, shape)


def test_effort_kwargs_keep_one_tucker_start():
    assert plan.effort_kwargs("thorough", "BT") == {"settings": plan.EFFORT["thorough"]}
    assert plan.effort_kwargs("thorough", "BT")["settings"].restarts == 3
    assert plan.effort_kwargs("thorough", "Tucker")["settings"] == plan.EFFORT["thorough"].replace(restarts=1)


def test_build_spec_explicit_tr_ranks_are_capped_by_the_ring_rules():
    from btcore.decompose.tr import cap_tr_ranks

    m = (4, 4, 4, 4)
    inp = plan.SpecInputs("4x4x4x4", "4x4x4x4", formats=("TR",), mode="explicit ranks", tr_ranks="2,40,2,2",
                          sweep_points=0)
    (t,) = plan.build_spec(inp).tasks
    ranks, notes = cap_tr_ranks(m, m, (2, 40, 2, 2))
    assert ranks == (2, 32, 2, 2) and notes  # the second bond cannot use more than 2 * 16
    assert t.task.format == "TR" and t.task.ranks == ranks and t.task.blocks is None
    assert t.task.params == btcore.TRSpec(m, m, ranks).params and t.label == "ring ranks 2-32-2-2"
    with pytest.raises(ValueError, match="TR ranks"):
        plan.build_spec(plan.SpecInputs("4x4", "4x4", formats=("TR",), mode="explicit ranks", tr_ranks="x"))


def test_effort_help_states_the_caps_each_format_really_runs():
    from btcore.decompose.settings import for_format, tr_options

    text = plan.effort_help()
    for name, s in plan.EFFORT.items():
        part = text.split(f"**{name}**:")[1].split("**")[0]
        assert f"up to {s.max_iter} ALS sweeps" in part  # BT
        assert f"CP up to {for_format(s, 'CP').max_iter} iterations" in part  # CP: its own cap, not BT's
        assert f"TR {tr_options(s)['max_starts']} starts" in part
    assert f"up to {for_format(plan.EFFORT['quick'], 'Tucker').max_iter} iterations" in text


def test_fit_cost_grows_with_the_work():
    im = om = (4, 4, 4, 4)
    small = plan.fit_cost(dec.FitTask("BT", (2, 2, 2, 2), 2, 0), im, om, "quick")
    big = plan.fit_cost(dec.FitTask("BT", (2, 2, 2, 2), 28, 0), im, om, "quick")
    assert big[0] > 5 * small[0] and big[1] == small[1]
    assert plan.fit_cost(dec.FitTask("BT", (2, 2, 2, 2), 2, 0), im, om, "thorough")[0] > small[0]
    assert plan.fit_cost(dec.FitTask("CP", (1, 1, 1, 1), 62, 0), im, om, "quick")[1] == 75
