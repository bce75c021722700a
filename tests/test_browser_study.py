"""The Format study page in Debian chromium: a tiny study run from a link, its charts and its table."""

from __future__ import annotations

import pytest

from conftest import screenshot, wait_idle

pytestmark = pytest.mark.browser

T = 180_000  # ms
#: A tiny study: few small clips, two budgets, TT and BT, one epoch.
TINY = ("s_frame=1x8x8&s_frames=4&s_classes=3&s_clips=32&s_val=16&s_hidden=16&s_d=2&s_budgets=300,1000"
        "&s_tr=0&s_epochs=1&s_batch=8")


def test_a_tiny_study_draws_its_charts(app_page):
    pg = app_page(f"study?{TINY}")
    pg.get_by_text("Estimated: about").wait_for(timeout=T)
    wait_idle(pg, T)
    pg.locator(".st-key-study_start button").click()
    try:
        pg.wait_for_function("() => document.body.innerText.includes('runs done · finished')", timeout=T)
    finally:
        screenshot(pg, "study_after_run")  # what the page showed, also when the study did not finish
    pg.wait_for_selector(".st-key-study_front_chart .scatterlayer .trace", timeout=T)
    pg.wait_for_selector(".st-key-study_start button:not([disabled])", timeout=T)
    wait_idle(pg, T)
    front = pg.locator(".st-key-study_front_chart:not([data-stale=true])")
    assert front.locator(".xaxislayer-above").count() >= 1
    legend = front.locator(".legend").text_content()
    assert "Dense" in legend and "Pareto front" in legend and "recommended" in legend
    pg.wait_for_selector(".st-key-study_speed_chart .scatterlayer .trace", timeout=T)
    pg.locator(".st-key-study_dl_weights button").first.wait_for(timeout=T)  # a fragment rerun can leave a stale copy
    body = pg.inner_text("body")
    assert "Recommended:" in body and "Traceback" not in body
    front.scroll_into_view_if_needed()
    screenshot(pg, "study_results")
