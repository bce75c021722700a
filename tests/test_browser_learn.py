"""Browser test of the Learn page: it loads in chromium, the diagrams are drawn, the step slider works,
a walkthrough tab is drawn when clicked, and the tensorization chart's hover names its entries.

One page load for everything (a cold load renders ten plotly charts, slow on a loaded 2-core machine).
Screenshots: artifacts/screenshots/learn_page.png, learn_diagrams.png, learn_walkthrough.png.
"""

import re

import pytest

from app.learn import content as ld
from conftest import ARTIFACTS, screenshot, wait_idle

pytestmark = pytest.mark.browser

T = 90_000  # ms


def test_learn_page_diagrams_and_walkthrough(app_page):
    pg = app_page("learn")
    assert pg.locator("[data-testid=stException]").count() == 0
    diagrams = pg.locator(".st-key-learn_diagrams")
    diagrams.wait_for(timeout=T)
    # dense, TT, BT and TR diagrams are plotly charts that finished drawing, with their node labels
    pg.wait_for_function(
        "document.querySelectorAll('.st-key-learn_diagrams .js-plotly-plot .main-svg').length >= 4", timeout=T)
    pg.wait_for_timeout(500)
    text = diagrams.inner_text()
    for label in ("57,600", "1,024", "Tensor-Train", "Block-Term", "Tensor Ring", "r₁ = 4", "R₁ = 4", "r₄ = 4 = r₀"):
        assert label in text, label
    # hovering a TT core shows its shape and parameter count
    core = pg.locator(".st-key-learn_diagram_tt .js-plotly-plot .scatterlayer .point").nth(1)
    core.hover(force=True)
    hover = pg.locator(".st-key-learn_diagram_tt .hoverlayer .hovertext")
    hover.wait_for(timeout=T)
    tip = hover.text_content()  # SVG text: the <br> lines run together
    assert "TT core 2" in tip and "shape 4 × 20 × 4 × 4" in tip and "1,280 parameters" in tip
    # and a TR core: the first one carries the ring's closing bond
    ring = pg.locator(".st-key-learn_diagram_tr .js-plotly-plot .scatterlayer .point").first
    ring.hover(force=True)
    hover = pg.locator(".st-key-learn_diagram_tr .hoverlayer .hovertext")
    hover.wait_for(timeout=T)
    tip = hover.text_content()
    assert "TR core 1" in tip and "shape 4 × 8 × 16 × 4" in tip and "2,048 parameters" in tip
    out = screenshot(pg, "learn_page")
    assert out.stat().st_size > 10_000
    shot = ARTIFACTS / "screenshots" / "learn_diagrams.png"
    diagrams.screenshot(path=str(shot))
    assert shot.stat().st_size > 10_000

    # step through the BT walkthrough with the keyboard
    main = pg.locator("[data-testid=stMainBlockContainer]")
    assert "Step 1 of 5" in main.inner_text()
    slider = pg.locator(".st-key-learn_step_BT input[type=range]")
    slider.focus()
    slider.press("ArrowRight")
    pg.wait_for_function("document.body.innerText.includes('Step 2 of 5')", timeout=T)
    wait_idle(pg, T)
    tabs = pg.locator("[data-testid=stTabs]").first
    tabs.screenshot(path=str(ARTIFACTS / "screenshots" / "learn_walkthrough.png"))
    assert pg.locator("[data-testid=stException]").count() == 0

    # only the open tab is drawn: another tab is drawn when it is clicked, and the link says which
    assert pg.locator(".st-key-learn_step_TT").count() == 0
    tabs.get_by_role("tab", name="Tensor-Train").click()
    pg.locator(".st-key-learn_step_TT input[type=range]").wait_for(timeout=T)
    wait_idle(pg, T)
    assert pg.locator(".st-key-learn_step_BT").count() == 0
    assert "steps_tab=Tensor-Train" in pg.url
    assert "Step 1 of 4" in main.inner_text()
    assert pg.locator("[data-testid=stException]").count() == 0

    # the tensorization chart's hover names an entry of W and where it moves
    cell = pg.locator(".st-key-learn_tensorization .js-plotly-plot .nsewdrag").first
    cell.scroll_into_view_if_needed()
    box = cell.bounding_box()
    pg.mouse.move(box["x"] + 6, box["y"] + 6, steps=4)  # plotly hovers on mouse moves, not on a jump
    hover = pg.locator(".st-key-learn_tensorization .hoverlayer .hovertext")
    hover.wait_for(timeout=T)
    tip = hover.text_content().replace("\u200b", "")  # SVG text: lines run together, <sub> leaves ZWSPs
    # whichever cell the pointer landed on, the hover names that cell's indices and where it moves
    m = re.fullmatch(r"W\[(\d+), (\d+)\]i = (\S+), j = (\S+)pairs \(ik, jk\): (.+)→ row (\d+), column (\d+) on the right",
                     tip)
    assert m, tip
    i, j = int(m[1]), int(m[2])
    grid = ld.tensorization_grid((4, 4), (4, 4))  # the first teaching example, drawn for the UCF11 preset
    assert m[3] == "(" + ",".join(map(str, grid.rows[i])) + ")" and m[4] == "(" + ",".join(map(str, grid.cols[j])) + ")"
    assert m[5] == " ".join(f"({a},{b})" for a, b in zip(grid.rows[i], grid.cols[j]))
    assert (int(m[6]), int(m[7])) == (grid.block[i][j], grid.inner[i][j]), tip
