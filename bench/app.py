"""How long a widget change takes to settle in the browser, for the Shapes and Learn pages.

Starts ``streamlit run app/main.py`` on 127.0.0.1, drives Debian's chromium with Playwright at the
UCF11 preset, changes one input at a time and times until the page shows the new numbers and
Streamlit reports the script idle. Prints a Markdown table of medians.

    python bench/app.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import time

from load import ARGS, IDLE, start_server  # bench/ is on sys.path when a benchmark runs as a script


def _settle(pg, action, done_js: str) -> float:
    """Seconds from ``action()`` until ``done_js`` holds and the script is idle."""
    t0 = time.perf_counter()
    action()
    pg.wait_for_function(done_js, timeout=60_000)
    pg.wait_for_selector(IDLE, timeout=60_000)
    return time.perf_counter() - t0


def shapes_blocks(pg, repeats: int) -> list[float]:
    """Change BT blocks N (2 <-> 3): the metrics, table and both charts redraw."""
    box = pg.locator(".st-key-shapes_blocks input")
    out = []
    for i in range(repeats):
        n = 3 if i % 2 == 0 else 2
        def act():
            box.fill(str(n))
            box.press("Enter")
        out.append(_settle(pg, act, f"document.body.innerText.includes('BT (R=4, N={n}) parameters')"))
    return out


def _toggle_slider(pg, key: str, values: tuple[int, int], text: str, repeats: int) -> list[float]:
    """Move slider ``key`` between ``values`` with the arrow keys; ``text`` shows the value once drawn."""
    slider = pg.locator(f".st-key-{key} input[type=range]")
    lo, hi = values
    out = []
    for _ in range(repeats):
        now = int(slider.input_value())
        arrow, target = ("ArrowRight", hi) if now == lo else ("ArrowLeft", lo)
        slider.focus()
        out.append(_settle(pg, lambda: slider.press(arrow), f"document.body.innerText.includes({text.format(target)!r})"))
    return out


def learn_step(pg, repeats: int) -> list[float]:
    """Move the BT walkthrough's step slider 1 <-> 2 (a fragment: only that section reruns)."""
    return _toggle_slider(pg, "learn_step_BT", (1, 2), "Step {} of", repeats)


def learn_growth(pg, repeats: int) -> list[float]:
    """Move the Rᵈ-core order slider 3 <-> 4 (section 4, a fragment)."""
    return _toggle_slider(pg, "learn_grow_d", (3, 4), "d = {}: rows", repeats)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        raise SystemExit("needs Debian's chromium (apt-get install chromium)")
    proc, url = start_server()
    rows = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=exe, args=ARGS)
            pg = browser.new_page(viewport={"width": 1400, "height": 1800})
            for page, cases in (("shapes", [("BT blocks N", shapes_blocks)]),
                                ("learn", [("walkthrough step", learn_step), ("core order d", learn_growth)])):
                pg.goto(f"{url}/{page}", timeout=120_000)
                pg.wait_for_selector(IDLE, timeout=120_000)
                pg.wait_for_timeout(1000)
                for label, fn in cases:
                    fn(pg, 1)  # warm-up
                    times = fn(pg, args.repeats)
                    rows.append((page, label, statistics.median(times), max(times)))
            browser.close()
    finally:
        proc.terminate()
        proc.wait(10)
    print(f"Widget change to settled page, UCF11 preset, chromium headless, median of {args.repeats}\n")
    print("| page | change | median s | max s |\n|---|---|---|---|")
    for page, label, med, worst in rows:
        print(f"| {page} | {label} | {med:.2f} | {worst:.2f} |")


if __name__ == "__main__":
    main()
