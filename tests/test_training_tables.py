"""app.training.tables: rows of the size, live metrics and paper tables."""

from __future__ import annotations

from app.training import tables
from btcore.rnn import ucf11_config
from btcore.train import model_config
from test_charts_training import _events


def test_metrics_rows():
    rows = tables.metrics_rows(_events())
    assert [r["run"] for r in rows] == ["BT", "LSTM"]
    assert rows[0]["status"] == "running" and rows[0]["step"] == 3 and rows[0]["val accuracy"] == 0.3
    assert rows[1]["status"] == "diverged" and rows[1]["note"] == "non-finite loss"
    assert tables.run_names(_events()) == ["BT", "LSTM"]


def test_paper_rows():
    rows = tables.paper_rows({k: ucf11_config(k) for k in ("dense", "tt", "bt")})
    assert [r["input-map parameters"] for r in rows] == [58_982_400, 3_360, 3_392]
    assert int(rows[2]["compression"]) == 17_388  # the paper's "17,388 times fewer"
    assert rows[2]["input modes"] == "8x20x20x18" and rows[2]["output modes"] == "16x4x4x4"


def test_size_rows_and_the_memory_warning():
    dense = model_config("dense", frame_shape=(3, 32, 32), hidden=64)
    bt = model_config("bt", frame_shape=(3, 32, 32), hidden=64)
    rows = tables.size_rows([dense, bt], 16, 8, "adam")
    assert [r["model"] for r in rows] == ["LSTM", "BT-LSTM (R=4, N=2)"]
    assert rows[0]["input-map parameters"] == 3072 * 4 * 64 and rows[0]["input modes"] == "8x8x8x6"
    assert rows[0]["all parameters"] == dense.num_params() and rows[0]["_bytes"] != rows[1]["_bytes"]
    small, big = sorted(rows, key=lambda r: r["_bytes"])
    assert tables.too_big(rows, 10**15) == []
    assert tables.too_big(rows, 2 * small["_bytes"] + 2) == [big["model"]]  # above half of the free memory
