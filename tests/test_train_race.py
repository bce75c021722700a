"""btcore.train.race: comparisons in turns (a race) and one after another; unique names; overall progress."""

from __future__ import annotations

import dataclasses
import threading

from btcore.train import TrainConfig, compare, train, with_unique_names
from train_helpers import data, small_config  # noqa: F401 (data is a fixture)


def _dropout(cfg, p=0.25, **kw):
    return dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, dropout=p), **kw)


def test_race_history_equals_solo_history_with_dropout(data):
    cfgs = [_dropout(small_config(k, max_steps=6, eval_every=3, seed=s, stall_fraction=None)) for k, s in (("dense", 1), ("tt", 2),
                                                                                      ("bt", 3))]
    events = []
    raced = compare(cfgs, *data, callback=events.append)
    for c, r in zip(cfgs, raced):
        solo = train(c, *data)
        assert r.status == solo.status == "done"
        assert r.final["checksum"] == solo.final["checksum"]
        keys = ("event", "step", "train_loss", "train_acc", "val_loss", "val_acc")
        assert [{k: e.get(k) for k in keys} for e in r.history] == [{k: e.get(k) for k in keys} for e in solo.history]
    # the curves grow together: the runs' first steps come one after another, before anyone's second
    steps = [(e["run"], e["step"]) for e in events if e["event"] == "step"]
    assert [s for _, s in steps[:3]] == [1, 1, 1] and len({r for r, _ in steps[:3]}) == 3
    starts = [i for i, e in enumerate(events) if e["event"] == "start"]
    assert starts == [0, 1, 2] and all(e.get("estimated_s", 0) > 0 for e in events[:3])


def test_compare_stop_ends_all_runs(data):
    stop = threading.Event()
    res = compare([small_config("dense", epochs=1), small_config("tt", epochs=1)], *data, should_stop=stop.is_set,
                  callback=lambda e: stop.set() if e["event"] == "step" else None, interleave=False)
    assert len(res) == 1 and res[0].status == "stopped"
    stop.clear()
    res = compare([small_config("dense", epochs=1), small_config("tt", epochs=1)], *data, should_stop=stop.is_set,
                  callback=lambda e: stop.set() if e["event"] == "step" else None)
    assert len(res) == 2 and {r.status for r in res} == {"stopped"}


def test_progress_after_a_stop_counts_only_the_steps_done(data):
    """Three runs, stopped at step 2 of the first: the progress is 2 steps of all, not a third."""
    stop = threading.Event()
    events = []

    def cb(ev):
        events.append(ev)
        if ev["event"] == "step" and ev["step"] == 2:
            stop.set()

    cfgs = [small_config(k, epochs=2) for k in ("dense", "tt", "bt")]
    compare(cfgs, *data, callback=cb, should_stop=stop.is_set, interleave=False)
    total = sum(e["total_steps"] for e in events if e["event"] == "start") + 2 * 16
    last = events[-1]
    assert last["event"] == "end" and last["status"] == "stopped"
    assert last["overall_progress"] <= 2 / 16 / 3 + 1e-9 < 1 / 3
    assert last["progress"] == 2 / 32 and total > 0


def test_time_left_uses_measured_step_times(data):
    events = []
    compare([small_config("tt", epochs=2), small_config("bt", epochs=2)], *data, callback=events.append)
    evs = [e for e in events if e["event"] == "step"]
    assert all(e["overall_eta_s"] is not None and e["overall_eta_s"] >= 0 for e in evs)
    assert evs[-1]["overall_eta_s"] < evs[0]["overall_eta_s"]


def test_unique_names():
    a, b = small_config("bt"), small_config("tt")
    c = TrainConfig(a.model, name=f"{a.name} #2")
    out = with_unique_names([a, a, c, b])
    names = [o.name for o in out]
    assert len(set(names)) == 4 and names[0] == a.name and names[3] == b.name and names[2] == c.name
    assert [o.name for o in with_unique_names(out)] == names  # already unique: unchanged
    assert a.name == "BT-LSTM (R=4, N=2)" and out[0] is not a


