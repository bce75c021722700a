"""Tests for app.snippets: every snippet the app offers to copy runs and computes the page's numbers."""

import btcore
from app.snippets import learn_snippet, shapes_snippet
from app.state import PRESETS, LabConfig


def test_shapes_snippet_runs_for_every_preset(capsys):
    for cfg in PRESETS.values():
        exec(compile(shapes_snippet(cfg), "<snippet>", "exec"), {})
        out = capsys.readouterr().out
        assert f"{cfg.bt_spec().params}" in out and f"{cfg.tt_spec().params}" in out


def test_learn_snippet_runs_and_prints_the_planned_steps(capsys):
    cfg = LabConfig((4, 4), (4, 4), (2, 3), 2, 2, batch=3)
    exec(compile(learn_snippet(cfg), "<snippet>", "exec"), {})
    out = capsys.readouterr().out
    plan = btcore.plan_matmul(cfg.bt_spec(), 3)
    assert out.count("multiply-adds") == len(plan.steps)
