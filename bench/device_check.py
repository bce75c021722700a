"""One prepared check for a CUDA machine (under 5 minutes): correctness on the device, the CLI, DDP, speed.

1. ``btcore.matmul`` (every method), ``BTLinear``, ``TTLinear``, ``TRLinear`` and every recurrent cell
   (``LSTMCell``/``GRUCell`` x every format of ``btcore.rnn.KINDS``) on the device against the same weights on the CPU,
   float64: outputs and gradients.
2. One epoch of each model through the CLI (``python -m btcore.train --device cuda --epochs 1``), also of
   the generation and captioning tasks.
3. The same under ``torchrun --nproc_per_node=1`` (DDP, NCCL on CUDA).
4. BT vs dense times (forward, forward+backward, one Adam step) at the UCF11 and app sizes, plain and,
   where available, with ``torch.compile`` and a captured CUDA graph (forward).

Without CUDA it says so and runs parts 1, 2 and 4 on the CPU (``--quick``: tiny sizes, no torchrun),
which is what the test suite runs. Usage: ``python bench/device_check.py [--quick] [--device cuda]``.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import time

import torch
from torch import nn

import btcore
from btcore.contract.calibration import median_time
from btcore.rnn import KINDS, GRUCell, LSTMCell

SIZES = {"UCF11": ((8, 20, 20, 18), (16, 4, 4, 4), (16, 256)), "app": ((8, 8, 8, 6), (16, 4, 2, 2), (256,))}
QUICK = {"small": ((4, 4, 3), (4, 2, 2), (32,))}


def _close(a, b, what: str, failures: list) -> None:
    err = (a.detach().cpu() - b.detach().cpu()).abs().max().item() if a.numel() else 0.0
    scale = b.detach().abs().max().item() or 1.0
    ok = err <= 1e-9 * scale + 1e-12
    print(f"  {'ok ' if ok else 'BAD'} {what}: max |diff| {err:.2e}")
    if not ok:
        failures.append(what)


def check_correctness(device: str, failures: list) -> None:
    """Part 1: the device against the CPU in float64 (on a CPU-only machine: against the dense product)."""
    print(f"1. correctness on {device} vs CPU, float64")
    d64 = torch.float64
    for kind, M in (("BT", btcore.BTMatrix.random((4, 5, 3), (3, 2, 4), 2, 2, seed=0, dtype=d64)),
                    ("TT", btcore.TTMatrix.random((4, 5, 3), (3, 2, 4), 3, seed=0, dtype=d64)),
                    ("TR", btcore.TRMatrix.random((4, 5, 3), (3, 2, 4), 2, seed=0, dtype=d64))):
        x = torch.randn(9, 60, dtype=d64)
        ref = x @ M.to_dense()
        for method in btcore.contract.METHODS:
            _close(btcore.matmul(x.to(device), M.to(device), method=method), ref, f"matmul {kind} {method}", failures)
    for make in (lambda: btcore.BTLinear((4, 5, 3), (3, 2, 4), 2, 2, dtype=d64),
                 lambda: btcore.TTLinear((4, 5, 3), (3, 2, 4), 3, dtype=d64),
                 lambda: btcore.TRLinear((4, 5, 3), (3, 2, 4), 2, dtype=d64)):
        torch.manual_seed(0)
        cpu = make()
        dev = make().to(device)
        dev.load_state_dict(cpu.state_dict())
        x = torch.randn(7, 60, dtype=d64)
        for m, xx in ((cpu, x), (dev, x.to(device))):
            m(xx).square().sum().backward()
        _close(dev(x.to(device)), cpu(x), f"{type(cpu).__name__} forward", failures)
        for (n, p), q in zip(cpu.named_parameters(), dev.parameters()):
            _close(q.grad, p.grad, f"{type(cpu).__name__} grad {n}", failures)
    for cls in (LSTMCell, GRUCell):
        for kind in KINDS:
            torch.manual_seed(0)
            cpu = cls((4, 5, 3), (2, 2, 2), kind, rank=2, blocks=2, tt_ranks=2, tr_ranks=2).to(d64)
            dev = cls((4, 5, 3), (2, 2, 2), kind, rank=2, blocks=2, tt_ranks=2, tr_ranks=2).to(d64).to(device)
            dev.load_state_dict(cpu.state_dict())
            x = torch.randn(5, 60, dtype=d64)
            out_c, out_d = cpu(x), dev(x.to(device))
            out_c, out_d = (out_c[0], out_d[0]) if isinstance(out_c, tuple) else (out_c, out_d)
            _close(out_d, out_c, f"{cls.__name__} {kind} forward", failures)
            out_c.sum().backward()
            out_d.sum().backward()
            for (n, p), q in zip(cpu.named_parameters(), dev.parameters()):
                _close(q.grad, p.grad, f"{cls.__name__} {kind} grad {n}", failures)


def check_cli(device: str, full: bool, failures: list) -> None:
    """Parts 2 and 3: one epoch of each model through the CLI (``full``: of each task too), then under torchrun."""
    args = ["--model", ",".join(KINDS), "--epochs", "1", "--device", device, "--frame", "3x16x16", "--frames", "4",
            "--train-size", "32", "--val-size", "16", "--batch", "16", "--hidden", "16"]
    env = dict(os.environ, PYTHONPATH=os.getcwd() + os.pathsep + os.environ.get("PYTHONPATH", ""))
    runs = [("2. CLI", [sys.executable, "-m", "btcore.train", *args])]
    for task, extra in () if not full else (("generation", ["--train-size", "64", "--batch", "32"]),
                        ("captioning", ["--train-size", "64", "--val-size", "16", "--batch", "32"])):
        runs.append((f"2. CLI --task {task}", [sys.executable, "-m", "btcore.train", "--task", task, "--model",
                                                ",".join(KINDS), "--epochs", "1", "--device", device, *extra]))
    if full:
        runs.append(("3. torchrun (DDP)", [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=1",
                                           "-m", "btcore.train", *args]))
    for label, cmd in runs:
        t0 = time.perf_counter()
        res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=240)
        lines = [ln for ln in res.stdout.splitlines() if ln.startswith("{")]
        ok = res.returncode == 0 and bool(lines)
        print(f"{label}: {'ok' if ok else 'FAILED'} (rc {res.returncode}, {len(lines)} JSON lines, "
              f"{time.perf_counter() - t0:.1f} s)")
        if not ok:
            print(res.stderr[-2000:])
            failures.append(label)


def _time(fn, sync, repeats: int) -> float:
    """Median milliseconds of fn() (the planner's own timer)."""
    return median_time(fn, repeats, sync) * 1e3


def _variants(layer, x, device):
    """(label, forward fn) pairs: plain, torch.compile and a CUDA graph where they work."""
    out = [("plain", lambda: layer(x))]
    if device == "cuda":
        try:
            comp = torch.compile(layer)
            with torch.no_grad():
                comp(x)
            out.append(("compile", lambda: comp(x)))
        except Exception as exc:  # noqa: BLE001 - report and go on
            print(f"    torch.compile unavailable: {type(exc).__name__}: {str(exc)[:120]}")
        try:
            g, static_x = torch.cuda.CUDAGraph(), x.clone()
            with torch.no_grad():
                for _ in range(2):
                    layer(static_x)  # plan and tune outside the capture
                torch.cuda.synchronize()
                with torch.cuda.graph(g):
                    layer(static_x)
            out.append(("cuda graph", g.replay))
        except Exception as exc:  # noqa: BLE001
            print(f"    CUDA graph capture failed: {type(exc).__name__}: {str(exc)[:120]}")
    return out


def check_speed(device: str, sizes: dict, repeats: int) -> None:
    """Part 4: BT vs dense, float32."""
    sync = (lambda: torch.cuda.synchronize()) if device == "cuda" else (lambda: None)
    print(f"4. speed on {device}, float32, median of {repeats} (ms; speed-up vs dense)")
    for name, (i, o, batches) in sizes.items():
        n_in, n_out = math.prod(i), math.prod(o)
        torch.manual_seed(0)
        layers = {"dense": nn.Linear(n_in, n_out), "BT": btcore.BTLinear(i, o, 4, 2),
                  "TT": btcore.TTLinear(i, o, 4), "TR": btcore.TRLinear(i, o, 3)}
        for b in batches:
            x = torch.randn(b, n_in, device=device)
            res = {}
            for lname, layer in layers.items():
                layer = layer.to(device)
                opt = torch.optim.Adam(layer.parameters(), lr=1e-3)

                def fb(layer=layer):
                    layer.zero_grad(set_to_none=True)
                    layer(x).square().mean().backward()

                def step(layer=layer, opt=opt):
                    fb(layer)
                    opt.step()

                with torch.no_grad():
                    for label, f in _variants(layer, x, device):
                        res[(lname, "fwd " + label)] = _time(f, sync, repeats)
                res[(lname, "fwd+bwd")] = _time(fb, sync, repeats)
                res[(lname, "train step")] = _time(step, sync, repeats)
            for (lname, what), ms in res.items():
                dense = res.get(("dense", what))
                ratio = f"{dense / ms:.2f}x" if dense else "-"
                print(f"  {name} b{b} {lname:5s} {what:16s} {ms:9.3f} ms  {ratio}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--quick", action="store_true", help="tiny sizes, 2 repeats, no torchrun (the test's run)")
    ap.add_argument("--repeats", type=int, default=10)
    args = ap.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("CUDA is not available: running the CPU parts")
        args.device = "cpu"
    elif args.device == "cpu":
        print("no CUDA device asked for or present: running the CPU parts")
    else:
        print(f"CUDA: {torch.cuda.get_device_name()}, torch {torch.__version__}")
    failures: list = []
    check_correctness(args.device, failures)
    check_cli(args.device, full=not args.quick, failures=failures)
    check_speed(args.device, QUICK if args.quick else SIZES, 2 if args.quick else args.repeats)
    print("FAILED: " + ", ".join(failures) if failures else "all checks passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
