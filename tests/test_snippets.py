"""Tests for app.snippets: every snippet the app offers to copy runs and computes the page's numbers."""

import btcore
from app.snippets import learn_snippet, shapes_snippet, training_command
from app.config import PRESETS, LabConfig


def test_shapes_snippet_runs_for_every_preset(capsys):
    for cfg in PRESETS.values():
        exec(compile(shapes_snippet(cfg), "<snippet>", "exec"), {})
        out = capsys.readouterr().out
        assert f"{cfg.bt_spec().params}" in out and f"{cfg.tt_spec().params}" in out


def test_learn_snippet_runs_and_prints_the_planned_steps(capsys):
    cfg = LabConfig((4, 4), (4, 4), (2, 3), 2, 2, batch=3)
    exec(compile(learn_snippet(cfg), "<snippet>", "exec"), {})
    out = capsys.readouterr().out
    plans = [btcore.plan_matmul(spec, 3, "path") for spec in (cfg.bt_spec(), cfg.tr_spec())]
    assert out.count("multiply-adds") == sum(len(p.steps) for p in plans)
    assert all(f"{s.macs:,} multiply-adds" in out for p in plans for s in p.steps)


def test_training_command_runs_the_pages_comparison(capsys):
    import json
    import shlex

    from app.training.worker import DataSpec
    from btcore.tasks.action import model_config
    from btcore.train import TrainConfig, main

    runs = [TrainConfig(model_config(k, frame_shape=(3, 16, 16), hidden=16, classes=4), epochs=1, batch_size=16,
                        seed=3) for k in ("dense", "tt", "bt")]
    spec = DataSpec((3, 16, 16), 4, 3, classes=4, train_size=32, val_size=16, noise=0.05)
    cmd = training_command(runs, spec, sweep=([1, 2], [1]))
    argv = shlex.split(cmd.replace("\\\n", " "))
    assert argv[:3] == ["python", "-m", "btcore.train"]
    assert main(argv[3:] + ["--threads", "1", "--stall-fraction", "0"]) == 0
    summary = json.loads(capsys.readouterr().out.splitlines()[-1])["summary"]
    assert [r["kind"] for r in summary] == ["dense", "tt", "bt", "bt"]
    assert [(r["rank"], r["blocks"]) for r in summary][2:] == [(1, 1), (2, 1)]


def test_shapes_snippet_prints_tr_and_the_planners_scheme(capsys):
    cfg = LabConfig((4, 4), (4, 4), 2, 2, 2, batch=3, tr_ranks=(2, 3))
    exec(compile(shapes_snippet(cfg), "<snippet>", "exec"), {})
    out = capsys.readouterr().out
    tr = cfg.tr_spec()
    line = next(x for x in out.splitlines() if x.startswith("TRSpec"))
    assert f" {tr.params} " in line and str(tr.macs(3)) in line and btcore.planner_choice(tr, 3).scheme in line
