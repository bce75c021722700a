"""The Training page with other tasks than action: the task picker, a generation-like and a captioning-like
task registered for the test (the page reads tasks only through the registry), their previews drawn live.

The fake tasks are the action task on tiny clips with another name, metric and preview dict (the
exact dicts the generation and captioning tasks put on evaluation events), so the page code runs end to end.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pytest
import torch

import btcore.tasks as tasks
from btcore.tasks.action import ActionTask
from conftest import ROOT, open_page, plotly_specs


@dataclass(frozen=True)
class _Tiny(ActionTask):
    frame_shape: tuple = (1, 8, 8)
    frames: int = 4
    classes: int | None = 2
    train_size: int | None = 16
    val_size: int | None = 8

    def chance(self, train_data, val_data, model_config):
        return None

    def model_config(self, kind, **controls):
        tr_ranks = controls.pop("tr_ranks", None)  # the action classifier's builder has no TR control
        config = super().model_config(kind, **controls)
        return config if tr_ranks is None else replace(config, tr_ranks=tr_ranks)


@dataclass(frozen=True)
class FakeGeneration(_Tiny):
    name = "generation"
    metric = "val_nelbo"
    higher_is_better = False
    metric_label = "validation nELBO"

    def val_metrics(self, sums):
        out = super().val_metrics(sums)
        return {**out, "val_nelbo": 100.0 * out["val_loss"]}

    def preview(self, model, val_data, *, count=8, device="cpu"):
        level = float(torch.sigmoid(next(model.parameters()).detach().sum()))  # changes as the model trains
        digit = np.full((28, 28), level).tolist()
        return {"task": "generation", "kind": "images", "samples": np.full((168, 168), level).tolist(),
                "originals": [np.eye(28).tolist()] * 8, "reconstructions": [digit] * 8,
                "canvas": [np.full((28, 28), t / 4).tolist() for t in range(1, 5)], "size": 28, "grid": 6}


@dataclass(frozen=True)
class FakeCaptioning(_Tiny):
    name = "captioning"
    metric = "val_bleu"
    metric_label = "validation BLEU-4"

    def val_metrics(self, sums):
        out = super().val_metrics(sums)
        return {**out, "val_bleu": 100.0 * out["val_acc"], "val_exact": out["val_acc"], "val_token_acc": out["val_acc"]}

    def preview(self, model, val_data, *, count=6, device="cpu"):
        return {"task": "captioning", "kind": "captions",
                "examples": [{"index": i, "image": np.full((8, 8, 3), i / 6).tolist(), "truth": "a red square moves left",
                              "caption": "a blue square moves left", "correct": [True, False, True, True, True]}
                             for i in range(6)]}


@pytest.fixture
def fake_tasks(monkeypatch):
    monkeypatch.setitem(tasks.TASKS, "generation", FakeGeneration)
    monkeypatch.setitem(tasks.TASKS, "captioning", FakeCaptioning)


def _race(task: str, kinds=("Dense", "BT")):
    at = open_page("training")
    at.selectbox(key="train_task").set_value(task).run()
    assert not at.exception
    at.multiselect(key="train_kinds").set_value(list(kinds))
    at.select_slider(key="train_hidden").set_value(16)
    at.number_input(key="train_epochs").set_value(1).run()
    at.button(key="train_start").click().run()
    assert not at.exception
    # pressing Train scrolls the live area into view (once: the next run does not scroll again)
    assert [el.proto.srcdoc for el in at.get("iframe") if "scrollIntoView" in el.proto.srcdoc]
    job = at.session_state["train_job"]
    assert job.join(180) and job.status == "done", job.error
    at.run()
    assert not at.exception
    assert not [el for el in at.get("iframe") if "scrollIntoView" in el.proto.srcdoc]
    assert any(h.proto.anchor == "training-live" for h in at.get("subheader"))  # the scroll's target
    return at, job


def _images(at):
    return [im for el in at.get("image") for im in el.proto.imgs]


def test_the_picker_lists_the_registered_tasks(fake_tasks):
    at = open_page("training")
    assert at.selectbox(key="train_task").options == [
        "action (validation accuracy)", "generation (validation nELBO)", "captioning (validation BLEU-4)"]
    at.selectbox(key="train_task").set_value("generation").run()
    assert not at.exception
    assert "train_opt_generation_frames" in [n.key for n in at.number_input]  # the task's own options
    assert "train_dataset" not in [s.key for s in at.selectbox]  # the clip controls are action's
    assert any("--task generation" in c.value for c in at.code)


def test_a_generation_race_draws_sample_grids_reconstructions_and_canvas(fake_tasks):
    at, job = _race("generation")
    imgs = _images(at)
    captions = [im.caption for im in imgs]
    assert all(im.url.endswith(".png") for im in imgs)  # lossless: every pixel a sharp square
    # per model: its samples, its reconstructions, its canvas; the validation digits once
    for run in ("LSTM", "BT-LSTM (R=4, N=2)"):
        assert any(c.startswith(run) and "input-map parameters" in c for c in captions), captions
        assert f"{run}'s reconstructions" in captions and f"{run}: t = 1..4" in captions
    assert "the validation digits" in captions
    assert any(c.endswith("epoch 1") for c in captions)  # the preview of the latest evaluation
    assert not [e for e in job.snapshot()["events"] if "preview" in e]  # one per run in the job's info, not per eval
    assert set(job.info.previews) == {"LSTM", "BT-LSTM (R=4, N=2)"}
    metric = next(s for s in plotly_specs(at) if "nELBO" in s["layout"]["title"]["text"])
    assert "lower is better" in metric["layout"]["title"]["text"]
    assert {t["name"] for t in metric["data"]} >= {"LSTM validation", "BT-LSTM (R=4, N=2) validation"}
    assert "val nELBO" in at.dataframe[1].value.columns
    labels = [b.label for b in at.get("download_button")]
    assert "Samples of LSTM (PNG)" in labels and "Samples of BT-LSTM (R=4, N=2) (PNG)" in labels


def test_a_captioning_race_draws_the_caption_strip(fake_tasks):
    at, job = _race("captioning", kinds=("BT",))
    imgs = _images(at)
    assert [im.caption for im in imgs] == [f"#{i}" for i in range(6)]
    strips = [m.value for m in at.markdown if "true: a red square moves left" in m.value]
    assert len(strips) == 6
    assert all('color:#d62728;font-weight:700;text-decoration:underline">blue</span>' in s for s in strips)
    assert "Captions (JSON)" in [b.label for b in at.get("download_button")]


def test_task_and_tr_controls_round_trip_through_a_link(fake_tasks):
    from streamlit.testing.v1 import AppTest

    at = open_page("training")
    at.selectbox(key="train_task").set_value("generation").run()
    at.multiselect(key="train_kinds").set_value(["BT", "TR"]).run()
    at.text_input(key="train_tr_ranks").set_value("3").run()
    assert not at.exception
    query = dict(at.query_params)
    assert query["t_task"] == "generation" and query["t_models"] == "BT,TR" and query["t_tr"] == "3"
    fresh = AppTest.from_file(str(ROOT / "app" / "main.py"), default_timeout=120)
    fresh.query_params.update(query)
    fresh.switch_page(str(ROOT / "pages" / "training.py")).run()
    assert not fresh.exception and not [w for w in fresh.warning if "was not used" in w.value]
    assert fresh.selectbox(key="train_task").value == "generation"
    assert fresh.multiselect(key="train_kinds").value == ["BT", "TR"]
    assert fresh.text_input(key="train_tr_ranks").value == "3"
    assert list(fresh.dataframe[0].value["model"]) == ["BT-LSTM (R=4, N=2)", "TR-LSTM (ranks 3)"]
    cmd = next(c.value for c in fresh.code if "btcore.train" in c.value)
    assert "--task generation" in cmd and "--model bt,tr" in cmd and "--tr-ranks 3" in cmd


def test_tr_in_the_action_race_takes_its_ranks():
    at = open_page("training")
    at.multiselect(key="train_kinds").set_value(["TT", "TR"]).run()
    at.text_input(key="train_tr_ranks").set_value("2").run()
    assert not at.exception
    assert list(at.dataframe[0].value["model"]) == ["TT-LSTM (ranks 4)", "TR-LSTM (ranks 2)"]
    cmd = next(c.value for c in at.code if "btcore.train" in c.value)
    assert "--task action" in cmd and "--tr-ranks 2" in cmd and "--model tt,tr" in cmd


@pytest.mark.parametrize("task", ["generation", "captioning"])
def test_the_sizes_table_of_a_real_task_shows_each_models_memory_range(task):
    from app.training.tables import memory_text

    at = open_page("training")
    at.selectbox(key="train_task").set_value(task).run()
    assert not at.exception
    sizes = next(df.value for df in at.dataframe if "all parameters" in df.value.columns)
    real = tasks.make_task(task)
    batch, kinds = int(at.session_state["train_batch"]), list(sizes["model"])
    assert len(kinds) == 3  # the default race: dense, TT, BT
    expected = [memory_text(real.step_bytes(real.model_config(k, hidden=int(at.session_state["train_hidden"])),
                                            batch, "adam")) for k in ("dense", "tt", "bt")[:len(kinds)]]
    assert list(sizes["training memory (est.)"]) == expected
