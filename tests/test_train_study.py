"""btcore.train.study: budgets filled, Pareto front, recommendation, export, stop, compress + fine-tune, torchrun."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from btcore.compress import format_ranks
from btcore.tasks import make_task
from btcore.train import TrainConfig, main, save_checkpoint, train
from btcore.train.study import (NOISE_Z, TIMING_FIELDS, StudyResult, StudyRow, judge, pareto_flags, plan_study,
                                recommend, run_study, share_noise, study_formats)

ROOT = Path(__file__).resolve().parent.parent
TASK = dict(frame_shape=(1, 8, 8), frames=4, classes=3, train_size=24, val_size=12)
CONTROLS = dict(hidden=16, d=2)
CLI = ["--frame", "1x8x8", "--frames", "4", "--classes", "3", "--train-size", "24", "--val-size", "12",
       "--hidden", "16", "--epochs", "2", "--d", "2", "--batch", "8", "--threads", "1"]


def _plan(budgets, **kw):
    task = make_task("action", **TASK)
    base = TrainConfig(task.model_config("dense", **CONTROLS), epochs=2, batch_size=8, seed=3)
    return task, *plan_study(task, budgets, base=base, controls=CONTROLS, **kw)


def test_budgets_filled_as_far_as_the_ranks_allow():
    task, jobs, notes = _plan([300, 1000, 3000], bt_blocks=[1, 2])
    assert jobs[0].format == "dense" and {j.format for j in jobs[1:]} == set(study_formats())
    for j in jobs[1:]:
        p = j.config.model.input_map_params()
        assert p <= j.budget
        if p < j.budget / 2:  # the next rank must pass the budget (or not exist)
            m = j.config.model
            r = max(m.spec().ranks)
            ranks = format_ranks(j.format, m.in_modes, m.out_modes, r + 1)
            try:
                bigger = type(m.spec())(m.in_modes, m.out_modes, *((ranks, m.blocks) if j.format == "bt"
                                                                    else (ranks,))).params
            except ValueError:
                continue
            assert bigger > j.budget
    assert any(j.blocks == 2 for j in jobs) and any(j.blocks == 1 for j in jobs)  # the R x N grid


def test_pareto_flags_on_a_hand_made_table():
    params = [100, 200, 300, 300, 400, 50]
    acc = [0.5, 0.7, 0.6, 0.7, 0.9, float("nan")]
    assert pareto_flags(params, acc, True) == [True, True, False, False, True, False]
    loss = [0.5, 0.7, 0.4, 0.4, 0.9, 0.1]
    assert pareto_flags(params, loss, False) == [False, False, False, False, False, True]
    assert pareto_flags([1, 1], [0.5, 0.5]) == [True, True]


def _row(run, params, metric, job):
    return StudyRow(run, "bt", "trained", 1000, None, None, params, params, metric, 1.0, None, 0.0, "done", job)


def test_recommend_best_within_budget_ties_to_fewer_params():
    rows = [_row("a", 900, 0.8, 0), _row("b", 500, 0.8, 1), _row("c", 2000, 0.95, 2), _row("d", 100, 0.3, 3)]
    assert recommend(rows, 1000).run == "b"
    assert recommend(rows, None).run == "c"
    assert recommend(rows, 1000, higher_is_better=False).run == "d"


def test_study_runs_reproduces_and_exports(tmp_path):
    task, jobs, _ = _plan([300, 1000])
    seen = []
    a = run_study(task, jobs, [300, 1000], progress=lambda d, t: seen.append((d, t)))
    b = run_study(task, jobs, [300, 1000])
    strip = lambda r: {k: v for k, v in r.to_dict().items() if k not in TIMING_FIELDS}  # noqa: E731
    assert [strip(r) for r in a.rows] == [strip(r) for r in b.rows]
    assert seen[-1] == (len(jobs), len(jobs)) and len(a.rows) == len(jobs)
    v = a.verdict  # 12 validation clips: the runs are likely too close to tell apart; the top one is exported
    top, rec = v.top, a.recommended
    assert top is not None and top.params <= 1000 and sum(r.recommended for r in a.rows) == (rec is not None)
    assert rec is None or rec is top
    assert v.reason in ("clear", "tied", "chance") and a.val_size == 12 and a.chance == pytest.approx(1 / 3)
    assert any(r.pareto for r in a.rows)
    (tmp_path / "model.pt").write_bytes(a.export_state_dict(top.run))
    scope = {}
    exec(a.export_code(top.run, weights_file=str(tmp_path / "model.pt")), scope)
    x = torch.randn(2, 4, 64)
    model = a.models[top.run].cpu().eval()  # trained on the default device
    torch.testing.assert_close(scope["model"].eval()(x), model(x))
    assert json.loads(json.dumps(a.to_dict()))["recommended"] == (rec.run if rec else None)


def test_stop_keeps_what_finished():
    task, jobs, _ = _plan([300, 1000])
    state = {"done": 0, "calls": 0}

    def stop():  # a few steps into the second job
        state["calls"] += state["done"] > 0
        return state["calls"] > 3

    res = run_study(task, jobs, [300, 1000], should_stop=stop, progress=lambda d, t: state.update(done=d))
    assert res.stopped and [r.run for r in res.rows] == ["dense"]
    assert all(r.status in ("done", "stalled") for r in res.rows)


def test_compress_then_fine_tune_improves(tmp_path):
    task = make_task("action", **{**TASK, "train_size": 48})
    dense_cfg = TrainConfig(task.model_config("dense", **CONTROLS), epochs=6, batch_size=8, seed=1, lr=0.01,
                            stall_fraction=None)
    tv = task.data(1)
    dense = train(dense_cfg, *tv, task=task)
    ckpt = save_checkpoint(tmp_path / "dense.pt", dense.model, dense_cfg)
    jobs, _ = plan_study(task, [400], ["bt"], base=dense_cfg, controls=CONTROLS, compress_from=True)
    res = run_study(task, jobs, [400], compress_from=str(ckpt), finetune_epochs=3, train_data=tv[0], val_data=tv[1])
    comp = next(r for r in res.rows if r.phase == "compressed")
    tuned = next(r for r in res.rows if r.phase == "finetuned")
    assert comp.params == tuned.params <= 400 and 0 < comp.fit_error < 1
    assert tuned.val_loss < comp.val_loss
    assert {r.phase for r in res.rows} == {"trained", "compressed", "finetuned"}


def _json(stdout):
    return [json.loads(ln) for ln in stdout.splitlines() if ln.strip()]


def test_cli_lines_and_errors(capsys):
    assert main(["--study", "formats", "--budgets", "300,1000", "--formats", "tt,bt", *CLI]) == 0
    last = _json(capsys.readouterr().out)[-1]
    rows = last["summary"]
    for key in ("format", "ranks", "blocks", "params", "val_metric", "examples_per_s", "pareto", "recommended",
                "phase"):
        assert all(key in r for r in rows)
    assert [r["format"] for r in rows][0] == "dense"
    assert sum(r["recommended"] for r in rows) == (last["recommended"] is not None)
    for argv, flag in ((["--study", "formats", "--budgets", "0"], "--budgets"),
                       (["--study", "formats", "--budgets", "300", "--formats", "svd"], "--formats"),
                       (["--budgets", "300"], "--budgets"),
                       (["--study", "formats", "--budgets", "300", "--compress-from", "nope.pt"], "--compress-from"),
                       (["--study", "formats", "--budgets", "300", "--finetune-epochs", "2"], "--finetune-epochs")):
        assert main([*argv, *CLI]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: {flag}") and "Traceback" not in err, err


def test_torchrun_gathers_the_single_process_summary(capsys):
    # torchrun's own parser would take --d for one of its flags: the default d = 4 here
    args = ["--study", "formats", "--budgets", "300,1000", *CLI[:-6], *CLI[-4:], "--seed", "2"]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    env.pop("WORLD_SIZE", None)
    p = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                        "-m", "btcore.train", *args], cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert p.returncode == 0, p.stderr[-3000:]
    assert main(args) == 0
    d, s = _json(p.stdout)[-1], _json(capsys.readouterr().out)[-1]
    assert d["world_size"] == 2 and s["world_size"] == 1
    strip = lambda rows: [{k: v for k, v in r.items() if k not in TIMING_FIELDS} for r in rows]  # noqa: E731
    assert strip(d["summary"]) == strip(s["summary"]) and len(s["summary"]) >= 3


def test_cli_compress_and_fine_tune(tmp_path, capsys):
    dense = tmp_path / "dense"
    assert main(["--model", "dense", *CLI, "--out", str(dense), "--checkpoint"]) == 0
    ckpt = next(dense.glob("*.pt"))
    capsys.readouterr()
    out = tmp_path / "study"
    assert main(["--study", "formats", "--budgets", "300", "--formats", "bt", "--sweep-blocks", "1", *CLI,
                 "--compress-from", str(ckpt), "--finetune-epochs", "1", "--out", str(out)]) == 0
    rows = _json(capsys.readouterr().out)[-1]["summary"]
    assert [r["phase"] for r in rows] == ["trained", "trained", "compressed", "finetuned"]
    assert all(r["params"] <= 300 for r in rows[1:]) and rows[2]["fit_error"] > 0
    written = {p.name for p in out.iterdir()}
    saved = json.loads((out / "study.json").read_text())
    assert [r["run"] for r in saved["rows"]] == [r["run"] for r in rows]  # the results, with or without a winner
    assert ({"recommended.pt", "recommended.py"} <= written) == (saved["recommended"] is not None)
    bt = tmp_path / "bt"
    assert main(["--model", "bt", *CLI, "--out", str(bt), "--checkpoint"]) == 0
    capsys.readouterr()
    assert main(["--study", "formats", "--budgets", "300", *CLI, "--compress-from", str(next(bt.glob("*.pt")))]) == 2
    assert "give a dense model" in capsys.readouterr().err


def _acc_rows(*accs, params=(500, 600, 700, 800)):
    return [_row(f"r{i}", params[i], a, i) for i, a in enumerate(accs)]


def test_a_clearly_better_accuracy_is_recommended():
    rows = _acc_rows(0.90, 0.60, 0.55)
    v = judge(rows, 1000, n_val=1000, chance=1 / 3)
    assert v.reason == "clear" and v.best.run == "r0" and v.tied == ()
    assert v.noise == pytest.approx(math.sqrt(0.9 * 0.1 / 1000)) and v.gap == pytest.approx(0.30)
    assert recommend(rows, 1000, n_val=1000, chance=1 / 3).run == "r0"


def test_accuracies_inside_the_binomial_noise_give_no_recommendation():
    # 16 vs 14 of 32 clips: the gap 0.0625 is inside 2 standard errors of the difference (~0.25)
    rows = _acc_rows(0.50, 0.4375, 0.25)
    v = judge(rows, 1000, n_val=32, chance=0.1)
    assert v.best is None and v.reason == "tied" and v.top.run == "r0" and [r.run for r in v.tied] == ["r1"]
    assert recommend(rows, 1000, n_val=32, chance=0.1) is None
    # the same accuracies on 4,000 clips are told apart (the noise shrinks as 1/sqrt(n))
    assert judge(rows, 1000, n_val=4000, chance=0.1).best.run == "r0"
    # the rule sits at NOISE_Z standard errors of the difference
    n, a = 400, 0.5
    edge = NOISE_Z * math.hypot(share_noise(a, n), share_noise(a - 0.1, n))
    assert 0.06 < edge < 0.08
    below, above = _acc_rows(0.5, 0.5 - 0.06), _acc_rows(0.5, 0.5 - 0.08)  # edge at n = 400: about 0.0698
    assert judge(below, 1000, n_val=n).reason == "tied" and judge(above, 1000, n_val=n).reason == "clear"


def test_a_best_run_near_chance_is_not_recommended():
    # the reviewer's study: 6 of 32 clips at best, chance 1/6 with 6 classes
    rows = _acc_rows(0.1875, 0.09375, 0.125)
    v = judge(rows, 1000, n_val=32, chance=1 / 6)
    assert v.best is None and v.reason == "chance" and v.top.run == "r0"
    far = judge(_acc_rows(0.9, 0.2), 1000, n_val=32, chance=1 / 6)
    assert far.reason == "clear" and far.best.run == "r0"


def test_the_study_result_judges_with_its_validation_size():
    rows = _acc_rows(0.50, 0.4375)
    small = StudyResult("action", "val_acc", "validation accuracy", True, [1000], rows, val_size=32, chance=0.1)
    assert small.recommended is None and small.verdict.reason == "tied"
    assert json.loads(json.dumps(small.to_dict()))["verdict"]["tied"] == ["r1"]
    rows = _acc_rows(0.50, 0.4375)
    large = StudyResult("action", "val_acc", "validation accuracy", True, [1000], rows, val_size=20_000, chance=0.1)
    assert large.recommended.run == "r0" and sum(r.recommended for r in large.rows) == 1
    rows = _acc_rows(0.50, 0.4375)  # a metric that is not a share of the clips: no binomial noise to judge by
    other = StudyResult("captioning", "val_bleu", "BLEU", True, [1000], rows, val_size=32)
    assert other.recommended.run == "r0" and other.verdict.reason == "unmeasured"
