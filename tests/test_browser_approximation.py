"""Browser test: the Approximation page in Debian chromium; run the default fit, screenshot the charts."""

import pytest

from conftest import screenshot, wait_idle

pytestmark = pytest.mark.browser


def test_default_fit_and_chart(app_page):
    pg = app_page("approximation")
    pg.get_by_text("Formats and size").first.wait_for(timeout=60_000)
    screenshot(pg, "approximation_before")
    pg.locator(".st-key-approx_fit button").click()
    # the fit runs in a worker; the fragment polls it and redraws the page when it is done
    table = pg.locator("[data-testid=stDataFrame]")
    table.wait_for(timeout=120_000)
    wait_idle(pg)
    chart = pg.locator(".st-key-approx_pareto_chart")
    chart.wait_for(timeout=30_000)
    chart.locator(".main-svg").first.wait_for(timeout=30_000)
    pg.wait_for_timeout(800)  # plotly's first layout pass
    assert pg.get_by_text("What these numbers show").first.is_visible()
    # the default target (exact BT + noise 0.01): the text states that noise and the measured verdict
    assert pg.get_by_text("plus noise of relative size 0.01").first.is_visible()
    assert pg.get_by_text("BT wins here, as expected").first.is_visible()
    chart.screenshot(path=str(screenshot(pg, "approximation").with_name("approximation_chart.png")))
    pg.locator(".st-key-approx_heatmaps").screenshot(
        path=str(screenshot(pg, "approximation").with_name("approximation_heatmaps.png")))
    conv = pg.locator(".st-key-approx_convergence")
    conv.scroll_into_view_if_needed()
    pg.wait_for_timeout(500)
    conv.screenshot(path=str(screenshot(pg, "approximation").with_name("approximation_convergence.png")))
    pg.locator(".st-key-approx_residual").screenshot(
        path=str(screenshot(pg, "approximation").with_name("approximation_residual.png")))
    # a bad input: the error shows and the earlier results stay
    box = pg.locator(".st-key-approx_in_modes input")
    box.fill("4x4x4")
    box.press("Enter")
    wait_idle(pg)
    pg.locator("[data-testid=stAlertContentError]").first.wait_for(timeout=30_000)
    assert table.is_visible() and chart.is_visible()
    screenshot(pg, "approximation_bad_input")


def test_suggest_flow(app_page):
    pg = app_page("approximation")
    pg.get_by_text("Formats and size").first.wait_for(timeout=60_000)
    pg.locator(".st-key-approx_suggest button").first.click()
    chart = pg.locator(".st-key-approx_advice_chart")
    chart.wait_for(timeout=180_000)  # the search runs in a worker; the fragment redraws the page when done
    wait_idle(pg)
    chart.locator(".main-svg").first.wait_for(timeout=30_000)
    pg.wait_for_timeout(800)
    chart.screenshot(path=str(screenshot(pg, "approximation_suggest").with_name("approximation_suggest_chart.png")))
    pg.locator(".st-key-approx_apply button").first.click()
    wait_idle(pg)
    pg.get_by_text("Applied").first.wait_for(timeout=60_000)  # the rerun after the click may still be drawing
    assert pg.get_by_text("Applied").first.is_visible()
    assert pg.locator(".st-key-approx_mode").get_by_text("explicit ranks").first.is_visible()
    screenshot(pg, "approximation_suggest_applied")


def test_a_photo_and_its_reconstructions_in_grey_with_titles_apart(app_page):
    """A photo target from a link: grey images side by side, and no two panel titles overlap on screen."""
    pg = app_page("approximation?target=photo&photo=camera&sweep=0")
    pg.get_by_text("Formats and size").first.wait_for(timeout=60_000)
    pg.locator(".st-key-approx_fit button").click()
    figure = pg.locator(".st-key-approx_heatmaps")
    figure.wait_for(timeout=180_000)
    wait_idle(pg)
    figure.locator(".main-svg").first.wait_for(timeout=30_000)
    pg.wait_for_timeout(800)
    assert pg.get_by_text("Real photo (scikit-image): camera").first.is_visible()  # named in the results
    boxes = figure.locator("g.annotation").evaluate_all(
        "els => els.map(e => { const r = e.getBoundingClientRect(); return [r.left, r.right, r.top, r.bottom]; })")
    assert len(boxes) == 6  # the target and BT, TT, Tucker, CP, TR
    for (l1, r1, t1, b1), (l2, r2, t2, b2) in zip(boxes, boxes[1:]):
        assert r1 <= l2 or b1 <= t2 or b2 <= t1, f"titles overlap: {boxes}"
    figure.screenshot(path=str(screenshot(pg, "approximation_photo").with_name("approximation_photo.png")))
