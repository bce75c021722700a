"""AppTest of the Approximation page: the default fit joined, its table checked against relative_error,
charts, downloads, the cache, and bad inputs that show st.error while earlier results stay."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

import btcore
from app.state import CONFIG_KEY, LabConfig
from btcore import targets
from btcore.decompose import relative_error
from conftest import open_page, plotly_specs

DEFAULT_MODES = ((4, 4, 4, 4), (4, 4, 4, 4))


def _fit(at, timeout=120):
    at.button(key="approx_fit").click().run()
    assert not at.exception
    job = at.session_state["approx_job"]
    assert job.join(timeout) and job.status == "done", job.error
    return at.run()


def _errors(at) -> list[str]:
    return [e.value for e in at.error]


@pytest.fixture(scope="module")
def fitted():
    """The page after the default fit (shared by the tests that only read it)."""
    at = open_page("approximation")
    assert not at.exception
    assert at.selectbox(key="approx_shape").value.startswith("256 x 256")
    return _fit(at)


def test_default_fit_table_matches_relative_error(fitted):
    at = fitted
    assert not at.exception and not _errors(at)
    table = at.dataframe[0].value
    assert list(table["format"]) == ["BT", "TT", "Tucker", "CP"]
    W = targets.make_target("bt", *DEFAULT_MODES, 0, noise=0.01)
    res = at.session_state["approx_shown"]
    for _, row in table.iterrows():
        M, info = res["fits"][row["format"]]
        assert M.num_params == row["parameters"]
        assert row["relative error"] == pytest.approx(relative_error(W, M), rel=1e-9)
        assert row["compression"] == pytest.approx(W.size / row["parameters"])
    err = dict(zip(table["format"], table["relative error"]))
    # the default target is an exact BT matrix + 1% noise: BT reaches the noise floor, TT does not
    assert err["BT"] < 0.02 and err["TT"] > 5 * err["BT"]


def test_default_fit_charts_text_and_downloads(fitted):
    at = fitted
    specs = plotly_specs(at)
    titles = [s["layout"].get("title", {}).get("text") for s in specs]
    assert "Error vs parameters" in titles and "ALS convergence" in titles
    assert any(t and t.startswith("Residual") for t in titles)
    pareto = specs[titles.index("Error vs parameters")]
    assert pareto["layout"]["xaxis"]["type"] == "log" and pareto["layout"]["yaxis"]["type"] == "log"
    names = {t.get("name") for t in pareto["data"]}
    assert {"BT", "TT", "Tucker", "CP", "Pareto front"} <= names
    bt = next(t for t in pareto["data"] if t.get("name") == "BT")
    assert len(bt["x"]) == 5  # five sweep budgets
    heat = next(s for s in specs if s["layout"].get("title", {}).get("text") is None)
    assert sum(t["type"] == "heatmap" for t in heat["data"]) == 5  # target + 4 reconstructions
    text = " ".join(m.value for m in at.markdown)
    assert "lowest error is **BT**" in text and "Why BT wins here" in text
    labels = [b.label for b in at.get("download_button")]
    assert labels == ["Results (CSV)", "Fitted factors (.pt)"]
    res = at.session_state["approx_shown"]
    saved = torch.load(io.BytesIO(res["pt"]), weights_only=True)
    W = targets.make_target("bt", *DEFAULT_MODES, 0, noise=0.01)
    M = btcore.BTMatrix(saved["BT"]["factors"], saved["BT"]["core"])
    assert relative_error(W, M) == pytest.approx(saved["BT"]["relative_error"], rel=1e-6)
    T = btcore.TTMatrix(saved["TT"]["cores"])
    assert relative_error(W, T) == pytest.approx(saved["TT"]["relative_error"], rel=1e-6)


def test_same_configuration_comes_from_the_cache(fitted):
    at = fitted
    job = at.session_state["approx_job"]
    at.button(key="approx_fit").click().run()
    assert not at.exception
    assert at.session_state["approx_job"] is job  # nothing refitted
    assert any("from the cache" in c.value for c in at.caption)
    assert len(at.dataframe) == 1


def test_bad_modes_show_an_error_and_keep_results(fitted):
    at = fitted
    at.text_input(key="approx_in_modes").set_value("4x4x4").run()
    assert not at.exception
    assert any("same order" in e for e in _errors(at))
    assert at.button(key="approx_fit").disabled
    assert list(at.dataframe[0].value["format"]) == ["BT", "TT", "Tucker", "CP"]  # earlier results stay
    at.text_input(key="approx_in_modes").set_value("4x4x4x5").run()
    assert not _errors(at)
    assert any("inputs changed" in i.value for i in at.info)
    at.text_input(key="approx_in_modes").set_value("4x4x4x4").run()


def test_too_large_matrix_is_refused_before_allocating():
    at = open_page("approximation")
    at.text_input(key="approx_in_modes").set_value("8x20x20x18").run()
    at.text_input(key="approx_out_modes").set_value("16x4x4x4").run()
    assert not at.exception
    assert any("above this page's limit" in e for e in _errors(at))
    assert at.session_state["approx_shape"] == "Custom"


def test_ranks_too_large_and_no_compression_are_errors():
    at = open_page("approximation")
    at.radio(key="approx_mode").set_value("explicit ranks").run()
    at.text_input(key="approx_bt_rank").set_value("17").run()
    assert not at.exception
    assert any("BT:" in e and "mode size" in e for e in _errors(at))
    at.text_input(key="approx_bt_rank").set_value("16").run()
    assert any("too large to compress" in e for e in _errors(at))


def test_explicit_ranks_fit_without_sweep():
    at = open_page("approximation")
    at.selectbox(key="approx_target").set_value("tt").run()
    at.radio(key="approx_mode").set_value("explicit ranks").run()
    at.text_input(key="approx_bt_rank").set_value("3").run()
    at.number_input(key="approx_blocks").set_value(2).run()
    at.text_input(key="approx_tt_ranks").set_value("4").run()
    at.slider(key="approx_sweep").set_value(0).run()
    at = _fit(at)
    assert not _errors(at)
    table = at.dataframe[0].value
    err = dict(zip(table["format"], table["relative error"]))
    assert err["TT"] < 0.02 and err["Tucker"] > 5 * err["TT"]  # TT-structured target: TT wins
    assert table.set_index("format").loc["TT", "ranks"] == "1,4,4,4,1"
    assert not any(s["layout"].get("title", {}).get("text") == "Error vs parameters" for s in plotly_specs(at))
    assert any("Sweep off" in i.value for i in at.info)


def test_broken_and_mismatched_uploads():
    at = open_page("approximation")
    at.selectbox(key="approx_target").set_value("upload").run()
    assert not at.exception and not _errors(at)
    assert at.button(key="approx_fit").disabled
    at.file_uploader(key="approx_upload").upload("w.npy", b"not a numpy file").run()
    assert not at.exception
    # (btcore.targets calls any non-.npy bytes "pickled": np.load falls back to pickle on unknown magic)
    assert any("w.npy" in e and ("not a valid .npy" in e or "pickled" in e) for e in _errors(at))
    at.file_uploader(key="approx_upload").upload("w.pt", b"\x00garbage").run()
    assert not at.exception
    assert any("w.pt" in e and "cannot be loaded" in e for e in _errors(at))
    buf = io.BytesIO()
    np.save(buf, np.random.default_rng(0).standard_normal((48, 36)))
    at.file_uploader(key="approx_upload").upload("m.npy", buf.getvalue()).run()
    assert any("48 x 36" in e and "256 x 256" in e for e in _errors(at))
    at.button(key="approx_fix_modes").click().run()
    assert not at.exception and not _errors(at)
    im = tuple(int(x) for x in at.text_input(key="approx_in_modes").value.split("x"))
    om = tuple(int(x) for x in at.text_input(key="approx_out_modes").value.split("x"))
    assert np.prod(im) == 48 and np.prod(om) == 36 and len(im) == len(om)


def test_shapes_page_modes_are_used_when_small():
    cfg = LabConfig((4, 8, 8, 4), (4, 8, 8, 4), 3, 2, 4)
    at = open_page("approximation", state={CONFIG_KEY: cfg})
    assert at.selectbox(key="approx_shape").value == "Shapes page's modes"
    assert at.text_input(key="approx_in_modes").value == "4x8x8x4"
    assert at.session_state["approx_bt_rank"] == "3"  # shown in the "explicit ranks" mode
    big = open_page("approximation", state={CONFIG_KEY: LabConfig()})
    assert big.text_input(key="approx_in_modes").value == "4x4x4x4"
    assert any("too large to fit here" in c.value for c in big.caption)


class _FakeJob:
    running = False

    def __init__(self, result):
        self.result = result


class _FakeRun:
    def __init__(self, name, model, config):
        self.name, self.model, self.config = name, model, config


def test_trained_weights_offered_only_when_available():
    at = open_page("approximation")
    assert "trained" not in at.selectbox(key="approx_target").options
    mc = btcore.ClassifierConfig(kind="dense", cell="lstm", in_modes=(4, 4, 3), hidden_modes=(2, 2, 2), classes=3)
    model = btcore.SequenceClassifier(mc)
    run = _FakeRun("LSTM", model, type("C", (), {"model": mc})())
    at = open_page("approximation", state={"train_job": _FakeJob([run])})
    options = at.selectbox(key="approx_target").options
    assert "Trained model: input-to-hidden weights" in options
    at.selectbox(key="approx_target").set_value("trained").run()
    assert not at.exception
    assert at.text_input(key="approx_in_modes").value == "4x4x3"
    assert at.text_input(key="approx_out_modes").value == "8x2x2"  # 4 gates folded into the first mode
    assert not _errors(at)


def test_fit_that_would_not_fit_in_memory(monkeypatch):
    import btcore.tensors

    monkeypatch.setattr(btcore.tensors, "available_memory", lambda device=None: 2 * 1024**2)
    at = open_page("approximation")
    assert not at.exception
    assert any("more than 50%" in e and "choose smaller modes" in e for e in _errors(at))
    assert at.button(key="approx_fit").disabled


def test_stop_keeps_partial_results_out_of_the_cache():
    at = open_page("approximation")
    at.selectbox(key="approx_shape").set_value("1,024 x 1,024 (4x8x8x4 -> 4x8x8x4)").run()
    at.button(key="approx_fit").click().run()
    job = at.session_state["approx_job"]
    assert at.get("progress")  # feedback while the worker runs
    assert not at.button(key="approx_stop").disabled
    at.button(key="approx_stop").click().run()
    assert job.join(60) and job.status == "stopped"
    at.run()
    assert not at.exception
    assert (any("Stopped: partial results" in w.value for w in at.warning)
            or any("Stopped before any fit finished" in i.value for i in at.info))
    assert len(at.session_state["approx_cache"]) == 0


def test_failed_fits_and_failed_jobs_are_errors(monkeypatch):
    from btcore import decompose

    def no_memory(*args, **kwargs):
        raise ValueError("fitting BT needs 9.0 GiB, more than 50% of the 1.0 GiB free on cpu; use fewer blocks")

    monkeypatch.setattr(decompose, "fit_bt", no_memory)
    at = open_page("approximation")
    at.slider(key="approx_sweep").set_value(0).run()
    at = _fit(at)
    assert not at.exception
    assert sum("A fit failed" in e and "9.0 GiB" in e for e in _errors(at)) == 4  # 2 BT candidates, Tucker, CP
    assert list(at.dataframe[0].value["format"]) == ["TT"]  # what did fit is still shown

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(targets, "make_target", broken)
    at.selectbox(key="approx_target").set_value("kernel").run()
    at.button(key="approx_fit").click().run()
    job = at.session_state["approx_job"]
    assert job.join(60) and job.status == "failed"
    at.run()
    assert not at.exception
    assert any("The fit failed" in e and "boom" in e for e in _errors(at))
    assert list(at.dataframe[0].value["format"]) == ["TT"]  # earlier results stay
