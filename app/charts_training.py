"""Plotly figures of the Training page: pure functions of the trainer's events (the tables: app.training.tables).

Events are the dicts :func:`btcore.train.train` reports (``"step"``, ``"eval"``, ``"start"``,
``"end"``); every figure here can be rebuilt from a saved history.
"""

from __future__ import annotations

import math

import plotly.graph_objects as go

from app.charts import FORMAT_COLORS
from app.training.tables import run_names

__all__ = ["run_color", "loss_figure", "accuracy_figure", "EXTRA_COLORS"]

EXTRA_COLORS = ("#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22")
_KIND_LABEL = {"dense": "Dense", "tt": "TT", "bt": "BT"}


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def _kinds(events: list[dict]) -> dict[str, str]:
    out = {}
    for e in events:
        if e.get("event") == "start":
            out[e["run"]] = e.get("config", {}).get("model", {}).get("kind", "")
    return out


def run_color(run: str, kind: str | None, index: int) -> str:
    """Dense grey, TT blue, BT red (as on the Shapes page); other runs get extra colours."""
    label = _KIND_LABEL.get(kind or "")
    if label and index < 3:
        return FORMAT_COLORS[label]
    return EXTRA_COLORS[index % len(EXTRA_COLORS)]


def _colors(events):
    kinds = _kinds(events)
    seen_kinds: dict[str, int] = {}
    colors = {}
    for i, run in enumerate(run_names(events)):
        k = kinds.get(run)
        n = seen_kinds.get(k, 0)
        seen_kinds[k] = n + 1
        colors[run] = run_color(run, k, 0 if n == 0 else 3 + i)
    return colors


def _series(events, run, event, key):
    pts = [(e["step"], e[key]) for e in events if e.get("run") == run and e.get("event") == event and _finite(e.get(key))]
    return [p[0] for p in pts], [p[1] for p in pts]


def _figure(events: list[dict], train_key: str, val_key: str, title: str, y_title: str, *, smooth_steps: bool) -> go.Figure:
    fig = go.Figure()
    colors = _colors(events)
    for run in run_names(events):
        c = colors[run]
        if smooth_steps:
            x, y = _series(events, run, "step", train_key)
            if x:
                fig.add_scatter(x=x, y=y, mode="lines", name=f"{run} train", legendgroup=run, opacity=0.45,
                                line={"color": c, "width": 1},
                                hovertemplate=f"{run}<br>step %{{x}}<br>train {y_title} %{{y:.3f}}<extra></extra>")
        else:
            x, y = _series(events, run, "eval", train_key)
            if x:
                fig.add_scatter(x=x, y=y, mode="lines+markers", name=f"{run} train", legendgroup=run,
                                line={"color": c, "dash": "dot"}, marker={"size": 5},
                                hovertemplate=f"{run}<br>step %{{x}}<br>train {y_title} %{{y:.3f}}<extra></extra>")
        x, y = _series(events, run, "eval", val_key)
        if x:
            fig.add_scatter(x=x, y=y, mode="lines+markers", name=f"{run} validation", legendgroup=run,
                            line={"color": c, "width": 3}, marker={"size": 7},
                            hovertemplate=f"{run}<br>step %{{x}}<br>validation {y_title} %{{y:.3f}}<extra></extra>")
    fig.update_layout(title=title, xaxis_title="step", yaxis_title=y_title, height=380,
                      legend={"orientation": "h", "y": -0.25}, margin={"t": 40, "b": 10},
                      uirevision="training")  # keep zoom while the chart updates
    return fig


def loss_figure(events: list[dict]) -> go.Figure:
    """Training loss per step (thin) and validation loss per evaluation (thick), every run on one chart."""
    return _figure(events, "train_loss", "val_loss", "Loss", "cross-entropy", smooth_steps=True)


def accuracy_figure(events: list[dict], chance: float | None = None) -> go.Figure:
    """Training accuracy (epoch means, dotted) and validation accuracy per evaluation, all runs."""
    fig = _figure(events, "train_acc", "val_acc", "Accuracy", "accuracy", smooth_steps=False)
    if chance:
        fig.add_hline(y=chance, line={"color": "#999", "dash": "dash"}, annotation_text="chance",
                      annotation_position="bottom right")
    fig.update_yaxes(range=[0, 1.02])
    return fig
