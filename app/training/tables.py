"""Rows of the Training page's tables: sizes before launch, live metrics per run, the paper's models.

Pure functions of configurations and of the trainer's events (the dicts :func:`btcore.train.train`
reports), so every table can be rebuilt from a saved history.
"""

from __future__ import annotations

import math

from btcore.formats import format_bytes
from btcore.rnn import PAPER_UCF11_ACCURACY, ClassifierConfig
from btcore.shapes import format_ints
from btcore.train import estimate_memory

__all__ = ["size_rows", "too_big", "metrics_rows", "paper_rows", "run_names"]


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def run_names(events: list[dict]) -> list[str]:
    """Run names in the order they appear."""
    return list(dict.fromkeys(e["run"] for e in events if "run" in e))


def size_rows(models: list[ClassifierConfig], batch: int, frames: int, optimizer: str) -> list[dict]:
    """One row per model: modes, parameter counts and the estimated training memory (``_bytes``: the number)."""
    rows = []
    for m in models:
        mem = estimate_memory(m, int(batch), int(frames), optimizer=optimizer)
        rows.append({"model": m.describe(), "input modes": format_ints(m.in_modes),
                     "hidden modes": format_ints(m.hidden_modes), "input-map parameters": m.input_map_params(),
                     "all parameters": m.num_params(), "training memory (est.)": format_bytes(mem["training"]),
                     "_bytes": mem["training"]})
    return rows


def too_big(rows: list[dict], free: int) -> list[str]:
    """The models of :func:`size_rows` whose training may need more than half of ``free`` bytes."""
    return [r["model"] for r in rows if r["_bytes"] > 0.5 * free]


def metrics_rows(events: list[dict]) -> list[dict]:
    """One row per run with its latest metrics and status (for the live table)."""
    rows = []
    for run in run_names(events):
        evs = [e for e in events if e.get("run") == run]
        start = next((e for e in evs if e.get("event") == "start"), {})
        steps = [e for e in evs if e.get("event") == "step"]
        evals = [e for e in evs if e.get("event") == "eval"]
        end = next((e for e in evs if e.get("event") == "end"), None)
        last = steps[-1] if steps else {}
        ev = evals[-1] if evals else {}
        speeds = sorted(e["examples_per_s"] for e in steps[-20:] if _finite(e.get("examples_per_s")))
        rows.append({
            "run": run,
            "status": end["status"] if end else ("running" if steps or start else "waiting"),
            "parameters": start.get("params"),
            "input-map parameters": start.get("input_map_params"),
            "step": last.get("step", 0),
            "of steps": start.get("total_steps"),
            "epoch": round(last.get("epoch", 0.0), 2),
            "train loss": last.get("train_loss"),
            "val loss": ev.get("val_loss"),
            "val accuracy": ev.get("val_acc"),
            "examples/s": speeds[len(speeds) // 2] if speeds else None,
            "ms / step": 1000 * last["step_time"] if _finite(last.get("step_time")) else None,
            "note": end["reason"] if end and end["status"] != "done" else "",
        })
    return rows


def paper_rows(configs: dict[str, ClassifierConfig]) -> list[dict]:
    """Rows comparing the paper's UCF11 architectures from their :class:`ClassifierConfig` s."""
    dense = configs["dense"].input_map_params()
    rows = []
    for kind, cfg in configs.items():
        p = cfg.input_map_params()
        rows.append({"model": cfg.describe(), "input modes": format_ints(cfg.in_modes),
                     "output modes": format_ints(cfg.out_modes), "input-map parameters": p,
                     "compression": dense / p, "all parameters": cfg.num_params(),
                     "paper's UCF11 accuracy": PAPER_UCF11_ACCURACY[kind]})
    return rows
