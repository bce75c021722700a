"""Lecture-hall load: many browser sessions opening the same link, changing a widget, pressing Train.

Starts ``streamlit run app/main.py`` headless on 127.0.0.1 (a free port from 8500-8599) and drives
``--sessions`` real browser sessions (one chromium, a context per session: each its own Streamlit
session) with Playwright, all at once:

1. **open**: one session opens each page first (the lecturer; a cold server imports and caches), then
   every session opens the same link of each page at once; time until the page's main element is
   drawn and Streamlit reports the script idle (page ready).
2. **widget change**: on the Shapes page every session sets BT blocks N to 3 at once, then back to
   2; time until the new count is drawn and the script is idle.
3. **Train**: every session presses Train on the Training page's default race at once; for each,
   the time its live loss chart shows its first point, after the first session's first point, and
   what the page says about sharing (one race for all is the expectation: identical jobs are shared).

Prints Markdown tables and the load average, then closes every session and stops the server.
Bounded: loopback only, a fixed number of sessions, a time limit on every wait.

    python bench/load.py [--sessions 20]

Needs Debian's chromium (``/usr/bin/chromium``) and the ``playwright`` package (no browser download).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
IDLE = "[data-testid=stApp][data-test-script-state=notRunning]"
WAIT_MS = 240_000
#: The element that says each page is drawn.
READY = {"shapes": ".st-key-shapes_params_chart", "learn": ".st-key-learn_growth",
         "approximation": ".st-key-approx_fit button", "training": ".st-key-train_start button"}
LOSS_POINTS = ".st-key-train_loss_chart:not([data-stale=true]) .scatterlayer .trace path.js-line"


def _port() -> int:
    for port in range(8500, 8600):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise SystemExit("no free port in 8500-8599")


def start_server() -> tuple[subprocess.Popen, str]:
    """``streamlit run app/main.py`` headless on 127.0.0.1 (a free port from 8500-8599), once healthy:
    ``(process, base URL)``. The caller stops the process."""
    port = _port()
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(ROOT / "app" / "main.py"),
                             "--server.headless", "true", "--server.port", str(port), "--server.address",
                             "127.0.0.1", "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(240):
        try:
            if urllib.request.urlopen(url + "/_stcore/health", timeout=2).read().strip() == b"ok":
                return proc, url
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise SystemExit("the app did not start")


def _p95(xs: list[float]) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(0.95 * (len(xs) - 1))))]


def _row(label: str, xs: list[float], failed: int, goal: float | None = None) -> str:
    if not xs:
        return f"| {label} | 0 | {failed} | - | - | - |" + (" no |" if goal else " - |")
    p95 = _p95(xs)
    cells = f"| {label} | {len(xs)} | {failed} | {statistics.median(xs):.2f} | {p95:.2f} | {max(xs):.2f} |"
    return cells + ((" yes |" if p95 < goal and not failed else " no |") if goal else " - |")


#: The first error of each kind a session met (printed after the tables, so a failed row says why).
ERRORS: dict[str, str] = {}


async def _timed(coro) -> float | None:
    t0 = time.perf_counter()
    try:
        await coro
    except Exception as exc:  # noqa: BLE001 - a timeout counts as a failed session, reported in the table
        ERRORS.setdefault(type(exc).__name__, str(exc).splitlines()[0][:200])
        return None
    return time.perf_counter() - t0


async def _open(pg, url: str, page: str) -> None:
    await pg.goto(f"{url}/{page}", timeout=WAIT_MS)
    await pg.wait_for_selector(READY[page], timeout=WAIT_MS)
    await pg.wait_for_selector(IDLE, timeout=WAIT_MS)


async def _set_blocks(pg, n: int) -> None:
    box = pg.locator(".st-key-shapes_blocks input")
    await box.fill(str(n))
    await box.press("Enter")
    await pg.wait_for_function(f"() => /N={n}\\)/.test(document.body.innerText)", timeout=WAIT_MS)
    await pg.wait_for_selector(IDLE, timeout=WAIT_MS)


async def _first_point(pg) -> float:
    await pg.wait_for_function(
        """sel => Array.from(document.querySelectorAll(sel))
              .some(p => (p.getAttribute('d') || '').split(/[ML]/).filter(s => s.trim()).length > 0)""",
        arg=LOSS_POINTS, timeout=WAIT_MS, polling=100)
    return time.time()


async def _share_text(pg) -> str:
    body = await pg.inner_text("body")
    if "Joined the identical run" in body:
        return "joined"
    if "From the result computed at" in body:
        return "stored"
    return "shared" if "This run is shared with" in body else "own"


async def run(url: str, n: int) -> None:
    from playwright.async_api import async_playwright

    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        raise SystemExit("needs Debian's chromium (apt-get install chromium)")
    print(f"{n} concurrent browser sessions, one chromium; {os.cpu_count()} CPUs; load average before: "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}\n")
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=exe, args=ARGS)
        contexts = [await browser.new_context(viewport={"width": 1400, "height": 1600}) for _ in range(n)]
        pages = [await c.new_page() for c in contexts]
        print("| phase | sessions ok | failed | median s | p95 s | max s | goal met |\n|---|---:|---:|---:|---:|---:|---|")
        for page in ("shapes", "learn", "approximation", "training"):  # the lecturer opens the link first
            t = await _timed(_open(pages[0], url, page))
            print(_row(f"first visit of {page} (one session, cold server)", [t] if t else [], 0 if t else 1))
        for page in ("shapes", "learn", "approximation", "training"):
            ts = await asyncio.gather(*(_timed(_open(pg, url, page)) for pg in pages))
            ok = [t for t in ts if t is not None]
            print(_row(f"open {page} (page ready, goal p95 < 3 s)", ok, len(ts) - len(ok), 3.0))
        ts = await asyncio.gather(*(_timed(_open(pg, url, "shapes")) for pg in pages))
        for n_to in (3, 2):  # and back: the Training page's race is the default one again
            ts = await asyncio.gather(*(_timed(_set_blocks(pg, n_to)) for pg in pages))
            ok = [t for t in ts if t is not None]
            print(_row(f"Shapes: blocks N -> {n_to} (widget change, goal p95 < 1.5 s)", ok, len(ts) - len(ok), 1.5))
        await asyncio.gather(*(_timed(_open(pg, url, "training")) for pg in pages))
        t_click = time.time()
        await asyncio.gather(*(pg.locator(".st-key-train_start button").click(timeout=WAIT_MS) for pg in pages))
        firsts = await asyncio.gather(*(_first_point(pg) for pg in pages), return_exceptions=True)
        got = [f for f in firsts if isinstance(f, float)]
        kinds = await asyncio.gather(*(_share_text(pg) for pg in pages))
        if got:
            lag = [f - min(got) for f in got]
            print(_row("Train: first live point after the first session's (goal < 2 s)", lag, n - len(got), 2.0))
            print(f"\nFirst live point {min(got) - t_click:.1f} s after the clicks; pages saying the run is "
                  f"joined: {kinds.count('joined')}, shared (the starter): {kinds.count('shared')}, "
                  f"stored: {kinds.count('stored')}, on their own: {kinds.count('own')}; races run: "
                  f"{kinds.count('shared') + kinds.count('own')}.")
        for c in contexts:
            await c.close()
        await browser.close()
    for kind, text in ERRORS.items():
        print(f"First {kind}: {text}")
    print(f"Load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, default=20)
    a = ap.parse_args()
    if not 1 <= a.sessions <= 40:
        raise SystemExit("--sessions must be 1 to 40 (each is a browser context on this machine)")
    proc, url = start_server()
    try:
        asyncio.run(run(url, a.sessions))
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()


if __name__ == "__main__":
    main()
