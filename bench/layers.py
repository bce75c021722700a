"""Benchmark: BTLinear / TTLinear / dense nn.Linear on the UCF11 map and the app's size, and one recurrent step.

The UCF11 map of Ye et al. 2018: 57,600 -> 1,024 (frames 8x20x20x18, four LSTM gates of hidden
4x4x4x4 folded into the output modes 16x4x4x4), at batch 16, 64, 256; the app's default training
size 3,072 -> 256 (8x8x8x6 -> 16x4x2x2) at 256 rows. Times forward (no grad) and forward+backward
(gradients for the layer's parameters; the input is data and needs none) at each batch size, on one
thread, and prints medians and ratios against dense in one markdown table. Layers are timed
round-robin (one repeat of each in turn) so that machine load drifts hit all of them alike.

Reference layers, besides ``nn.Linear``:

* "einsum TT": a plain factorized TT layer, one ``torch.einsum`` over x and all cores (opt_einsum
  chooses the order, as in tensorly-torch's factorized forward). ``TTLinear`` should be at least as
  fast; its achieved GFLOP/s is printed next to the einsum layer's.
* "einsum BT": the same for the BT network.

Then one full recurrent step (input map + recurrent map + gates) of the dense, TT and BT LSTM and
GRU cells of the UCF11 configuration.

Usage: ``python bench/layers.py [--repeats 15] [--batches 16 64 256] [--threads 1] [--no-cells]``.
This is not a test: it asserts nothing. Targets: BTLinear (R=4, N=2) forward at least 7x faster
than dense at UCF11 batch 16 and 5x at 256; forward+backward at least 1.2x at the app size.
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import platform
import statistics
import time


import opt_einsum
import torch
from torch import nn

from btcore import BTLinear, TTLinear, plan_matmul
from btcore.classifier import ucf11_config
from btcore.rnn import KINDS, GRUCell, LSTMCell

from btcore.contract import tune_plan
from btcore.memory import keep_memory

TUNE = True
IN_MODES = (8, 20, 20, 18)
OUT_MODES = (16, 4, 4, 4)
APP_IN, APP_OUT = (8, 8, 8, 6), (16, 4, 2, 2)


class EinsumFactorized(nn.Module):
    """A reference factorized layer: one torch.einsum over x and the format's tensors (no cached plan)."""

    def __init__(self, layer):
        super().__init__()
        self.layer = layer
        net = layer.spec.network()
        self.eq = ",".join(net.terms) + "->" + net.output
        self.in_modes = layer.spec.in_modes

    def forward(self, x):
        xt = x.reshape((x.shape[0],) + self.in_modes)
        y = torch.einsum(self.eq, xt, *self.layer.to_matrix().tensors())
        return y.reshape(x.shape[0], -1) + self.layer.bias


def _clear_grads(module):
    for p in module.parameters():
        p.grad = None


def _timers(module, x):
    def fwd():
        with torch.no_grad():
            module(x)

    def fwd_bwd():
        _clear_grads(module)
        module(x).sum().backward()

    return fwd, fwd_bwd


def _round_robin(named_fns, repeats, warmup=2):
    """Median seconds of each function, timed one repeat of each in turn."""
    for _ in range(warmup):
        for _, f in named_fns:
            f()
    times = {name: [] for name, _ in named_fns}
    for _ in range(repeats):
        for name, f in named_fns:
            gc.collect()
            t = time.perf_counter()
            f()
            times[name].append(time.perf_counter() - t)
    return {name: statistics.median(ts) for name, ts in times.items()}


def _einsum_macs(spec, batch):
    net = spec.network()
    shapes = [(batch,) + s[1:] if n == "x" else s for n, s in zip(net.names, net.shapes)]
    _, info = opt_einsum.contract_path(",".join(net.terms) + "->" + net.output, *shapes, shapes=True)
    return int(info.opt_cost) // 2  # opt_einsum counts a multiply-add as 2 flops


def _chosen_macs(layer, b):
    """Multiply-adds of the scheme the layer runs by default (timed pick where matmul times)."""
    plan = plan_matmul(layer.spec, b)
    return tune_plan(layer.to_matrix(), b).macs if plan.cost_s > 2e-3 else plan.macs


def _peer_layers(in_modes, out_modes) -> dict:
    """Other libraries' factorized layers at R=4 where installed (skipped, with a note, when not).

    tensorly-torch's BlockTT (a TT-matrix) in its factorized implementation, and tednet's BT layer
    (R=4, N=2). Neither is a dependency of BT Lab: install them yourself to compare.
    """
    peers = {}
    try:
        import tltorch

        peers["tensorly-torch BlockTT (rank 4)"] = tltorch.FactorizedLinear(
            in_tensorized_features=tuple(in_modes), out_tensorized_features=tuple(out_modes),
            factorization="blocktt", rank=4, implementation="factorized")
    except Exception as exc:  # not installed, or an API this script does not know
        print(f"(tensorly-torch skipped: {type(exc).__name__}: {exc})")
    try:
        from tednet.tnn.block_term import BTTLinear

        peers["tednet BT (R=4, N=2)"] = BTTLinear(list(in_modes), list(out_modes), [4] * len(in_modes), 2)
    except Exception as exc:
        print(f"(tednet skipped: {type(exc).__name__}: {exc})")
    return peers


def bench_layers(batches, repeats, in_modes=IN_MODES, out_modes=OUT_MODES):
    torch.manual_seed(0)
    n_in, n_out = math.prod(in_modes), math.prod(out_modes)
    dense = nn.Linear(n_in, n_out)
    bt = BTLinear(in_modes, out_modes, rank=4, blocks=2)
    tt = TTLinear(in_modes, out_modes, ranks=4)
    layers = {
        "dense nn.Linear": dense,
        "BTLinear (R=4, N=2)": bt,
        "TTLinear (ranks 4)": tt,
    }
    if TUNE:
        bt_t = BTLinear(in_modes, out_modes, rank=4, blocks=2, tune=True)
        tt_t = TTLinear(in_modes, out_modes, ranks=4, tune=True)
        bt_t.load_state_dict(bt.state_dict())
        tt_t.load_state_dict(tt.state_dict())
        layers["BTLinear tune=True"] = bt_t
        layers["TTLinear tune=True"] = tt_t
    layers |= {
        "einsum BT (R=4, N=2)": EinsumFactorized(bt),
        "einsum TT (ranks 4)": EinsumFactorized(tt),
    }
    layers |= _peer_layers(in_modes, out_modes)
    params = {name: sum(p.numel() for p in m.parameters()) for name, m in layers.items()}
    params["einsum BT (R=4, N=2)"] = params["BTLinear (R=4, N=2)"]
    params["einsum TT (ranks 4)"] = params["TTLinear (ranks 4)"]
    macs = {}
    rows = []
    for b in batches:
        x = torch.randn(b, n_in)
        macs[b] = {
            "dense nn.Linear": n_in * n_out * b,
            "BTLinear (R=4, N=2)": _chosen_macs(bt, b),
            "TTLinear (ranks 4)": _chosen_macs(tt, b),
            "einsum BT (R=4, N=2)": _einsum_macs(bt.spec, b),
            "einsum TT (ranks 4)": _einsum_macs(tt.spec, b),
        }
        if TUNE:
            macs[b]["BTLinear tune=True"] = tune_plan(bt.to_matrix(), b).macs
            macs[b]["TTLinear tune=True"] = tune_plan(tt.to_matrix(), b).macs
        fns_f, fns_fb = [], []
        for name, m in layers.items():
            f, fb = _timers(m, x)
            fns_f.append((name, f))
            fns_fb.append((name, fb))
        tf = _round_robin(fns_f, repeats)
        tfb = _round_robin(fns_fb, max(3, repeats // 2))
        for name in layers:
            rows.append((b, name, params[name], macs[b].get(name, math.nan), tf[name], tfb[name],
                         tf["dense nn.Linear"] / tf[name], tfb["dense nn.Linear"] / tfb[name]))
    return rows


def bench_cells(batch, repeats):
    rows = []
    x = torch.randn(batch, 57_600)
    for cell_type, cls in (("lstm", LSTMCell), ("gru", GRUCell)):
        cells = {}
        for kind in KINDS:  # every format of the registry
            cfg = ucf11_config(kind, cell_type)
            torch.manual_seed(0)
            cells[cfg.describe()] = cls(cfg.in_modes, cfg.hidden_modes, kind, **cfg.controls())
        h = torch.randn(batch, 256)
        state = (h, torch.randn(batch, 256)) if cell_type == "lstm" else h

        def out(m):
            o = m(x, state)
            return o[0] if cell_type == "lstm" else o

        fns_f, fns_fb = [], []
        for name, m in cells.items():
            def f(m=m):
                with torch.no_grad():
                    out(m)

            def fb(m=m):
                _clear_grads(m)
                out(m).sum().backward()

            fns_f.append((name, f))
            fns_fb.append((name, fb))
        tf = _round_robin(fns_f, repeats)
        tfb = _round_robin(fns_fb, max(3, repeats // 2))
        dense_name = next(iter(cells))
        for name, m in cells.items():
            rows.append((batch, name, sum(p.numel() for p in m.parameters()), tf[name], tfb[name],
                         tf[dense_name] / tf[name], tfb[dense_name] / tfb[name]))
        del cells
        gc.collect()
    return rows


def _print_rows(rows, header=False):
    if header:
        print("| batch | layer | params | MMACs (scheme run) | fwd ms | fwd+bwd ms | fwd speed-up vs dense | "
              "fwd+bwd speed-up vs dense | fwd GMAC/s |")
        print("|---|---|---|---|---|---|---|---|---|")
    for b, name, p, m, tf, tfb, rf, rfb in rows:
        print(f"| {b} | {name} | {p:,} | {m / 1e6:,.1f} | {tf * 1e3:.2f} | {tfb * 1e3:.2f} | {rf:.1f}x | {rfb:.1f}x | "
              f"{m / tf / 1e9:.1f} |", flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--batches", type=int, nargs="+", default=[16, 64, 256], help="UCF11 batch sizes")
    ap.add_argument("--app-batch", type=int, default=256, help="rows at the app size (0: skip)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-cells", action="store_true", help="skip the recurrent-step benchmark")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    keep_memory()
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"threads={torch.get_num_threads()}, float32, median of {args.repeats} (fwd) / "
          f"{max(3, args.repeats // 2)} (fwd+bwd) round-robin repeats\n")
    print("### Input-to-hidden map 57,600 -> 1,024 (UCF11, LSTM gates folded: out modes 16x4x4x4)\n")
    _print_rows([], header=True)
    _print_rows(bench_layers(args.batches, args.repeats))
    if args.app_batch:
        print("\n### App default size 3,072 -> 256 (8x8x8x6 -> 16x4x2x2)\n")
        _print_rows(bench_layers([args.app_batch], args.repeats, APP_IN, APP_OUT), header=True)
    if not args.no_cells:
        b = args.batches[0]
        print(f"\n### One recurrent step (input map + recurrent map + gates), UCF11 cells, batch {b}\n")
        print("| batch | cell | params | fwd ms | fwd+bwd ms | fwd speed-up vs dense | fwd+bwd speed-up vs dense |")
        print("|---|---|---|---|---|---|---|")
        for b, name, p, tf, tfb, rf, rfb in bench_cells(b, args.repeats):
            print(f"| {b} | {name} | {p:,} | {tf * 1e3:.2f} | {tfb * 1e3:.2f} | {rf:.1f}x | {rfb:.1f}x |")


if __name__ == "__main__":
    main()
