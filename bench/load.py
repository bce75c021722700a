"""Load test: page and health latencies of a local BT Lab server while training jobs run.

Starts ``streamlit run app/main.py`` headless on 127.0.0.1 (a free port), starts ``--jobs`` CPU-bound
training processes (the CLI's default comparison, as the page's jobs would run; 1 torch thread
each), and from ``--sessions`` client threads fetches the app's page HTML and ``/_stcore/health`` in
a loop for ``--seconds`` seconds. Prints the median and worst latencies, with and without the jobs,
then stops everything it started. Bounded: local only, a fixed number of clients, a time limit.

Usage: ``python bench/load.py [--sessions 20] [--seconds 20] [--jobs 2]``. Not a test.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> float:
    t0 = time.perf_counter()
    with urllib.request.urlopen(url, timeout=10) as r:
        r.read()
    return time.perf_counter() - t0


def _clients(base: str, sessions: int, seconds: float) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"page": [], "health": []}
    lock = threading.Lock()
    end = time.time() + seconds

    def work():
        while time.time() < end:
            for what, path in (("page", "/training"), ("health", "/_stcore/health")):
                try:
                    dt = _get(base + path)
                except OSError:
                    dt = float("inf")
                with lock:
                    out[what].append(dt)
            time.sleep(0.2)

    threads = [threading.Thread(target=work, daemon=True) for _ in range(sessions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 30)
    return out


def _report(label: str, res: dict[str, list[float]]) -> None:
    for what, v in res.items():
        ok = [x for x in v if x != float("inf")]
        print(f"| {label} | {what} | {len(v)} | {len(v) - len(ok)} | {1000 * statistics.median(ok):.0f} | "
              f"{1000 * max(ok):.0f} | {sum(x < 2.0 for x in ok) / max(len(v), 1):.1%} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sessions", type=int, default=20)
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--jobs", type=int, default=2)
    a = p.parse_args()
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    server = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app/main.py", "--server.headless", "true",
                               "--server.address", "127.0.0.1", "--server.port", str(port)], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    jobs = []
    try:
        for _ in range(120):
            try:
                _get(base + "/_stcore/health")
                break
            except OSError:
                time.sleep(0.5)
        print(f"{a.sessions} clients, {a.seconds:g} s each phase, {a.jobs} training job(s), {os.cpu_count()} CPUs\n")
        print("| phase | request | count | failed | median ms | worst ms | under 2 s |")
        print("|---|---|---:|---:|---:|---:|---:|")
        _report("idle", _clients(base, a.sessions, a.seconds))
        jobs = [subprocess.Popen([sys.executable, "-m", "btcore.train", "--model", "dense,tt,bt", "--threads", "1",
                                  "--epochs", "50"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL) for _ in range(a.jobs)]
        time.sleep(2)
        _report(f"{a.jobs} jobs running", _clients(base, a.sessions, a.seconds))
    finally:
        for proc in jobs + [server]:
            proc.terminate()
        for proc in jobs + [server]:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


if __name__ == "__main__":
    main()
