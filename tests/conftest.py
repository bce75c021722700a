"""Shared fixtures: AppTest pages, a Streamlit server and a Playwright browser (Debian chromium)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "artifacts"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", "--disable-quic"]


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Run every test with one torch thread: the default is many times slower on shared 2-core machines."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(autouse=True)
def _nothing_shared_between_tests():
    """Every test starts as on a fresh server: no shared job result or built training data of another test."""
    for name, attr in (("app.jobs", "SHARED"), ("app.training.worker", "DATA_CACHE")):
        if name in sys.modules:
            getattr(sys.modules[name], attr).clear()
    yield


def round_trip(at, page: str, away: str):
    """Switch the AppTest ``at`` to ``pages/<away>.py`` and back to ``pages/<page>.py`` (a run each)."""
    at.switch_page(str(ROOT / "pages" / f"{away}.py")).run()
    return at.switch_page(str(ROOT / "pages" / f"{page}.py")).run()


def open_page(page: str, *, timeout: float = 120, state: dict | None = None):
    """An AppTest of ``app/main.py`` switched to ``pages/<page>.py`` and run once.

    ``state`` is written into ``session_state`` before the run (e.g. a shared LabConfig).
    """
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app" / "main.py"), default_timeout=timeout)
    for k, v in (state or {}).items():
        at.session_state[k] = v
    at.switch_page(str(ROOT / "pages" / f"{page}.py"))
    return at.run()


def plotly_specs(at) -> list[dict]:
    """The plotly figures an AppTest rendered, as dicts (AppTest has no chart accessor)."""
    import json

    return [json.loads(el.proto.spec) for el in at.get("plotly_chart")]


@pytest.fixture
def page():
    return open_page


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture(scope="session")
def streamlit_server():
    """Base URL of ``streamlit run app/main.py`` started for the test session."""
    port = _free_port()
    ARTIFACTS.mkdir(exist_ok=True)
    log = open(ARTIFACTS / "streamlit-server.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "app" / "main.py"), "--server.headless", "true",
         "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
         "--server.fileWatcherType", "none"],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(url + "/_stcore/health", timeout=2).read().strip() == b"ok":
                break
        except OSError:
            pass
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with {proc.returncode}; see {log.name}")
        time.sleep(0.5)
    else:
        proc.kill()
        raise RuntimeError("streamlit did not answer /_stcore/health within 90 s")
    yield url
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


@pytest.fixture(scope="session")
def browser():
    """A headless Debian chromium driven by Playwright; a missing browser fails in CI, skips elsewhere."""
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if IN_CI:
            pytest.fail("playwright is not installed (pip install -r requirements-dev.txt)")
        pytest.skip("playwright is not installed")
    if exe is None:
        if IN_CI:
            pytest.fail("Debian chromium is missing: apt-get install chromium (.ci/run does this)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def app_page(browser, streamlit_server):
    """Open a page of the running app: ``app_page("shapes")`` returns a loaded Playwright page."""
    ctx = browser.new_context(viewport={"width": 1400, "height": 2400})
    opened = []

    def _open(url_path: str, timeout_ms: int = 90_000):
        pg = ctx.new_page()
        opened.append(pg)
        pg.goto(f"{streamlit_server}/{url_path}", timeout=timeout_ms)
        wait_idle(pg, timeout_ms)
        return pg

    yield _open
    ctx.close()


def wait_idle(pg, timeout_ms: int = 90_000) -> None:
    """Wait until Streamlit has finished running the script."""
    pg.wait_for_selector("[data-testid=stApp][data-test-script-state=notRunning]", timeout=timeout_ms)
    pg.wait_for_timeout(300)


def screenshot(pg, name: str) -> Path:
    out = ARTIFACTS / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.png"
    pg.screenshot(path=str(path), full_page=True)
    return path
