"""AppTest of the Approximation page: the default fit joined, its table checked against relative_error,
charts, downloads, the cache, and bad inputs that show st.error while earlier results stay."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

import btcore
from app.config import CONFIG_KEY, LabConfig
from btcore import target_matrices
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
    assert list(table["format"]) == ["BT", "TT", "Tucker", "CP", "TR"]
    W = target_matrices.make_target("bt", *DEFAULT_MODES, 0, noise=0.01)
    res = at.session_state["approx_shown"]
    for _, row in table.iterrows():
        M, info = res.fits[row["format"]]
        assert M.num_params == row["parameters"]
        assert row["relative error"] == pytest.approx(relative_error(W, M), rel=1e-9)
        assert row["compression"] == f"{W.size / row['parameters']:,.1f}x"  # one format everywhere: "17,554.3x"
    err = dict(zip(table["format"], table["relative error"]))
    # the default target is an exact BT matrix + 1% noise: BT reaches the noise floor, TT does not
    assert err["BT"] < 0.02 and err["TT"] > 5 * err["BT"]


def test_default_fit_charts_text_and_downloads(fitted):
    at = fitted
    specs = plotly_specs(at)
    titles = [s["layout"].get("title", {}).get("text") for s in specs]
    assert "Error vs parameters" in titles and ("ALS convergence" in titles or "Convergence" in titles)  # "Convergence" when a fit left a swamp by Gauss-Newton
    assert any(t and t.startswith("Residual") for t in titles)
    pareto = specs[titles.index("Error vs parameters")]
    assert pareto["layout"]["xaxis"]["type"] == "log" and pareto["layout"]["yaxis"]["type"] == "log"
    names = {t.get("name") for t in pareto["data"]}
    assert {"BT", "TT", "Tucker", "CP", "TR", "Pareto front"} <= names
    bt = next(t for t in pareto["data"] if t.get("name") == "BT")
    assert len(bt["x"]) == 5  # five sweep budgets
    heat = next(s for s in specs if s["layout"].get("title", {}).get("text") is None)
    assert sum(t["type"] == "heatmap" for t in heat["data"]) == 6  # target + 5 reconstructions
    text = " ".join(m.value for m in at.markdown)
    assert "lowest error is **BT**" in text
    assert "plus noise of relative size 0.01" in text and "BT wins here, as expected" in text
    labels = [b.label for b in at.get("download_button")]
    assert labels == ["Results (CSV)", "Fitted factors (.pt)"]
    res = at.session_state["approx_shown"]
    saved = torch.load(io.BytesIO(res.pt), weights_only=True)
    W = target_matrices.make_target("bt", *DEFAULT_MODES, 0, noise=0.01)
    M = btcore.BTMatrix(saved["BT"]["factors"], saved["BT"]["core"])
    assert relative_error(W, M) == pytest.approx(saved["BT"]["relative_error"], rel=1e-6)
    T = btcore.TTMatrix(saved["TT"]["cores"])
    assert relative_error(W, T) == pytest.approx(saved["TT"]["relative_error"], rel=1e-6)
    ring = btcore.TRMatrix(saved["TR"]["cores"])
    assert relative_error(W, ring) == pytest.approx(saved["TR"]["relative_error"], rel=1e-6)


def test_same_configuration_comes_from_the_cache(fitted):
    at = fitted
    job = at.session_state["approx_job"]
    at.button(key="approx_fit").click().run()
    assert not at.exception
    assert at.session_state["approx_job"] is job  # nothing refitted
    assert any("from the cache" in c.value for c in at.caption)
    assert len(at.dataframe) == 1


def test_fits_are_cached_by_the_page_and_reused(fitted):
    """The worker gets a copy of the fit cache and returns its new fits; the page merges them, and a run
    that needs only known fits reuses the very same objects. The worker leaves torch's threads alone."""
    at = fitted
    cache = at.session_state["approx_fit_cache"]
    res = at.session_state["approx_shown"]
    assert not res.new_fits  # merged into the cache, not kept with the run
    n_tasks = len({t[:3] for t in res.key[4]})  # the run's (format, ranks, blocks, role) tasks
    assert len(cache) == n_tasks  # every distinct fit of the default run, once
    by_obj = {id(v[0]): k for k, v in cache.items()}
    assert all(id(M) in by_obj for M, _ in res.fits.values())
    assert "approx_threads" not in [w.key for w in at.number_input]
    threads = torch.get_num_threads()
    job = at.session_state["approx_job"]
    at.slider(key="approx_sweep").set_value(3).run()  # budgets 250, 1000, 4000: all fitted already
    at = _fit(at)
    assert at.session_state["approx_job"] is not job
    assert torch.get_num_threads() == threads
    again = at.session_state["approx_shown"]
    assert again is not res and len(again.sweep) == 3 * 5
    assert at.session_state["approx_fit_cache"] is cache and len(cache) == n_tasks  # nothing new to fit
    for fmt, (M, _) in again.fits.items():
        assert M is res.fits[fmt][0]  # the cached fit itself
    at.slider(key="approx_sweep").set_value(5).run()


def test_bad_modes_show_an_error_and_keep_results(fitted):
    at = fitted
    at.text_input(key="approx_in_modes").set_value("4x4x4").run()
    assert not at.exception
    assert any("same order" in e for e in _errors(at))
    assert at.button(key="approx_fit").disabled
    assert list(at.dataframe[0].value["format"]) == ["BT", "TT", "Tucker", "CP", "TR"]  # earlier results stay
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
    assert table.set_index("format").loc["TT", "ranks"] == "ranks 1-4-4-4-1"  # btcore.formats.describe
    assert table.set_index("format").loc["BT", "ranks"] == "R=3, N=2"
    assert not any(s["layout"].get("title", {}).get("text") == "Error vs parameters" for s in plotly_specs(at))
    assert any("Sweep off" in i.value for i in at.info)


def test_teaching_text_follows_the_noise_and_the_measured_winner():
    at = open_page("approximation")
    at.select_slider(key="approx_noise").set_value(0.3).run()
    at.slider(key="approx_sweep").set_value(0).run()
    at = _fit(at)
    assert not _errors(at)
    text = " ".join(m.value for m in at.markdown)
    assert "plus noise of relative size 0.3" in text and "1%" not in text and "0.01" not in text
    table = at.dataframe[0].value.sort_values("relative error")
    best, bt = table.iloc[0], table.set_index("format").loc["BT"]
    if best["format"] == "BT":
        assert "BT wins here, as expected" in text
    elif bt["relative error"] <= 1.05 * best["relative error"]:
        assert "BT ties for the lowest error, as expected" in text
    else:
        assert f"{best['format']} beats BT here" in text and "as expected" not in text


def test_broken_and_mismatched_uploads():
    at = open_page("approximation")
    at.selectbox(key="approx_target").set_value("upload").run()
    assert not at.exception and not _errors(at)
    assert at.button(key="approx_fit").disabled
    at.file_uploader(key="approx_upload").upload("w.npy", b"not a numpy file").run()
    assert not at.exception
    assert any("w.npy is not a .npy file" in e and "np.save" in e for e in _errors(at))
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


def _training_job(monkeypatch, runs):
    """A finished job of the Training page holding ``runs``, found where that page keeps it: the
    session's job registry under its JOB_KEY ("training")."""
    import app.jobs

    job = app.jobs.Job(lambda _job: runs, name="training").start()
    assert job.join(10)
    registry_get = app.jobs.get_job
    monkeypatch.setattr(app.jobs, "get_job", lambda key: job if key == "training" else registry_get(key))
    return job


class _Run:
    def __init__(self, name, mc):
        self.name, self.model = name, btcore.SequenceClassifier(mc)
        self.config = type("C", (), {"model": mc})()


def test_trained_weights_offered_only_when_available(monkeypatch):
    mc = btcore.ClassifierConfig(kind="dense", cell="lstm", in_modes=(4, 4, 3), hidden_modes=(2, 2, 2), classes=3)
    run = _Run("LSTM", mc)
    # a job only in session_state (not the Training page's registry) is not read
    at = open_page("approximation", state={"train_job": type("J", (), {"running": False, "result": [run]})()})
    assert "trained" not in at.selectbox(key="approx_target").options
    _training_job(monkeypatch, [run])
    at = open_page("approximation")
    options = at.selectbox(key="approx_target").options
    assert "Trained model: input-to-hidden weights" in options
    at.selectbox(key="approx_target").set_value("trained").run()
    assert not at.exception
    assert at.text_input(key="approx_in_modes").value == "4x4x3"
    assert at.text_input(key="approx_out_modes").value == "8x2x2"  # 4 gates folded into the first mode
    assert not _errors(at)
    at.slider(key="approx_sweep").set_value(0).run()
    at = _fit(at)
    assert not _errors(at)
    W = run.model.rnn.cell.input_map.weight.detach().T.double().numpy()  # the model's (48 x 32) input map
    res = at.session_state["approx_shown"]
    assert res.shape == (48, 32)
    for _, row in at.dataframe[0].value.iterrows():
        assert row["relative error"] == pytest.approx(relative_error(W, res.fits[row["format"]][0]), rel=1e-9)


def test_trained_model_too_large_is_listed_without_forming_its_matrix(monkeypatch):
    small = _Run("LSTM", btcore.ClassifierConfig(kind="dense", cell="lstm", in_modes=(4, 4, 3),
                                                 hidden_modes=(2, 2, 2), classes=3))
    big = _Run("BT-LSTM", btcore.ClassifierConfig(kind="bt", cell="lstm", in_modes=(8, 20, 20, 18),
                                                  hidden_modes=(4, 4, 4, 4), classes=3))
    formed = []
    imap = big.model.rnn.cell.input_map
    weight_matrix = imap.weight_matrix
    imap.weight_matrix = lambda: formed.append(1) or weight_matrix()
    _training_job(monkeypatch, [small, big])
    at = open_page("approximation")
    at.selectbox(key="approx_target").set_value("trained").run()
    assert at.selectbox(key="approx_trained").options == ["LSTM", "BT-LSTM"]
    assert not formed  # listing reads the configurations only
    at.selectbox(key="approx_trained").set_value("BT-LSTM").run()
    assert not at.exception
    assert at.text_input(key="approx_in_modes").value == "8x20x20x18"
    assert any("57,600 x 1,024" in e and "above this page's limit" in e for e in _errors(at))
    assert at.button(key="approx_fit").disabled
    assert not formed  # too large: never formed


def test_fit_that_would_not_fit_in_memory(monkeypatch):
    import btcore.memory

    monkeypatch.setattr(btcore.memory, "available_memory", lambda device=None: 2 * 1024**2)
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
    from btcore.decompose import budget

    def no_memory(*args, **kwargs):
        raise ValueError("fitting BT needs 9.0 GiB, more than 50% of the 1.0 GiB free on cpu; use fewer blocks")

    for name in ("fit_bt", "fit_tucker", "fit_cp"):  # what fit_task calls
        monkeypatch.setattr(budget, name, no_memory)
    at = open_page("approximation")
    at.slider(key="approx_sweep").set_value(0).run()
    at = _fit(at)
    assert not at.exception
    assert sum("A fit failed" in e and "9.0 GiB" in e for e in _errors(at)) == 4  # 2 BT candidates, Tucker, CP
    assert list(at.dataframe[0].value["format"]) == ["TT", "TR"]  # what did fit is still shown

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(target_matrices, "make_target", broken)
    at.selectbox(key="approx_target").set_value("kernel").run()
    at.button(key="approx_fit").click().run()
    job = at.session_state["approx_job"]
    assert job.join(60) and job.status == "failed"
    at.run()
    assert not at.exception
    assert any("The fit failed" in e and "boom" in e for e in _errors(at))
    assert list(at.dataframe[0].value["format"]) == ["TT", "TR"]  # earlier results stay


# -- page state: store, page switch, links, lesson view ---------------------------------------------
def test_explicit_tr_ranks_fit_as_fit_task_does_and_travel_in_a_link():
    from streamlit.testing.v1 import AppTest

    from app.approximation import plan
    from btcore import decompose as dec
    from conftest import ROOT

    at = open_page("approximation")
    at.radio(key="approx_mode").set_value("explicit ranks").run()
    at.multiselect(key="approx_formats").set_value(["BT", "TR"]).run()
    at.text_input(key="approx_tr_ranks").set_value("2,3,3,2").run()
    at.slider(key="approx_sweep").set_value(0).run()
    assert at.query_params["tr_r"] == "2,3,3,2"
    at = _fit(at)
    assert not _errors(at)
    table = at.dataframe[0].value.set_index("format")
    assert list(table.index) == ["BT", "TR"] and table.loc["TR", "ranks"] == "ring ranks 2-3-3-2"
    W = target_matrices.make_target("bt", *DEFAULT_MODES, 0, noise=0.01)
    task = dec.FitTask("TR", (2, 3, 3, 2), None, btcore.TRSpec(*DEFAULT_MODES, (2, 3, 3, 2)).params)
    M, info = dec.fit_task(W, *DEFAULT_MODES, task, seed=0, fit_kwargs=plan.effort_kwargs("quick", "TR"))
    assert table.loc["TR", "parameters"] == info.params == M.num_params
    assert table.loc["TR", "relative error"] == pytest.approx(info.relative_error, rel=1e-9)
    heat = next(s for s in plotly_specs(at) if s["layout"].get("title", {}).get("text") is None)
    assert sum(t["type"] == "heatmap" for t in heat["data"]) == 3  # target, BT and TR reconstructions
    fresh = AppTest.from_file(str(ROOT / "app" / "main.py"), default_timeout=120)
    fresh.query_params.update(dict(at.query_params))
    fresh.switch_page(str(ROOT / "pages" / "approximation.py")).run()
    assert not fresh.exception and not fresh.warning and not _errors(fresh)
    assert fresh.text_input(key="approx_tr_ranks").value == "2,3,3,2"
    assert fresh.multiselect(key="approx_formats").value == ["BT", "TR"]


def test_a_bad_tr_link_value_falls_back_with_a_warning():
    from streamlit.testing.v1 import AppTest

    from conftest import ROOT

    at = AppTest.from_file(str(ROOT / "app" / "main.py"), default_timeout=120)
    at.query_params.update({"tr_r": "x,y", "size_by": "explicit ranks"})
    at.switch_page(str(ROOT / "pages" / "approximation.py")).run()
    assert not at.exception and not _errors(at)
    assert any("`tr_r=x,y`" in w.value for w in at.warning)
    value = at.text_input(key="approx_tr_ranks").value
    assert value != "x,y" and f"using tr_r={value}" in " ".join(w.value for w in at.warning)


def _state(at) -> dict:
    keys = ["approx_shape", "approx_in_modes", "approx_out_modes", "approx_noise", "approx_mode", "approx_budget",
            "approx_sweep", "approx_seed", "approx_formats", "approx_effort"]
    return {k: at.session_state[k] for k in keys}


def _set_some_inputs(at):
    at.selectbox(key="approx_shape").set_value("1,024 x 1,024 (4x8x8x4 -> 4x8x8x4)").run()
    at.select_slider(key="approx_noise").set_value(0.05).run()
    at.number_input(key="approx_budget").set_value(2500).run()
    at.slider(key="approx_sweep").set_value(3).run()
    at.number_input(key="approx_seed").set_value(7).run()
    at.multiselect(key="approx_formats").unselect("CP").run()
    at.radio(key="approx_effort").set_value("thorough").run()
    assert not at.exception and not _errors(at)
    return at


def test_inputs_survive_a_page_switch():
    from conftest import ROOT

    at = _set_some_inputs(open_page("approximation"))
    before = _state(at)
    assert before["approx_in_modes"] == "4x8x8x4" and before["approx_formats"] == ["BT", "TT", "Tucker", "TR"]
    for away in ("shapes", "learn"):
        at.switch_page(str(ROOT / "pages" / f"{away}.py")).run()
        at.switch_page(str(ROOT / "pages" / "approximation.py")).run()
        assert not at.exception
        assert _state(at) == before
        assert at.selectbox(key="approx_shape").value.startswith("1,024 x 1,024")


def test_a_link_opens_the_same_state_in_a_fresh_session():
    from streamlit.testing.v1 import AppTest

    from conftest import ROOT

    at = _set_some_inputs(open_page("approximation"))
    query = dict(at.query_params)
    assert query["a_in"] == "4x8x8x4" and query["noise"] == "0.05" and query["formats"] == "BT,TT,Tucker,TR"
    assert query["in"] == "8x20x20x18"  # the shared configuration travels beside the page's inputs
    fresh = AppTest.from_file(str(ROOT / "app" / "main.py"), default_timeout=120)
    fresh.query_params.update(query)
    fresh.switch_page(str(ROOT / "pages" / "approximation.py")).run()
    assert not fresh.exception and not fresh.warning and not _errors(fresh)
    assert _state(fresh) == _state(at)


@pytest.mark.parametrize("query", [
    {"noise": "0.02"}, {"params": "-5"}, {"formats": "BT,HT"}, {"target": "nope"}, {"sweep": "lots"},
    {"a_in": "4x4x4"}, {"shape": "huge"}, {"seed": "1e400"}, {"a_in": "x" * 2000}, {"ls": "nan"},
])
def test_bad_query_values_warn_and_never_raise(query):
    from streamlit.testing.v1 import AppTest

    from conftest import ROOT

    at = AppTest.from_file(str(ROOT / "app" / "main.py"), default_timeout=120)
    at.query_params.update(query)
    at.switch_page(str(ROOT / "pages" / "approximation.py")).run()
    assert not at.exception
    assert at.warning or at.error  # said, not silently replaced


def test_lesson_view_hides_advanced_controls():
    from streamlit.testing.v1 import AppTest

    from conftest import ROOT

    at = AppTest.from_file(str(ROOT / "app" / "main.py"), default_timeout=120)
    at.query_params["lesson"] = "1"
    at.switch_page(str(ROOT / "pages" / "approximation.py")).run()
    assert not at.exception
    keys = {w.key for w in at.number_input} | {w.key for w in at.radio}
    assert "approx_seed" not in keys and "approx_effort" not in keys and "approx_bt_choices" not in keys
    assert not any(e.label.startswith("The code") for e in at.expander)
    assert at.query_params.get("lesson") == "1"
    at.slider(key="approx_sweep").set_value(0).run()
    at = _fit(at)
    assert not at.get("download_button")


# -- Suggest ---------------------------------------------------------------------------------------
def _suggest(at, timeout=180):
    at.button(key="approx_suggest").click().run()
    assert not at.exception
    job = at.session_state["approx_suggest_job"]
    assert job.join(timeout) and job.status == "done", job.error
    return at.run()


def test_suggest_draws_the_front_and_applies_the_recommendation():
    at = open_page("approximation")
    at = _suggest(at)
    assert not at.exception and not _errors(at)
    advice = at.session_state["approx_advice"]
    df, best = advice.table, advice.best
    assert (df["params"] <= 1000).all() and best.params <= 1000
    assert best.error < 0.012  # the default target's noise floor is 0.01
    spec = next(s for s in plotly_specs(at) if s["layout"]["title"]["text"].startswith("Suggest"))
    star = next(t for t in spec["data"] if t["name"] == "suggested")
    assert star["x"] == [best.params] and star["y"][0] == pytest.approx(best.error)
    at.button(key="approx_apply").click().run()
    assert not at.exception and not _errors(at)
    assert at.text_input(key="approx_in_modes").value == "x".join(map(str, best.in_modes))
    assert at.text_input(key="approx_out_modes").value == "x".join(map(str, best.out_modes))
    assert at.radio(key="approx_mode").value == "explicit ranks"
    cfg = at.session_state[CONFIG_KEY]
    assert cfg.in_modes == tuple(best.in_modes) and cfg.out_modes == tuple(best.out_modes)
    if best.format == "BT":
        assert (cfg.blocks, at.number_input(key="approx_blocks").value) == (best.blocks, best.blocks)
    at.slider(key="approx_sweep").set_value(0).run()
    at = _fit(at)
    table = next(d.value for d in at.dataframe if "parameters" in d.value.columns).set_index("format")
    assert table.loc[best.format, "parameters"] == best.params  # the suggested format at its size
    assert table.loc[best.format, "relative error"] < 0.012
    assert any("Applied" in c.value for c in at.caption)


def test_use_this_suggestion_says_what_it_changed_and_undo_restores_it():
    """Applying a suggestion names what it replaced (page inputs and the shared configuration); Undo puts
    both back exactly."""
    at = open_page("approximation")
    at.multiselect(key="approx_formats").set_value(["TT"]).run()
    at.number_input(key="approx_budget").set_value(300).run()
    before = {k: at.session_state[k] for k in ("approx_in_modes", "approx_out_modes", "approx_mode", "approx_tt_ranks")}
    cfg_before = at.session_state[CONFIG_KEY]
    at = _suggest(at)
    best = at.session_state["approx_advice"].best
    at.button(key="approx_apply").click().run()
    assert not at.exception
    cfg = at.session_state[CONFIG_KEY]
    said = next(c.value for c in at.caption if c.value.startswith("Applied"))
    assert "size by parameter budget → explicit ranks" in said
    assert cfg != cfg_before and cfg.in_modes == tuple(best.in_modes)  # the shared configuration was replaced...
    assert "shared configuration" in said and "x".join(map(str, cfg_before.in_modes)) in said  # ...and says from what
    assert at.radio(key="approx_mode").value == "explicit ranks"
    at.button(key="approx_undo").click().run()
    assert not at.exception
    assert {k: at.session_state[k] for k in before} == before
    assert at.session_state[CONFIG_KEY] == cfg_before
    assert any(c.value.startswith("Undone") for c in at.caption)
    assert not [b for b in at.button if b.key == "approx_undo"]
    assert best.format == "TT"


def test_suggest_with_tr_applies_its_ring_ranks():
    at = open_page("approximation")
    at.selectbox(key="approx_shape").set_value("Custom").run()
    at.text_input(key="approx_in_modes").set_value("4x4x4").run()
    at.text_input(key="approx_out_modes").set_value("4x4x4").run()
    at.multiselect(key="approx_formats").set_value(["TR"]).run()
    at.number_input(key="approx_budget").set_value(300).run()
    assert not _errors(at)
    at = _suggest(at)
    best = at.session_state["approx_advice"].best
    assert best.format == "TR" and best.blocks is None and best.params <= 300
    at.button(key="approx_apply").click().run()
    assert not at.exception and not _errors(at)
    ranks = tuple(best.ranks)
    typed = str(ranks[0]) if len(set(ranks)) == 1 else ",".join(map(str, ranks))
    assert at.text_input(key="approx_tr_ranks").value == typed and at.query_params["tr_r"] == typed
    assert at.radio(key="approx_mode").value == "explicit ranks" and "TR" in at.multiselect(key="approx_formats").value
    cfg = at.session_state[CONFIG_KEY]
    assert cfg.in_modes == (4, 4, 4) and btcore.TRSpec((4, 4, 4), (4, 4, 4), cfg.tr_ranks).ranks == ranks
    at.slider(key="approx_sweep").set_value(0).run()
    at = _fit(at)
    table = next(d.value for d in at.dataframe if "parameters" in d.value.columns).set_index("format")
    assert table.loc["TR", "parameters"] == best.params  # the suggested ring at its size


def test_suggest_on_an_upload():
    at = open_page("approximation")
    at.selectbox(key="approx_target").set_value("upload").run()
    rng = np.random.default_rng(0)
    W = rng.standard_normal((48, 3)) @ rng.standard_normal((3, 36))  # rank 3: the truncated SVD is exact
    buf = io.BytesIO()
    np.save(buf, W)
    at.file_uploader(key="approx_upload").upload("m.npy", buf.getvalue()).run()
    at.button(key="approx_fix_modes").click().run()
    at.number_input(key="approx_budget").set_value(300).run()
    assert not _errors(at)
    at = _suggest(at)
    best = at.session_state["approx_advice"].best
    assert best.params <= 300 and best.error < 1e-8  # low rank found at its size: 3 * (48 + 36) (+ 9)


def test_typed_ranks_survive_a_page_switch_and_a_change_of_sizing_mode():
    """Widgets drawn in one sizing mode only keep what was typed, through a page switch and back."""
    from conftest import round_trip

    at = open_page("approximation")
    at.radio(key="approx_mode").set_value("explicit ranks").run()
    at.text_input(key="approx_bt_rank").set_value("2").run()
    at.number_input(key="approx_blocks").set_value(3).run()
    at.text_input(key="approx_tucker_rank").set_value("5").run()
    at.number_input(key="approx_cp_rank").set_value(11).run()
    typed = {"bt_R": "2", "bt_N": "3", "tucker_R": "5", "cp_R": "11"}
    for away in ("shapes", "learn"):
        round_trip(at, "approximation", away)
        assert not at.exception
        assert (at.text_input(key="approx_bt_rank").value, at.number_input(key="approx_blocks").value,
                at.text_input(key="approx_tucker_rank").value, at.number_input(key="approx_cp_rank").value) == \
            ("2", 3, "5", 11)
        assert {k: at.query_params[k] for k in typed} == typed
    at.radio(key="approx_mode").set_value("parameter budget").run()
    assert at.number_input(key="approx_budget").value == 1000 and at.query_params["params"] == "1000"
    at.radio(key="approx_mode").set_value("explicit ranks").run()
    assert at.number_input(key="approx_blocks").value == 3 and at.query_params["bt_N"] == "3"


def test_results_table_has_no_literal_none_and_time_left_is_marked_uncertain_when_it_rose():
    from app.approximation import views

    table = views.table_frame(_main_rows())
    assert not table.isna().any().any() and "None" not in table.astype(str).to_numpy()
    assert set(table.loc[table["format"].isin(["TT", "TR"]), "blocks N"]) == {views.NOT_APPLICABLE}
    assert views.eta_text(10, 5, 14) == " · about 5 s left"
    assert "uncertain" in views.eta_text(20, 10, 14) and "14 s to 30 s" in views.eta_text(20, 10, 14)


def _main_rows():
    from app.approximation import run as r

    def row(fmt, blocks):
        return r.MainRow(format=fmt, ranks="2", blocks=blocks, params=10, compression=2.0, rel_error=0.1,
                         error_text="0.1", seconds=0.1, sweeps=1, stop_reason="", at_precision=False)
    return [row("BT", 2), row("TT", None), row("TR", None), row("CP", 5)]
