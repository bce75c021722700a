"""The Format study's figures, drawn from the rows of :meth:`btcore.train.study.StudyResult.to_dict`.

* :func:`front_figure`: the final validation metric vs input-map parameters (log axis), one colour
  per format, the Pareto front as a line, the recommended model marked;
* :func:`speed_figure`: the metric vs measured training examples per second;
* :func:`compress_figure`: "trained in format", "compressed" and "compressed + fine-tuned" on one chart.
"""

from __future__ import annotations

import math

import plotly.graph_objects as go

from app.charts import FORMAT_COLORS, value_axis

__all__ = ["PHASE_NAMES", "format_label", "front_figure", "speed_figure", "compress_figure", "speed_axis"]

#: How the compress chart names each phase of a row.
PHASE_NAMES = {"trained": "trained in format", "compressed": "compressed", "finetuned": "compressed + fine-tuned"}
_PHASE_STYLE = {"trained": ("circle", "solid"), "compressed": ("x", "dot"), "finetuned": ("diamond", "dash")}
_OTHER = "#9467bd"


def format_label(fmt: str) -> str:
    """``"dense"`` -> ``"Dense"``, ``"bt"`` -> ``"BT"`` (the app's format names)."""
    return "Dense" if fmt == "dense" else fmt.upper()


def _finite(rows, key):
    return [r for r in rows if isinstance(r.get(key), (int, float)) and math.isfinite(r[key])]


def _log_ticks(xs) -> list[float]:
    """1-2-5 ticks spanning ``xs``: a log axis over a decade or two would otherwise label one power of ten."""
    lo, hi = min(xs), max(xs)
    out = []
    for k in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1):
        out += [m * 10.0**k for m in (1, 2, 5) if lo / 1.5 <= m * 10.0**k <= hi * 1.5]
    return out


def _nice_ticks(lo: float, hi: float, most: int = 6) -> tuple[list[float], int]:
    """Evenly spaced ticks at a 1-2-5 step covering ``[lo, hi]`` (at most ``most``) and the decimals their
    labels need (so no two labels read alike)."""
    span = max(hi - lo, abs(hi) * 1e-6, 1e-12)
    step = next(m * 10.0**k for k in range(math.floor(math.log10(span / most)), 400)
                for m in (1, 2, 5) if span / (m * 10.0**k) <= most - 1)
    first = math.floor(lo / step) * step
    ticks = [first + i * step for i in range(int(math.ceil((hi - first) / step - 1e-9)) + 1)]
    return ticks, max(0, -math.floor(math.log10(step) + 1e-9))


def speed_axis(xs) -> dict:
    """The speed axis: log with 1-2-5 ticks over a decade or more, else linear at a 1-2-5 step; labels never
    repeat or crowd (explicit tick values, horizontal labels)."""
    xs = [float(x) for x in xs if x is not None and math.isfinite(x) and x > 0]
    if not xs:
        return {"type": "linear"}
    lo, hi = min(xs), max(xs)
    if hi / lo >= 10:
        ticks = _log_ticks(xs)
        if len(ticks) > 8:
            ticks = [t for t in ticks if round(t / 10.0 ** math.floor(math.log10(t) + 1e-9)) == 1]
        return {"type": "log", "tickvals": ticks, "ticktext": [f"{t:,.0f}" for t in ticks], "tickangle": 0}
    pad = (hi - lo) * 0.08 or hi * 0.05
    ticks, dec = _nice_ticks(lo - pad, hi + pad)
    return {"type": "linear", "range": [ticks[0], ticks[-1]], "tickvals": ticks,
            "ticktext": [f"{t:,.{dec}f}" for t in ticks], "tickangle": 0}


def _layout(fig: go.Figure, title: str, x_title: str, y_title: str, xs) -> go.Figure:
    axis = value_axis(xs)
    if axis["type"] == "log" and len(_log_ticks(xs)) <= 10:
        axis = {"type": "log", "tickvals": _log_ticks(xs), "tickformat": ",.0f"}
    fig.update_layout(title=title, height=420, margin=dict(l=10, r=10, t=50, b=10),
                      legend=dict(orientation="h", y=-0.2), xaxis=dict(title=x_title, **axis),
                      yaxis=dict(title=y_title))
    return fig


def _recommended(fig: go.Figure, row: dict, x_key: str) -> None:
    fig.add_trace(go.Scatter(x=[row[x_key]], y=[row["val_metric"]], mode="markers", name=f"recommended: {row['run']}",
                             marker=dict(symbol="star", size=20, color="gold", line=dict(width=1.5, color="black")),
                             hovertemplate="%{x:,} · %{y:.4g}<extra>recommended</extra>"))


def front_figure(rows: list[dict], metric_label: str, phase: str = "trained") -> go.Figure:
    """Metric vs input-map parameters of the rows of ``phase``: a trace per format, the front, the recommendation."""
    rows = [r for r in _finite(rows, "val_metric") if r["phase"] == phase and r["params"] > 0]
    fig = go.Figure()
    for fmt in dict.fromkeys(r["format"] for r in rows):
        mine = [r for r in rows if r["format"] == fmt]
        lab = format_label(fmt)
        fig.add_trace(go.Scatter(x=[r["params"] for r in mine], y=[r["val_metric"] for r in mine], mode="markers",
                                 name=lab, text=[r["run"] for r in mine],
                                 marker=dict(size=11, color=FORMAT_COLORS.get(lab, _OTHER)),
                                 hovertemplate="%{text}<br>%{x:,} parameters · %{y:.4g}<extra></extra>"))
    front = sorted((r for r in rows if r["pareto"]), key=lambda r: r["params"])
    if front:
        fig.add_trace(go.Scatter(x=[r["params"] for r in front], y=[r["val_metric"] for r in front],
                                 mode="lines", name="Pareto front", line=dict(color="black", dash="dash", width=1.5),
                                 line_shape="hv", hoverinfo="skip"))
    rec = next((r for r in rows if r["recommended"]), None)
    if rec is not None:
        _recommended(fig, rec, "params")
    return _layout(fig, f"Final {metric_label} vs input-map parameters", "input-map parameters (log)",
                   metric_label, [r["params"] for r in rows])


def speed_figure(rows: list[dict], metric_label: str) -> go.Figure:
    """Metric vs measured training examples per second (rows with a measured speed), a trace per format."""
    rows = [r for r in _finite(_finite(rows, "val_metric"), "examples_per_s") if r["phase"] != "compressed"]
    fig = go.Figure()
    for fmt in dict.fromkeys(r["format"] for r in rows):
        mine = [r for r in rows if r["format"] == fmt]
        lab = format_label(fmt)
        fig.add_trace(go.Scatter(x=[r["examples_per_s"] for r in mine], y=[r["val_metric"] for r in mine],
                                 mode="markers", name=lab, text=[r["run"] for r in mine],
                                 marker=dict(size=11, color=FORMAT_COLORS.get(lab, _OTHER)),
                                 hovertemplate="%{text}<br>%{x:,.0f} examples/s · %{y:.4g}<extra></extra>"))
    rec = next((r for r in rows if r["recommended"]), None)
    if rec is not None:
        _recommended(fig, rec, "examples_per_s")
    xs = [r["examples_per_s"] for r in rows]
    axis = speed_axis(xs)
    fig = _layout(fig, f"Final {metric_label} vs measured speed", "training examples per second"
                  + (" (log)" if axis["type"] == "log" else ""), metric_label, xs)
    fig.layout.xaxis = dict(title="training examples per second" + (" (log)" if axis["type"] == "log" else ""), **axis)
    return fig


def compress_figure(rows: list[dict], metric_label: str) -> go.Figure:
    """The three phases of the compressible formats on one chart: a series per phase, markers by phase."""
    comp = {r["format"] for r in rows if r["phase"] == "compressed"}
    rows = [r for r in _finite(rows, "val_metric") if r["format"] in comp and r["params"] > 0]
    fig = go.Figure()
    for phase, name in PHASE_NAMES.items():
        mine = sorted((r for r in rows if r["phase"] == phase), key=lambda r: (r["params"], r["format"]))
        if not mine:
            continue
        symbol, dash = _PHASE_STYLE[phase]
        fig.add_trace(go.Scatter(x=[r["params"] for r in mine], y=[r["val_metric"] for r in mine],
                                 mode="lines+markers", name=name, text=[r["run"] for r in mine],
                                 marker=dict(size=11, symbol=symbol,
                                             color=[FORMAT_COLORS.get(format_label(r["format"]), _OTHER)
                                                    for r in mine]),
                                 line=dict(dash=dash, color="#555555"),
                                 hovertemplate="%{text}<br>%{x:,} parameters · %{y:.4g}<extra>" + name + "</extra>"))
    rec = next((r for r in rows if r["recommended"]), None)
    if rec is not None:
        _recommended(fig, rec, "params")
    return _layout(fig, f"Trained in format vs compressed from dense: {metric_label}", "input-map parameters (log)",
                   metric_label, [r["params"] for r in rows])
