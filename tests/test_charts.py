import pytest

import btcore
from app import charts as shared
from app.shapes import charts


def test_params_vs_rank_marks_the_choice():
    rows = btcore.param_sweep((8, 20, 20, 18), (16, 4, 4, 4), range(1, 9), [1, 2])
    fig = charts.params_vs_rank(rows, 58_982_400, {"BT": (4, 3_392), "TT": (4, 3_360)})
    names = [t.name for t in fig.data]
    # the larger open ring (TT) is drawn before the star (BT), so a star at nearly the same point stays visible
    assert names == ["TT", "TR", "BT, N=1", "BT, N=2", "your TT", "your BT"]
    ring, star = fig.data[4].marker, fig.data[5].marker
    assert ring.symbol == "circle-open" and star.symbol == "star" and ring.size > star.size
    assert fig.data[4].showlegend and fig.data[5].showlegend
    bt2, tr = fig.data[3], fig.data[1]
    assert list(bt2.x) == list(range(1, 9)) and bt2.y[3] == 3_392
    assert tr.y[3] == btcore.tr_params((8, 20, 20, 18), (16, 4, 4, 4), 4)
    assert fig.layout.yaxis.type == "log"


def test_heatmap_values_and_marker():
    values = [[100.0, 10.0], [50.0, None]]
    fig = charts.bt_heatmap([1, 2], [1, 2], values, current=(2, 1))
    assert fig.data[0].z[0][0] == 2.0 and fig.data[0].z[1][1] is None
    assert fig.data[0].text[0][1] == "10"
    assert len(fig.layout.shapes) == 1 and fig.layout.shapes[0].x0 == 0.5


def test_dense_label_sits_on_the_dense_line():
    import math

    fig = charts.params_vs_rank(btcore.param_sweep((4, 4), (4, 4), [1, 2]), 256)
    (note,) = fig.layout.annotations
    assert note.y == math.log10(256) and "dense 256" in note.text


def test_heatmap_marks_the_chosen_cell_on_category_axes():
    """The UCF11 preset (R=4, N=2) on ranks 1..8: the box is on the R=4, N=2 cell, not one off."""
    import json

    ranks, blocks = list(range(1, 9)), list(range(1, 9))
    values = [[float(r * n) for r in ranks] for n in blocks]
    spec = json.loads(charts.bt_heatmap(ranks, blocks, values, current=(4, 2)).to_json())
    assert spec["layout"]["xaxis"]["type"] == "category" and spec["layout"]["yaxis"]["type"] == "category"
    box = spec["layout"]["shapes"][0]
    x_labels, y_labels = spec["data"][0]["x"], spec["data"][0]["y"]
    # on a category axis, position k is the k-th label
    assert x_labels[round((box["x0"] + box["x1"]) / 2)] == "4"
    assert y_labels[round((box["y0"] + box["y1"]) / 2)] == "2"


@pytest.mark.parametrize("values, kind, most", [
    ([0.2, 0.25, 0.31], "linear", 8),            # under a decade: linear, labelled
    ([1e-18, 1.0], "log", 8),                    # 18 decades: at most 8 labels
    ([100, 58_982_400], "log", 8),
])
def test_value_axis_is_readable_at_any_span(values, kind, most):
    import math

    import plotly.graph_objects as go

    axis = shared.value_axis(values)
    assert axis["type"] == kind
    if kind == "log":
        lo, hi = math.floor(math.log10(min(values))), math.ceil(math.log10(max(values)))
        assert (hi - lo) / axis["dtick"] + 1 <= most
    fig = go.Figure(go.Scatter(x=[0, 1, 2][: len(values)], y=values))
    fig.update_yaxes(**axis)
    assert fig.layout.yaxis.type == kind


def test_equal_values_get_a_readable_axis_not_rounding_noise():
    value = 0.12345678901234568
    axis = shared.value_axis([value, value * (1 + 1e-15), value])
    assert axis["type"] == "linear" and axis["range"][0] <= value <= axis["range"][1]
    assert axis["range"][1] - axis["range"][0] > 0.1 * value  # a span the ticks can label in 3 digits
    assert axis["tickformat"] == ".3~g"


def test_shared_figure_builds_once_per_argument_values_across_sessions():
    import threading

    import plotly.graph_objects as go

    calls = []

    @shared.shared_figure
    def bars(ys, *, title="t"):
        calls.append((tuple(ys), title))
        return go.Figure(go.Bar(y=list(ys)), layout={"title": title})

    first = bars([1, 2, 3], title="a")
    seen = []
    threads = [threading.Thread(target=lambda: seen.append(bars([1, 2, 3], title="a"))) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert calls == [((1, 2, 3), "a")] and all(f is first for f in seen)  # equal values: one build, one figure
    assert bars([1, 2, 4], title="a") is not first and bars([1, 2, 3], title="b") is not first  # any other value
    assert list(bars([1, 2, 4], title="a").data[0].y) == [1, 2, 4] and len(calls) == 3
    bars.cache_clear()
    assert bars([1, 2, 3], title="a") is not first and len(calls) == 4


def test_shared_figure_keeps_a_bounded_number_and_builds_unpicklable_arguments_uncached(monkeypatch):
    monkeypatch.setattr(shared, "SHARED_FIGURES", 2)
    calls = []

    @shared.shared_figure
    def fig(x):
        calls.append(x if not callable(x) else "fn")
        return object()

    a = fig(1)
    fig(2), fig(3)  # 1 is the least recently used: dropped
    assert fig(3) is fig(3) and fig(1) is not a and calls == [1, 2, 3, 1]
    f = lambda: 0  # noqa: E731 - cannot be pickled: no shared key, so built each time
    assert fig(f) is not fig(f) and calls[-2:] == ["fn", "fn"]
