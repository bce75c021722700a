"""AppTest of the Approximation page's real targets (photos, digits), the target's name in the results,
and fits shared between sessions (one worker, the stored result and the page's note)."""

from __future__ import annotations

import io

import numpy as np
import pytest

from app import jobs
from app.approximation.charts import GREY
from app.approximation.run import downsample
from btcore import images
from conftest import open_page, plotly_specs


@pytest.fixture(autouse=True)
def _fresh_server_results():
    jobs.SHARED.clear()  # results stored by other tests of this process would be shared here
    yield
    jobs.SHARED.clear()


def _quick(at):
    """Two fast formats and no sweep, so a test fit takes seconds."""
    at.multiselect(key="approx_formats").set_value(["TT", "Tucker"]).run()
    at.slider(key="approx_sweep").set_value(0).run()
    return at


def _fit(at, timeout=180):
    at.button(key="approx_fit").click().run()
    assert not at.exception
    job = at.session_state["approx_job"]
    assert job.join(timeout) and job.status == "done", job.error
    return at.run(), job


def test_a_photo_is_a_target_drawn_in_grey_beside_its_reconstructions():
    at = open_page("approximation")
    at.selectbox(key="approx_target").set_value("photo").run()
    assert not at.exception and at.selectbox(key="approx_photo").options[:len(images.PHOTOS)]
    at.selectbox(key="approx_photo").set_value("text").run()  # 160 x 448: modes follow its size
    im = [int(x) for x in at.text_input(key="approx_in_modes").value.split("x")]
    om = [int(x) for x in at.text_input(key="approx_out_modes").value.split("x")]
    assert (np.prod(im), np.prod(om)) == (160, 448)
    assert at.query_params["target"] == "photo" and at.query_params["photo"] == "text"  # in the link
    at, _ = _fit(_quick(at))
    res = at.session_state["approx_shown"]
    assert res.picture and res.shape == (160, 448)
    assert any("Real photo (scikit-image): text, 160 x 448" in c.value for c in at.caption)  # named in the results
    grey = [f for f in plotly_specs(at) if f["data"] and f["data"][0].get("colorscale") == GREY]
    assert len(grey) == 1
    fig = grey[0]
    assert [d["name"] for d in fig["data"]] == ["target W", "TT", "Tucker"]
    assert all(d["zmin"] == 0 and d["zmax"] == 1 for d in fig["data"])  # one scale for all
    np.testing.assert_allclose(res.target_small, downsample(images.load_photo("text"), 256))


def test_digits_set_their_modes_and_fit():
    at = open_page("approximation")
    at.selectbox(key="approx_target").set_value("digits").run()
    assert not at.exception and not at.error
    assert at.text_input(key="approx_in_modes").value == "16x14x8" and at.text_input(key="approx_out_modes").value == "4x4x4"
    at, _ = _fit(_quick(at))
    res = at.session_state["approx_shown"]
    assert res.shape == (1792, 64) and not res.picture  # a data matrix: heatmaps
    assert {r.format for r in res.main} == {"TT", "Tucker"}


def test_an_uploaded_target_is_named_in_the_results():
    at = open_page("approximation")
    at.selectbox(key="approx_target").set_value("upload").run()
    buf = io.BytesIO()
    np.save(buf, np.random.default_rng(0).standard_normal((48, 36)))
    at.file_uploader(key="approx_upload").upload("my_weights.npy", buf.getvalue()).run()
    at.button(key="approx_fix_modes").click().run()
    at, _ = _fit(_quick(at))
    assert any(c.value.startswith("Upload a matrix (.npy / .pt): my_weights.npy, 48 x 36") for c in at.caption)


def test_a_second_session_gets_the_stored_result_and_says_so():
    a = _quick(open_page("approximation"))
    a, job_a = _fit(a)
    assert job_a.share == "new" and jobs.SHARED.counts() == (0, 1)
    b = _quick(open_page("approximation"))  # another browser session, the same link
    b, job_b = _fit(b)
    assert job_b.share == "stored" and job_b.source is job_a.source  # nothing recomputed
    ra, rb = a.session_state["approx_shown"], b.session_state["approx_shown"]
    assert ra.finished == rb.finished and [r.rel_error for r in ra.main] == [r.rel_error for r in rb.main]
    assert any(c.value.startswith("From the result computed at") for c in b.caption)
    assert not any(c.value.startswith("From the result computed at") for c in a.caption)
    c = _quick(open_page("approximation"))
    c.number_input(key="approx_seed").set_value(1).run()  # other inputs: its own run
    c, job_c = _fit(c)
    assert job_c.share == "new" and job_c.source is not job_a.source
