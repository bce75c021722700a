"""Browser tests of state that outlives widgets: a page-switch round trip, a copied link opened in a
fresh browser session, and the lesson view. Screenshots: artifacts/screenshots/state_*.png.
"""

import re
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import expect

from conftest import ARTIFACTS, screenshot, wait_idle

pytestmark = pytest.mark.browser

T = 90_000  # ms


def _fill(pg, key: str, value: str) -> None:
    box = pg.locator(f".st-key-{key} input")
    box.fill(value)
    box.press("Enter")
    wait_idle(pg, T)


def test_shapes_inputs_survive_a_round_trip_through_the_sidebar(app_page):
    pg = app_page("shapes")
    _fill(pg, "shapes_bt_rank", "3,4,4,2")
    _fill(pg, "shapes_blocks", "5")
    _fill(pg, "shapes_tt_ranks", "2,6,2")
    pg.get_by_text("BT (R=(3,4,4,2), N=5) parameters").wait_for(timeout=T)
    pg.locator("[data-testid=stSidebarNav] a", has_text="Learn").click()
    wait_idle(pg, T)
    pg.get_by_text("Learn: BT, TT and TR").first.wait_for(timeout=T)
    expect(pg.locator("[data-testid=stMainBlockContainer]")).to_contain_text("R = 3,4,4,2 and N = 5 blocks",
                                                                            timeout=T)
    pg.locator("[data-testid=stSidebarNav] a", has_text="Shapes").click()
    # expect polls: right after the click the script may not have started yet, and while it runs a
    # text input is drawn empty for a moment before its value arrives (an idle check can land there)
    expect(pg.locator(".st-key-shapes_bt_rank input")).to_have_value("3,4,4,2", timeout=T)
    expect(pg.locator(".st-key-shapes_blocks input")).to_have_value("5", timeout=T)
    expect(pg.locator(".st-key-shapes_tt_ranks input")).to_have_value("2,6,2", timeout=T)
    expect(pg.locator("[data-testid=stMetric]").nth(2)).to_contain_text("R=(3,4,4,2), N=5", timeout=T)
    wait_idle(pg, T)
    screenshot(pg, "state_round_trip")


def test_a_copied_link_opens_the_same_state_in_a_fresh_session(app_page, browser, streamlit_server):
    pg = app_page("shapes")
    _fill(pg, "shapes_blocks", "3")
    pg.get_by_text("BT (R=4, N=3) parameters").wait_for(timeout=T)
    pg.locator(".st-key-shapes_link button").click()
    code = pg.locator("[data-testid=stPopoverBody] code, [data-testid=stPopoverBody] pre").first
    code.wait_for(timeout=T)
    link = code.inner_text().strip()
    assert link.startswith(streamlit_server) and "N=3" in link
    pg.locator("[data-testid=stPopoverBody]").screenshot(path=str(ARTIFACTS / "screenshots" / "state_link.png"))
    ctx = browser.new_context(viewport={"width": 1400, "height": 2400})  # a fresh session: no shared state
    try:
        other = ctx.new_page()
        other.goto(link, timeout=T)
        wait_idle(other, T)
        other.get_by_text("BT (R=4, N=3) parameters").wait_for(timeout=T)
        expect(other.locator(".st-key-shapes_blocks input")).to_have_value("3", timeout=T)
        assert other.locator("[data-testid=stException]").count() == 0
        screenshot(other, "state_from_link")
    finally:
        ctx.close()


def test_lesson_view_hides_the_advanced_controls(app_page):
    pg = app_page("shapes?lesson=1")
    pg.get_by_text("BT (R=4, N=2) parameters").wait_for(timeout=T)
    assert pg.locator(".st-key-shapes_batch").count() == 0
    assert pg.locator("[data-testid=stDownloadButton]").count() == 0
    assert pg.locator(".st-key-shapes_blocks").count() == 1  # the lesson's own controls stay
    screenshot(pg, "state_lesson")
    pg.locator("[data-testid=stSidebarNav] a", has_text="Learn").click()  # the flag follows the user
    wait_idle(pg, T)
    expect(pg).to_have_url(re.compile(r"[?&]lesson=1"), timeout=T)


def test_learn_copy_link_follows_a_change_inside_a_fragment(app_page, browser):
    pg = app_page("learn")
    thumb = pg.locator(".st-key-learn_grow_n input[type=range]")
    thumb.wait_for(state="attached", timeout=T)
    after = str(int(thumb.input_value()) + 1)
    thumb.focus()
    thumb.press("ArrowRight")  # only the sizes fragment reruns
    expect(thumb).to_have_value(after, timeout=T)
    expect(pg).to_have_url(re.compile(rf"[?&]grow_n={after}(&|$)"), timeout=T)
    wait_idle(pg, T)
    pg.locator("[class*=st-key-learn_link] button").click()
    code = pg.locator("[data-testid=stPopoverBody] code, [data-testid=stPopoverBody] pre").first
    expect(code).to_contain_text(f"grow_n={after}", timeout=T)
    link = code.inner_text().strip()
    assert parse_qs(urlsplit(link).query)["grow_n"] == [after]
    ctx = browser.new_context(viewport={"width": 1400, "height": 2400})  # a fresh session keeps the change
    try:
        other = ctx.new_page()
        other.goto(link, timeout=T)
        wait_idle(other, T)
        expect(other.locator(".st-key-learn_grow_n input[type=range]")).to_have_value(after, timeout=T)
    finally:
        ctx.close()


def test_lesson_view_is_shown_and_can_be_left(app_page):
    pg = app_page("shapes?lesson=1")
    expect(pg.locator("[data-testid=stMainBlockContainer]")).to_contain_text("Lesson view", timeout=T)
    pg.locator(".st-key-shapes_leave_lesson button").click()
    wait_idle(pg, T)
    expect(pg).not_to_have_url(re.compile(r"[?&]lesson=1"), timeout=T)
    expect(pg.locator(".st-key-shapes_batch")).to_have_count(1, timeout=T)  # the advanced controls are back
