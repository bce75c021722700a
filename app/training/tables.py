"""Rows of the Training page's tables: sizes before launch, live metrics per run, the paper's models.

Pure functions of configurations and of the trainer's events (the dicts :func:`btcore.train.train`
reports), so every table can be rebuilt from a saved history.
"""

from __future__ import annotations

import math

from btcore.memory import format_bytes
from btcore.classifier import ClassifierConfig
from btcore.rnn import PAPER_UCF11_ACCURACY
from btcore.shapes import format_ints, rank_text
from btcore.tasks import make_task
from btcore.train import estimate_memory

__all__ = ["size_rows", "model_rows", "memory_text", "too_big", "metric_column", "metric_formats", "live_table", "LIVE_HIDDEN", "metrics_rows", "paper_rows", "paper_shown", "ratio_text", "run_names", "sweep_table", "shown", "MISSING",
           "METRIC_FORMATS"]

#: What a table cell shows for a value a run does not have (a TT model's blocks, a loss before the
#: first evaluation): never "None" or "nan".
MISSING = "—"
#: How the live table writes its numbers (``{:...}`` specs; "%" a percentage).
METRIC_FORMATS = {"parameters": ",", "input-map parameters": ",", "of steps": ",", "train loss": ".3f",
                  "val loss": ".3f", "val accuracy": "%", "examples/s": ",.0f", "ms / step": ".1f"}
SWEEP_FORMATS = {"R": "", "N": "", "parameters": ",", "input-map parameters": ",", "val accuracy": "%",
                 "val loss": ".3f", "steps": ",", "seconds": ".1f"}


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def _cell(value, spec: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return MISSING
    if spec == "%":
        return f"{value:.1%}"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return format(value, spec)
    return str(value)


def shown(rows: list[dict], formats: dict[str, str]) -> list[dict]:
    """``rows`` with the columns of ``formats`` written as text: numbers in their format, missing as :data:`MISSING`.

    Text cells, so a column with a missing value never shows "None" or "nan" (Streamlit writes a
    missing number as "None").
    """
    return [{k: (_cell(v, formats[k]) if k in formats else v) for k, v in row.items()} for row in rows]


def _rank(row: dict):
    return None if row.get("rank") is None else rank_text(row["rank"])


def sweep_table(rows: list[dict], metric: str = "val_acc", metric_label: str = "validation accuracy") -> list[dict]:
    """The sweep's rows (:func:`btcore.train.sweep_rows`) as table rows: R and N only where a run has them.

    ``metric``: the task's metric (its column named by :func:`metric_column`).
    """
    column = metric_column(metric_label)
    formats = {k: v for k, v in SWEEP_FORMATS.items() if k != "val accuracy"}
    formats[column] = "%" if metric == "val_acc" else ".4g"
    return shown([{"run": r["run"], "R": _rank(r) if r.get("kind") == "bt" else None,
                   "N": r.get("blocks") if r.get("kind") == "bt" else None, "parameters": r.get("params"),
                   "input-map parameters": r.get("input_map_params"), "status": r.get("status") or MISSING,
                   column: r.get(metric), "val loss": r.get("val_loss"), "steps": r.get("steps"),
                   "seconds": r.get("run_s")} for r in rows], formats)


def run_names(events: list[dict]) -> list[str]:
    """Run names in the order they appear."""
    return list(dict.fromkeys(e["run"] for e in events if "run" in e))


def memory_text(mem: dict[str, int]) -> str:
    """A step's estimated memory as its range (``"1.2 MiB - 3.4 MiB"``), one value when both ends read alike."""
    low, high = format_bytes(mem.get("low", mem["training"])), format_bytes(mem["training"])
    return high if low == high else f"{low} - {high}"


def size_rows(models: list[ClassifierConfig], batch: int, frames: int, optimizer: str) -> list[dict]:
    """One row per model: modes, parameter counts and the estimated training memory (its range; ``_bytes``: the
    high end, as a number)."""
    rows = []
    for m in models:
        mem = estimate_memory(m, int(batch), int(frames), optimizer=optimizer)
        rows.append({"model": m.describe(), "input modes": format_ints(m.in_modes),
                     "hidden modes": format_ints(m.hidden_modes), "input-map parameters": m.input_map_params(),
                     "all parameters": m.num_params(), "training memory (est.)": memory_text(mem),
                     "_bytes": mem["training"]})
    return rows


def model_rows(models, batch: int | None = None, optimizer: str = "adam", task: str | None = None) -> list[dict]:
    """One row per model of a task other than action: its description, parameter counts and, given the ``batch``
    and the ``task``'s name, the estimated training memory of a step (:meth:`btcore.tasks.Task.step_bytes`; its
    range; ``_bytes``: the high end, 0 when unknown).
    """
    rows = []
    for m in models:
        mem = make_task(task).step_bytes(m, int(batch), optimizer) if task and batch else None
        row = {"model": m.describe(), "input-map parameters": int(m.input_map_params()),
               "all parameters": int(m.num_params()) if hasattr(m, "num_params") else None, "_bytes": 0}
        if mem is not None:
            row |= {"training memory (est.)": memory_text(mem), "_bytes": mem["training"]}
        rows.append(row)
    return rows


def too_big(rows: list[dict], free: int) -> list[str]:
    """The models of :func:`size_rows` whose training may need more than half of ``free`` bytes."""
    return [r["model"] for r in rows if r["_bytes"] > 0.5 * free]


#: Columns of :func:`metrics_rows` the live table leaves out, so it fits the page width: all parameters
#: (in the sizes table above), the total steps and the epoch (the progress bar says how far).
LIVE_HIDDEN = ("parameters", "of steps", "epoch")


def live_table(rows: list[dict], formats: dict[str, str]) -> list[dict]:
    """The live table's rows: :func:`shown` without the :data:`LIVE_HIDDEN` columns."""
    return [{k: v for k, v in row.items() if k not in LIVE_HIDDEN} for row in shown(rows, formats)]


def metric_column(metric_label: str) -> str:
    """The live table's column of a task's metric (``"validation accuracy"`` -> ``"val accuracy"``)."""
    return metric_label.replace("validation", "val")


def metric_formats(metric: str, metric_label: str) -> dict[str, str]:
    """:data:`METRIC_FORMATS` for a task's metric: accuracy as a percentage, any other to 4 digits."""
    out = {k: v for k, v in METRIC_FORMATS.items() if k != "val accuracy"}
    out[metric_column(metric_label)] = "%" if metric == "val_acc" else ".4g"
    return out


def metrics_rows(events: list[dict], metric: str = "val_acc", metric_label: str = "validation accuracy") -> list[dict]:
    """One row per run with its latest metrics and status (for the live table); ``metric``: the task's."""
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
            metric_column(metric_label): ev.get(metric),
            "examples/s": speeds[len(speeds) // 2] if speeds else None,
            "ms / step": 1000 * last["step_time"] if _finite(last.get("step_time")) else None,
            "note": _note(end),
        })
    return rows


def _note(end: dict | None) -> str:
    """The table's note of a run: why it ended early, or (short) that a finished run did not show learning."""
    if not end:
        return ""
    if end["status"] != "done":  # where it stopped; the whole reason is in the outcomes above the table
        return end["reason"].split(": ")[0]
    return {"at chance": "finished at chance", "too short": "too short to judge"}.get(end.get("verdict"), "")


def ratio_text(value: float) -> str:
    """A ratio as every page writes it: thousands separated, one decimal, "x" (``17,554.3x``)."""
    return f"{value:,.1f}x"


def paper_shown(rows: list[dict]) -> list[dict]:
    """:func:`paper_rows` as the page shows them: the compression as :func:`ratio_text`."""
    return [{**r, "compression": ratio_text(r["compression"])} for r in rows]


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
