"""The Training page in Debian chromium: Train, live loss chart, Stop, and two sessions kept apart."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from btcore.tasks import task_names
from conftest import screenshot, wait_idle

pytestmark = pytest.mark.browser

LIVE_CHART = ".st-key-train_loss_chart:not([data-stale=true])"  # fragment reruns can leave stale copies briefly
LOSS_POINTS = LIVE_CHART + " .scatterlayer .trace path.js-line"
TABLE = "[data-testid=stDataFrame]"


def _small(pg, epochs=200):
    """Few clips, so points come quickly, and many epochs, so the run is still going when we stop it."""
    for key, value in (("train_train_size", "64"), ("train_val_size", "32"), ("train_epochs", str(epochs))):
        box = pg.locator(f".st-key-{key} input")
        box.fill(value)
        box.press("Enter")
        wait_idle(pg)
    return pg


def _loss_points(pg) -> int:
    """Points drawn on the live loss chart (sum of the path vertices of every trace)."""
    return pg.evaluate(
        """sel => Array.from(document.querySelectorAll(sel))
              .map(p => (p.getAttribute('d') || '').split(/[ML]/).filter(s => s.trim()).length)
              .reduce((a, b) => a + b, 0)""", LOSS_POINTS)


def _wait_points(pg, n, timeout_ms=120_000):
    pg.wait_for_function(
        """([sel, n]) => Array.from(document.querySelectorAll(sel))
              .map(p => (p.getAttribute('d') || '').split(/[ML]/).filter(s => s.trim()).length)
              .reduce((a, b) => a + b, 0) >= n""", arg=[LOSS_POINTS, n], timeout=timeout_ms)


def test_train_live_chart_and_stop(app_page):
    pg = _small(app_page("training"))
    assert pg.locator(".st-key-train_start button").is_enabled()
    pg.locator(".st-key-train_start button").click()
    _wait_points(pg, 3)
    first = _loss_points(pg)
    _wait_points(pg, first + 3)  # the chart keeps growing while training runs: it is live
    pg.wait_for_function("sel => document.querySelectorAll(sel).length >= 3", arg=TABLE, timeout=30_000)
    screenshot(pg, "training_live")
    pg.locator(".st-key-train_stop button").click()
    pg.wait_for_function("() => document.body.innerText.includes('stopped')", timeout=30_000)
    wait_idle(pg)
    pg.wait_for_selector(".st-key-train_start button:not([disabled])", timeout=30_000)
    screenshot(pg, "training_stopped")
    assert "Traceback" not in pg.inner_text("body")


def test_two_sessions_keep_their_own_runs(app_page):
    """A run in one browser session never shows up in another (each session has its own job registry)."""
    a = _small(app_page("training"))
    b = _small(app_page("training"))
    a.locator(".st-key-train_start button").click()
    _wait_points(a, 2)
    wait_idle(b)
    body = b.inner_text("body")
    assert "Choose the models and press" in body  # B has no job of its own ...
    assert b.locator(".st-key-train_loss_chart").count() == 0  # ... and does not see A's curves
    assert b.locator(".st-key-train_stop button").is_disabled()
    a.locator(".st-key-train_stop button").click()
    a.wait_for_selector(".st-key-train_start button:not([disabled])", timeout=30_000)
    assert b.locator(".st-key-train_loss_chart").count() == 0


# -- the race, outcomes, estimate, sweep, and state --------------------------------------------------

T = 120_000  # ms
#: A tiny task: a few small clips, so every model's first points come within seconds.
TINY = ("t_frame=3x16x16&t_frames=4&t_classes=4&t_clips=64&t_val=32&t_hidden=16&t_batch=16")
TRACES_WITH_POINTS = """([sel, n]) => Array.from(document.querySelectorAll(sel))
    .filter(p => (p.getAttribute('d') || '').split(/[ML]/).filter(s => s.trim()).length >= n).length"""


def _main_text(pg) -> str:
    return pg.locator("[data-testid=stMainBlockContainer]").inner_text()


def test_the_race_charts_grow_for_every_model(app_page):
    pg = app_page(f"training?{TINY}&t_epochs=6")
    assert "Estimated: " in pg.locator(".st-key-train_start").locator("xpath=../../..").inner_text() \
        or "Estimated: " in _main_text(pg)  # the estimate (a range, each phase) is next to Train
    pg.locator(".st-key-train_start button").click()
    # each of the three models has its own training-loss trace, and each gets points while they race
    pg.wait_for_function(f"() => ({TRACES_WITH_POINTS})({[LOSS_POINTS, 2]!r}) >= 3".replace("'", '"'), timeout=T)
    pg.wait_for_function(f"() => ({TRACES_WITH_POINTS})({[LOSS_POINTS, 6]!r}) >= 3".replace("'", '"'), timeout=T)
    screenshot(pg, "training_race")
    pg.wait_for_selector(".st-key-train_start button:not([disabled])", timeout=T)
    assert "Traceback" not in pg.inner_text("body")


def test_a_diverged_run_says_so(app_page):
    pg = app_page(f"training?{TINY}&t_models=TT&t_opt=sgd&t_lr=1000&t_clip=0&t_epochs=3")
    pg.locator(".st-key-train_lr input").wait_for(timeout=T)
    pg.wait_for_function("() => document.querySelector('.st-key-train_lr input').value === '1000'", timeout=T)
    pg.locator(".st-key-train_start button").click()
    pg.get_by_text("diverged").first.wait_for(timeout=T)
    wait_idle(pg)
    alert = pg.locator("[data-testid=stAlertContentError]", has_text="diverged").first.inner_text()
    assert "TT-LSTM" in alert and "learning rate" in alert
    screenshot(pg, "training_diverged")


def test_a_tiny_sweep_draws_its_charts(app_page):
    pg = app_page(f"training?{TINY}&t_epochs=1&t_sweep_r=2,3&t_sweep_n=1,2")
    button = pg.locator(".st-key-train_sweep_start button")
    assert "6 runs" in button.inner_text()  # 2 x 2 BT runs and the dense and TT references
    button.click()
    pg.wait_for_selector(".st-key-train_sweep_heat .heatmaplayer", timeout=T)
    pg.wait_for_selector(".st-key-train_start button:not([disabled])", timeout=T)
    wait_idle(pg)
    pg.wait_for_selector(".st-key-train_sweep_scatter .scatterlayer .trace", timeout=T)
    pg.get_by_text("Sweep grid (CSV)").wait_for(timeout=T)  # under the sweep's table
    pg.locator(".st-key-train_sweep_scatter").scroll_into_view_if_needed()
    screenshot(pg, "training_sweep")
    assert "Traceback" not in pg.inner_text("body")


def _fill(pg, key: str, value: str) -> None:
    box = pg.locator(f".st-key-{key} input")
    box.fill(value)
    box.press("Enter")
    wait_idle(pg, T)


TYPED = {"train_train_size": "256", "train_epochs": "4", "train_seed": "7", "train_bt_rank": "3"}


def _expect_typed(pg) -> None:
    """Every typed value is shown (expect polls: a page can report idle before its run has started, and
    a run draws an input empty for a moment before its value arrives)."""
    for key, value in TYPED.items():
        expect(pg.locator(f".st-key-{key} input")).to_have_value(value, timeout=T)


def test_inputs_survive_a_round_trip_through_the_sidebar(app_page):
    pg = app_page("training")
    for key, value in TYPED.items():
        _fill(pg, key, value)
    _expect_typed(pg)
    pg.locator("[data-testid=stSidebarNav] a", has_text="Shapes").click()
    wait_idle(pg, T)
    pg.get_by_text("Dense parameters").wait_for(timeout=T)
    pg.locator("[data-testid=stSidebarNav] a", has_text="Training").click()
    wait_idle(pg, T)
    _expect_typed(pg)
    screenshot(pg, "training_round_trip")


def test_a_copied_link_opens_the_same_page_in_a_fresh_session(app_page, browser, streamlit_server):
    pg = app_page("training")
    for key, value in TYPED.items():
        _fill(pg, key, value)
    pg.locator("[class*=st-key-train_link] button").click()
    code = pg.locator("[data-testid=stPopoverBody] code, [data-testid=stPopoverBody] pre").first
    code.wait_for(timeout=T)
    want = ("t_clips=256", "t_epochs=4", "t_seed=7", "t_rank=3")
    for _ in range(40):  # the popover is drawn by the rerun after the last entry: wait for that run's link
        link = code.inner_text().strip()
        if all(w in link for w in want):
            break
        pg.wait_for_timeout(250)
    assert link.startswith(streamlit_server) and all(w in link for w in want), link
    ctx = browser.new_context(viewport={"width": 1400, "height": 2400})  # a fresh session: no shared state
    try:
        other = ctx.new_page()
        other.goto(link, timeout=T)
        wait_idle(other, T)
        _expect_typed(other)
        assert other.locator("[data-testid=stException]").count() == 0
        screenshot(other, "training_from_link")
    finally:
        ctx.close()


IMAGES = "[data-testid=stImage] img, [data-testid=stFullScreenFrame] img"


@pytest.mark.skipif("generation" not in task_names(),
                    reason="the generation task is not registered in btcore.tasks yet (this test selects it)")
def test_a_generation_race_shows_its_images(app_page):
    pg = app_page("training?t_task=generation&t_models=Dense,TT,BT&t_epochs=1&t_hidden=16")
    expect(pg.locator(".st-key-train_task input")).to_have_value(re.compile("^generation"), timeout=T)
    pg.locator(".st-key-train_start button").click()
    # per model: samples, reconstructions, canvas; and the validation digits once: at least 10 images
    pg.wait_for_function(f"() => Array.from(document.querySelectorAll({IMAGES!r}))"
                         ".filter(i => i.complete && i.naturalWidth >= 28).length >= 10", timeout=4 * T)
    # live updates replace images while the race runs: a replaced one is still loading (width 0), so only
    # images that have finished loading are measured
    widths = pg.evaluate(f"() => Array.from(document.querySelectorAll({IMAGES!r}))"
                         ".filter(i => i.complete && i.naturalWidth > 0).map(i => i.naturalWidth)")
    assert len(widths) >= 10
    assert min(widths) >= 28 * 2  # drawn upscaled: legible on a projector
    main = _main_text(pg)
    assert "Samples from the prior" in main and "Reconstructions" in main and "input-map parameters" in main
    screenshot(pg, "training_generation")
    pg.wait_for_selector(".st-key-train_start button:not([disabled])", timeout=4 * T)
    assert "Traceback" not in pg.inner_text("body")


def test_a_captioning_race_shows_each_models_captions(app_page):
    pg = app_page("training?t_task=captioning&t_models=Dense,BT&t_epochs=1&t_hidden=16"
                  "&t_captioning_train_size=200&t_captioning_val_size=30")
    expect(pg.locator(".st-key-train_task input")).to_have_value(re.compile("^captioning"), timeout=T)
    pg.locator(".st-key-train_start button").click()
    # .first: while a live fragment reruns, Streamlit keeps the old element beside the new one for a moment
    pg.get_by_text("Captions of fixed validation images").first.wait_for(timeout=4 * T)
    expect(pg.get_by_text("true: a ", exact=False).first).to_be_visible(timeout=T)
    main = _main_text(pg)
    truths = [line for line in main.splitlines() if line.startswith("true: a ")]
    assert len(truths) >= 6 and all(len(t.split()) >= 4 for t in truths)  # "true: a small red circle ..."
    assert "BT-LSTM captioner" in main  # each model's caption is named by its model
    screenshot(pg, "training_captioning")
    pg.wait_for_selector(".st-key-train_start button:not([disabled])", timeout=4 * T)
    assert "Traceback" not in pg.inner_text("body")
