"""btcore.train against a careless caller: the --out folder (really writable, taken by one run, no links
followed), sizes estimated before anything is allocated, bounded flags, non-finite checkpoints."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from btcore.classifier import SequenceClassifier
from btcore.train import (LOCK_FILE, TrainConfig, checkpoint_bytes, claim_out_dir, cpu_count, load_checkpoint, main,
                          save_results, write_new_file)
from btcore.train import io as train_io
from train_helpers import CLI_SMALL, small_config

ROOT = Path(__file__).resolve().parent.parent


def _refused(capsys, args, flag, says):
    t0 = time.perf_counter()
    code = main(args)
    out, err = capsys.readouterr()
    assert code == 2, (args, err)
    assert err.startswith(f"error: {flag}") and err.count("\n") == 1, err  # one line, naming the flag first
    assert says in err and "Traceback" not in err and out == "", (err, out)
    assert time.perf_counter() - t0 < 30  # refused from an estimate, not after allocating
    return err


# -- the --out folder ------------------------------------------------------------------------------------

def test_out_is_proven_writable_by_writing_not_by_os_access(tmp_path, monkeypatch):
    """os.access says yes (as it does for root everywhere); the claim still fails where nothing can be made."""
    monkeypatch.setattr(train_io.os, "access", lambda *a, **k: True)
    if Path("/proc/sys").is_dir():
        with pytest.raises(ValueError, match="--out /proc/sys/btlab_x: cannot make the folder"):
            claim_out_dir("/proc/sys/btlab_x", field="--out")
    # and a folder whose lock (the write probe) cannot be created is refused before any work
    ro = tmp_path / "ro"
    ro.mkdir()
    monkeypatch.setattr(train_io.os, "open", _failing_open(train_io.os.open, LOCK_FILE))
    with pytest.raises(ValueError, match="the folder cannot be written"):
        claim_out_dir(ro, field="--out")
    assert list(ro.iterdir()) == []


def _failing_open(real, name):
    def fake(path, flags, *a):
        if str(path).endswith(name):
            raise PermissionError(13, "Permission denied")
        return real(path, flags, *a)
    return fake


def test_one_run_takes_a_folder_a_second_is_refused(tmp_path):
    first = claim_out_dir(tmp_path / "new" / "run", field="--out")
    assert (tmp_path / "new" / "run" / LOCK_FILE).read_text().strip() == str(os.getpid())
    with pytest.raises(ValueError, match="another run is writing its results there"):
        claim_out_dir(tmp_path / "new" / "run", field="--out")
    first.release()
    assert not (tmp_path / "new" / "run" / LOCK_FILE).exists()
    with claim_out_dir(tmp_path / "new" / "run", field="--out"):  # free again
        pass


def test_two_cli_runs_started_together_on_one_new_folder(tmp_path):
    out = tmp_path / "same"
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    env.pop("WORLD_SIZE", None)
    cmd = [sys.executable, "-m", "btcore.train", "--model", "bt", *CLI_SMALL, "--epochs", "3", "--out", str(out)]
    procs = [subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    try:
        done = [p.communicate(timeout=240) for p in procs]
    finally:
        for p in procs:
            p.kill()
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 2], done
    err = next(e for p, (_, e) in zip(procs, done) if p.returncode == 2)
    assert err.startswith("error: --out") and ("another run is writing" in err or "already holds results" in err)
    assert (out / "summary.json").is_file() and not (out / LOCK_FILE).exists()


def test_results_are_never_written_through_a_link(tmp_path, capsys):
    outside = tmp_path / "outside"
    outside.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    (out / "history.csv").symlink_to(outside / "planted.csv")  # dangling: would create a file outside
    _refused(capsys, ["--model", "bt", *CLI_SMALL, "--max-steps", "1", "--out", str(out), "--overwrite"], "--out",
             "history.csv there is a symbolic link")
    assert not (outside / "planted.csv").exists()
    with pytest.raises(OSError):
        write_new_file(out / "history.csv", b"x")
    assert not (outside / "planted.csv").exists()
    # a link planted after the check (between the claim and the end of training) is refused too
    (out / "history.csv").unlink()
    claim = claim_out_dir(out, field="--out")
    (out / "summary.json").symlink_to(outside / "s.json")
    with pytest.raises(OSError):
        save_results([], out)
    claim.release()
    assert not (outside / "s.json").exists()


# -- sizes, bounds and values that must not reach the allocator or the optimiser ---------------------------

SMALL = list(CLI_SMALL)


def _with(flag, value):
    args = list(SMALL)
    if flag in args:
        args[args.index(flag) + 1] = value
    else:
        args += [flag, value]
    return args + ["--max-steps", "1"]


@pytest.mark.parametrize("flag, value, says", [
    ("--train-size", "1000000000", "between 1 and 10000000"),
    ("--val-size", "1000000000", "between 1 and 10000000"),
    ("--frames", "1000000", "of memory free"),
    ("--frame", "3x4096x4096", "of memory free"),
    ("--hidden", "1000000000", "limit on a layer's parameters"),
    ("--threads", "1000000", f"between 1 and {cpu_count()}"),
    ("--lr", "1e39", "far past any value that trains"),
    ("--weight-decay", "1e39", "far past any value that trains"),
    ("--sweep-blocks", "0", "every entry must be at least 1"),
])
def test_unbounded_sizes_are_refused_naming_the_flag(capsys, flag, value, says):
    _refused(capsys, _with(flag, value), flag, says)


def test_train_config_refuses_an_absurd_learning_rate():
    for field in ("lr", "weight_decay"):
        with pytest.raises(ValueError, match=f"{field} must be"):
            small_config("bt", **{field: 1e39})
    assert small_config("bt", lr=1e3).lr == 1e3  # large but representable: a run may show divergence


def test_load_checkpoint_refuses_non_finite_weights(tmp_path):
    cfg = small_config("bt")
    model = SequenceClassifier(cfg.model)
    for bad in (float("nan"), float("inf")):
        with torch.no_grad():
            p = next(model.parameters())
            keep = p.clone()
            p.view(-1)[3] = bad
        blob = checkpoint_bytes(model, cfg)
        with pytest.raises(ValueError, match=r"holds 1 non-finite value\(s\)"):
            load_checkpoint(io.BytesIO(blob))
        with torch.no_grad():
            p.copy_(keep)
    assert isinstance(load_checkpoint(io.BytesIO(checkpoint_bytes(model, cfg)))[1], TrainConfig)
