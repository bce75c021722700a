"""app.training.inputs: the Training page's fields, their URL text, and what changed since a run."""

from __future__ import annotations

import pytest

from app.config import LabConfig
from app.training import inputs as fields
from app.training.plan import DEFAULT_KINDS, FRAME_SIZES, KIND_LABELS


def test_names_are_page_specific_and_every_widget_has_one():
    names = [f.name for f in fields.FIELDS]
    assert len(set(names)) == len(names) and all(n.startswith("t_") for n in names)
    assert not {"in", "out", "R", "N", "tt", "batch", "lesson"} & set(names)
    assert set(fields.LABELS) == set(names)


def test_frame_sizes_travel_by_their_short_name():
    frame = next(f for f in fields.FIELDS if f.name == "t_frame")
    label = "3x16x16 (768 inputs)"
    assert frame.format(label) == "3x16x16" and frame.parse("3x16x16") == label
    with pytest.raises(ValueError, match="expected one of 3x16x16"):
        frame.parse(label)  # the label itself is not the URL form
    paper = next(f for f in fields.FIELDS if f.name == "t_paper_frame")
    assert [dict(paper.options())[k] for k in list(FRAME_SIZES)[:3]] == ["3x16x16", "3x32x32", "3x48x64"]
    with pytest.raises(ValueError):
        paper.parse("3x120x160")  # too large for the paper's reduced runs


def test_hidden_and_models_parse_only_their_choices():
    hidden = next(f for f in fields.FIELDS if f.name == "t_hidden")
    assert hidden.parse("256") == 256 and isinstance(hidden.parse("16"), int)
    for bad in ("65", "6.4e1", "many"):
        with pytest.raises(ValueError):
            hidden.parse(bad)
    models = next(f for f in fields.FIELDS if f.name == "t_models")
    assert models.parse("TT,BT") == ["TT", "BT"] and models.format(list(DEFAULT_KINDS)) == "Dense,TT,BT"
    assert models.parse("BT,TR") == ["BT", "TR"] and models.format(list(KIND_LABELS)) == "Dense,TT,BT,TR"
    with pytest.raises(ValueError):
        models.parse("Dense,RNN")


def test_defaults_follow_the_shared_configuration_within_the_widget_ranges():
    assert fields.defaults(LabConfig((4, 4), (4, 4), (2, 3), 3, 5)) == {"t_rank": "2,3", "t_tt": "5",
                                                                       "t_blocks": 3, "t_d": 2}
    big = LabConfig((2,) * 8, (2,) * 8, 1, 64, 1)
    assert fields.defaults(big)["t_blocks"] == 16 and fields.defaults(big)["t_d"] == 6


def test_changed_since_lists_what_computes_differently_not_the_view():
    then = {"t_epochs": "4", "t_seed": "7", "t_x": "step"}
    assert fields.changed_since(then, dict(then, t_x="run_s")) == []
    assert fields.changed_since(then, dict(then, t_epochs="8", t_seed="0")) == ["epochs: 4 -> 8", "seed: 7 -> 0"]
    assert fields.changed_since({}, then) == []


def test_a_tasks_numeric_constructor_options_become_fields(monkeypatch):
    import btcore.tasks as tasks
    from btcore.tasks.action import ActionTask

    class Digits(ActionTask):
        name = "digits_test"

        def __init__(self, train_size: int = 1500, noise: float = 0.1, shuffle: bool = True, source: str = "x",
                     size=None):
            super().__init__()

    monkeypatch.setitem(tasks.TASKS, "digits_test", Digits)
    got = {f.name: (f.default, f.kind) for f in fields.option_fields("digits_test")}
    assert got == {"t_digits_test_train_size": (1500, "int"), "t_digits_test_noise": (0.1, "float"),
                   "t_digits_test_shuffle": (True, "bool")}  # text and untyped options are not offered
    assert fields.option_fields("action") == ()  # action's are the page's clip controls
    names = [f.name for f in fields.page_fields()]
    assert "t_digits_test_train_size" in names and len(names) == len(set(names))
    ints = next(f for f in fields.option_fields("digits_test") if f.kind == "int")
    with pytest.raises(ValueError):
        ints.parse(str(fields.OPTION_MAX + 1))  # a link cannot ask for a huge data set
