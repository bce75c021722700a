"""Lecture-hall load: many browser sessions opening the same link, changing a widget, pressing Train.

Starts ``streamlit run app/main.py`` headless on 127.0.0.1 (a free port from 8500-8599) and drives
``--sessions`` real browser sessions with Playwright, all at once: all but the last in one chromium (a
context per session: each its own Streamlit session), the last, the *probe*, in a chromium of its own.

In a lecture hall every browser runs on a student's machine and the server has its cores to itself;
here all share two. So by default (``--browser-cpu idle``) the many sessions' chromium runs in the
Linux idle scheduling class (it draws with what the server leaves), except its browser and network
processes, which stamp the websocket frames; the probe's chromium and the server run in the normal
class. Each phase prints three rows: every browser (page ready as drawn on this machine), the
server's answer at each session's socket (from the rerun request sent to the end of the run received,
stamped by the browser's network service: ``bench/load_frames.py``), and the probe (page ready in a
browser that is not starved: what a student sees).

0. **script CPU**: before any browser, each page's script is run in this process through Streamlit's
   AppTest, three fresh sessions and a rerun, and the script thread's CPU seconds are printed: what
   one session's page costs the server, without the browsers.
1. **open**: one session opens each page first (the lecturer; a cold server imports and caches), then
   every session opens the same link of each page at once; time until the page's main element is
   drawn and Streamlit reports the script idle (page ready).
2. **widget change**: on the Shapes page every session sets BT blocks N to 3 at once, then back to
   2; time until the input holds the new value, the new count is drawn and the script is idle.
3. **Train**: every session presses Train on the Training page's default race at once; for each,
   the time its live loss chart shows its first point, after the first session's first point, and
   what the page says about sharing at that moment (one race for all is the expectation).

Every row also gives the CPU seconds the server process and the browsers (chromium and the Playwright
driver, all their processes) spent in the phase, read from ``/proc``, and the load average at its end.
Prints Markdown tables, then closes every session and stops the server.
Bounded: loopback only, a fixed number of sessions, a time limit on every wait.

    python bench/load.py [--sessions 20] [--no-script-cpu] [--browser-cpu idle|shared]

Needs Debian's chromium (``/usr/bin/chromium``) and the ``playwright`` package (no browser download);
Linux (``/proc``, scheduling classes) for the CPU columns and the idle class.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load_frames import SocketLog  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        # every session is its own tab: none may be throttled as a background one
        "--disable-background-timer-throttling", "--disable-renderer-backgrounding",
        "--disable-backgrounding-occluded-windows"]
IDLE = "[data-testid=stApp][data-test-script-state=notRunning]"
WAIT_MS = 240_000
TRAIN_WAIT_MS = 600_000  # twenty sessions on two cores: the data and the first steps take a while
POLL_MS = 100
PAGES = ("shapes", "learn", "approximation", "training")
#: The element that says each page is drawn.
READY = {"shapes": ".st-key-shapes_params_chart", "learn": ".st-key-learn_growth",
         "approximation": ".st-key-approx_fit button", "training": ".st-key-train_start button"}
BLOCKS = ".st-key-shapes_blocks input"
LOSS_POINTS = ".st-key-train_loss_chart:not([data-stale=true]) .scatterlayer .trace path.js-line"
TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


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


# -- CPU seconds from /proc -------------------------------------------------------------------------
def _stat(pid: int) -> tuple[int, float] | None:
    """``(parent pid, CPU seconds of the process and its reaped children)``; None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()  # after "pid (name) "
    return int(fields[1]), sum(int(x) for x in fields[11:15]) / TICK  # utime stime cutime cstime


def _tree(root: int, table: dict[int, tuple[int, float]]) -> set[int]:
    kids: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        kids.setdefault(ppid, []).append(pid)
    out, todo = set(), [root]
    while todo:
        pid = todo.pop()
        out.add(pid)
        todo.extend(kids.get(pid, []))
    return out


class CpuMeter:
    """CPU seconds of the server's processes and of the browser's (every other process this bench
    started: chromium's and the Playwright driver's), since the last :meth:`lap`.

    A process that ended keeps counting: seen ones are remembered, and what a parent reaped is in
    its children's totals.
    """

    def __init__(self, server_pid: int):
        self.server_pid = server_pid
        self.seen: dict[int, tuple[str, float]] = {}
        self.last = {"server": 0.0, "browser": 0.0}
        self.lap()

    def _sample(self) -> dict[str, float]:
        table = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and (st := _stat(int(entry.name))) is not None:
                table[int(entry.name)] = st
        server = _tree(self.server_pid, table)
        for pid in _tree(os.getpid(), table) - {os.getpid()}:
            self.seen[pid] = ("server" if pid in server else "browser", table[pid][1])
        totals = {"server": 0.0, "browser": 0.0}
        for kind, cpu in self.seen.values():
            totals[kind] += cpu
        return totals

    def lap(self) -> dict[str, float]:
        now = self._sample()
        out = {k: now[k] - self.last[k] for k in now}
        self.last = now
        return out


def _procs() -> dict[int, tuple[int, float]]:
    return {int(e.name): st for e in Path("/proc").iterdir() if e.name.isdigit() and (st := _stat(int(e.name))) is not None}


def _set_class(pids, policy: int) -> None:
    """Every thread of ``pids`` in scheduling class ``policy`` (``os.SCHED_IDLE`` / ``os.SCHED_OTHER``)."""
    for pid in pids:
        try:
            tasks = [int(t.name) for t in Path(f"/proc/{pid}/task").iterdir()]
        except OSError:
            continue
        for tid in tasks:
            try:
                os.sched_setscheduler(tid, policy, os.sched_param(0))
            except OSError:  # a thread that ended, or no right to raise the priority
                pass


def _browser_io_to_normal(skip: set[int]) -> list[int]:
    """Put chromium's browser process and its network service (every thread) back in the normal
    scheduling class; ``skip``: processes to leave as they are.

    The many sessions' browser runs in the idle class (``SCHED_IDLE``, inherited from this bench and
    its driver; chromium's own thread niceness does not lift it out): its drawing gets only what the
    server leaves. But those two processes stamp each websocket frame: a starved one would stamp late
    and charge the server for it. They carry messages and little else. Returns the pids changed.
    """
    changed = []
    for pid in _tree(os.getpid(), _procs()) - skip:
        try:
            # chromium rewrites its helpers' titles: the flags may come as one string with spaces
            line = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        name = Path(line.split(b" ")[0].decode(errors="replace")).name
        if "chrom" in name and (b"--type=" not in line or b"network.mojom.NetworkService" in line):
            changed.append(pid)
    _set_class(changed, os.SCHED_OTHER)
    return changed


def _p95(xs: list[float]) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(0.95 * (len(xs) - 1))))]


def _row(label: str, xs: list[float], failed: int, goal: float | None, cpu: dict[str, float]) -> str:
    tail = f" {cpu['server']:.1f} | {cpu['browser']:.1f} | {os.getloadavg()[0]:.1f} |"
    met = ((" yes |" if xs and _p95(xs) < goal and not failed else " no |") if goal else " - |")
    if not xs:
        return f"| {label} | 0 | {failed} | - | - | - |" + met + tail
    return (f"| {label} | {len(xs)} | {failed} | {statistics.median(xs):.2f} | {_p95(xs):.2f} | {max(xs):.2f} |"
            + met + tail)


#: The first error of each phase (printed after the tables, so a failed row says why).
ERRORS: dict[str, str] = {}


async def _timed(phase: str, coro) -> float | None:
    t0 = time.perf_counter()
    try:
        await coro
    except Exception as exc:  # noqa: BLE001 - a timeout counts as a failed session, reported in the table
        ERRORS.setdefault(phase, f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}")
        return None
    return time.perf_counter() - t0


async def _open(pg, url: str, page: str) -> None:
    await pg.goto(f"{url}/{page}", timeout=WAIT_MS)
    await pg.wait_for_selector(READY[page], timeout=WAIT_MS)
    await pg.wait_for_selector(IDLE, timeout=WAIT_MS)


async def _set_blocks(pg, n: int) -> None:
    """Type ``n`` into BT blocks N and commit it (Enter); done when the input holds ``n``, the BT
    metric names ``N=n`` and the script is idle."""
    box = pg.locator(BLOCKS)
    await box.wait_for(state="visible", timeout=WAIT_MS)
    await box.fill(str(n), timeout=WAIT_MS)
    await box.press("Enter", timeout=WAIT_MS)
    await pg.wait_for_function(
        """([sel, n]) => { const box = document.querySelector(sel);
                           return box && box.value === String(n) && document.body.innerText.includes(`N=${n})`); }""",
        arg=[BLOCKS, n], timeout=WAIT_MS, polling=POLL_MS)
    await pg.wait_for_selector(IDLE, timeout=WAIT_MS)


async def _first_point(pg) -> tuple[float, str]:
    """When the live loss chart shows its first point, and what the page said about sharing then."""
    await pg.wait_for_function(
        """sel => Array.from(document.querySelectorAll(sel))
              .some(p => (p.getAttribute('d') || '').split(/[ML]/).filter(s => s.trim()).length > 0)""",
        arg=LOSS_POINTS, timeout=TRAIN_WAIT_MS, polling=POLL_MS)
    t = time.time()
    body = await pg.inner_text("body")
    if "Joined the identical run" in body:
        return t, "joined"
    if "From the result computed at" in body:
        return t, "stored"
    return t, "shared" if "This run is shared with" in body else "own"


HEADER = ("| phase | sessions ok | failed | median s | p95 s | max s | goal met | server CPU s | browser CPU s "
          "| load (1 min) |\n|---|---:|---:|---:|---:|---:|---|---:|---:|---:|")


async def _phase(label: str, goal: float | None, coros, meter: CpuMeter, logs: list[SocketLog],
                 probe: bool = True) -> None:
    """Run ``coros`` (one per session, in the order of ``logs``; the last is the probe's when ``probe``)
    at once; print the rows of every browser, of the server's answers at each session's socket, and
    of the probe's browser."""
    meter.lap()
    marks = [log.mark() for log in logs]
    ts = await asyncio.gather(*(_timed(label, c) for c in coros))
    ok = [t for t in ts if t is not None]
    cpu = meter.lap()
    name = label.split(" (")[0]
    print(_row(f"{label}: every browser on this machine", ok, len(ts) - len(ok), goal, cpu), flush=True)
    answers = [log.answered(m) for log, m, t in zip(logs, marks, ts) if t is not None]
    got = [a for a in answers if a is not None]
    print(_row(f"{name}: the server's answer at each socket", got, len(ts) - len(got), goal, cpu), flush=True)
    if probe and len(ts) > 1:
        print(_row(f"{name}: the probe's browser (normal class)", [ts[-1]] if ts[-1] is not None else [],
                   int(ts[-1] is None), goal, cpu), flush=True)


async def _train(pages, url: str, meter: CpuMeter, logs: list[SocketLog]) -> None:
    n = len(pages)
    await asyncio.gather(*(_timed("open training before Train", _open(pg, url, "training")) for pg in pages))
    meter.lap()
    for log in logs:
        log.arm()
    t_click = time.time()
    await asyncio.gather(*(pg.locator(".st-key-train_start button").click(timeout=WAIT_MS) for pg in pages))
    firsts = await asyncio.gather(*(_first_point(pg) for pg in pages), return_exceptions=True)
    got = [f for f in firsts if isinstance(f, tuple)]
    for f in firsts:
        if isinstance(f, BaseException):
            ERRORS.setdefault("Train", f"{type(f).__name__}: {str(f).splitlines()[0][:300]}")
    cpu = meter.lap()
    if not got:
        print(_row("Train: first live point after the first session's (goal < 2 s)", [], n, 2.0, cpu))
        return
    t0 = min(t for t, _ in got)
    print(_row("Train: first live point after the first session's (goal < 2 s)", [t - t0 for t, _ in got],
               n - len(got), 2.0, cpu))
    at_socket = [log.chart_points for log in logs if log.chart_points is not None]
    if at_socket:
        print(_row("Train: first live point at each socket after the first session's", [t - min(at_socket) for t in
                                                                                       at_socket],
                   n - len(at_socket), 2.0, cpu))
    if isinstance(firsts[-1], tuple):
        print(_row("Train: the probe's first live point after the first session's", [firsts[-1][0] - t0], 0, 2.0,
                   cpu))
    kinds = [k for _, k in got]
    print(f"\nFirst live point {t0 - t_click:.1f} s after the clicks. What each page said at its first point: "
          f"joined the identical run {kinds.count('joined')}, the starter (\"shared with ...\") "
          f"{kinds.count('shared')}, the stored result {kinds.count('stored')}, a run of its own "
          f"{kinds.count('own')}; races run: {kinds.count('shared') + kinds.count('own')}.")


VIEWPORT = {"width": 1400, "height": 1600}


async def run(url: str, n: int, server_pid: int, idle_browsers: bool) -> None:
    from playwright.async_api import async_playwright

    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        raise SystemExit("needs Debian's chromium (apt-get install chromium)")
    print(f"{n} concurrent browser sessions: {n - 1} in one chromium ("
          f"{'drawing in the idle CPU class, the server in the normal one' if idle_browsers else 'the same CPU class as the server'}"
          f"), the probe in another (normal class); "
          f"{os.cpu_count()} CPUs; load average before: "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}\n", flush=True)
    meter = CpuMeter(server_pid)
    async with async_playwright() as p:
        # the probe: one more session, the last, in a browser of its own in the normal class (a student's
        # machine); the others' browser is started after this bench and its driver move to the idle class
        before = set(_procs())
        probe = await p.chromium.launch(executable_path=exe, args=ARGS)
        probe_pids = _tree(os.getpid(), _procs()) - before
        if idle_browsers:
            _set_class(_tree(os.getpid(), _procs()) - probe_pids, os.SCHED_IDLE)  # this bench and the driver
        browser = await p.chromium.launch(executable_path=exe, args=ARGS)
        if idle_browsers and not _browser_io_to_normal(probe_pids):
            print("(could not move chromium's browser and network processes to the normal class: the socket times "
                  "may include their waits)")
        contexts = [await browser.new_context(viewport=VIEWPORT) for _ in range(n - 1)]
        contexts.append(await probe.new_context(viewport=VIEWPORT))
        pages = [await c.new_page() for c in contexts]
        logs = [SocketLog(chart_key="train_loss_chart") for _ in pages]
        for c, pg, log in zip(contexts, pages, logs):
            await log.attach(c, pg)
        print(HEADER)
        for page in PAGES:  # the lecturer opens the link first
            await _phase(f"first visit of {page} (one session, cold server)", None, [_open(pages[0], url, page)],
                         meter, logs[:1], probe=False)
        for page in PAGES:
            await _phase(f"open {page} (page ready, goal p95 < 3 s)", 3.0, [_open(pg, url, page) for pg in pages],
                         meter, logs)
        await _phase("open shapes again (for the widget change)", None, [_open(pg, url, "shapes") for pg in pages],
                     meter, logs)
        for n_to in (3, 2):  # and back: the Training page's race is the default one again
            await _phase(f"Shapes: blocks N -> {n_to} (widget change, goal p95 < 1.5 s)", 1.5,
                         [_set_blocks(pg, n_to) for pg in pages], meter, logs)
        await _train(pages, url, meter, logs)
        for c in contexts:
            await c.close()
        await browser.close()
        await probe.close()
    for phase, text in ERRORS.items():
        print(f"First error in {phase}: {text}")
    print(f"Load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def script_cpu(pages=PAGES, sessions: int = 3) -> None:
    """Each page's script through AppTest in this process: script-thread CPU seconds of ``sessions``
    fresh sessions one after another (the first also warms this process) and of a rerun."""
    if sys.path[0] != str(ROOT):  # the app's package, not bench/app.py next to this script
        sys.path.insert(0, str(ROOT))
    from streamlit.runtime.scriptrunner import script_runner
    from streamlit.testing.v1 import AppTest

    cpu: list[float] = []
    plain = script_runner.ScriptRunner._run_script

    def timed(self, rerun_data):
        t0 = time.thread_time()
        try:
            return plain(self, rerun_data)
        finally:
            cpu.append(time.thread_time() - t0)

    script_runner.ScriptRunner._run_script = timed
    print("Script CPU per page run (AppTest in this process, no browser; seconds of the script thread):\n")
    print("| page | first session (cold) | next sessions | a rerun |\n|---|---:|---:|---:|")
    try:
        for page in pages:
            cpu.clear()
            for _ in range(sessions):
                at = AppTest.from_file(str(ROOT / "app" / "main.py"), default_timeout=300)
                at.switch_page(str(ROOT / "pages" / f"{page}.py")).run()
            at.run()
            nxt = " / ".join(f"{c:.3f}" for c in cpu[1:sessions])
            print(f"| {page} | {cpu[0]:.3f} | {nxt} | {cpu[sessions]:.3f} |", flush=True)
    finally:
        script_runner.ScriptRunner._run_script = plain
    print()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, default=20)
    ap.add_argument("--no-script-cpu", action="store_true", help="skip the AppTest script-CPU table")
    ap.add_argument("--browser-cpu", choices=("idle", "shared"), default="idle",
                    help="idle (default): the browsers' drawing gets only the CPU the server leaves (the Linux idle "
                         "class), as in a lecture hall where each browser runs on a student's machine; shared: the "
                         "same class as the server")
    a = ap.parse_args()
    if not 2 <= a.sessions <= 40:
        raise SystemExit("--sessions must be 2 to 40 (each is a browser context on this machine)")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if not a.no_script_cpu:
        script_cpu()
    proc, url = start_server()
    try:
        asyncio.run(run(url, a.sessions, proc.pid, a.browser_cpu == "idle"))
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()


if __name__ == "__main__":
    main()
