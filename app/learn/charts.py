"""Plotly figure builders for the Learn page: pure functions of specs and rows, unit-tested without a UI.

Tensor-network diagrams are drawn as plotly figures: bonds and legs are line shapes, labels are
annotations, and the tensors are one scatter trace named ``"tensors"`` whose hover text gives each
tensor's shape and parameter count. A leg stands for a whole mode, so a 57,600-row matrix is still
one labelled leg, never 57,600 lines.

Each figure builder is wrapped in :func:`app.charts.shared_figure`: built once per arguments for the whole
server, one figure object shared by the sessions that show it (read-only to callers).
"""

from __future__ import annotations

import math

import plotly.colors
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from btcore.shapes import prod

from app.charts import FORMAT_COLORS, shared_figure, value_axis
from .content import TensorizationGrid, shape_text, sub

_SUPERSCRIPT = str.maketrans("0123456789()", "⁰¹²³⁴⁵⁶⁷⁸⁹⁽⁾")


def _sup(text: str) -> str:
    """``text`` in Unicode superscripts, at the label's full font size (an SVG ``<sup>`` is drawn at ~70%)."""
    return text.translate(_SUPERSCRIPT)

__all__ = [
    "NODE_TRACE", "PATH_TRACE", "dense_diagram", "tt_diagram", "tr_diagram", "ring_growth_chart", "bt_diagram", "tensorization_figure", "step_bars",
    "format_cost_stack", "growth_chart", "budget_chart", "node_names", "diagram_labels", "contraction_tree",
]

NODE_TRACE = "tensors"
PATH_TRACE = "path"
_LEG = "#1f77b4"      # row (input) legs
_LEG_OUT = "#2ca02c"  # column (output) legs
_BOND = "#555555"
#: Smallest label of a diagram (px): legible on a projector at 1,400 px wide.
LABEL_PX = 12
_STYLE = {
    "dense": {"symbol": "square", "size": 46, "color": "#bdbdbd", "line": "#636363"},
    "tt": {"symbol": "square", "size": 38, "color": "#9ecae1", "line": "#08519c"},
    "tr": {"symbol": "square", "size": 38, "color": "#dadaeb", "line": "#54278f"},
    "factor": {"symbol": "square", "size": 32, "color": "#fdd0a2", "line": "#d94801"},
    "core": {"symbol": "circle", "size": 40, "color": "#d62728", "line": "#67000d"},
}


def _fmt(n: int) -> str:
    return f"{int(n):,}"


class _Net:
    """Accumulates nodes, bonds and legs, then renders one figure."""

    def __init__(self):
        self.nodes: list[dict] = []
        self.shapes: list[dict] = []
        self.notes: list[dict] = []

    def node(self, x, y, label, kind, shape, what):
        self.nodes.append({"x": x, "y": y, "label": label, "kind": kind, "hover": (
            f"<b>{label}</b>: {what}<br>shape {shape_text(shape)}<br>{_fmt(prod(shape))} parameters")})

    def line(self, x0, y0, x1, y1, color, width=2.5, dash=None):
        self.shapes.append({"type": "line", "x0": x0, "y0": y0, "x1": x1, "y1": y1, "layer": "below",
                            "line": {"color": color, "width": width, **({"dash": dash} if dash else {})}})

    def text(self, x, y, text, size=LABEL_PX, color="#333", **kw):
        size = max(size, LABEL_PX)
        self.notes.append({"x": x, "y": y, "text": text, "showarrow": False, "font": {"size": size, "color": color},
                           "bgcolor": "rgba(255,255,255,0.85)", **kw})

    def leg(self, x, y, angle_deg, length, label, color, size=LABEL_PX):
        a = math.radians(angle_deg)
        x1, y1 = x + length * math.cos(a), y + length * math.sin(a)
        self.line(x, y, x1, y1, color)
        self.text(x + (length + 0.22) * math.cos(a), y + (length + 0.22) * math.sin(a), label, size, color)

    def bond(self, x0, y0, x1, y1, label, size=LABEL_PX):
        self.line(x0, y0, x1, y1, _BOND, 3)
        self.text((x0 + x1) / 2, (y0 + y1) / 2, label, size, _BOND)

    def figure(self, title: str, height: int) -> go.Figure:
        fig = go.Figure()
        st = [_STYLE[n["kind"]] for n in self.nodes]
        fig.add_scatter(
            x=[n["x"] for n in self.nodes], y=[n["y"] for n in self.nodes], mode="markers+text", name=NODE_TRACE,
            text=[n["label"] for n in self.nodes], hovertext=[n["hover"] for n in self.nodes],
            hovertemplate="%{hovertext}<extra></extra>", textfont={"size": 13, "color": "black"}, opacity=1.0,
            marker={"opacity": 1.0, "symbol": [s["symbol"] for s in st], "size": [s["size"] for s in st],
                    "color": [s["color"] for s in st], "line": {"color": [s["line"] for s in st], "width": 2}},
            showlegend=False,
        )
        xs = [n["x"] for n in self.nodes] + [a["x"] for a in self.notes]
        ys = [n["y"] for n in self.nodes] + [a["y"] for a in self.notes]
        pad = 0.6
        fig.update_layout(
            title={"text": title, "font": {"size": 15}}, height=height, shapes=self.shapes, annotations=self.notes,
            margin={"l": 10, "r": 10, "t": 40, "b": 10}, plot_bgcolor="white", dragmode=False,
            xaxis={"visible": False, "range": [min(xs) - pad, max(xs) + pad], "fixedrange": True},
            yaxis={"visible": False, "range": [min(ys) - pad, max(ys) + pad], "fixedrange": True,
                   "scaleanchor": "x", "scaleratio": 1},
        )
        return fig


def node_names(fig: go.Figure, trace: str = NODE_TRACE) -> list[str]:
    """The tensor labels of a diagram (the ``"tensors"`` trace's text; ``"path"`` for a contraction tree)."""
    return [t for tr in fig.data if tr.name == trace for t in tr.text]


def diagram_labels(fig: go.Figure) -> list[str]:
    """All annotation texts of a diagram (leg and bond labels)."""
    return [a.text for a in fig.layout.annotations]


def _modes(modes) -> str:
    return "×".join(map(str, modes))


@shared_figure
def dense_diagram(spec) -> go.Figure:
    """Dense W: one node, a row leg of size I and a column leg of size J."""
    net = _Net()
    net.node(0, 0, "W", "dense", (spec.in_size, spec.out_size), "the dense matrix")
    i_txt = f"i: I = {_fmt(spec.in_size)}" + (f"<br>({_modes(spec.in_modes)})" if spec.d > 1 else "")
    j_txt = f"j: J = {_fmt(spec.out_size)}" + (f"<br>({_modes(spec.out_modes)})" if spec.d > 1 else "")
    net.leg(0, 0, 180, 1.4, i_txt, _LEG)
    net.leg(0, 0, 0, 1.4, j_txt, _LEG_OUT)
    fig = net.figure(f"Dense: W is {_fmt(spec.in_size)} × {_fmt(spec.out_size)}, {_fmt(spec.params)} parameters", 220)
    fig.update_xaxes(range=[-3.0, 3.0])
    return fig


@shared_figure
def tt_diagram(spec) -> go.Figure:
    """TT-matrix: a chain of d cores G_k (r_{k-1}, I_k, J_k, r_k) joined by rank-labelled bonds."""
    net = _Net()
    gap = 1.8
    for k in range(spec.d):
        x = k * gap
        if k:
            net.bond(x - gap, 0, x, 0, f"r{sub(k)} = {spec.ranks[k]}")
        net.leg(x, 0, 90, 0.9, f"i{sub(k + 1)} = {_fmt(spec.in_modes[k])}", _LEG)
        net.leg(x, 0, -90, 0.9, f"j{sub(k + 1)} = {_fmt(spec.out_modes[k])}", _LEG_OUT)
    for k, shape in enumerate(spec.core_shapes()):
        net.node(k * gap, 0, f"G{sub(k + 1)}", "tt", shape, f"TT core {k + 1}")
    rk = "-".join(map(str, spec.ranks))
    cores = f"{spec.d} core{'s' if spec.d != 1 else ''}"
    return net.figure(f"Tensor-Train: {cores}, ranks {rk}, {_fmt(spec.params)} parameters", 300)


@shared_figure
def tr_diagram(spec) -> go.Figure:
    """Tensor Ring: d cores G_k (r_{k-1}, I_k, J_k, r_k) around a circle, d rank-labelled bonds, the last
    (r_d = r_0) closing the ring.

    Legs point outwards, the circle grows with d to keep neighbouring cores, legs and bond labels apart
    (legible up to d = 8 at 12 px); the closing bond is dashed.
    """
    net = _Net()
    d = spec.d
    radius = 0.0 if d == 1 else max(1.5, 0.45 * d)
    leg_len = 0.9
    half = 40.0  # a core's i and j legs at +-half from its outward direction
    start = 180.0 if d == 2 else 90.0  # two cores side by side, their two bonds above and below
    angles = [start - 360.0 * k / d for k in range(d)]
    pos = [(radius * math.cos(math.radians(a)), radius * math.sin(math.radians(a))) for a in angles]
    for k in range(d):
        label = f"r{sub(k + 1)} = {spec.ranks[k]}" + (f" = r{sub(0)}" if k == d - 1 else "")
        if d == 1:  # one core: its closing bond is a loop above it
            net.shapes.append({"type": "circle", "x0": -0.45, "x1": 0.45, "y0": 0.0, "y1": 0.9, "layer": "below",
                               "line": {"color": _BOND, "width": 3, "dash": "dash"}})
            net.text(0, 1.15, label, LABEL_PX, _BOND)
            continue
        (x0, y0), (x1, y1) = pos[k], pos[(k + 1) % d]
        mid = math.radians(angles[k] - 180.0 / d)  # the arc's midpoint on the circle
        mx, my = radius * math.cos(mid), radius * math.sin(mid)
        cx, cy = 2 * mx - (x0 + x1) / 2, 2 * my - (y0 + y1) / 2  # a quadratic curve through (mx, my)
        net.shapes.append({"type": "path", "path": f"M {x0:.4f},{y0:.4f} Q {cx:.4f},{cy:.4f} {x1:.4f},{y1:.4f}",
                           "layer": "below", "line": {"color": _BOND, "width": 3,
                                                      **({"dash": "dash"} if k == d - 1 else {})}})
        inner = radius - 0.4  # the label just inside its bond, clear of the legs outside
        net.text(inner * math.cos(mid), inner * math.sin(mid), label, LABEL_PX, _BOND)
    for k in range(d):
        x, y = pos[k]
        out = angles[k]
        net.leg(x, y, out + half, leg_len, f"i{sub(k + 1)} = {_fmt(spec.in_modes[k])}", _LEG)
        net.leg(x, y, out - half, leg_len, f"j{sub(k + 1)} = {_fmt(spec.out_modes[k])}", _LEG_OUT)
    for k, shape in enumerate(spec.core_shapes()):
        net.node(*pos[k], f"G{sub(k + 1)}", "tr", shape, f"TR core {k + 1}: bonds r{sub(k)}, r{sub(k + 1)}"
                 if k else f"TR core 1: bonds r{sub(d)} (= r{sub(0)}, the ring's closing bond), r{sub(1)}")
    rk = "-".join(map(str, spec.ranks))
    cores = f"{d} core{'s' if d != 1 else ''}"
    return net.figure(f"Tensor Ring: {cores} in a ring, bond ranks {rk} (the dashed bond closes it), "
                      f"{_fmt(spec.params)} parameters", round(max(340, 110 * radius + 300)))


def _shown_blocks(n: int, max_blocks: int) -> list[int | None]:
    """Block numbers to draw (1-based); ``None`` marks the elided ones."""
    if n <= max_blocks:
        return list(range(1, n + 1))
    return list(range(1, max_blocks)) + [None, n]


@shared_figure
def bt_diagram(spec, max_blocks: int = 4, per_row: int | None = None) -> go.Figure:
    """BT: N Tucker blocks summed, each a core C_n (R_1..R_d) joined to d factors A_n^(k) (I_k, J_k, R_k).

    With more than ``max_blocks`` blocks the middle ones are elided ("⋯ k more"); every drawn block
    has d + 1 nodes. Blocks wrap onto rows of ``per_row`` (default: 3 for d <= 3, else 2), so that
    each block keeps a legible size at any N and d (up to 8 and 6 in the app).
    """
    net = _Net()
    d = spec.d
    radius = 1.25 if d <= 4 else 1.7
    leg_len = 0.75 if d <= 4 else 0.6
    width = 2 * (radius + leg_len) + 1.8
    row_height = 2 * (radius + leg_len) + 1.2
    font = LABEL_PX
    per_row = per_row or (3 if d <= 3 else 2)
    shown = _shown_blocks(spec.blocks, max_blocks)
    slot = 0
    for pos, n in enumerate(shown):
        x, y = (slot % per_row) * width, -(slot // per_row) * row_height
        if pos:  # the "+" sits left of every block after the first, also at the start of a wrapped row
            net.text(x - width / 2, y, "+", 26, "#333")
        if n is None:
            net.text(x, y, f"⋯<br>{spec.blocks - len(shown) + 1} more", 14, "#333")  # all but the drawn ones
            slot += 1
            continue
        for k in range(d):
            ang = 90 + 360 * k / d + (180 / d if d > 2 else 0)
            a = math.radians(ang)
            fx, fy = x + radius * math.cos(a), y + radius * math.sin(a)
            # the rank label sits nearer the factor than the core, so it never covers the core's name
            net.line(x, y, fx, fy, _BOND, 3)
            net.text(x + 0.62 * radius * math.cos(a), y + 0.62 * radius * math.sin(a), f"R{sub(k + 1)} = {spec.ranks[k]}",
                     font, _BOND)
            net.leg(fx, fy, ang + 30, leg_len, f"i{sub(k + 1)} = {_fmt(spec.in_modes[k])}", _LEG, font)
            net.leg(fx, fy, ang - 30, leg_len, f"j{sub(k + 1)} = {_fmt(spec.out_modes[k])}", _LEG_OUT, font)
            net.node(fx, fy, f"A{sub(n)}{_sup(f'({k + 1})')}", "factor",
                     (spec.in_modes[k], spec.out_modes[k], spec.ranks[k]), f"block {n}, factor {k + 1}")
        net.node(x, y, f"C{sub(n)}", "core", spec.ranks, f"core of block {n} (R^d entries)")
        slot += 1
    rows = (slot + per_row - 1) // per_row
    b = bt_breakdown_text(spec)
    what = f"{spec.blocks} Tucker blocks summed" if spec.blocks > 1 else "N = 1, a single Tucker block"
    title = f"Block-Term: {what}, {b}"
    return net.figure(title, (360 if d <= 4 else 420) * rows + 40)


def bt_breakdown_text(spec) -> str:
    core = prod(spec.ranks)
    return (f"{_fmt(spec.params)} parameters (core {'×'.join(map(str, spec.ranks))} = {_fmt(core)} "
            f"entries per block)")


def _palette(n: int) -> list[str]:
    """``n`` distinct colours (plotly's Light24, then Alphabet, cycled beyond 50)."""
    base = plotly.colors.qualitative.Light24 + plotly.colors.qualitative.Alphabet
    return [base[c % len(base)] for c in range(n)]


def _discrete_scale(colors: list[str]) -> list[list]:
    n = len(colors)
    if n == 1:
        return [[0, colors[0]], [1, colors[0]]]
    scale = []
    for c, col in enumerate(colors):
        scale += [[c / n, col], [(c + 1) / n, col]]
    return scale


@shared_figure
def tensorization_figure(grid: TensorizationGrid, show_text: bool | None = None) -> go.Figure:
    """Two heatmaps: W (I x J) and its interleaved tensor unfolded as (i₁, j₁) x (i₂, j₂, ...).

    Colour = the pair (i₁, j₁) an entry belongs to; label = its position among the remaining pairs.
    Each coloured block of W becomes one row on the right: that regrouping of (i_k, j_k) pairs is what
    BT and TT decompose.
    """
    im, om = grid.in_modes, grid.out_modes
    I, J = len(grid.rows), len(grid.cols)
    nb, ni = grid.n_blocks, grid.n_inner
    if show_text is None:
        show_text = I * J <= 400
    colors = _palette(nb)
    scale = _discrete_scale(colors)
    fmt_i = lambda t: "(" + ",".join(map(str, t)) + ")"
    # hover texts from per-cell data and one template per panel: the page sends each cell's few
    # varying parts, not its whole sentence (a 16 x 16 W's chart fell from 80 KB to a third of it)
    rows_t, cols_t = [fmt_i(r) for r in grid.rows], [fmt_i(c) for c in grid.cols]
    data_w = [[[rows_t[i], cols_t[j], " ".join(f"({a},{b})" for a, b in zip(grid.rows[i], grid.cols[j])),
                grid.block[i][j], grid.inner[i][j]] for j in range(J)] for i in range(I)]
    hover_w = ("W[%{y}, %{x}]<br>i = %{customdata[0]}, j = %{customdata[1]}<br>pairs (i<sub>k</sub>, j<sub>k</sub>): "
               "%{customdata[2]}<br>→ row %{customdata[3]}, column %{customdata[4]} on the right<extra></extra>")
    # Right panel: rows = p1, columns = q.
    z_r = [[p] * ni for p in range(nb)]
    text_r = [[str(q) for q in range(ni)] for _ in range(nb)]
    where = {}
    for i in range(I):
        for j in range(J):
            where[(grid.block[i][j], grid.inner[i][j])] = (i, j)
    data_r = [[[f"({p // om[0]},{p % om[0]})", f"{where[(p, q)][0]}, {where[(p, q)][1]}"] for q in range(ni)]
              for p in range(nb)]
    hover_r = "row (i₁,j₁) = %{customdata[0]}, column %{x}<br>holds W[%{customdata[1]}]<extra></extra>"
    fig = make_subplots(rows=1, cols=2, column_widths=[0.5, 0.5], horizontal_spacing=0.12, subplot_titles=(
        f"W: {I} × {J} (rows {_modes(im)}, columns {_modes(om)})",
        f"regrouped: rows (i₁,j₁), columns (i₂,j₂{',…' if len(im) > 2 else ''}): {nb} × {ni}"))
    common = {"colorscale": scale, "zmin": -0.5, "zmax": nb - 0.5, "showscale": False, "xgap": 1, "ygap": 1}
    fig.add_trace(go.Heatmap(z=grid.block, text=[[str(v) for v in r] for r in grid.inner], customdata=data_w,
                             hovertemplate=hover_w, texttemplate="%{text}" if show_text else None, name="W", **common),
                  1, 1)
    fig.add_trace(go.Heatmap(z=z_r, text=text_r, customdata=data_r, hovertemplate=hover_r,
                             texttemplate="%{text}" if show_text else None, name="regrouped", **common), 1, 2)
    # Block boundaries on W: rows with the same i1, columns with the same j1.
    bi, bj = I // im[0], J // om[0]
    edge = {"type": "line", "xref": "x", "yref": "y", "line": {"color": "black", "width": 2}}
    fig.update_layout(shapes=[{**edge, "x0": -0.5, "x1": J - 0.5, "y0": a * bi - 0.5, "y1": a * bi - 0.5}
                              for a in range(1, im[0])]
                      + [{**edge, "y0": -0.5, "y1": I - 0.5, "x0": b * bj - 0.5, "x1": b * bj - 0.5}
                         for b in range(1, om[0])])
    fig.update_yaxes(tickmode="array", tickvals=[a * bi + (bi - 1) / 2 for a in range(im[0])],
                     ticktext=[f"i₁={a}" for a in range(im[0])], row=1, col=1)
    fig.update_xaxes(side="top", tickmode="array", tickvals=[b * bj + (bj - 1) / 2 for b in range(om[0])],
                     ticktext=[f"j₁={b}" for b in range(om[0])], row=1, col=1)
    step = max(1, nb // 16)
    fig.update_yaxes(tickmode="array", tickvals=list(range(0, nb, step)),
                     ticktext=[f"({p // om[0]},{p % om[0]})" for p in range(0, nb, step)], row=1, col=2)
    fig.update_xaxes(side="top", row=1, col=2)
    fig.update_xaxes(range=[-0.5, J - 0.5], row=1, col=1)
    fig.update_xaxes(range=[-0.5, ni - 0.5], row=1, col=2)
    fig.update_yaxes(range=[I - 0.5, -0.5], row=1, col=1)
    fig.update_yaxes(range=[nb - 0.5, -0.5], row=1, col=2)
    fig.update_xaxes(showgrid=False, zeroline=False, constrain="domain")
    fig.update_yaxes(showgrid=False, zeroline=False, constrain="domain")
    for ax in ("yaxis", "yaxis2"):
        fig.layout[ax].scaleanchor = ax.replace("yaxis", "x")
    fig.update_layout(height=max(360, min(620, 22 * max(I, nb) + 120)), margin={"l": 10, "r": 10, "t": 90, "b": 10},
                      plot_bgcolor="white")
    fig.update_annotations(yshift=30, font_size=13)
    return fig


@shared_figure
def step_bars(rows: list[dict], *, color: str, dense_per_sample: float | None = None,
              selected: int | None = None, title: str = "multiply-adds per sample, by step") -> go.Figure:
    """Bars of ``multiply-adds / sample`` per step (rows from :func:`app.learn.content.walkthrough_rows`).

    ``selected`` (1-based) is drawn opaque, the others faded; dense's total is a dashed line.
    """
    x = [f"{r['step']}: {r['tensors that meet']}" for r in rows]
    y = [r["multiply-adds / sample"] for r in rows]
    opacity = [1.0 if selected in (None, r["step"]) else 0.35 for r in rows]
    fig = go.Figure(go.Bar(
        x=x, y=y, marker={"color": color, "opacity": opacity, "line": {"color": "black",
                                                                         "width": [2 if r["step"] == selected else 0 for r in rows]}},
        text=[f"{v:,.0f}" for v in y], textposition="outside", name="multiply-adds / sample",
        customdata=[[r["result shape"], r["result memory"]] for r in rows],
        hovertemplate="step %{x}<br>%{y:,.0f} multiply-adds per sample<br>result %{customdata[0]}"
                      "<br>result memory %{customdata[1]}<extra></extra>",
    ))
    if dense_per_sample:
        # On a log axis an annotation's y is log10 of the value (add_hline's own annotation gets it wrong).
        fig.add_hline(y=dense_per_sample, line={"color": FORMAT_COLORS["Dense"], "dash": "dash"})
        fig.add_annotation(x=0, xref="paper", xanchor="left", y=math.log10(dense_per_sample), yref="y",
                           yanchor="bottom", text=f"dense: {dense_per_sample:,.0f} per sample", showarrow=False,
                           font={"color": FORMAT_COLORS["Dense"]})
    top = max(y + [dense_per_sample or 0])
    low = max(min(y), 1)
    # dtick=1: labels at powers of ten only (plotly's in-between "2", "5" on a log axis are ~9 px); the
    # range spans more than a decade, so there is always one
    fig.update_layout(title=title, yaxis_title="multiply-adds / sample", yaxis_type="log", yaxis_dtick=1, height=360,
                      yaxis_range=[math.log10(low) - 0.5, math.log10(max(top, 1)) + 0.6],
                      margin={"t": 50, "b": 10}, showlegend=False)
    return fig


@shared_figure
def format_cost_stack(per_format: dict[str, list[dict]]) -> go.Figure:
    """One stacked bar per format: its total multiply-adds per sample split into steps."""
    fig = go.Figure()
    longest = max((len(r) for r in per_format.values()), default=0)
    for k in range(longest):
        xs, ys, texts = [], [], []
        for name, rows in per_format.items():
            if k < len(rows):
                xs.append(name)
                ys.append(rows[k]["multiply-adds / sample"])
                texts.append(rows[k]["tensors that meet"])
        fig.add_bar(x=xs, y=ys, name=f"step {k + 1}", customdata=texts,
                    hovertemplate="%{x}, step " + str(k + 1) + ": %{customdata}<br>%{y:,.0f} per sample<extra></extra>")
    totals = {name: sum(r["multiply-adds / sample"] for r in rows) for name, rows in per_format.items()}
    fig.add_scatter(x=list(totals), y=list(totals.values()), mode="text", text=[f"{v:,.0f}" for v in totals.values()],
                    textposition="top center", showlegend=False, hoverinfo="skip", name="total")
    fig.update_layout(barmode="stack", title="total multiply-adds per sample, split by step", height=360,
                      yaxis_title="multiply-adds / sample", margin={"t": 50, "b": 10},
                      yaxis_range=[0, max(totals.values(), default=1) * 1.15],
                      legend={"orientation": "h", "y": -0.15})
    return fig


@shared_figure
def growth_chart(rows: list[dict], current: tuple[int, int] | None = None) -> go.Figure:
    """Left: BT parameters vs R for each order d; right: core entries per block, R^d (log scales).

    ``rows`` from :func:`app.learn.content.growth_rows`; ``current`` = (d, R) is starred.
    """
    fig = make_subplots(rows=1, cols=2, subplot_titles=("BT parameters (all N blocks)", "core entries per block = R^d"),
                        horizontal_spacing=0.1)
    orders = sorted({r["d"] for r in rows})
    for c, d in zip(_seq_colors(len(orders)), orders):
        pts = [r for r in rows if r["d"] == d]
        modes = f"{_modes(pts[0]['in_modes'])} → {_modes(pts[0]['out_modes'])}"
        fig.add_scatter(x=[r["R"] for r in pts], y=[r["params"] for r in pts], mode="lines+markers", name=f"d = {d}",
                        legendgroup=str(d), line={"color": c}, row=1, col=1,
                        hovertemplate=f"d = {d} ({modes}), R = %{{x}}<br>%{{y:,}} parameters<extra></extra>")
        fig.add_scatter(x=[r["R"] for r in pts], y=[r["core_per_block"] for r in pts], mode="lines+markers",
                        name=f"d = {d}", legendgroup=str(d), showlegend=False, line={"color": c, "dash": "dot"},
                        row=1, col=2, hovertemplate=f"d = {d}, R = %{{x}}<br>%{{y:,}} core entries<extra></extra>")
    if current is not None:
        for r in rows:
            if (r["d"], r["R"]) == current:
                for col, key in ((1, "params"), (2, "core_per_block")):
                    fig.add_scatter(x=[r["R"]], y=[r[key]], mode="markers", name="your choice", showlegend=col == 1,
                                    marker={"symbol": "star", "size": 16, "color": "gold", "line": {"width": 1, "color": "black"}},
                                    row=1, col=col, hovertemplate="%{y:,}<extra>your choice</extra>")
    # readable ticks (no ~9 px in-between labels of a short log axis), per panel
    fig.update_yaxes(**value_axis([r["params"] for r in rows]), row=1, col=1)
    fig.update_yaxes(**value_axis([r["core_per_block"] for r in rows]), row=1, col=2)
    fig.update_xaxes(title_text="Tucker rank R")
    fig.update_layout(height=380, margin={"t": 40, "b": 10}, legend={"orientation": "h", "y": -0.25})
    return fig


@shared_figure
def ring_growth_chart(rows: list[dict], current: int | None = None) -> go.Figure:
    """TT and TR parameters vs a uniform rank r (rows from :func:`app.learn.content.ring_growth_rows`),
    log y; ``current`` (the configuration's uniform TR rank) is marked on the TR line."""
    fig = go.Figure()
    for label in ("TT", "TR"):
        pts = [r for r in rows if r[label] is not None]
        fig.add_scatter(x=[r["rank"] for r in pts], y=[r[label] for r in pts], mode="lines+markers", name=label,
                        line={"color": FORMAT_COLORS[label], "width": 3},
                        hovertemplate=f"{label}, rank %{{x}}<br>%{{y:,}} parameters<extra></extra>")
    mark = next((r for r in rows if r["rank"] == current and r["TR"] is not None), None)
    if mark is not None:
        fig.add_scatter(x=[mark["rank"]], y=[mark["TR"]], mode="markers", name="your TR",
                        marker={"symbol": "star", "size": 16, "color": FORMAT_COLORS["TR"], "line": {"width": 1}},
                        hovertemplate="your TR, rank %{x}<br>%{y:,} parameters<extra></extra>")
    fig.update_yaxes(**value_axis([v for r in rows for v in (r["TT"], r["TR"])]))
    fig.update_layout(title="parameters vs rank r: TR closes the chain, so every core carries two bonds",
                      xaxis_title="rank r (every bond)", yaxis_title="parameters", height=360,
                      margin={"t": 50, "b": 10}, legend={"orientation": "h", "y": -0.2})
    return fig


def _seq_colors(n: int) -> list[str]:
    base = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]
    return [base[i % len(base)] for i in range(n)]


@shared_figure
def budget_chart(rows: list[dict], budget: int, current: tuple[int, int] | None = None) -> go.Figure:
    """For each R, the parameters of the largest N that fits the budget, split into factors and cores.

    ``rows`` from :func:`app.learn.content.budget_pairs`; bars are labelled with N.
    """
    x = [str(r["R"]) for r in rows]
    fig = go.Figure()
    fig.add_bar(x=x, y=[r["factors"] for r in rows], name="factors (N·Σ I_k J_k R)", marker_color="#fdae6b",
                hovertemplate="R = %{x}: factors %{y:,}<extra></extra>")
    fig.add_bar(x=x, y=[r["core"] for r in rows], name="cores (N·R^d)", marker_color=FORMAT_COLORS["BT"],
                text=[f"N = {r['N']}" for r in rows], textposition="outside",
                hovertemplate="R = %{x}: cores %{y:,}<extra></extra>")
    fig.add_hline(y=budget, line={"color": "black", "dash": "dash"}, annotation_text=f"budget {budget:,}",
                  annotation_position="bottom right")
    if current is not None and str(current[0]) in x:
        i = x.index(str(current[0]))
        fig.add_annotation(x=x[i], y=rows[i]["params"], text="your R", showarrow=True, arrowhead=2, ay=-45)
    fig.update_layout(barmode="stack", title=f"most blocks N that fit {budget:,} parameters, for each R",
                      xaxis_title="Tucker rank R", yaxis_title="parameters", height=380,
                      yaxis_range=[0, max([budget] + [r["params"] for r in rows]) * 1.2],
                      margin={"t": 50, "b": 10}, legend={"orientation": "h", "y": -0.2})
    return fig


@shared_figure
def contraction_tree(steps, selected: int | None = None, title: str = "contraction order") -> go.Figure:
    """The pairwise contraction path as a tree: leaves are x and the format's tensors (bottom), each step
    a node above its two inputs at the height of its step number; ``selected`` (1-based) is highlighted.

    The nodes are one scatter trace named ``"path"`` with each tensor's shape in the hover text.
    """
    produced = {s.result: k for k, s in enumerate(steps, 1)}
    shapes: dict[str, tuple] = {}
    children: dict[str, tuple[str, str]] = {}
    for s in steps:
        shapes.setdefault(s.left, s.left_shape)
        shapes.setdefault(s.right, s.right_shape)
        shapes[s.result] = s.result_shape
        children[s.result] = (s.left, s.right)
    root = steps[-1].result if steps else None
    order: list[str] = []

    def visit(name):
        if name in children:
            for c in children[name]:
                visit(c)
        else:
            order.append(name)

    if root is not None:
        visit(root)
    pos = {name: (float(i), 0.0) for i, name in enumerate(order)}
    for k, s in enumerate(steps, 1):
        pos[s.result] = ((pos[s.left][0] + pos[s.right][0]) / 2, float(k))
    sel = steps[selected - 1] if selected and 0 < selected <= len(steps) else None
    hot = {sel.left, sel.right, sel.result} if sel else set()
    fig = go.Figure()
    lines = []  # one layout update for all edges: add_shape per edge costs plotly a validation each
    for s in steps:
        for c in (s.left, s.right):
            on = sel is not None and s.result == sel.result
            lines.append({"type": "line", "x0": pos[c][0], "y0": pos[c][1], "x1": pos[s.result][0],
                          "y1": pos[s.result][1], "layer": "below",
                          "line": {"color": "#d62728" if on else "#999", "width": 4 if on else 2}})
    names = list(pos)
    kinds = ["input" if n == "x" else ("step" if n in produced else "tensor") for n in names]
    color = {"input": "#c7e9c0", "tensor": "#fdd0a2", "step": "#deebf7"}
    fig.add_scatter(
        x=[pos[n][0] for n in names], y=[pos[n][1] for n in names], mode="markers+text", name=PATH_TRACE,
        text=names, textfont={"size": 12, "color": "black"}, showlegend=False, opacity=1.0,
        hovertext=[f"<b>{n}</b>" + (f" (step {produced[n]})" if n in produced else "") + f"<br>shape {shape_text(shapes[n])}"
                   f"<br>{_fmt(prod(shapes[n]))} numbers" for n in names],
        hovertemplate="%{hovertext}<extra></extra>",
        marker={"size": 34, "opacity": 1.0, "symbol": ["circle" if k == "step" else "square" for k in kinds],
                "color": [color[k] for k in kinds],
                "line": {"width": [3 if n in hot else 1 for n in names],
                         "color": ["#d62728" if n in hot else "#555" for n in names]}},
    )
    fig.update_layout(title=title, height=300, margin={"l": 10, "r": 10, "t": 40, "b": 10}, plot_bgcolor="white",
                      dragmode=False, shapes=lines,
                      xaxis={"visible": False, "range": [-0.7, max(len(order) - 0.3, 0.7)], "fixedrange": True},
                      yaxis={"title": "step", "range": [-0.6, len(steps) + 0.6], "dtick": 1, "fixedrange": True,
                             "showgrid": False, "zeroline": False})
    return fig
