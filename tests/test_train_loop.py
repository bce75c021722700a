"""btcore.train.loop: learning on the synthetic task, stop requests, the NaN guard, names, threads and seeding."""

from __future__ import annotations

import dataclasses
import math
import threading

import numpy as np
import pytest
import torch
from torch import nn

from btcore.data import ClipSet, mean_frame_features
from btcore.train import seeded_model, train
from train_helpers import FRAME, data, small_config  # noqa: F401 (data is a fixture)


@pytest.mark.parametrize("kind", ["dense", "tt", "bt"])
def test_every_kind_learns(data, kind):
    events = []
    res = train(small_config(kind), *data, callback=events.append)
    assert res.status == "done", res.reason
    steps = [e for e in events if e["event"] == "step"]
    evals = [e for e in events if e["event"] == "eval"]
    assert events[0]["event"] == "start" and events[-1]["event"] == "end"
    assert len(steps) == 6 * (512 // 32) and len(evals) == 6
    assert [e["step"] for e in steps] == list(range(1, len(steps) + 1))
    for e in steps:
        assert e["step_time"] > 0 and e["examples_per_s"] > 0 and e["params"] == res.params
    first, last = evals[0], evals[-1]
    # The dense map (50k input weights for 512 clips) generalises worst: about 0.45 here, the factorized
    # ones about 0.65 (chance 0.25). Thresholds leave room for other BLAS builds.
    drop, acc = (0.1, 0.35) if kind == "dense" else (0.4, 0.5)
    assert last["train_loss"] < first["train_loss"] - drop
    assert last["val_acc"] >= acc, f"{kind}: validation accuracy {last['val_acc']:.2f} (chance 0.25)"
    assert res.final["val_acc"] == last["val_acc"]
    assert res.params == res.config.model.num_params() == sum(p.numel() for p in res.model.parameters())


def test_recurrent_beats_a_linear_model_on_the_mean_frame(data):
    """The class is in the motion's direction: the mean frame cannot tell reversed motions apart."""
    train_set, val_set = data
    (xt, yt), (xv, yv) = train_set.get(np.arange(len(train_set))), val_set.get(np.arange(len(val_set)))
    torch.manual_seed(0)
    lin = nn.Linear(xt.shape[-1], 4)
    opt = torch.optim.Adam(lin.parameters(), 3e-3, weight_decay=1e-3)
    mt, mv = mean_frame_features(xt), mean_frame_features(xv)
    for _ in range(200):
        opt.zero_grad()
        nn.functional.cross_entropy(lin(mt), yt).backward()
        opt.step()
    linear_acc = float((lin(mv).argmax(1) == yv).float().mean())
    rnn = train(small_config("tt", epochs=8), train_set, val_set)
    assert rnn.final["val_acc"] > linear_acc + 0.15, (rnn.final["val_acc"], linear_acc)


def test_stop_request_is_honoured(data):
    stop = threading.Event()
    events = []

    def cb(ev):
        events.append(ev)
        if ev["event"] == "step" and ev["step"] == 3:
            stop.set()

    res = train(small_config("bt", epochs=50), *data, callback=cb, should_stop=stop.is_set)
    assert res.status == "stopped" and "stopped by request" in res.reason
    assert res.final["steps"] == 3
    assert events[-1]["event"] == "end" and events[-1]["status"] == "stopped"


def test_stop_from_another_thread(data):
    stop = threading.Event()
    first_step = threading.Event()
    out = {}

    def work():
        out["res"] = train(small_config("tt", epochs=1000), *data, should_stop=stop.is_set,
                           callback=lambda e: first_step.set() if e["event"] == "step" else None)

    th = threading.Thread(target=work, daemon=True)
    th.start()
    assert first_step.wait(60)
    stop.set()
    th.join(30)
    assert not th.is_alive() and out["res"].status == "stopped"


def test_nan_guard():
    x = torch.randn(64, 4, 768)
    bad = ClipSet(x, torch.arange(64) % 4, FRAME, ("a", "b", "c", "d"))
    x[5, 2, 7] = float("nan")  # after ClipSet's own check (which refuses NaN): data spoiled later
    events = []
    res = train(small_config("tt", batch_size=64, epochs=3), bad, bad, callback=events.append)
    assert res.status == "diverged"
    # the cause is the data, not the learning rate
    assert "non-finite" in res.reason and "the data" in res.reason and "lower the learning rate" not in res.reason
    for e in events:
        for k in ("train_loss", "val_loss", "train_acc", "val_acc"):
            if isinstance(e.get(k), float):
                assert math.isfinite(e[k])
    assert not [e for e in events if e["event"] == "step"]
    # a bad batch later in training: the steps before it are reported, the bad one is not
    late = ClipSet(torch.randn(64, 4, 768), torch.arange(64) % 4, FRAME, ("a", "b", "c", "d"))
    late.x[37, 1, 3] = float("inf")
    res = train(small_config("bt", batch_size=8, epochs=2), late, late)
    steps = [e for e in res.history if e["event"] == "step"]
    assert res.status == "diverged" and 0 < len(steps) < 8
    assert all(math.isfinite(e["train_loss"]) for e in steps)


def test_threads_are_left_alone_unless_asked(data):
    """torch's thread count is process-wide: a run changes it only with apply_threads=True (and restores it)."""
    before = torch.get_num_threads()
    want = before + 1
    seen = []
    cb = lambda e: seen.append(torch.get_num_threads()) if e["event"] == "step" else None  # noqa: E731
    train(small_config("tt", max_steps=2, threads=want), *data, callback=cb)
    assert set(seen) == {before} and torch.get_num_threads() == before
    seen.clear()
    train(small_config("tt", max_steps=2, threads=want), *data, callback=cb, apply_threads=True)
    assert set(seen) == {want} and torch.get_num_threads() == before


def test_seeding_leaves_the_callers_rng_and_concurrent_runs_reproducible(data):
    torch.manual_seed(123)
    state = torch.get_rng_state()
    alone = [train(small_config("bt", max_steps=3, seed=s), *data).final["checksum"] for s in (1, 2)]
    assert torch.equal(torch.get_rng_state(), state)  # the runs seeded a forked RNG, not the caller's
    out = {}
    go = threading.Barrier(2)

    def work(seed):
        go.wait()
        out[seed] = train(small_config("bt", max_steps=3, seed=seed), *data).final["checksum"]

    threads = [threading.Thread(target=work, args=(s,), daemon=True) for s in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert [out[1], out[2]] == alone and alone[0] != alone[1]


def test_dropout_runs_in_threads_reproduce_their_solo_results(data):
    """Each model's init and dropout come from its own generators: two threads with dropout match two solo runs."""
    base = small_config("bt", max_steps=4)
    cfgs = [dataclasses.replace(base, seed=s, model=dataclasses.replace(base.model, dropout=0.3)) for s in (3, 4)]
    alone = [train(c, *data) for c in cfgs]
    out = {}
    go = threading.Barrier(2)

    def work(i):
        go.wait()
        out[i] = train(cfgs[i], *data)

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    for i in (0, 1):
        assert out[i].final["checksum"] == alone[i].final["checksum"]
        assert [e["train_loss"] for e in out[i].history] == [e["train_loss"] for e in alone[i].history]


def test_seeded_model_uses_its_own_generators():
    cfg = small_config("tt")
    torch.manual_seed(5)
    state = torch.get_rng_state()
    a, b = seeded_model(cfg), seeded_model(cfg)
    assert torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert a.rnn.dropout_generator is not None
