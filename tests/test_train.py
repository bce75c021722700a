"""btcore.train: learning on the synthetic task, stop requests, the NaN guard, the CLI and 2-process DDP."""

from __future__ import annotations

import io
import json
import math
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from btcore.data import ClipSet, SyntheticActions, mean_frame_features
from btcore.train import (HISTORY_COLUMNS, TrainConfig, checkpoint_bytes, compare, estimate_memory, fit_model_config,
                          histories_csv, load_checkpoint, main, model_config, save_checkpoint, save_results, train,
                          with_unique_names)

ROOT = Path(__file__).resolve().parent.parent
FRAME = (3, 16, 16)
# A task small enough for a few seconds per model: 4 translation classes (chance 25%).
TASK = SyntheticActions(frame_shape=FRAME, frames=6, classes=4, train_size=512, val_size=128, noise=0.05, clutter=2)
CLI_SMALL = ["--frame", "3x16x16", "--frames", "4", "--classes", "4", "--train-size", "64", "--val-size", "32",
             "--hidden", "16", "--batch", "16", "--epochs", "2", "--threads", "1"]


@pytest.fixture(scope="module")
def data():
    torch.set_num_threads(1)
    train_set, val_set = TASK.splits()
    train_set.get([0]), val_set.get([0])  # fill the caches once
    return train_set, val_set


def _cfg(kind, **kw):
    model = model_config(kind, frame_shape=FRAME, classes=4, hidden=16, d=4)
    opts = dict(epochs=6, lr=1e-2 if kind != "dense" else 3e-3, batch_size=32, seed=0)
    opts.update(kw)
    return TrainConfig(model, **opts)


@pytest.mark.parametrize("kind", ["dense", "tt", "bt"])
def test_every_kind_learns(data, kind):
    events = []
    res = train(_cfg(kind), *data, callback=events.append)
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
    rnn = train(_cfg("tt", epochs=8), train_set, val_set)
    assert rnn.final["val_acc"] > linear_acc + 0.15, (rnn.final["val_acc"], linear_acc)


def test_stop_request_is_honoured(data):
    stop = threading.Event()
    events = []

    def cb(ev):
        events.append(ev)
        if ev["event"] == "step" and ev["step"] == 3:
            stop.set()

    res = train(_cfg("bt", epochs=50), *data, callback=cb, should_stop=stop.is_set)
    assert res.status == "stopped" and "stopped by request" in res.reason
    assert res.final["steps"] == 3
    assert events[-1]["event"] == "end" and events[-1]["status"] == "stopped"


def test_stop_from_another_thread(data):
    stop = threading.Event()
    first_step = threading.Event()
    out = {}

    def work():
        out["res"] = train(_cfg("tt", epochs=1000), *data, should_stop=stop.is_set,
                           callback=lambda e: first_step.set() if e["event"] == "step" else None)

    th = threading.Thread(target=work, daemon=True)
    th.start()
    assert first_step.wait(60)
    stop.set()
    th.join(30)
    assert not th.is_alive() and out["res"].status == "stopped"


def test_compare_stop_ends_all_runs(data):
    stop = threading.Event()
    res = compare([_cfg("dense", epochs=1), _cfg("tt", epochs=1)], *data, should_stop=stop.is_set,
                  callback=lambda e: stop.set() if e["event"] == "step" else None)
    assert len(res) == 1 and res[0].status == "stopped"


def test_nan_guard():
    x = torch.randn(64, 4, 768)
    x[5, 2, 7] = float("nan")
    bad = ClipSet(x, torch.arange(64) % 4, FRAME, ("a", "b", "c", "d"))
    events = []
    res = train(_cfg("tt", batch_size=64, epochs=3), bad, bad, callback=events.append)
    assert res.status == "diverged"
    assert "non-finite" in res.reason and "learning rate" in res.reason
    for e in events:
        for k in ("train_loss", "val_loss", "train_acc", "val_acc"):
            if isinstance(e.get(k), float):
                assert math.isfinite(e[k])
    assert not [e for e in events if e["event"] == "step"]
    # a bad batch later in training: the steps before it are reported, the bad one is not
    late = ClipSet(torch.randn(64, 4, 768), torch.arange(64) % 4, FRAME, ("a", "b", "c", "d"))
    late.x[37, 1, 3] = float("inf")
    res = train(_cfg("bt", batch_size=8, epochs=2), late, late)
    steps = [e for e in res.history if e["event"] == "step"]
    assert res.status == "diverged" and 0 < len(steps) < 8
    assert all(math.isfinite(e["train_loss"]) for e in steps)


def test_compare_history_and_checkpoint(data, tmp_path):
    events = []
    cfgs = [_cfg("bt", max_steps=3, epochs=1), _cfg("bt", max_steps=2, epochs=1)]
    res = compare(cfgs, *data, callback=events.append)
    assert [r.name for r in res] == ["BT-LSTM (R=4, N=2)", "BT-LSTM (R=4, N=2) #2"]
    assert [r.config.name for r in res] == [r.name for r in res]
    assert [c.name for c in cfgs] == ["BT-LSTM (R=4, N=2)"] * 2  # the caller's configurations are not renamed
    assert [r.final["steps"] for r in res] == [3, 2]
    assert events[-1]["overall_progress"] == pytest.approx(1.0)
    progress = [e["overall_progress"] for e in events]
    assert progress == sorted(progress)
    text = histories_csv(res)
    lines = text.strip().splitlines()
    assert lines[0].split(",") == list(HISTORY_COLUMNS)
    assert len(lines) == 1 + 3 + 1 + 2 + 1  # steps + one eval per run
    paths = save_results(res, tmp_path, checkpoints=True)
    assert json.loads(Path(paths["summary"]).read_text())[0]["steps"] == 3
    model, cfg, hist = load_checkpoint(paths[res[0].name])
    assert cfg.model == res[0].config.model and len(hist) == 4
    x, _ = data[1].get([0, 1])
    res[0].model.eval()
    model.eval()
    assert torch.allclose(model(x), res[0].model(x))
    save_checkpoint(tmp_path / "x.pt", res[1].model, res[1].config)
    assert load_checkpoint(tmp_path / "x.pt")[1].name == res[1].name
    # the same checkpoint made in memory (the page's download)
    blob = checkpoint_bytes(res[0].model, res[0].config, res[0].history)
    model2, cfg2, hist2 = load_checkpoint(io.BytesIO(blob))
    (tmp_path / "y.pt").write_bytes(blob)
    assert cfg2 == cfg and hist2 == hist and load_checkpoint(tmp_path / "y.pt")[1] == cfg
    model2.eval()
    assert torch.equal(model2(x), model(x))


def test_unique_names():
    a, b = _cfg("bt"), _cfg("tt")
    c = TrainConfig(a.model, name=f"{a.name} #2")
    out = with_unique_names([a, a, c, b])
    names = [o.name for o in out]
    assert len(set(names)) == 4 and names[0] == a.name and names[3] == b.name and names[2] == c.name
    assert [o.name for o in with_unique_names(out)] == names  # already unique: unchanged
    assert a.name == "BT-LSTM (R=4, N=2)" and out[0] is not a


def test_threads_are_left_alone_unless_asked(data):
    """torch's thread count is process-wide: a run changes it only with apply_threads=True (and restores it)."""
    before = torch.get_num_threads()
    want = before + 1
    seen = []
    cb = lambda e: seen.append(torch.get_num_threads()) if e["event"] == "step" else None  # noqa: E731
    train(_cfg("tt", max_steps=2, threads=want), *data, callback=cb)
    assert set(seen) == {before} and torch.get_num_threads() == before
    seen.clear()
    train(_cfg("tt", max_steps=2, threads=want), *data, callback=cb, apply_threads=True)
    assert set(seen) == {want} and torch.get_num_threads() == before


def test_seeding_leaves_the_callers_rng_and_concurrent_runs_reproducible(data):
    torch.manual_seed(123)
    state = torch.get_rng_state()
    alone = [train(_cfg("bt", max_steps=3, seed=s), *data).final["checksum"] for s in (1, 2)]
    assert torch.equal(torch.get_rng_state(), state)  # the runs seeded a forked RNG, not the caller's
    out = {}
    go = threading.Barrier(2)

    def work(seed):
        go.wait()
        out[seed] = train(_cfg("bt", max_steps=3, seed=seed), *data).final["checksum"]

    threads = [threading.Thread(target=work, args=(s,), daemon=True) for s in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert [out[1], out[2]] == alone and alone[0] != alone[1]


def test_configs_and_errors(data):
    cfg = model_config("bt", frame_shape=(3, 32, 32), hidden=256)
    assert cfg.in_modes == (8, 8, 8, 6) and cfg.hidden_modes == (4, 4, 4, 4) and cfg.input_size == 3072
    fitted, notes = fit_model_config("bt", frame_shape=(3, 32, 32), hidden=64, rank=40, blocks=2)
    assert fitted.rank == 4 and notes and "rank" in notes[0]
    assert fit_model_config("tt", frame_shape=(3, 32, 32), hidden=64)[1] == []
    paper, _ = fit_model_config("bt", frame_shape=(3, 120, 160), hidden=256, in_modes=(8, 20, 20, 18),
                                hidden_modes=(4, 4, 4, 4))
    assert paper.in_modes == (8, 20, 20, 18) and paper.input_map_params() == 3_392
    other, _ = fit_model_config("bt", frame_shape=(3, 32, 32), hidden=64, in_modes=(8, 20, 20, 18))
    assert other.in_modes == (8, 8, 8, 6)  # modes that do not multiply to the frame size are ignored
    mem = estimate_memory(model_config("dense", frame_shape=(3, 120, 160), hidden=256), 16, 8)
    assert mem["params"] > 4 * 57_600 * 1024 and mem["training"] > mem["params"]
    with pytest.raises(ValueError, match="optimizer"):
        TrainConfig(cfg, optimizer="lion")
    with pytest.raises(ValueError, match="features"):
        train(TrainConfig(cfg, epochs=1), *data)  # 3x32x32 model on 3x16x16 frames


def _run(args, *, env=None, timeout=240):
    e = dict(os.environ, **(env or {}))
    e["PYTHONPATH"] = str(ROOT) + os.pathsep + e.get("PYTHONPATH", "")
    e.pop("WORLD_SIZE", None)
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=e)


def _json_lines(stdout):
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def test_cli(tmp_path):
    p = _run([sys.executable, "-m", "btcore.train", "--model", "dense,bt", "--cell", "gru", *CLI_SMALL,
              "--out", str(tmp_path), "--checkpoint"])
    assert p.returncode == 0, p.stderr
    lines = _json_lines(p.stdout)
    evals = [ln for ln in lines if ln.get("event") == "eval"]
    assert len(evals) == 4 and {e["run"] for e in evals} == {"GRU", "BT-GRU (R=4, N=2)"}
    summary = lines[-1]["summary"]
    assert [s["status"] for s in summary] == ["done", "done"] and summary[1]["kind"] == "bt"
    assert (tmp_path / "history.csv").exists() and (tmp_path / "summary.json").exists()
    assert len(list(tmp_path.glob("*.pt"))) == 2


def test_cli_help_and_errors(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for flag in ("--model", "--cell", "--frame", "--frames", "--rank", "--blocks", "--tt-ranks", "--optimizer",
                 "--lr", "--batch", "--epochs", "--clip", "--seed", "--device", "--threads", "--data", "--out",
                 "--checkpoint", "torchrun"):
        assert flag in text
    assert main(["--model", "bt", "--rank", "99", *CLI_SMALL]) == 2
    err = capsys.readouterr().err
    assert "rank" in err and "Traceback" not in err
    for flag, value, says in (("--rank", "4,a", "'a' is not a positive integer"), ("--tt-ranks", "0", "at least 1"),
                              ("--in-modes", "8x0x8x6", "at least 1"), ("--hidden-modes", "4x-", "'-' is not")):
        assert main(["--model", "bt", flag, value, *CLI_SMALL]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: {flag}") and says in err and "Traceback" not in err, err


def test_ddp_two_processes_match_single_process(capsys):
    args = ["-m", "btcore.train", "--model", "tt", *CLI_SMALL, "--seed", "1"]
    ddp = _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *args],
               env={"OMP_NUM_THREADS": "1"})
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    assert main(args[2:]) == 0  # the same command in this process
    d, s = _json_lines(ddp.stdout)[-1], _json_lines(capsys.readouterr().out)[-1]
    assert d["world_size"] == 2 and s["world_size"] == 1
    row_d, row_s = d["summary"][0], s["summary"][0]
    a, b = row_d["rank_checksums"]
    assert a == b  # both processes hold the same weights
    assert row_d["steps"] == row_s["steps"] == 8
    for k in ("train_loss", "val_loss"):
        assert row_d[k] == pytest.approx(row_s[k], rel=1e-4, abs=1e-5)
    assert row_d["val_acc"] == pytest.approx(row_s["val_acc"], abs=1 / 32 + 1e-9)
