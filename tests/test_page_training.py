"""AppTest of the Training page: sizes before launch, a launched run joined, charts, table, stop, sessions."""

from __future__ import annotations

import re
import time

import numpy as np
import pytest

from app.config import CONFIG_KEY, LabConfig
from conftest import ROOT, open_page, plotly_specs


def _small(at, *, epochs=2, kinds=None, frames=4):
    at.selectbox(key="train_frame").set_value("3x16x16 (768 inputs)")
    at.slider(key="train_frames").set_value(frames)
    if "train_classes" in [s.key for s in at.slider]:
        at.slider(key="train_classes").set_value(4)
        at.number_input(key="train_train_size").set_value(64)
        at.number_input(key="train_val_size").set_value(32)
    at.number_input(key="train_epochs").set_value(epochs)
    at.select_slider(key="train_hidden").set_value(16)
    if kinds is not None:
        at.multiselect(key="train_kinds").set_value(kinds)
    return at.run()


def _join(job, timeout=180):
    """Wait for the worker."""
    return job.join(timeout)


def test_sizes_before_launch_follow_the_shared_config():
    cfg = LabConfig((8, 20, 20, 18), (16, 4, 4, 4), 3, 3, 5)
    at = open_page("training", state={CONFIG_KEY: cfg})
    assert not at.exception
    assert at.text_input(key="train_bt_rank").value == "3"
    assert at.number_input(key="train_blocks").value == 3
    assert at.text_input(key="train_tt_ranks").value == "5"
    sizes = at.dataframe[0].value
    assert list(sizes["model"]) == ["LSTM", "TT-LSTM (ranks 5)", "BT-LSTM (R=3, N=3)"]
    assert sizes["input modes"].iloc[0] == "8x8x8x6"  # 3x32x32 = 3,072 inputs
    assert sizes["input-map parameters"].iloc[0] == 3072 * 4 * 64
    assert "8x8x8x6" in at.markdown[0].value or any("8x8x8x6" in m.value for m in at.markdown)
    assert any("CPU" in c.value or "GPU" in c.value or "NVIDIA" in c.value for c in at.caption)
    # the paper's UCF11 sizes
    paper = at.dataframe[-1].value
    assert list(paper["input-map parameters"]) == [58_982_400, 3_360, 3_392]
    assert list(paper["paper's UCF11 accuracy"]) == [0.697, 0.796, 0.853]


def test_paper_frame_size_uses_the_shapes_page_modes():
    at = open_page("training")  # the shared config is the paper's: 8x20x20x18 -> 16x4x4x4, R=4, N=2
    at.selectbox(key="train_frame").set_value("3x120x160 (57,600: the paper's UCF11 frames)")
    at.select_slider(key="train_hidden").set_value(256).run()
    assert not at.exception
    sizes = at.dataframe[0].value
    assert set(sizes["input modes"]) == {"8x20x20x18"} and set(sizes["hidden modes"]) == {"4x4x4x4"}
    assert list(sizes["input-map parameters"]) == [58_982_400, 3_360, 3_392]
    assert any("(the Shapes page's)" in m.value for m in at.markdown)


def test_rank_that_does_not_fit_is_replaced_with_a_warning():
    at = open_page("training")
    at.text_input(key="train_bt_rank").set_value("40").run()
    assert not at.exception
    assert any("rank" in w.value for w in at.warning)
    assert "R=4" in at.dataframe[0].value["model"].iloc[-1]


def test_a_rank_of_99_says_which_field_what_is_used_and_why():
    at = open_page("training")
    at.text_input(key="train_bt_rank").set_value("99").run()
    at.text_input(key="train_tt_ranks").set_value("99").run()
    assert not at.exception
    shown = [w.value.replace("\\", "") for w in at.warning]
    bt = next(w for w in shown if w.startswith("BT: BT rank R = 99"))
    assert "so 4 is used instead" in bt and "above mode 2's size" in bt
    tt = next(w for w in shown if w.startswith("TT: TT ranks = 99"))
    assert "so 4 is used instead" in tt and "largest useful TT rank" in tt
    assert list(at.dataframe[0].value["model"])[1:] == ["TT-LSTM (ranks 4)", "BT-LSTM (R=4, N=2)"]


def test_memory_warning(monkeypatch):
    import btcore.memory

    # 16 MiB: the default models' estimates are 12-21 MiB (BT's GEMM-shaped scheme keeps small intermediates)
    monkeypatch.setattr(btcore.memory, "available_memory", lambda device=None: 16 * 1024**2)
    at = open_page("training")
    assert any("free memory" in w.value for w in at.warning)


def test_launch_join_charts_table():
    import torch

    threads = torch.get_num_threads()
    at = _small(open_page("training"))
    assert "train_threads" not in [n.key for n in at.number_input]  # set once for the app, not per run
    at.button(key="train_start").click().run()
    assert not at.exception
    job = at.session_state["train_job"]
    seen = set()
    end = time.time() + 180
    while not job.join(0.05) and time.time() < end:
        seen.add(torch.get_num_threads())
    assert job.status == "done", job.error
    assert seen <= {threads} and torch.get_num_threads() == threads  # the worker never changed it
    at.run()
    assert not at.exception
    specs = plotly_specs(at)
    loss = next(s for s in specs if s["layout"]["title"]["text"] == "Loss")
    acc = next(s for s in specs if s["layout"]["title"]["text"] == "Accuracy")
    names = {t["name"] for t in loss["data"]}
    for run in ("LSTM", "TT-LSTM (ranks 4)", "BT-LSTM (R=4, N=2)"):
        assert f"{run} train" in names and f"{run} validation" in names
    assert all(len(t["x"]) > 0 for t in loss["data"])
    assert len(acc["data"]) == 6
    table = at.dataframe[1].value
    # 4 steps on a few clips may not leave chance: such a run ends "stalled" (honestly), never "diverged"
    assert set(table["status"]) <= {"done", "stalled"} and (table["step"] == 4).all()
    assert [b.label for b in at.get("download_button")][:2] == ["Histories (CSV)", "Summary (JSON)"]
    assert not at.get("progress")  # the bar goes once the job has ended; a line says so
    assert any(c.value.startswith("Training finished after ") for c in at.caption)


def test_stop_button():
    at = _small(open_page("training"), epochs=500, kinds=["TT"])
    at.button(key="train_start").click().run()
    job = at.session_state["train_job"]
    at.button(key="train_stop").click().run()
    assert _join(job, 30)
    at.run()
    assert not at.exception
    assert job.status == "stopped"
    table = at.dataframe[1].value
    assert list(table["status"]) == ["stopped"]


def test_stop_while_the_data_are_prepared(monkeypatch):
    """Stop pressed before the first training step (the worker is still generating clips): the table
    still lists the planned run, as stopped (the race behind an intermittent KeyError: 'status')."""
    import threading

    import btcore.data

    entered, release = threading.Event(), threading.Event()
    prepare = btcore.data.SyntheticSplit.prepare

    def slow_prepare(self, should_stop=None, progress=None):
        if len(self) <= 8:  # the estimate's sample of clips (timed on the script thread): not the worker's data
            return prepare(self, should_stop=should_stop, progress=progress)
        entered.set()
        assert release.wait(60)
        return prepare(self, should_stop=should_stop, progress=progress)

    monkeypatch.setattr(btcore.data.SyntheticSplit, "prepare", slow_prepare)
    at = _small(open_page("training"), epochs=500, kinds=["TT"])
    at.button(key="train_start").click().run()
    job = at.session_state["train_job"]
    assert entered.wait(60)
    at.button(key="train_stop").click().run()
    worker = job.source or job  # the page follows a shared worker: its view hands the stop on within a poll
    deadline = time.monotonic() + 30
    while not worker.should_stop and time.monotonic() < deadline:
        time.sleep(0.01)
    release.set()
    assert _join(job, 30)
    at.run()
    assert not at.exception
    assert job.status == "stopped"
    assert not [e for e in job.events if e["event"] == "step"]
    table = at.dataframe[1].value
    assert list(table["run"]) == ["TT-LSTM (ranks 4)"] and list(table["status"]) == ["stopped"]
    assert "before training" in table["note"].iloc[0]


def test_a_run_keeps_going_on_another_page_and_shows_on_return():
    at = _small(open_page("training"), epochs=500, kinds=["TT"])
    at.button(key="train_start").click().run()
    job = at.session_state["train_job"]
    at.switch_page(str(ROOT / "pages" / "shapes.py")).run()
    time.sleep(3)  # no redraw of the Training page meanwhile
    assert job.running and not job.should_stop
    at.switch_page(str(ROOT / "pages" / "training.py")).run()
    assert not at.exception
    assert at.button(key="train_stop").disabled is False and at.dataframe[1].value["run"].tolist() == [
        "TT-LSTM (ranks 4)"]
    at.button(key="train_stop").click().run()
    assert _join(job, 30) and job.status == "stopped"


# Two sessions training at once: AppTest gives every instance the same session id ("test session
# id"), so the session-scoped job registry is shared between AppTests; tests/test_browser_training.py
# checks isolation with two real browser sessions.


def _clip_folder(root, classes=("clap", "wave", "run")):
    for k, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(4):
            arr = np.random.default_rng(10 * k + i).integers(0, 255, (5, 20, 20, 3), dtype=np.uint8)
            np.save(root / name / f"clip{i}.npy", arr)
    return root


def test_clip_folder_task(tmp_path, monkeypatch):
    monkeypatch.setenv("BTLAB_DATA_ROOT", str(tmp_path))
    _clip_folder(tmp_path / "clips")
    at = open_page("training")
    assert "train_folder" not in [t.key for t in at.text_input]  # no free path: only the data root's datasets
    assert at.selectbox(key="train_dataset").options == ["Synthetic motions (built in)", "clips"]
    at.selectbox(key="train_dataset").set_value("clips").run()
    assert any("3 class folders" in c.value for c in at.caption)
    at = _small(at, kinds=["BT"])
    at.button(key="train_start").click().run()
    job = at.session_state["train_job"]
    assert _join(job) and job.status == "done", job.error
    assert "9 training / 3 validation clips, 3 classes" == job.info.data
    at.run()
    assert not at.exception


def test_datasets_outside_the_data_root_are_not_offered(tmp_path, monkeypatch):
    root = tmp_path / "data"
    _clip_folder(root / "inside")
    outside = _clip_folder(tmp_path / "secret")
    (root / "escape").symlink_to(outside)  # a symlink out of the root
    (root / "one_class" / "clap").mkdir(parents=True)  # not a dataset: a single class
    monkeypatch.setenv("BTLAB_DATA_ROOT", str(root))
    at = open_page("training")
    assert not at.exception
    assert at.selectbox(key="train_dataset").options == ["Synthetic motions (built in)", "inside"]


def test_empty_data_root_offers_the_synthetic_task(tmp_path, monkeypatch):
    monkeypatch.setenv("BTLAB_DATA_ROOT", str(tmp_path / "none_yet"))
    at = open_page("training")
    assert not at.exception
    assert at.selectbox(key="train_dataset").options == ["Synthetic motions (built in)"]
    assert any("No clip folders in the data root" in c.value and "BTLAB_DATA_ROOT" in c.value for c in at.caption)


def test_unreadable_clip_folder_is_an_error_not_a_traceback(tmp_path, monkeypatch):
    import pathlib

    root = tmp_path / "locked"
    (root / "clap").mkdir(parents=True)
    monkeypatch.setenv("BTLAB_DATA_ROOT", str(root))

    def denied(self):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(pathlib.Path, "iterdir", denied)
    at = open_page("training")
    assert not at.exception
    assert any("Cannot read the clip folder" in e.value and "Permission denied" in e.value for e in at.error)


def test_paper_architectures_at_reduced_frame_size():
    at = _small(open_page("training"))
    at.selectbox(key="train_paper_frame").set_value("3x16x16 (768 inputs)")
    at.button(key="train_paper_start").click().run()
    assert not at.exception
    job = at.session_state["train_job"]
    assert _join(job) and job.status == "done", job.error
    starts = [e for e in job.events if e["event"] == "start"]
    assert [e["run"] for e in starts] == ["LSTM", "TT-LSTM (ranks 4)", "BT-LSTM (R=4, N=2)"]
    for e in starts:
        model = e["config"]["model"]
        assert tuple(model["hidden_modes"]) == (4, 4, 4, 4) and model["dropout"] == 0.25
    assert [e["input_map_params"] for e in starts][0] == 768 * 1024


def test_estimate_snippet_and_x_axis_selector():
    at = _small(open_page("training"))
    assert not at.exception
    # the estimate's span is one number or a range, by how far the timed steps spread on this machine now
    assert any(re.match(r"Estimated: (about \*\*[\d,]+ s\*\*|\*\*under 1 s\*\*|\*\*[\d,]+-[\d,]+ s\*\*) for all runs",
                        c.value) for c in at.caption)
    assert any("python -m btcore.train" in c.value and "--model dense,tt,bt" in c.value for c in at.code)
    at.button(key="train_start").click().run()
    job = at.session_state["train_job"]
    assert _join(job, 180)
    at.radio(key="train_x_axis").set_value("run_s").run()
    assert not at.exception
    loss = next(s for s in plotly_specs(at) if s["layout"]["title"]["text"] == "Loss")
    assert loss["layout"]["xaxis"]["title"]["text"] == "seconds of the model's own training"
    assert any("Measured examples/s" in c.value and "/learn#steps" in c.value for c in at.caption)


def test_a_one_epoch_run_is_too_short_to_judge_never_stalled():
    # 2 steps and one evaluation on 32 clips: whatever the accuracy, the page does not say the model learns nothing
    at = _small(open_page("training"), epochs=1)
    at.button(key="train_start").click().run()
    job = at.session_state["train_job"]
    assert _join(job) and job.status == "done", job.error
    at.run()
    assert not at.exception
    ends = [e for e in job.events if e.get("event") == "end"]
    assert {e["status"] for e in ends} == {"done"} and all(e["stop_check"] is None for e in ends)
    table = at.dataframe[1].value
    assert "stalled" not in set(table["status"]) and (table["step"] == 2).all()  # all its steps: 64 clips / 32
    alerts = [a.value for a in list(at.warning) + list(at.error) + list(at.info)]
    assert not any("learns nothing" in a or "stalled" in a for a in alerts)
    short = [e for e in ends if e["verdict"] == "too short"]
    assert short  # 2 steps do not reach 40.3 %, the bar of 32 clips at chance 25 %
    for e in short:  # its note names a control the page has ("Epochs")
        shown = next(a for a in at.info if e["run"] in a.value)
        assert "too short to judge" in shown.value and "too few evaluations" in shown.value
        assert "more epochs" in shown.value and "Epochs" in [n.label for n in at.number_input]
    assert all(e["verdict"] in ("learnt", "too short") for e in ends)  # one evaluation: never "at chance"


def test_diverged_run_is_shown_plainly():
    at = _small(open_page("training"), kinds=["TT"], epochs=4)  # a stall is judged at half of the epochs
    at.selectbox(key="train_optimizer").set_value("sgd").run()
    at.number_input(key="train_lr").set_value(1.0).run()
    at.number_input(key="train_clip").set_value(0.0).run()
    at.button(key="train_start").click().run()
    job = at.session_state["train_job"]
    assert _join(job, 120)
    at.run()
    assert not at.exception
    ends = [e for e in job.snapshot()["events"] if e.get("event") == "end"]
    assert ends[0]["status"] in ("diverged", "stalled")
    shown = [e.value for e in (at.error if ends[0]["status"] == "diverged" else at.warning)]
    assert any(ends[0]["status"] in v and "learning rate" in v for v in shown)


# -- state that outlives widgets, links, the lesson view -------------------------------------------

#: Widget key -> a value other than the default, for every input drawn before a run.
EDITS = {"train_frame": "3x16x16 (768 inputs)", "train_frames": 5, "train_classes": 3, "train_train_size": 256,
         "train_val_size": 48, "train_noise": 0.2, "train_kinds": ["TT", "BT"], "train_cell": "gru",
         "train_hidden": 16, "train_d": 3, "train_blocks": 3, "train_bt_rank": "2", "train_tt_ranks": "3",
         "train_dropout": 0.1, "train_optimizer": "sgd", "train_lr": 0.05, "train_batch": 16, "train_epochs": 4,
         "train_clip": 2.5, "train_seed": 7, "train_paper_frame": "3x16x16 (768 inputs)",
         "train_sweep_ranks": "2,3", "train_sweep_blocks": "1"}


def _widget(at, key):
    for kind in ("selectbox", "slider", "number_input", "multiselect", "radio", "select_slider", "text_input"):
        found = [w for w in getattr(at, kind) if w.key == key]
        if found:
            return found[0]
    raise KeyError(key)


def _edit_all(at):
    for key, value in EDITS.items():
        _widget(at, key).set_value(value).run()
        assert not at.exception, key
    return at


def _values(at):
    return {key: _widget(at, key).value for key in EDITS}


def test_every_input_survives_a_switch_to_shapes_and_back():
    at = _edit_all(open_page("training"))
    assert _values(at) == EDITS
    at.switch_page(str(ROOT / "pages" / "shapes.py")).run()
    at.switch_page(str(ROOT / "pages" / "training.py")).run()
    assert not at.exception
    assert _values(at) == EDITS
    assert at.dataframe[0].value["model"].tolist() == ["TT-GRU (ranks 3)", "BT-GRU (R=2, N=3)"]


def test_results_stay_tied_to_the_inputs_that_made_them():
    at = _small(open_page("training"), kinds=["TT"])
    at.number_input(key="train_seed").set_value(7).run()
    at.button(key="train_start").click().run()
    job = at.session_state["train_job"]
    assert _join(job)
    at.switch_page(str(ROOT / "pages" / "shapes.py")).run()
    at.switch_page(str(ROOT / "pages" / "training.py")).run()
    assert at.number_input(key="train_seed").value == 7 and at.number_input(key="train_epochs").value == 2
    assert not any("changed since" in i.value for i in at.info)  # the shown run is of these inputs
    at.radio(key="train_x_axis").set_value("examples").run()  # a view choice: the run is still of these inputs
    assert not any("changed since" in i.value for i in at.info)
    at.number_input(key="train_epochs").set_value(3).run()
    note = next(i.value for i in at.info if "changed since" in i.value)
    assert "epochs: 2 -> 3" in note and "seed" not in note
    assert at.dataframe[1].value["run"].tolist() == ["TT-LSTM (ranks 4)"]  # still the run that was made


def test_a_link_opens_the_same_state_in_a_fresh_session():
    from streamlit.testing.v1 import AppTest

    at = _edit_all(open_page("training"))
    query = dict(at.query_params)
    assert query["t_epochs"] == "4" and query["t_clips"] == "256" and query["t_seed"] == "7"
    assert query["t_frame"] == "3x16x16" and query["t_models"] == "TT,BT" and query["in"] == "8x20x20x18"
    fresh = AppTest.from_file(str(ROOT / "app" / "main.py"), default_timeout=120)
    fresh.query_params.update(query)
    fresh.switch_page(str(ROOT / "pages" / "training.py")).run()
    assert not fresh.exception and not [w for w in fresh.warning if "was not used" in w.value]
    assert _values(fresh) == EDITS
    assert fresh.dataframe[0].value.equals(at.dataframe[0].value)
    assert any("?" in c.value and "t_epochs=4" in c.value for c in fresh.code)  # the "Copy link" box


@pytest.mark.parametrize("query, field, kept", [
    ({"t_epochs": "-3"}, "t_epochs", ("train_epochs", 8)),
    ({"t_lr": "fast"}, "t_lr", ("train_lr", 0.003)),
    ({"t_opt": "adamax"}, "t_opt", ("train_optimizer", "adam")),
    ({"t_clips": "1000000000"}, "t_clips", ("train_train_size", 1024)),
    ({"t_frame": "3x999x999"}, "t_frame", ("train_frame", "3x32x32 (3,072 inputs)")),
    ({"t_models": "Dense,LSTM9"}, "t_models", ("train_kinds", ["Dense", "TT", "BT"])),
    ({"t_hidden": "65"}, "t_hidden", ("train_hidden", 64)),
    ({"t_lr": "nan", "t_seed": "1e400"}, "t_lr", ("train_seed", 0)),
    ({"t_x": "minutes"}, "t_x", None),
    ({"t_data": "../secret"}, "t_data", ("train_dataset", "Synthetic motions (built in)")),
])
def test_bad_query_values_warn_and_fall_back(query, field, kept):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app" / "main.py"), default_timeout=120)
    at.query_params.update(query)
    at.switch_page(str(ROOT / "pages" / "training.py")).run()
    assert not at.exception
    assert any(f"`{field}=" in w.value and "was not used" in w.value for w in at.warning), [w.value for w in at.warning]
    if kept:
        assert _widget(at, kept[0]).value == kept[1]
    assert at.dataframe[0].value.shape[0] >= 1  # the page still works


def test_text_in_a_rank_from_a_link_is_kept_and_explained():
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app" / "main.py"), default_timeout=120)
    at.query_params.update({"t_rank": "four"})
    at.switch_page(str(ROOT / "pages" / "training.py")).run()
    assert not at.exception
    assert at.text_input(key="train_bt_rank").value == "four"
    assert any("BT rank" in e.value for e in at.error)


def test_lesson_view_hides_the_advanced_controls():
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app" / "main.py"), default_timeout=120)
    at.query_params.update({"lesson": "1", "t_epochs": "2"})
    at.switch_page(str(ROOT / "pages" / "training.py")).run()
    assert not at.exception
    keys = {w.key for kind in ("selectbox", "number_input", "text_input", "button") for w in getattr(at, kind)}
    assert {"train_optimizer", "train_lr", "train_clip", "train_seed", "train_sweep_ranks", "train_sweep_blocks",
            "train_sweep_start"}.isdisjoint(keys)
    assert {"train_start", "train_epochs", "train_batch", "train_bt_rank"} <= keys
    assert not any("python -m btcore.train" in c.value for c in at.code)  # no CLI command
    assert at.query_params["lesson"] == "1" and at.number_input(key="train_epochs").value == 2
    plain = open_page("training")
    assert {"train_optimizer", "train_sweep_start"} <= {w.key for w in plain.selectbox} | {b.key for b in plain.button}


def _no_missing_text(at):
    for df in at.dataframe:
        cells = df.value.astype(str).to_numpy().ravel().tolist()
        assert not {"None", "nan", "NaN", "<NA>"} & set(cells), df.value


def test_no_table_shows_none_or_nan():
    at = _small(open_page("training"), epochs=1)
    at.text_input(key="train_sweep_ranks").set_value("2").run()
    at.text_input(key="train_sweep_blocks").set_value("1,2").run()
    at.button(key="train_sweep_start").click().run()
    job = at.session_state["train_job"]
    _no_missing_text(at)  # while waiting: rows without numbers yet
    assert _join(job) and job.status == "done", job.error
    at.run()
    assert not at.exception
    _no_missing_text(at)
    sweep = next(df.value for df in at.dataframe if "R" in df.value.columns)
    by_run = sweep.set_index("run")
    assert by_run.loc["LSTM", "R"] == "—" and by_run.loc["TT-LSTM (ranks 4)", "N"] == "—"
    assert by_run.loc["BT-LSTM (R=2, N=2)", "N"] == "2"
    early = [e for e in job.events if e.get("event") == "end" and e["status"] in ("stalled", "diverged")]
    if len(early) > 3:  # a sweep's early stops: one line per status, the reasons in an expander
        lines = [a.value for a in list(at.warning) + list(at.error) if " runs stalled" in a.value
                 or " runs diverged" in a.value]
        assert sum(int(line.split(" runs ")[0]) for line in lines) == len(early)
        assert any(x.label == "Why each run stopped early" for x in at.expander)
