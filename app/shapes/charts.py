"""Plotly figure builders for the Shapes page: pure functions of data, unit-tested without a UI.

Each figure builder is wrapped in :func:`app.charts.shared_figure`: built once per arguments for the whole
server, one figure object shared by the sessions that show it (read-only to callers).
"""

from __future__ import annotations

import math

import plotly.graph_objects as go

from app.charts import FORMAT_COLORS, YOUR_MARKERS, shared_figure, value_axis

__all__ = ["params_vs_rank", "bt_heatmap"]


@shared_figure
def params_vs_rank(rows: list[dict], dense_params: int, current: dict | None = None) -> go.Figure:
    """Parameters vs uniform rank, one line per format of the sweep (BT: one per N), log y; the current
    choice marked.

    ``rows`` come from :func:`btcore.param_sweep`; ``current`` is ``{label: (rank, params)}`` (e.g.
    ``{"TT": (4, 3360), "BT": (4, 3392), "TR": (4, 5760)}``) for the configuration being looked at
    (non-uniform ranks: omit).
    """
    fig = go.Figure()
    for label in dict.fromkeys(r["format"] for r in rows if r["blocks"] is None):
        pts = [r for r in rows if r["format"] == label]
        fig.add_scatter(x=[r["rank"] for r in pts], y=[r["params"] for r in pts], mode="lines+markers", name=label,
                        line={"color": FORMAT_COLORS[label], "width": 3},
                        hovertemplate=f"{label} rank %{{x}}<br>%{{y:,}} params<extra></extra>")
    blocks = sorted({r["blocks"] for r in rows if r["format"] == "BT"})
    for i, n in enumerate(blocks):
        pts = [r for r in rows if r["format"] == "BT" and r["blocks"] == n]
        fig.add_scatter(x=[r["rank"] for r in pts], y=[r["params"] for r in pts], mode="lines+markers",
                        name=f"BT, N={n}", line={"color": FORMAT_COLORS["BT"], "dash": ["solid", "dash", "dot", "dashdot"][i % 4]},
                        opacity=1.0 - 0.15 * i,
                        hovertemplate=f"BT N={n}, R=%{{x}}<br>%{{y:,}} params<extra></extra>")
    fig.add_hline(y=dense_params, line={"color": FORMAT_COLORS["Dense"], "dash": "dash"})
    # Annotations on a log axis take log10 coordinates.
    fig.add_annotation(y=math.log10(dense_params), x=1, xref="paper", xanchor="right", yanchor="bottom",
                       text=f"dense {dense_params:,}", showarrow=False)
    for name, (rank, params) in sorted((current or {}).items(), key=lambda kv: -YOUR_MARKERS[kv[0]]["size"]):
        fig.add_scatter(x=[rank], y=[params], mode="markers", name=f"your {name}", showlegend=True,
                        marker={**YOUR_MARKERS[name], "color": FORMAT_COLORS[name]},
                        hovertemplate=f"your {name}: rank %{{x}}<br>%{{y:,}} params<extra></extra>")
    ys = [r["params"] for r in rows] + [dense_params]
    fig.update_yaxes(**value_axis(ys))
    fig.update_layout(xaxis_title="rank (R for BT, r for TT and TR)", yaxis_title="parameters",
                      legend={"orientation": "h", "y": -0.2}, margin={"t": 30, "b": 10}, height=420)
    return fig


@shared_figure
def bt_heatmap(ranks: list[int], blocks: list[int], values: list[list[float]], *, current: tuple[int, int] | None = None,
               title: str = "compression vs dense (x)") -> go.Figure:
    """Heatmap over rank (x) and blocks (y) of ``values[i][j]`` for ``blocks[i]``, ``ranks[j]``.

    Cells that are not valid configurations hold ``None``. Colours use log10 of the value.
    """
    z = [[math.log10(v) if v else None for v in row] for row in values]
    text = [[("" if v is None else (f"{v:,.0f}" if v >= 10 else f"{v:.2g}")) for v in row] for row in values]
    cells = len(ranks) * len(blocks)
    fig = go.Figure(go.Heatmap(
        x=[str(r) for r in ranks], y=[str(n) for n in blocks], z=z, text=text,
        texttemplate="%{text}" if cells <= 64 else None, textfont={"size": 12},
        colorscale="Viridis", colorbar={"title": "log10"},
        hovertemplate="R=%{x}, N=%{y}<br>%{text}<extra></extra>",
    ))
    if current is not None and current[0] in ranks and current[1] in blocks:
        fig.add_shape(type="rect", x0=ranks.index(current[0]) - 0.5, x1=ranks.index(current[0]) + 0.5,
                      y0=blocks.index(current[1]) - 0.5, y1=blocks.index(current[1]) + 0.5,
                      line={"color": "white", "width": 3})
    # Category axes: the labels "1", "2", .. would otherwise be read as numbers, and the box, placed
    # by list index, would sit one cell off.
    fig.update_xaxes(type="category")
    fig.update_yaxes(type="category")
    fig.update_layout(title=title, xaxis_title="Tucker rank R", yaxis_title="blocks N", height=380,
                      margin={"t": 40, "b": 10})
    return fig

