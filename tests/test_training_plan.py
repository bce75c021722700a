"""app.training.plan: model configurations and runs from the page's choices."""

from __future__ import annotations

import pytest

from app.config import LabConfig
from app.training.plan import Choices, make_runs, paper_models, plan_models, shared_hidden_modes

SMALL = "3x16x16 (768 inputs)"


def _choices(**kw):
    base = dict(kinds=("Dense", "TT", "BT"), cell="lstm", hidden=64, d=4, blocks=2, bt_rank_text="4",
                tt_rank_text="4", dropout=0.0, frame_label="3x32x32 (3,072 inputs)")
    return Choices(**{**base, **kw})


def test_plan_uses_the_shared_modes_when_they_fit():
    shared = LabConfig()  # the paper's 8x20x20x18 -> 16x4x4x4
    plan = plan_models(_choices(frame_label="3x120x160 (57,600: the paper's UCF11 frames)", hidden=256), shared, 11)
    assert [m.in_modes for m in plan.models] == [(8, 20, 20, 18)] * 3
    assert [m.hidden_modes for m in plan.models] == [(4, 4, 4, 4)] * 3 and plan.notes == ()
    assert [m.input_map_params() for m in plan.models] == [58_982_400, 3_360, 3_392]
    assert plan.models[0].classes == 11
    assert "**8x20x20x18** (the Shapes page's)" in plan.summary(256)
    small = plan_models(_choices(), shared, None)
    assert small.models[0].in_modes == (8, 8, 8, 6) and "(the Shapes page's)" not in small.summary(64)
    assert small.models[0].classes == 2


def test_plan_notes_and_errors():
    plan = plan_models(_choices(bt_rank_text="40", kinds=("BT",)), LabConfig(), 4)
    assert plan.models[0].rank == 4 and plan.notes and "rank" in plan.notes[0]
    with pytest.raises(ValueError, match="choose at least one model"):
        plan_models(_choices(kinds=()), LabConfig(), 4)
    with pytest.raises(ValueError, match="BT rank"):
        plan_models(_choices(bt_rank_text="4,a"), LabConfig(), 4)
    assert shared_hidden_modes((16, 4, 4, 4), "lstm") == (4, 4, 4, 4)
    assert shared_hidden_modes((16, 4, 4, 4), "gru") is None  # 16 is not 3 gates x a mode


def test_runs_and_paper_models():
    ch = _choices(frame_label=SMALL, optimizer="sgd", lr=0.01, batch=8, epochs=3, seed=5, clip=0.0)
    runs = make_runs(plan_models(ch, LabConfig(), 4).models, ch)
    assert [r.name for r in runs] == ["LSTM", "TT-LSTM (ranks 4)", "BT-LSTM (R=4, N=2)"]
    assert {(r.optimizer, r.lr, r.batch_size, r.epochs, r.seed, r.grad_clip) for r in runs} == {
        ("sgd", 0.01, 8, 3, 5, None)}
    paper = paper_models((3, 16, 16), 5)
    assert [m.hidden_modes for m in paper] == [(4, 4, 4, 4)] * 3 and {m.dropout for m in paper} == {0.25}
    assert paper[0].input_map_params() == 768 * 1024 and {m.classes for m in paper} == {5}


def test_a_rank_that_does_not_fit_names_the_field_the_value_used_and_why():
    ch = _choices(bt_rank_text="99", tt_rank_text="99")
    plan = plan_models(ch, LabConfig(), 4)
    warnings = plan.warnings(ch)
    assert len(warnings) == 2
    tt, bt = warnings
    assert tt.startswith("TT: TT ranks = 99 does not fit, so 4 is used instead: ") and "largest useful TT rank" in tt
    assert bt.startswith("BT: BT rank R = 99 does not fit, so 4 is used instead: ") and "mode 2's size" in bt
    assert " -> using" not in bt  # the reason, not btcore's internal field names
    fitting = _choices()
    assert plan_models(fitting, LabConfig(), 4).warnings(fitting) == []
