"""AppTest of the Format study page: the plan before launch, a tiny study joined and drawn, URL state, refusals."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch

from conftest import open_page, plotly_specs

#: A tiny study: few small clips, two budgets, TT and BT, one epoch.
TINY = {"study_frame": "1x8x8", "study_frames": 4, "study_classes": 3, "study_train_size": 32,
        "study_val_size": 16, "study_hidden": 16, "study_d": 2, "study_budgets": "300,1000", "study_epochs": 1,
        "study_batch": 8}


def _tiny(at, **extra):
    for key, value in {**TINY, **extra}.items():
        widget = next((w for kind in ("text_input", "number_input", "checkbox", "selectbox") for w in at.get(kind)
                       if w.key == key), None)
        assert widget is not None, key
        widget.set_value(value)
    return at.run()


def _run(at):
    at.button(key="study_start").click().run()
    assert not at.exception
    job = at.session_state["study_job"]
    assert job.join(300), "the study did not finish"
    assert job.status == "done", job.error
    at.run()
    assert not at.exception
    return job.result


def test_a_tiny_study_draws_the_numbers_run_study_computed():
    at = _tiny(open_page("study"), study_fmt_tr=False)
    assert not at.exception and not at.error
    plan_rows = at.dataframe[0].value
    notes = [i.value for i in at.info if "no ranks fit" in i.value]
    assert list(plan_rows["run"])[0] == "dense" and len(plan_rows) + len(notes) == 5  # dense + TT, BT at 2 budgets
    number = lambda t: int(t.replace(",", ""))  # noqa: E731  (cells are text: "1,000")
    assert plan_rows["budget"][0] == "—" and "None" not in plan_rows.to_string()
    assert all(number(p) <= number(b) for p, b in zip(plan_rows["input-map params"][1:], plan_rows["budget"][1:]))
    assert any(c.value.startswith("Estimated: **") and "for the whole study (data" in c.value for c in at.caption)
    result = _run(at)
    rows = result.to_dict()["rows"]
    front = next(s for s in plotly_specs(at) if s["layout"]["title"]["text"].startswith("Final validation accuracy "
                                                                                       "vs input-map"))
    assert front["layout"]["xaxis"]["type"] == "log" or len({r["params"] for r in rows}) < 3
    points = {(x, y) for t in front["data"] if t["mode"] == "markers" and t["name"] in ("Dense", "TT", "BT")
              for x, y in zip(t["x"], t["y"])}
    assert points == {(r["params"], r["val_metric"]) for r in rows if math.isfinite(r["val_metric"])}
    line = next(t for t in front["data"] if t["name"] == "Pareto front")
    assert sorted(zip(line["x"], line["y"])) == sorted((r["params"], r["val_metric"]) for r in rows if r["pareto"])
    rec, top = result.recommended, result.verdict.top
    stars = [t for t in front["data"] if t["name"].startswith("recommended")]
    if rec is None:  # 16 validation clips: the runs are within the noise of each other or of chance
        assert not stars and not at.success
        assert any("No recommendation" in w.value and "cannot be told apart" in w.value for w in at.warning)
    else:
        assert (stars[0]["x"][0], stars[0]["y"][0]) == (rec.params, rec.val_metric) and rec.params <= 1000
        assert any(rec.run in s.value for s in at.success)
    speed = next(s for s in plotly_specs(at) if "measured speed" in s["layout"]["title"]["text"])
    assert sum(len(t["x"]) for t in speed["data"] if not t["name"].startswith("recommended")) == len(rows)
    table = at.dataframe[-1].value
    assert list(table["Run"]) == [r["run"] for r in rows]
    assert result.export_code(top.run, weights_file="model.pt").strip() in [c.value.strip() for c in at.code]
    labels = [b.label for b in at.get("download_button")]
    assert {"Layer configuration (.py)", "Trained weights (.pt)", "Results (CSV)", "Results (JSON)"} <= set(labels)
    assert any("--study formats" in c.value and "--budgets 300,1000" in c.value for c in at.code)


def test_compress_from_this_studys_dense_model_draws_three_series():
    at = _tiny(open_page("study"), study_fmt_tr=False, study_fmt_tt=False, study_budgets="400")
    at.selectbox(key="study_compress").set_value("study").run()
    at.number_input(key="study_finetune").set_value(1).run()
    result = _run(at)
    phases = [r.phase for r in result.rows]
    assert phases == ["trained", "trained", "compressed", "finetuned"]
    spec = next(s for s in plotly_specs(at) if s["layout"]["title"]["text"].startswith("Trained in format"))
    names = [t["name"] for t in spec["data"] if not t["name"].startswith("recommended")]
    assert names == ["trained in format", "compressed", "compressed + fine-tuned"]
    comp = next(r for r in result.rows if r.phase == "compressed")
    trace = next(t for t in spec["data"] if t["name"] == "compressed")
    assert (trace["x"][0], trace["y"][0]) == (comp.params, comp.val_metric) and 0 < comp.fit_error < 1


def test_the_url_round_trip_and_bad_link_values():
    at = open_page("study")
    at.text_input(key="study_budgets").set_value("500,2000").run()
    at.checkbox(key="study_fmt_tt").set_value(False).run()
    at.text_input(key="study_blocks").set_value("1,2").run()
    q = dict(at.query_params)
    assert q["s_budgets"] == "500,2000" and q["s_tt"] == "0" and q["s_blocks"] == "1,2"
    from streamlit.testing.v1 import AppTest

    from conftest import ROOT

    fresh = AppTest.from_file(str(ROOT / "app" / "main.py"), default_timeout=120)
    fresh.query_params.update({**q, "s_epochs": "oops", "s_task": "nosuch"})  # the link, two values spoilt
    fresh.switch_page(str(ROOT / "pages" / "study.py")).run()
    assert not fresh.exception
    assert fresh.text_input(key="study_budgets").value == "500,2000"
    assert fresh.checkbox(key="study_fmt_tt").value is False
    assert fresh.text_input(key="study_blocks").value == "1,2"
    warnings = " ".join(w.value for w in fresh.warning)
    assert "s_epochs=oops" in warnings and "s_task=nosuch" in warnings
    assert fresh.number_input(key="study_epochs").value == 4 and fresh.selectbox(key="study_task").value == "action"


@pytest.mark.parametrize("budgets, words", [("0", "Budgets"), ("abc", "Budgets"), ("5", "no ticked format fits")])
def test_bad_budgets_name_the_field_before_any_work(budgets, words):
    at = open_page("study")
    at.text_input(key="study_budgets").set_value(budgets).run()
    assert not at.exception
    assert any(words in e.value for e in at.error)
    assert not [b for b in at.button if b.key == "study_start"]  # nothing to launch


def test_bad_modes_and_no_format_are_refused():
    at = open_page("study")
    at.text_input(key="study_in_modes").set_value("5x5").run()
    assert any("Input modes" in e.value and "768" in e.value for e in at.error)
    at.text_input(key="study_in_modes").set_value("").run()
    for f in ("tt", "bt", "tr"):
        at.checkbox(key=f"study_fmt_{f}").set_value(False)
    at.run()
    assert any("Formats" in e.value for e in at.error)


def _npz(**arrays) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def test_sequences_from_the_data_root_and_refusals(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    good = _npz(X=rng.normal(size=(24, 3, 12)).astype(np.float32), y=np.arange(24) % 3)
    (tmp_path / "good.npz").write_bytes(good)
    (tmp_path / "nan.npz").write_bytes(_npz(X=np.full((6, 3, 12), np.nan, np.float32), y=np.arange(6) % 3))
    (tmp_path / "ranks.npz").write_bytes(_npz(X=np.zeros((6, 12), np.float32), y=np.arange(6) % 3))
    outside = tmp_path.parent / f"{tmp_path.name}_outside.npz"
    outside.write_bytes(good)
    (tmp_path / "link.npz").symlink_to(outside)  # leads out of the data root: never listed
    monkeypatch.setenv("BTLAB_DATA_ROOT", str(tmp_path))
    at = open_page("study")
    at.selectbox(key="study_task").set_value("sequences").run()
    options = at.selectbox(key="study_data").options
    assert "good.npz" in options and "link.npz" not in options
    at.number_input(key="study_d").set_value(2)
    at.selectbox(key="study_data").set_value("good.npz").run()
    assert not at.exception and not at.error
    assert any("12 input features" in m.value and "4x3" in m.value for m in at.markdown)
    at.text_input(key="study_in_modes").set_value("2x6").run()
    assert not at.error and any("2x6" in m.value for m in at.markdown)
    for name, words in (("nan.npz", "NaN or infinite"), ("ranks.npz", "X must have 3 axes")):
        at.selectbox(key="study_data").set_value(name).run()
        assert not at.exception
        assert any(words in e.value for e in at.error), [e.value for e in at.error]


def test_uploads_are_refused_with_the_librarys_messages():
    from app.study.sources import UPLOAD_MAX_BYTES, read_upload

    with pytest.raises(ValueError, match="labels must be 0..K-1"):
        read_upload("a.npz", _npz(X=np.zeros((6, 2, 4), np.float32), y=np.array([0, 0, 2, 2, 3, 3])))
    with pytest.raises(ValueError, match="fewer than 2 examples"):
        read_upload("a.npz", _npz(X=np.zeros((5, 2, 4), np.float32), y=np.array([0, 0, 1, 1, 2])))
    with pytest.raises(ValueError, match="not a readable .npz"):
        read_upload("a.npz", b"not a zip")
    with pytest.raises(ValueError, match="MiB an upload may hold"):
        read_upload("a.npz", b"\0" * (UPLOAD_MAX_BYTES + 1))
    data, classes = read_upload("ok.npz", _npz(X=np.zeros((6, 2, 4), np.float32), y=np.arange(6) % 3))
    assert classes == 3 and data[:2] == b"PK"


def _sequences(n=24, classes=3, steps=3, features=12, seed=0) -> bytes:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    x = rng.normal(size=(n, steps, features)).astype(np.float32) + y[:, None, None]  # learnable: a shifted mean
    return _npz(X=x, y=y)


def test_an_upload_refused_then_a_good_one_studied():
    at = open_page("study")
    at.selectbox(key="study_task").set_value("sequences").run()
    assert any("upload a .npz" in e.value for e in at.error)  # nothing uploaded yet: said before any work
    at.file_uploader(key="study_upload_file").set_value(
        ("bad.npz", _npz(X=np.zeros((6, 2, 4), np.float32), y=np.array([0, 0, 1, 1, 2, 5])), "application/zip")).run()
    assert not at.exception
    assert any("refused" in e.value and "never occur" in e.value for e in at.error), [e.value for e in at.error]
    at.file_uploader(key="study_upload_file").set_value(("mine.npz", _sequences(), "application/zip")).run()
    at.number_input(key="study_d").set_value(2)
    at.text_input(key="study_budgets").set_value("100,300")
    at.number_input(key="study_epochs").set_value(1)
    at.number_input(key="study_hidden").set_value(8)
    at.checkbox(key="study_fmt_tr").set_value(False).run()
    assert not at.error, [e.value for e in at.error]
    assert any("3 classes" in c.value for c in at.caption)
    result = _run(at)
    assert result.task == "sequences" and result.rows[0].run == "dense"
    assert all(r.params <= r.budget for r in result.rows[1:])
    assert any("--data my_sequences.npz" in c.value for c in at.code)


def test_compress_a_checkpoint_of_the_data_root(tmp_path, monkeypatch):
    from btcore.tasks import make_task
    from btcore.train import TrainConfig, save_checkpoint, train

    task = make_task("action", frame_shape=(1, 8, 8), frames=4, classes=3, train_size=32, val_size=16)
    cfg = TrainConfig(task.model_config("dense", hidden=16, d=2), epochs=1, batch_size=8)
    dense = train(cfg, *task.data(0), task=task)
    save_checkpoint(tmp_path / "models" / "dense.pt", dense.model, cfg)
    bt_cfg = TrainConfig(task.model_config("bt", hidden=16, d=2, rank=2), epochs=1, batch_size=8)
    save_checkpoint(tmp_path / "bt.pt", train(bt_cfg, *task.data(0), task=task).model, bt_cfg)
    monkeypatch.setenv("BTLAB_DATA_ROOT", str(tmp_path))
    at = _tiny(open_page("study"), study_fmt_tr=False, study_fmt_tt=False, study_budgets="400")
    assert set(at.selectbox(key="study_compress").options) >= {"models/dense.pt", "bt.pt"}
    at.selectbox(key="study_compress").set_value("bt.pt").run()
    assert any("Compress from" in e.value and "bt model" in e.value and "give a dense model" in e.value
               for e in at.error)
    at.selectbox(key="study_compress").set_value("models/dense.pt").run()
    at.number_input(key="study_finetune").set_value(0).run()
    assert not at.error
    result = _run(at)
    assert [r.phase for r in result.rows] == ["trained", "trained", "compressed"]
    assert any("--compress-from" in c.value and "models/dense.pt" in c.value for c in at.code)


def test_stop_keeps_the_runs_that_finished():
    import time

    at = _tiny(open_page("study"), study_epochs=150, study_fmt_tr=False)  # long runs: the stop lands in one
    at.button(key="study_start").click().run()
    job = at.session_state["study_job"]
    end = time.time() + 120
    while job.progress == 0 and job.running and time.time() < end:
        time.sleep(0.05)
    at.button(key="study_stop").click().run()
    assert job.join(120)
    at.run()
    assert not at.exception
    result = job.result
    assert result.stopped and 1 <= len(result.rows) < len(at.dataframe[0].value)
    assert all(r.status in ("done", "stalled") for r in result.rows)
    assert any("Stopped" in i.value for i in at.info)
    assert list(at.dataframe[-1].value["Run"]) == [r.run for r in result.rows]


def test_the_command_reproduces_the_study(capsys):
    import json
    import shlex

    from btcore.train import main
    from btcore.train.study import TIMING_FIELDS

    at = _tiny(open_page("study"), study_fmt_tr=False)
    result = _run(at)
    command = next(c.value for c in at.code if "--study formats" in c.value)
    argv = shlex.split(command.replace("\\\n", " "))[3:]  # after "python -m btcore.train"
    assert main([*argv, "--threads", "1"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["summary"]
    strip = lambda rows: [{k: v for k, v in r.items() if k not in TIMING_FIELDS} for r in rows]  # noqa: E731
    assert strip(summary) == strip([r.to_dict() for r in result.rows])


def test_the_lesson_view_hides_the_advanced_controls_and_keeps_their_values():
    from streamlit.testing.v1 import AppTest

    from conftest import ROOT

    at = AppTest.from_file(str(ROOT / "app" / "main.py"), default_timeout=120)
    at.query_params.update({"lesson": "1", "s_seed": "7", "s_modes": "16x16x3"})
    at.switch_page(str(ROOT / "pages" / "study.py")).run()
    assert not at.exception and not at.error
    keys = {w.key for kind in ("text_input", "number_input") for w in at.get(kind)}
    assert "study_seed" not in keys and "study_in_modes" not in keys and "study_budgets" in keys
    assert any("input modes 16x16x3" in m.value for m in at.markdown)  # the link's modes are still used
    assert at.query_params["s_seed"] == "7"


def _constructed(accs, val_size, *, chance=1 / 3):
    """A study result of hand-made accuracies (real tiny models, so the export can run)."""
    from btcore.tasks import make_task
    from btcore.train.study import StudyResult, StudyRow

    task = make_task("action", frame_shape=(1, 8, 8), frames=4, classes=3, train_size=16, val_size=8)
    rows, models, configs = [], {}, {}
    for i, (name, params, acc) in enumerate(accs):
        cfg = task.model_config("bt", hidden=8, d=2, rank=2)
        rows.append(StudyRow(name, "bt", "trained", 1000, [2, 2], 2, params, params + 100, acc, 1.0, 1234.5, 2.0,
                             "done", i))
        models[name], configs[name] = task.build_model(cfg, init=torch.Generator().manual_seed(i)), cfg
    return StudyResult("action", "val_acc", "validation accuracy", True, [1000], rows, models=models,
                       configs=configs, val_size=val_size, chance=chance, chance_margin=0.05)


def _show(result):
    from streamlit.testing.v1 import AppTest

    def app(result):
        from app.study import views

        views.show_results(result, "t_")

    at = AppTest.from_function(app, kwargs={"result": result}, default_timeout=60).run()
    assert not at.exception
    return at


def test_the_page_recommends_only_what_the_measurements_tell_apart():
    accs = [("BT a", 900, 0.50), ("BT b", 600, 0.4375), ("BT c", 300, 0.25)]
    tied = _show(_constructed(accs, 32))  # 16 vs 14 of 32 clips
    assert not tied.success
    text = " ".join(w.value for w in tied.warning)
    assert "No recommendation" in text and "cannot be told apart" in text and "BT b (43.8%)" in text
    assert "Validation clips" in text and "Epochs" in text and "restarts" not in text
    from app.study.views import clips_to_separate

    need = clips_to_separate(0.5, 0.4375)
    assert f"{need:,}" in text and need > 32
    clear = _show(_constructed(accs, 20_000))  # the same accuracies on 20,000 clips
    assert any("Recommended: BT a" in s.value for s in clear.success) and not clear.warning
    chance = _show(_constructed([("BT a", 900, 0.1875), ("BT b", 600, 0.09375)], 32, chance=1 / 6))
    assert any("near chance" in w.value for w in chance.warning) and not chance.success


def test_the_results_table_is_readable_and_the_csv_raw():
    from app.study.views import MISSING, results_csv, results_table

    result = _constructed([("dense", 49_152, 0.5), ("BT a", 900, 0.45)], 32)
    result.rows[0].budget, result.rows[0].ranks, result.rows[0].blocks = None, None, None
    table, _ = results_table(result)
    cells = table.astype(str).to_numpy().ravel().tolist()
    assert "None" not in cells and "nan" not in cells
    assert list(table.columns) == ["Run", "Budget", "Input-map params", "Validation accuracy", "Examples/s", "Seconds",
                                   "Status", "Front"]
    assert table["Budget"].tolist() == [MISSING, "1,000"] and table["Input-map params"].tolist() == ["49,152", "900"]
    assert table["Examples/s"].tolist() == ["1,234", "1,234"] and table["Validation accuracy"][0] == "50.0%"
    csv = results_csv(result).splitlines()
    assert csv[0].startswith("run,format,phase,budget,ranks,blocks,params,total_params,val_metric,val_loss")
    assert csv[1].startswith("dense,bt,trained,,,,49152,49252,0.5,")
