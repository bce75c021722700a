"""btcore.train.cli_tasks: ``--task generation`` and ``--task captioning`` on the command line, their flags and files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from btcore.train import main

ROOT = Path(__file__).resolve().parent.parent
COMMON = ["--hidden", "16", "--batch", "20", "--epochs", "1", "--threads", "1", "--rank", "2", "--tt-ranks", "2",
          "--stall-fraction", "0"]
SMALL = {"generation": ["--task", "generation", "--image-size", "8", "--train-size", "100", "--draw-steps", "2",
                        "--latent", "4", *COMMON],
         "captioning": ["--task", "captioning", "--train-size", "60", "--val-size", "12", "--objects", "1",
                        "--colours", "2", "--shapes", "2", *COMMON]}
METRICS = {"generation": ("val_nelbo", "val_kl"), "captioning": ("val_bleu", "val_exact", "val_token_acc")}


def _lines(text):
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.mark.parametrize("task", ["generation", "captioning"])
def test_every_line_names_the_task_and_epochs_carry_its_metrics(capsys, tmp_path, task):
    out = tmp_path / "out"
    assert main(["--model", "dense,tt,bt", *SMALL[task], "--out", str(out), "--checkpoint"]) == 0
    lines = _lines(capsys.readouterr().out)
    assert lines and all(line["task"] == task for line in lines)
    evals = [e for e in lines if e.get("event") == "eval"]
    assert len(evals) == 3 and all(all(k in e for k in METRICS[task]) for e in evals)
    if task == "captioning":
        assert all(0 <= e["val_bleu"] <= 100 and 0 <= e["val_exact"] <= 1 for e in evals)
    names = sorted(p.name for p in out.iterdir())
    pattern = "samples_*.png" if task == "generation" else "captions_*.json"
    files = sorted(out.glob(pattern))
    assert len(files) == 3 and len(list(out.glob("*.pt"))) == 3, names
    if task == "generation":
        from PIL import Image
        with Image.open(files[0]) as im:
            assert im.size == (48, 48) and im.mode == "L"  # a 6 x 6 grid of 8 x 8 samples
    else:
        rows = json.loads(files[0].read_text())
        assert len(rows) == 6 and {"index", "truth", "caption", "correct"} <= set(rows[0])
    header = (out / "history.csv").read_text().splitlines()[0].split(",")
    assert METRICS[task][0] in header
    # a second run into the same folder is refused: the sample files count as earlier results too
    for f in ("history.csv", "history.json", "summary.json"):
        (out / f).unlink()
    assert main(["--model", "bt", *SMALL[task], "--out", str(out)]) == 2
    assert pattern.split("*")[0] in capsys.readouterr().err


@pytest.mark.parametrize("task, flag, value, says", [
    ("generation", "--draw-steps", "0", "at least 1"),
    ("generation", "--latent", "0", "at least 1"),
    ("generation", "--in-modes", "4x4x2x3", "multiply to 96"),
    ("generation", "--image-size", "7", "49"),
    ("generation", "--train-size", "1797", "1796"),
    ("generation", "--val-size", "10", "captioning"),
    ("generation", "--cell", "gru", "LSTM"),
    ("captioning", "--objects", "3", "between 1 and 2"),
    ("captioning", "--noise", "0.5", "0.3"),
    ("captioning", "--in-modes", "8x8x8x8", "3x32x32"),
    ("captioning", "--latent", "4", "generation"),
    ("captioning", "--dropout", "0.2", "dropout"),
    ("action", "--shapes", "2", "captioning"),
    ("generation", "--frames", "4", "action"),
    ("captioning", "--frame", "3x16x16", "action"),
])
def test_bad_task_flags_are_refused_naming_the_flag(capsys, task, flag, value, says):
    args = [a for a in SMALL.get(task, COMMON)] if task != "action" else COMMON
    if flag == "--image-size":  # 49 pixels do not factor into 4 modes above 1 with the default d
        args = [*args, "--in-modes", "4x4x2x2"]
    assert main(["--model", "bt", *args, flag, value]) == 2
    err = capsys.readouterr().err
    want = "--in-modes" if flag == "--image-size" else flag
    assert err.startswith(f"error: {want}") and says in err and "Traceback" not in err, err


def test_a_sweep_for_each_task(capsys):
    for task in ("generation", "captioning"):
        assert main(["--model", "bt", *SMALL[task], "--max-steps", "2", "--sweep-ranks", "1,2"]) == 0
        ends = [e for e in _lines(capsys.readouterr().out) if e.get("event") == "end"]
        assert [(e["rank"], e["blocks"]) for e in ends] == [(1, 2), (2, 2)] and all(e["task"] == task for e in ends)


@pytest.mark.parametrize("task", ["generation", "captioning"])
def test_torchrun_two_gloo_processes(capsys, task):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    env.pop("WORLD_SIZE", None)
    args = ["-m", "btcore.train", "--model", "bt", *SMALL[task]]
    p = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *args],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    last = _lines(p.stdout)[-1]
    row = last["summary"][0]
    assert last["world_size"] == 2 and last["task"] == task
    a, b = row["rank_checksums"]
    assert a == b and row["steps"] > 0 and METRICS[task][0] in row


def _caption_folder(folder: Path, n: int = 16) -> Path:
    """Images of one colour each and a JSON-lines captions file naming it (the real-data layout)."""
    import numpy as np
    from PIL import Image

    folder.mkdir()
    colours = {"red": (220, 30, 30), "blue": (30, 30, 220)}
    with open(folder / "captions.jsonl", "w") as f:
        for i in range(n):
            name, rgb = list(colours.items())[i % 2]
            Image.fromarray(np.full((40, 48, 3), rgb, np.uint8)).save(folder / f"im{i}.png")
            f.write(json.dumps({"file_name": f"im{i}.png", "caption": f"a {name} picture"}) + "\n")
    return folder


def test_captioning_trains_on_a_folder_of_images_and_captions(capsys, tmp_path):
    folder = _caption_folder(tmp_path / "coco_like")
    assert main(["--task", "captioning", "--data", str(folder), "--model", "bt", "--epochs", "1", "--batch", "8",
                 "--hidden", "16", "--threads", "1"]) == 0
    lines = _lines(capsys.readouterr().out)
    row = lines[-1]["summary"][0]
    assert lines[-1]["task"] == "captioning" and 0.0 <= row["val_bleu"] <= 100.0
    (folder / "captions.jsonl").write_text(json.dumps({"file_name": "missing.png", "caption": "a red picture"}) + "\n")
    from btcore.tasks import captioning_task

    captioning_task._load_folder.cache_clear()
    assert main(["--task", "captioning", "--data", str(folder), "--model", "bt", "--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --") and "missing.png" in err and "Traceback" not in err
