"""Plotly figures of the Training page: pure functions of the trainer's events (the tables: app.training.tables).

Events are the dicts :func:`btcore.train.train` reports (``"step"``, ``"eval"``, ``"start"``,
``"end"``); every figure here can be rebuilt from a saved history.

Each figure builder is wrapped in :func:`app.charts.shared_figure`: built once per arguments for the whole
server, one figure object shared by the sessions following the same run (read-only to callers).
"""

from __future__ import annotations

import math

import plotly.graph_objects as go

from app.charts import FORMAT_COLORS, shared_figure
from app.training.tables import run_names

__all__ = ["run_color", "loss_figure", "accuracy_figure", "metric_figure", "diverged_points", "sweep_figure", "sweep_heatmap", "EXTRA_COLORS", "X_AXES"]

#: The x axes of the live charts: event field -> axis title.
X_AXES = {"step": "step", "examples": "examples seen", "run_s": "seconds of the model's own training"}

#: The x axes that count whole things (their ticks are whole numbers).
WHOLE_AXES = ("step", "examples")

EXTRA_COLORS = ("#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22")
_KIND_LABEL = {"dense": "Dense", "tt": "TT", "bt": "BT", "tr": "TR"}
#: The trainer's checks (``stop_check``) that stop a run at a loss, drawn as its diverging point.
_LOSS_CHECKS = ("loss", "gradient", "weights", "validation")


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


def _series(events, run, event, key, x_key="step"):
    pts = [(e.get(x_key, e["step"]), e[key]) for e in events
           if e.get("run") == run and e.get("event") == event and _finite(e.get(key))]
    return [p[0] for p in pts], [p[1] for p in pts]


def _figure(events: list[dict], train_key: str, val_key: str, title: str, y_title: str, *, smooth_steps: bool,
            x: str = "step") -> go.Figure:
    if x not in X_AXES:
        raise ValueError(f"x must be one of {', '.join(X_AXES)}, got {x!r}")
    xt, xk = X_AXES[x], x
    fig = go.Figure()
    colors = _colors(events)
    for run in run_names(events):
        c = colors[run]
        if smooth_steps:
            x, y = _series(events, run, "step", train_key, xk)
            if x:  # a run that stopped after a step or two still shows its points
                fig.add_scatter(x=x, y=y, mode="lines" if len(x) > 2 else "lines+markers", name=f"{run} train",
                                legendgroup=run, opacity=0.45, line={"color": c, "width": 1}, marker={"size": 6},
                                hovertemplate=f"{run}<br>{xt} %{{x:,.4~g}}<br>train {y_title} %{{y:.3f}}<extra></extra>")
        else:
            x, y = _series(events, run, "eval", train_key, xk)
            if x:
                fig.add_scatter(x=x, y=y, mode="lines+markers", name=f"{run} train", legendgroup=run,
                                line={"color": c, "dash": "dot"}, marker={"size": 5},
                                hovertemplate=f"{run}<br>{xt} %{{x:,.4~g}}<br>train {y_title} %{{y:.3f}}<extra></extra>")
        x, y = _series(events, run, "eval", val_key, xk)
        if x:
            fig.add_scatter(x=x, y=y, mode="lines+markers", name=f"{run} validation", legendgroup=run,
                            line={"color": c, "width": 3}, marker={"size": 7},
                            hovertemplate=f"{run}<br>{xt} %{{x:,.4~g}}<br>validation {y_title} %{{y:.3f}}<extra></extra>")
    fig.update_layout(title=title, xaxis_title=xt, yaxis_title=y_title, height=380,
                      legend={"orientation": "h", "y": -0.25}, margin={"t": 40, "b": 10},
                      uirevision="training")  # keep zoom while the chart updates
    if xk in WHOLE_AXES:  # steps and examples are counts: never a tick at 1.5 steps
        top = max((e[xk] for e in events if e.get("event") in ("step", "eval") and _finite(e.get(xk))), default=0)
        fig.update_xaxes(tickformat=",d", **({"tick0": 0, "dtick": 1} if top <= 10 else {}))
    return fig


def diverged_points(events: list[dict]) -> list[dict]:
    """Where each diverged run stopped: ``{"run", "step", "loss", "examples", "run_s"}`` (loss None: non-finite).

    From the ``end`` event's numbers (``stop_step``, ``stop_loss``, ``stop_check``, see
    :class:`btcore.train.TrainResult`): the step that diverged is never reported as a step. A run
    stopped by its inputs (no loss computed) or by another process has no point. ``examples`` and
    ``run_s`` place the point on the other x axes (the batch times the step; the run's own seconds at its end).
    """
    starts = {e["run"]: e for e in events if e.get("event") == "start"}
    out = []
    for e in events:
        if e.get("event") != "end" or e.get("status") != "diverged" or e.get("stop_step") is None \
                or e.get("stop_check") not in _LOSS_CHECKS:
            continue
        step, loss = int(e["stop_step"]), e.get("stop_loss")  # None in JSON: non-finite
        batch = starts.get(e["run"], {}).get("batch")
        out.append({"run": e["run"], "step": step, "loss": loss if _finite(loss) else None,
                    "examples": step * batch if batch else None, "run_s": e.get("run_s")})
    return out


@shared_figure
def loss_figure(events: list[dict], x: str = "step", y_title: str = "cross-entropy") -> go.Figure:
    """Training loss per step (thin) and validation loss per evaluation (thick), every run on one chart.

    ``x``: one of :data:`X_AXES` (steps, examples seen, the model's own training seconds). A diverged
    run's stopping point is drawn as an ``x`` marker at the loss it stopped at (non-finite: at the top,
    labelled), joined to its last step, so the chart shows the loss the message names.
    """
    fig = _figure(events, "train_loss", "val_loss", "Loss", y_title, smooth_steps=True, x=x)
    colors = _colors(events)
    for p in diverged_points(events):
        px = p.get(x)
        if px is None:
            continue
        lx, ly = _series(events, p["run"], "step", "train_loss", x)
        finite = p["loss"] is not None
        y = p["loss"] if finite else max([*ly, 1.0]) * 10
        text = f"diverged: {p['loss']:.3g}" if finite else "diverged: non-finite"
        head = 1 if lx else 0  # the run's last reported step, joined to where it stopped
        fig.add_scatter(x=[*lx[-1:], px], y=[*ly[-1:], y], mode="lines+markers+text", legendgroup=p["run"],
                        name=f"{p['run']} diverged", line={"color": colors.get(p["run"], "#000"), "dash": "dot"},
                        marker={"symbol": ["circle"] * head + ["x"], "size": [6] * head + [14]},
                        text=[""] * head + [text], textposition="top left",
                        hovertemplate=f"{p['run']}<br>step %{{x}}<br>loss %{{y:.3g}}<extra></extra>")
    if diverged_points(events):
        fig.update_yaxes(type="log")  # a diverging loss is orders of magnitude above the others
    return fig


def accuracy_figure(events: list[dict], chance: float | None = None, x: str = "step") -> go.Figure:
    """Training accuracy (epoch means, dotted) and validation accuracy per evaluation, all runs."""
    return metric_figure(events, "val_acc", "validation accuracy", chance=chance, x=x)


@shared_figure
def metric_figure(events: list[dict], metric: str, label: str, *, chance: float | None = None,
                  higher_is_better: bool = True, x: str = "step") -> go.Figure:
    """A task's validation metric per evaluation (and its training counterpart, dotted, where reported).

    ``metric``: the event key (``"val_acc"``, ``"val_nelbo"``, ``"val_bleu"``); ``label`` names it;
    the title says which way is better. Accuracy keeps its [0, 1] axis and the chance line.
    """
    train_key = "train_" + metric[4:] if metric.startswith("val_") else metric
    arrow = "higher is better" if higher_is_better else "lower is better"
    title = "Accuracy" if metric == "val_acc" else f"{label[:1].upper()}{label[1:]} ({arrow})"
    fig = _figure(events, train_key, metric, title, label.replace("validation ", ""), smooth_steps=False, x=x)
    if chance is not None and math.isfinite(chance):
        fig.add_hline(y=chance, line={"color": "#999", "dash": "dash"}, annotation_text="chance",
                      annotation_position="bottom right")
    if metric == "val_acc":
        fig.update_yaxes(range=[0, 1.02])
    return fig


def _fmt(metric: str) -> tuple[str, str]:
    """``(Python format, plotly d3 format)`` of a metric's values: accuracy as a percentage, others to 4 digits."""
    return (".1%", ".1%") if metric == "val_acc" else (".4g", ".4g")


@shared_figure
def sweep_figure(rows: list[dict], chance: float | None = None, metric: str = "val_acc",
                 label: str = "validation accuracy") -> go.Figure:
    """Final ``metric`` (the task's) against input-map parameters: one BT marker per (R, N), TT and dense as lines."""
    py, d3 = _fmt(metric)
    fig = go.Figure()
    bt = [r for r in rows if r.get("kind") == "bt" and _finite(r.get(metric))]
    if bt:
        fig.add_scatter(x=[r["input_map_params"] for r in bt], y=[r[metric] for r in bt], mode="markers+text",
                        name="BT (R, N)", marker={"color": FORMAT_COLORS["BT"], "size": 11},
                        text=[f"R={r['rank']}, N={r['blocks']}" for r in bt], textposition="top center",
                        hovertemplate=f"%{{text}}<br>%{{x:,}} input-map parameters<br>{label} %{{y:{d3}}}<extra></extra>")
    # TT's label above its line, dense's below: equal values (both at chance) stay readable
    for kind, name, where in (("tt", "TT", "top right"), ("dense", "Dense", "bottom right")):
        for r in rows:
            if r.get("kind") == kind and _finite(r.get(metric)):
                fig.add_hline(y=r[metric], line={"color": FORMAT_COLORS[name], "dash": "dash"},
                              annotation_text=f"{name} ({r['input_map_params']:,} params): {format(r[metric], py)}",
                              annotation_position=where)
    if chance:
        fig.add_hline(y=chance, line={"color": "#999", "dash": "dot"}, annotation_text="chance",
                      annotation_position="bottom left")
    fig.update_layout(title=f"Final {label} vs input-map parameters", xaxis_title="input-map parameters",
                      yaxis_title=label, height=400, margin={"t": 40, "b": 10}, xaxis_type="log")
    if metric == "val_acc":
        fig.update_yaxes(range=[0, 1.02])
    return fig


@shared_figure
def sweep_heatmap(rows: list[dict], metric: str = "val_acc", label: str = "validation accuracy") -> go.Figure:
    """Final ``metric`` of each BT (R, N) as an R x N heatmap (category axes; empty: not trained)."""
    py, d3 = _fmt(metric)
    bt = [r for r in rows if r.get("kind") == "bt"]
    ranks = sorted({r["rank"] for r in bt if isinstance(r.get("rank"), int)})
    blocks = sorted({r["blocks"] for r in bt if r.get("blocks") is not None})
    value = {(r["rank"], r["blocks"]): r.get(metric) for r in bt}
    z = [[value.get((rk, n)) if _finite(value.get((rk, n))) else None for n in blocks] for rk in ranks]
    text = [["" if v is None else format(v, ".0%" if metric == "val_acc" else ".4g") for v in row] for row in z]
    scale = {"zmin": 0, "zmax": 1} if metric == "val_acc" else {}
    short = label.replace("validation", "val")
    fig = go.Figure(go.Heatmap(z=z, x=[f"N={n}" for n in blocks], y=[f"R={rk}" for rk in ranks], text=text,
                               texttemplate="%{text}", colorscale="Reds", colorbar={"title": short},
                               hovertemplate=f"%{{y}}, %{{x}}<br>{label} %{{z:{d3}}}<extra></extra>", **scale))
    fig.update_layout(title=f"BT sensitivity: {label} by rank R and blocks N", height=400,
                      margin={"t": 40, "b": 10}, xaxis={"type": "category"}, yaxis={"type": "category"})
    return fig
