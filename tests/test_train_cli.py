"""btcore.train.cli: the command line, its checks of every flag before any work, and 2-process DDP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from btcore.train import main
from train_helpers import CLI_SMALL

ROOT = Path(__file__).resolve().parent.parent


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
    assert "Warning" not in p.stderr, p.stderr  # runpy warns when btcore.train was imported before running it
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


# -- every flag checked before any work --------------------------------------------------------------

BAD_FLAGS = [
    (["--device", "tpu"], "--device", "must be 'auto', 'cpu', 'cuda' or 'cuda:K'"),
    (["--device", "cuda:x"], "--device", "must be 'auto'"),
    (["--device", "cpu:1"], "--device", "must be 'auto'"),
    (["--threads", "0"], "--threads", "at least 1"),
    (["--threads", "-2"], "--threads", "at least 1"),
    (["--threads", "many"], "--threads", "not a whole number"),
    (["--lr", "0"], "--lr", "must be in (0, inf)"),
    (["--lr=-1e-3"], "--lr", "must be in (0, inf)"),
    (["--lr", "nan"], "--lr", "not a finite number"),
    (["--lr", "inf"], "--lr", "not a finite number"),
    (["--lr", "fast"], "--lr", "not a finite number"),
    (["--weight-decay", "-0.1"], "--weight-decay", "must be in [0, inf)"),
    (["--epochs", "0"], "--epochs", "at least 1"),
    (["--epochs", "1.5"], "--epochs", "not a whole number"),
    (["--batch", "0"], "--batch", "at least 1"),
    (["--batch", "-3"], "--batch", "at least 1"),
    (["--max-steps", "0"], "--max-steps", "at least 1"),
    (["--eval-every", "-1"], "--eval-every", "at least 0"),
    (["--clip", "-1"], "--clip", "must be in [0, inf)"),
    (["--seed", "-1"], "--seed", "at least 0"),
    (["--frame", "3x4x4"], "--frame", "at least 8 pixels"),
    (["--frame", "2x16x16"], "--frame", "channels must be 1 (grey) or 3 (RGB)"),
    (["--frame", "big"], "--frame", "e.g. 3x32x32"),
    (["--frame", "3x16x16x2"], "--frame", "need (C, H, W)"),
    (["--frames", "0"], "--frames", "at least 1"),
    (["--frames", "2"], "--frames", "at least 3 frames"),
    (["--classes", "1"], "--classes", "between 2 and 8"),
    (["--classes", "9"], "--classes", "between 2 and 8"),
    (["--train-size", "0"], "--train-size", "at least 1"),
    (["--val-size", "0"], "--val-size", "at least 1"),
    (["--noise", "2"], "--noise", "must be in [0, 1]"),
    (["--hidden", "0"], "--hidden", "at least 1"),
    (["--d", "0"], "--d", "at least 1"),
    (["--d", "1"], "--d", "cannot be split into 1 modes"),
    (["--d", "9"], "--d", "d = 9 is above the supported maximum order 8"),
    (["--blocks", "0"], "--blocks", "at least 1"),
    (["--dropout", "1"], "--dropout", "must be in [0, 1)"),
    (["--rank", "99"], "--rank/--blocks", "Use rank <= 32"),
    (["--rank", "4,a"], "--rank", "'a' is not a positive integer"),
    (["--tt-ranks", "0"], "--tt-ranks", "at least 1"),
    (["--model", "tt", "--tt-ranks", "4,4"], "--tt-ranks", "ranks"),
    (["--in-modes", "8x8x8x5"], "--in-modes", "give modes whose product is 3,072"),
    (["--in-modes", "8x8x48"], "--in-modes", "3 modes but --d 4"),
    (["--in-modes", "8x0x8x6"], "--in-modes", "at least 1"),
    (["--hidden-modes", "4x4x2x3"], "--hidden-modes", "not --hidden 64"),
    (["--hidden-modes", "4x-"], "--hidden-modes", "'-' is not"),
    (["--model", "cnn"], "--model", "must be one of 'dense', 'tt', 'bt'"),
    (["--model", " , "], "--model", "at least one of dense, tt, bt"),
    (["--cell", "rnn"], "--cell", "invalid choice"),
    (["--optimizer", "lion"], "--optimizer", "invalid choice"),
    (["--readout", "max"], "--readout", "invalid choice"),
    (["--epochs"], "--epochs", "expected one argument"),
    (["--checkpoint"], "--checkpoint", "needs --out"),
    (["--overwrite"], "--overwrite", "needs --out"),
    (["--val-fraction", "0.3"], "--val-fraction", "applies to a clip folder"),
    (["--bogus", "1"], "unrecognized arguments", "--bogus"),
]


def _refused(capsys, args, flag, says):
    code = main([*args, "--max-steps", "1"] if "--max-steps" not in args else args)
    out, err = capsys.readouterr()
    assert code == 2, (args, err)
    assert err.startswith("error: ") and err.count("\n") == 1, err  # one line
    assert flag in err and says in err, err
    assert "Traceback" not in err and out == "", (err, out)  # refused before any work: nothing printed
    return err


@pytest.mark.parametrize("args, flag, says", BAD_FLAGS, ids=[" ".join(a) for a, _, _ in BAD_FLAGS])
def test_bad_flags_are_refused_before_any_work(capsys, args, flag, says):
    err = _refused(capsys, args, flag, says)
    assert err.startswith(f"error: {flag}") or flag == "unrecognized arguments", err


def test_cuda_without_a_gpu_is_refused(capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for dev in ("cuda", "cuda:0"):
        _refused(capsys, ["--device", dev], "--device", "CUDA is not available on this machine; use 'cpu' or 'auto'")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    _refused(capsys, ["--device", "cuda:3"], "--device", "this machine has 1 GPU(s)")


def test_bad_out_folders_are_refused_before_training(capsys, tmp_path):
    passwd = tmp_path / "passwd"
    passwd.write_text("root:x:0:0\n")
    for extra in ([], ["--overwrite"]):
        _refused(capsys, ["--out", str(passwd), *extra], "--out", "is an existing file, not a folder")
    assert passwd.read_text() == "root:x:0:0\n"
    _refused(capsys, ["--out", str(passwd / "runs")], "--out", "is a file, so no folder can be made under it")
    done = tmp_path / "done"
    done.mkdir()
    (done / "history.csv").write_text("old")
    _refused(capsys, ["--out", str(done)], "--out", "already holds results (history.csv)")
    assert (done / "history.csv").read_text() == "old"
    if not os.access("/proc/sys", os.W_OK):
        _refused(capsys, ["--out", "/proc/sys/btlab"], "--out", "is not writable by this user")


def test_bad_data_flags_are_refused(capsys, tmp_path):
    _refused(capsys, ["--data", str(tmp_path / "nowhere")], "--data", "is not a folder")
    f = tmp_path / "clip.npy"
    f.write_bytes(b"")
    _refused(capsys, ["--data", str(f)], "--data", "is not a folder")
    for flag, value in (("--classes", "4"), ("--train-size", "8"), ("--val-size", "8"), ("--noise", "0.1")):
        _refused(capsys, ["--data", str(tmp_path), flag, value], flag, "applies to the synthetic task (--data synthetic) only")
    _refused(capsys, ["--data", str(tmp_path), "--val-fraction", "1"], "--val-fraction", "must be in (0, 1)")
    # an empty folder passes the flag checks; the loader's own message then names --data
    _refused(capsys, ["--data", str(tmp_path)], "--data", "is empty: expected one sub-folder per class")


def test_overwrite_replaces_earlier_results(capsys, tmp_path):
    (tmp_path / "summary.json").write_text("old")
    assert main(["--model", "tt", *CLI_SMALL, "--max-steps", "1", "--out", str(tmp_path), "--overwrite"]) == 0
    capsys.readouterr()
    assert json.loads((tmp_path / "summary.json").read_text())[0]["steps"] == 1


def test_importing_btcore_train_has_no_side_effects():
    """``import btcore`` brings btcore.train (the package, not a function); -m runs without runpy's warning."""
    code = ("import sys, torch; n = torch.get_num_threads(); import btcore, btcore.train, types; "
            "assert isinstance(btcore.train, types.ModuleType) and callable(btcore.train.train); "
            "assert torch.get_num_threads() == n; assert 'btcore.train.__main__' not in sys.modules")
    p = _run([sys.executable, "-W", "error", "-c", code])
    assert p.returncode == 0 and p.stdout == "" and p.stderr == "", p.stderr
    p = _run([sys.executable, "-W", "error::RuntimeWarning", "-m", "btcore.train", "--epochs", "0"])
    assert p.returncode == 2 and p.stderr == "error: --epochs: must be at least 1, got 0\n", p.stderr


def test_cli_sweep_prints_a_line_per_run_with_rank_and_blocks(capsys):
    assert main(["--model", "bt,tt", *CLI_SMALL, "--max-steps", "2", "--sweep-ranks", "1,2",
                 "--sweep-blocks", "1,2"]) == 0
    lines = _json_lines(capsys.readouterr().out)
    ends = [ln for ln in lines if ln.get("event") == "end"]
    assert [(e["rank"], e["blocks"]) for e in ends] == [(1, 1), (1, 2), (2, 1), (2, 2), (None, None)]
    rows = lines[-1]["summary"]
    assert [(r["rank"], r["blocks"]) for r in rows][:4] == [(1, 1), (1, 2), (2, 1), (2, 2)]
    assert main(["--model", "tt", *CLI_SMALL, "--sweep-ranks", "2"]) == 2
    assert "add bt to --model" in capsys.readouterr().err
    assert main(["--model", "bt", *CLI_SMALL, "--sweep-ranks", "2,99"]) == 2
    assert "(R=99, N=2) does not fit" in capsys.readouterr().err


def test_cli_races_by_default_and_sequential_opts_out(capsys):
    for extra, first_two in (([], ["LSTM", "TT-LSTM (ranks 4)"]), (["--sequential"], ["LSTM", "LSTM"])):
        assert main(["--model", "dense,tt", *CLI_SMALL, "--steps", *extra]) == 0
        steps = [ln["run"] for ln in _json_lines(capsys.readouterr().out) if ln.get("event") == "step"]
        assert steps[:2] == first_two


def test_cli_trains_tensor_ring_models_at_the_given_ranks(capsys):
    assert main(["--model", "tr", *CLI_SMALL, "--max-steps", "2", "--tr-ranks", "3"]) == 0
    row = _json_lines(capsys.readouterr().out)[-1]["summary"][0]
    assert (row["kind"], row["run"]) == ("tr", "TR-LSTM (ranks 3)")
    _refused(capsys, ["--model", "tr", *CLI_SMALL, "--tr-ranks", "0"], "--tr-ranks", "")
