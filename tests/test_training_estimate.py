"""Estimates before launch: every phase (data, building, training, evaluation), a range, the time left."""

from __future__ import annotations

import io

import numpy as np
import pytest

from app.training import views
from app.training.worker import DataSpec
from btcore.tasks.action import ActionTask, model_config
from btcore.tasks.sequences import SequencesTask
from btcore.train import TrainConfig
from btcore.train.estimate import LOAD_FACTOR, data_seconds, probe_seconds, total_estimate


def _probe(step=0.1, lo=0.08, hi=0.2, steps=10, est=None, build=0.3):
    return {"step_s": step, "step_min_s": lo, "step_max_s": hi, "steps": steps, "build_s": build,
            "estimated_s": est if est is not None else steps * step + 0.5}


def test_the_total_holds_every_phase_and_a_range():
    est = total_estimate([_probe(), _probe(step=0.2, lo=0.2, hi=0.2, est=2.0 + 1.0)], data_s=9.0)
    assert est["data_s"] == 9.0 and est["build_s"] == pytest.approx(0.6)
    assert est["train_s"] == pytest.approx(1.0 + 2.0) and est["eval_s"] == pytest.approx(0.5 + 1.0)
    assert est["estimated_s"] == pytest.approx(9.0 + 0.6 + 3.0 + 1.5)
    fixed = 9.0 + 0.6 + 1.5
    assert est["low_s"] == pytest.approx(fixed + 0.8 + 2.0)
    assert est["high_s"] == pytest.approx(fixed + LOAD_FACTOR * (2.0 + 2.0))
    assert est["low_s"] <= est["estimated_s"] <= est["high_s"]
    text = views.estimate_text(est)
    assert "data 9.0 s" in text and "building 0.6 s" in text and "evaluation 1.5 s" in text
    assert "**14-17 s**" in text  # the range, not one optimistic number


def test_a_narrow_estimate_is_one_number():
    est = total_estimate([_probe(step=0.1, lo=0.1, hi=0.1, est=1.0, build=0.0)])
    assert est["high_s"] == pytest.approx(1.0 + (LOAD_FACTOR - 1) * 1.0)
    est = {**est, "low_s": 0.9, "high_s": 1.2}
    assert "about **1 s**" in views.estimate_text(est)  # both ends round alike


def test_the_probe_times_building_and_reports_its_spread():
    cfg = TrainConfig(model_config("bt", frame_shape=(3, 8, 8), hidden=16, classes=2), epochs=1, batch_size=8)
    p = probe_seconds(cfg, 32, 16, 4, steps=3)
    assert p["build_s"] > 0 and 0 < p["step_min_s"] <= p["step_s"] <= p["step_max_s"]
    assert p["steps"] == 4


def test_the_synthetic_data_time_is_in_the_estimate_and_scales_with_the_clips():
    small = ActionTask(frame_shape=(3, 16, 16), frames=4, classes=4, train_size=32, val_size=32)
    big = ActionTask(frame_shape=(3, 16, 16), frames=4, classes=4, train_size=3200, val_size=3200)
    s, b = data_seconds(small, sample=8), data_seconds(big, sample=8)
    assert s > 0 and b > 20 * s  # per clip: 100 x the clips, well over 20 x the time even under load
    assert data_seconds(ActionTask(data_source="/nowhere")) == 0.0  # no such folder: nothing to read
    spec = DataSpec((3, 16, 16), 4, 0, classes=4, train_size=64, val_size=32)
    data_s, n_train, n_val = views.data_estimate(spec)
    assert data_s > 0 and (n_train, n_val) == (64, 32)


def test_time_left_that_grows_says_why():
    assert views.eta_text(None, 3.0, 10.0) == ""
    assert views.eta_text(7.0, 3.0, 10.0) == " · about 7 s left"
    assert views.eta_text(8.0, 3.0, 10.0) == " · about 8 s left"  # within 10 % and 2 s: noise
    grown = views.eta_text(30.0, 5.0, 10.0)
    assert grown.startswith(" · about 30 s left") and "35 s in all, not 10 s" in grown and "slower" in grown


def test_a_sweep_times_its_smallest_and_largest_bt_and_interpolates_the_rest():
    from btcore.train import sweep_configs

    base = TrainConfig(model_config("bt", frame_shape=(3, 8, 8), hidden=16, classes=2), epochs=1, batch_size=8)
    dense = TrainConfig(model_config("dense", frame_shape=(3, 8, 8), hidden=16, classes=2), epochs=1, batch_size=8)
    runs = sweep_configs(base, [1, 2, 3], [1, 2]) + [dense]
    probed = []

    def probe(run):
        probed.append(run)
        return _probe(step=run.model.input_map_params() * 1e-3, build=0.1)

    probes = views.sweep_probes(runs, probe)
    sizes = [r.model.input_map_params() for r in runs[:-1]]
    assert len(probed) == 3 and probed[-1] is dense  # the two extremes of the grid and the reference
    for r, p in zip(runs[:-1], probes):  # the step time here is linear in the size: interpolation is exact
        assert p["step_s"] == pytest.approx(r.model.input_map_params() * 1e-3)
        assert p["steps"] == 10
    assert {probed[0].model.input_map_params(), probed[1].model.input_map_params()} == {min(sizes), max(sizes)}


def test_a_clip_folders_estimate_has_its_exact_split_and_its_reading_time(tmp_path):
    import numpy as np

    from btcore.clips import load_clip_folder

    for k, name in enumerate(("clap", "wave", "jump")):
        (tmp_path / name).mkdir()
        for i in range(5):
            np.save(tmp_path / name / f"c{i}.npy", np.random.default_rng(k * 10 + i).random((6, 20, 20, 3)))
    spec = DataSpec((3, 16, 16), 4, 0, folder=tmp_path)
    data_s, n_train, n_val = views.data_estimate(spec)
    train, val = load_clip_folder(tmp_path, (3, 16, 16), 4)
    assert (n_train, n_val) == (len(train), len(val)) == (12, 3)
    mid, low, high = data_s
    assert 0 < low <= mid <= high and data_seconds(spec.make_task()) > 0
    est = total_estimate([_probe()], data_s)  # the data's own range widens the race's
    plain = total_estimate([_probe()], mid)
    assert est["data_s"] == mid and est["estimated_s"] == plain["estimated_s"]
    assert est["low_s"] == pytest.approx(plain["low_s"] - (mid - low))
    assert est["high_s"] == pytest.approx(plain["high_s"] + (high - mid))


@pytest.mark.parametrize("lo, mid, hi, says", [(0.9, 1.0, 1.2, "about **1 s**"), (0.1, 0.2, 0.3, "**under 1 s**"),
                                               (30.0, 40.0, 59.0, "**30-59 s**"), (100.0, 130.0, 300.0, "**100-300 s**")])
def test_one_span_everywhere_with_its_middle_inside(lo, mid, hi, says):
    est = {"low_s": lo, "estimated_s": mid, "high_s": hi, "data_s": 0.0, "build_s": 0.0, "train_s": mid, "eval_s": 0.0}
    assert views.span_text(est) == says and f"Estimated: {says} for" in views.estimate_text(est)


def test_the_slow_warning_repeats_the_captions_span(monkeypatch):
    shown = []
    monkeypatch.setattr(views.st, "warning", lambda text, **kw: shown.append(text))

    class Where:
        def caption(self, text):
            shown.append(text)

    est = {"low_s": 100.0, "estimated_s": 130.0, "high_s": 300.0, "data_s": 1.0, "build_s": 0.0, "train_s": 129.0,
           "eval_s": 0.0}
    views.show_estimate(Where(), est)
    assert len(shown) == 2 and all("**100-300 s**" in t for t in shown)
    assert "minutes on this machine" not in shown[1] and "about 2" not in shown[1]


def test_data_seconds_times_sequences_from_an_upload_and_from_a_file(tmp_path):
    """The sequences task reads a .npz (uploaded bytes or a file under the root): timed as a whole."""
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((40, 6, 5)).astype(np.float32), np.arange(40) % 2
    buf = io.BytesIO()
    np.savez(buf, X=x, y=y)
    assert 0 < data_seconds(SequencesTask(data_source=buf.getvalue())) < 60
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "seq.npz").write_bytes(buf.getvalue())
    assert 0 < data_seconds(SequencesTask(data_source="d/seq.npz", root=str(tmp_path))) < 60
