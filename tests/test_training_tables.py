"""app.training.tables: rows of the size, live metrics and paper tables."""

from __future__ import annotations

from app.training import tables
from btcore.memory import format_bytes
from btcore.classifier import ucf11_config
from btcore.tasks.action import model_config
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


def test_shown_writes_missing_values_as_a_dash():
    rows = tables.shown(tables.metrics_rows(_events()), tables.METRIC_FORMATS)
    cells = [v for r in rows for v in r.values()]
    assert None not in cells and not any(str(v) in ("None", "nan") for v in cells)
    assert rows[0]["val accuracy"] == "30.0%"
    assert tables.shown([{"a": None, "b": float("nan"), "c": 1234567, "d": "x"}], {"a": ",", "b": ".3f", "c": ","}) \
        == [{"a": "—", "b": "—", "c": "1,234,567", "d": "x"}]


def test_sweep_table_has_rank_and_blocks_only_for_bt():
    rows = [{"run": "LSTM", "kind": "dense", "rank": None, "blocks": None, "params": 100, "input_map_params": 60,
             "status": "done", "val_acc": 0.5, "val_loss": 1.2, "steps": 4, "run_s": 0.25},
            {"run": "TT", "kind": "tt", "rank": None, "blocks": None, "params": 50, "input_map_params": 10,
             "status": None, "val_acc": None, "val_loss": float("nan"), "steps": 4, "run_s": None},
            {"run": "BT", "kind": "bt", "rank": (2, 3), "blocks": 2, "params": 40, "input_map_params": 8,
             "status": "stalled", "val_acc": 0.25, "val_loss": 1.4, "steps": 4, "run_s": 1.0}]
    table = tables.sweep_table(rows)
    assert [(r["R"], r["N"]) for r in table] == [("—", "—"), ("—", "—"), ("2,3", "2")]
    assert table[1]["val accuracy"] == "—" and table[1]["val loss"] == "—" and table[1]["status"] == "—"
    assert table[0]["val accuracy"] == "50.0%" and table[2]["seconds"] == "1.0"


def test_the_live_table_leaves_out_what_is_shown_elsewhere_and_names_the_tasks_metric():
    events = [{"event": "start", "run": "BT", "params": 10, "input_map_params": 4, "total_steps": 8},
              {"event": "step", "run": "BT", "step": 2, "epoch": 0.25, "train_loss": 1.0},
              {"event": "eval", "run": "BT", "step": 2, "val_loss": 1.1, "val_nelbo": 123.456}]
    rows = tables.metrics_rows(events, "val_nelbo", "validation nELBO")
    assert rows[0]["val nELBO"] == 123.456 and "val accuracy" not in rows[0]
    live = tables.live_table(rows, tables.metric_formats("val_nelbo", "validation nELBO"))
    assert live[0]["val nELBO"] == "123.5" and live[0]["input-map parameters"] == "4"
    assert not set(tables.LIVE_HIDDEN) & set(live[0])
    assert tables.metric_formats("val_acc", "validation accuracy")["val accuracy"] == "%"


def test_every_tasks_sizes_table_shows_the_memory_range_of_a_step():
    from btcore.tasks import make_task
    from btcore.tasks.base import step_memory

    for name in ("generation", "captioning"):
        task = make_task(name)
        models = [task.model_config(k) for k in ("dense", "bt")]
        rows = tables.model_rows(models, 50, "adam", name)
        for m, row in zip(models, rows):
            mem = task.step_bytes(m, 50, "adam")
            assert row["_bytes"] == mem["training"] > mem["low"] > 0
            assert row["training memory (est.)"] == f"{format_bytes(mem['low'])} - {format_bytes(mem['training'])}"
        assert tables.too_big(rows, 2 * min(r["_bytes"] for r in rows) + 2) == [rows[0]["model"]]  # dense is larger
        assert tables.model_rows(models)[0]["_bytes"] == 0 and "training memory (est.)" not in tables.model_rows(models)[0]
    assert tables.memory_text(step_memory(10, 0)) == "160 B"  # no activations: one value


def test_the_paper_table_writes_compression_like_the_shapes_page():
    from btcore.classifier import ucf11_config
    from app.training import tables as tb
    rows = tb.paper_shown(tb.paper_rows({k: ucf11_config(k, "lstm") for k in ("dense", "tt", "bt")}))
    assert rows[0]["compression"] == "1.0x"
    raw = tb.paper_rows({k: ucf11_config(k, "lstm") for k in ("dense", "tt", "bt")})[2]["compression"]
    assert rows[2]["compression"] == f"{raw:,.1f}x" and "," in rows[2]["compression"]
    assert tb.ratio_text(17554.31) == "17,554.3x"


def test_the_live_notes_are_short_and_say_what_a_finished_run_showed():
    from app.training import tables as tb
    evs = [{"event": "start", "run": r, "total_steps": 4} for r in "abc"]
    evs += [{"event": "end", "run": "a", "status": "diverged", "verdict": None,
             "reason": "stopped at step 2: the training loss rose to 29; lower the learning rate"},
            {"event": "end", "run": "b", "status": "done", "verdict": "too short", "reason": "finished 4 steps; ..."},
            {"event": "end", "run": "c", "status": "done", "verdict": "learnt", "reason": "finished 4 steps"}]
    notes = {r["run"]: r["note"] for r in tb.metrics_rows(evs)}
    assert notes == {"a": "stopped at step 2", "b": "too short to judge", "c": ""}
