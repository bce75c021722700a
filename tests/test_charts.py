import btcore
from app import charts


def test_params_vs_rank_marks_the_choice():
    rows = btcore.param_sweep((8, 20, 20, 18), (16, 4, 4, 4), range(1, 9), [1, 2])
    fig = charts.params_vs_rank(rows, 58_982_400, {"BT": (4, 3_392), "TT": (4, 3_360)})
    names = [t.name for t in fig.data]
    assert names == ["TT", "BT, N=1", "BT, N=2", "your BT", "your TT"]
    bt2 = fig.data[2]
    assert list(bt2.x) == list(range(1, 9)) and bt2.y[3] == 3_392
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
