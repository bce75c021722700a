"""Training is reproducible by construction: the same command and seed train the same weights, bit for bit,
on a quiet machine and beside processes that keep every core busy (nothing in a result depends on time)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from train_helpers import CLI_SMALL

ROOT = Path(__file__).resolve().parent.parent
#: Fields that measure time (and so differ between any two runs); everything else must be identical.
CLOCK_FIELDS = {"elapsed", "run_s", "step_time", "examples_per_s", "eta_s", "overall_eta_s", "estimated_s",
                "total_estimated_s"}


def _without_clock(o):
    if isinstance(o, dict):
        return {k: _without_clock(v) for k, v in o.items() if k not in CLOCK_FIELDS}
    if isinstance(o, list):
        return [_without_clock(v) for v in o]
    return o


def _train_once(out: Path) -> tuple[list, dict]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    env.pop("WORLD_SIZE", None)
    args = [a if a != "64" else "128" for a in CLI_SMALL]  # 128 training clips: 8 steps
    p = subprocess.run([sys.executable, "-m", "btcore.train", "--model", "dense,tt,bt", *args, "--epochs", "1",
                        "--eval-every", "3", "--dropout", "0.1", "--out", str(out), "--checkpoint"],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    history = json.loads((out / "history.json").read_text())
    weights = {f.name: torch.load(f, weights_only=True)["state_dict"] for f in sorted(out.glob("*.pt"))}
    return history, weights


def test_one_epoch_is_bitwise_identical_beside_cpu_burning_processes(tmp_path):
    quiet = _train_once(tmp_path / "quiet")
    burners = [subprocess.Popen([sys.executable, "-c", "while 1: pass"]) for _ in range(2)]
    try:
        loaded = _train_once(tmp_path / "loaded")
    finally:
        for b in burners:
            b.kill()
            b.wait()
    (h1, w1), (h2, w2) = quiet, loaded
    assert len(h1) == 3 and all(len(r["history"]) > 3 for r in h1)
    assert json.dumps(_without_clock(h1)) == json.dumps(_without_clock(h2))  # floats written in full (repr)
    assert w1.keys() == w2.keys() and len(w1) == 3
    for name in w1:
        for k in w1[name]:
            a, b = w1[name][k], w2[name][k]
            assert a.dtype == b.dtype and torch.equal(a.view(torch.uint8), b.view(torch.uint8)), (name, k)
