"""Unit tests of app/approximation/run.py: the worker, its records and exports, without AppTest."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

import btcore
from app.approximation import plan, run
from btcore import decompose as dec
from btcore.target_matrices import make_target


def test_downsample_block_means_and_ragged():
    A = np.arange(16, dtype=float).reshape(4, 4)
    assert np.array_equal(run.downsample(A, 4), A)
    B = run.downsample(A, 2)
    assert B.shape == (2, 2)
    assert B[0, 0] == pytest.approx(np.mean([0, 1, 4, 5]))
    R = np.ones((5, 300))
    D = run.downsample(R, 128)
    assert D.shape == (5, 100) and np.allclose(D, 1.0)  # ragged groups averaged over what they hold
    E = run.downsample(np.arange(5.0)[:, None], 2)
    assert E.ravel().tolist() == [1.0, 3.5]  # groups of 3: (0,1,2), (3,4)
    with pytest.raises(ValueError):
        run.downsample(np.zeros(4))


class _Job:
    """What the worker uses of app.jobs.Job: progress updates and the stop flag."""

    should_stop = False
    progress = 0.0

    def __init__(self):
        self.updates = []

    def update(self, progress=None, message=None, eta_s=None):
        if progress is not None:
            self.progress = progress
        self.updates.append((progress, eta_s))


def test_worker_fits_each_task_once_keeps_the_best_candidate_and_reconstructs():
    spec = plan.build_spec(plan.SpecInputs("2x4x4x2", "4x4x4x2", budget=300, sweep_points=3))
    res = run.make_worker(spec, None, {})(_Job())
    assert isinstance(res, run.RunResult) and not res.failures and not res.stopped
    W = make_target("bt", (2, 4, 4, 2), (4, 4, 4, 2), 0, noise=0.01)
    assert [r.format for r in res.main] == ["BT", "TT", "Tucker", "CP", "TR"]
    assert len(res.new_fits) == len({spec.fit_key(t.task) for t in spec.tasks})  # repeats fitted once
    bt = [res.new_fits[spec.fit_key(t.task)][1] for t in spec.main if t.task.format == "BT"]
    assert res.fits["BT"][1] is min(bt, key=lambda i: i.relative_error)  # best of the two BT candidates
    for r in res.main:
        M, info = res.fits[r.format]
        assert r.rel_error == pytest.approx(dec.relative_error(W, M), rel=1e-12)
        assert r.ranks == btcore.formats.describe(info.spec) and r.history == info.errors
    assert any("best of" in n for n in res.main[0].notes)
    assert len(res.sweep) == 3 * 5 and all(isinstance(p, run.SweepPoint) for p in res.sweep)
    # a second run with those fits known fits nothing and returns the very same objects
    again = run.make_worker(spec, None, dict(res.new_fits))(_Job())
    assert again.new_fits == {} and all(again.fits[f][0] is res.fits[f][0] for f in res.fits)
    csv = run.results_csv(res).decode().splitlines()
    assert "stopped on" in csv[0] and len(csv) == 1 + 5 + 15
    saved = torch.load(io.BytesIO(res.pt), weights_only=True)
    assert saved["BT"]["relative_error"] == pytest.approx(res.fits["BT"][1].relative_error)


def test_worker_reports_failed_fits_and_keeps_the_others(monkeypatch):
    from btcore.decompose import budget

    def no_memory(*args, **kwargs):
        raise ValueError("fitting BT needs 9.0 GiB")

    for name in ("fit_bt", "fit_tucker", "fit_cp"):
        monkeypatch.setattr(budget, name, no_memory)
    spec = plan.build_spec(plan.SpecInputs("2x4x4x2", "4x4x4x2", budget=300, sweep_points=0))
    res = run.make_worker(spec, None, {})(_Job())
    assert len(res.failures) == 4 and all("9.0 GiB" in f for f in res.failures)
    assert [r.format for r in res.main] == ["TT", "TR"]  # the formats neither fit_bt nor fit_tucker/fit_cp fit


def test_fit_notes_name_their_format_and_the_page_controls_not_api_keywords():
    stall = ("the fit stalled at relative error 0.1 without meeting the first-order test (gradient 1e-03 > gtol = "
             "1e-06): a swamp or a poor local minimum; more restarts (another seed) or method='nls' may lower it")
    refine = ("refinement on the full matrix stopped after refine_iter = 5 sweeps with the error still falling by "
              "1.0e-03 per sweep; raise refine_iter for a little more")
    for fmt, note in (("BT", stall), ("Tucker", refine), ("CP", "rank of mode 1 capped from 9 to 4")):
        shown = run.page_note(fmt, note)
        assert shown.startswith(f"{fmt}: ")
        assert "refine_iter" not in shown and "method=" not in shown and "restarts" not in shown
    assert run.page_note("BT", "BT: best of R=2, N=3 and R=3, N=2") == "BT: best of R=2, N=3 and R=3, N=2"
    assert "swamp" not in run.page_note("BT", stall) and "1e-03" in run.page_note("BT", stall)  # the fact stays
    assert run.page_note("Tucker", refine) == ("Tucker: refinement on the full matrix stopped after 5 sweeps with the "
                                               "error still falling by 1.0e-03 per sweep")


def test_time_left_counts_the_work_left_not_the_average_finished_step():
    """A long fit after a short one: the time left scales the long fit's expected cost by the measured rate."""
    clock = run._WorkClock([(1.0, 10), (9.0, 10)])
    assert clock.state(0) == (0.0, None)  # nothing timed yet: no number
    clock.finish(0, 2.0)  # the first fit took twice its expected time
    assert clock.state(1) == pytest.approx((0.1, 18.0))  # an average of finished steps would say 2 s
    assert clock.state(1, 5) == pytest.approx((0.55, 9.0))
    assert clock.state(1, 50)[0] == pytest.approx(0.1 + 0.9 * 0.9)  # past its count: still not done


def test_worker_progress_never_falls_and_ends_with_little_time_left():
    spec = plan.build_spec(plan.SpecInputs("2x4x4x2", "4x4x4x2", budget=300, sweep_points=3))
    job = _Job()
    run.make_worker(spec, None, {})(job)
    ps = [p for p, _ in job.updates if p is not None]
    assert ps == sorted(ps) and ps[-1] >= 0.97
    assert any(e is not None for _, e in job.updates)
