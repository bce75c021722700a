"""app.study.timing and the progress line of app.study.run: every phase estimated, ranges, text that does not repeat."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.study.inputs import FROM_STUDY, fields
from app.study.plan import make_plan
from app.study.run import next_step, progress_text
from app.study.timing import seconds_text, study_estimate


def _plan(**extra):
    values = {f.name: f.default for f in fields()}
    values.update(s_frame="1x8x8", s_frames=4, s_clips=32, s_val=16, s_hidden=16, s_d=2, s_budgets="300,1000",
                  s_epochs=2, s_batch=8, s_tr=False, **extra)
    return make_plan(values, None, Path("/nonexistent"))


def test_the_estimate_counts_every_phase_of_the_trained_runs():
    plan = _plan()
    est = study_estimate(plan)
    for phase in ("data_s", "build_s", "train_s", "eval_s"):
        assert est[phase] > 0, phase
    assert est["estimated_s"] == pytest.approx(est["data_s"] + est["build_s"] + est["train_s"] + est["eval_s"])
    assert 0 < est["low_s"] <= est["estimated_s"] <= est["high_s"] and est["fit_s"] == 0


def test_the_estimate_counts_the_compression_fits_and_fine_tuning():
    plan = _plan(s_compress=FROM_STUDY, s_finetune=4)
    assert any(j.phase == "compressed" for j in plan.jobs)
    est = study_estimate(plan)
    assert est["fit_s"] > 0 and est["finetune_s"] > 0
    assert est["estimated_s"] > est["data_s"] + est["build_s"] + est["eval_s"] + est["fit_s"]
    assert est["low_s"] <= est["estimated_s"] <= est["high_s"]


@pytest.mark.parametrize("lo, hi, text", [(0.1, 0.4, "under 1 s"), (0.4, 1.2, "about 1 s"), (3.2, 5.4, "3-5 s"),
                                          (100, 130, "2 minutes"), (100, 300, "2-5 minutes")])
def test_seconds_text(lo, hi, text):
    assert seconds_text(lo, hi).endswith(text) and "0 s" not in seconds_text(lo, hi).replace("10 s", "")


def test_the_progress_line_says_each_thing_once():
    plan = _plan(s_compress=FROM_STUDY)
    jobs, total = plan.jobs, len(plan.jobs)
    running = {"status": "running", "progress": 2 / total, "message": next_step(jobs, 2), "elapsed": 3.2}
    line = progress_text(running, total)
    assert line == f"2 of {total} runs done · {next_step(jobs, 2)} · 3 s" and line.count("runs done") == 1
    assert next_step(jobs, 1) == f"starting {jobs[1].name}"
    comp = next(i for i, j in enumerate(jobs) if j.phase == "compressed")
    assert next_step(jobs, comp).startswith("compressing into ") and next_step(jobs, total) == "collecting the results"
    done = progress_text({**running, "status": "done", "progress": 1.0, "elapsed": 12.4}, total)
    assert done == f"Finished: {total} of {total} runs in 12 s."
