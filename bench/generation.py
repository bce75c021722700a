"""Benchmark: the DRAW-style generator with dense, TT and BT image maps on the digits (CPU).

Part 1 (speed): one full training step (forward, backward, Adam update) of each model on a batch of
digits, timed round-robin (one step of each model in turn, so machine load drifts hit them alike);
the median gives examples/s. Target: BT at least as fast as dense.

Part 2 (quality): each model trained for ``--epochs`` epochs on the 1,500 training digits with the
same seed (same batch order), then the validation negative ELBO in nats per image, with the image
maps' parameter counts and the wall seconds of the whole sequence (a race of the three must fit in
90 s on 2 cores).

Usage: ``python bench/generation.py [--threads 1] [--epochs 3] [--batch 100] [--repeats 15]
[--hidden 128 --hidden-modes 4,4,4,2] [--steps 8] [--latent 16]``. Not a test: it prints markdown tables.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch

from btcore.shapes import format_ints, parse_ints
from btcore.tasks.digits import digits_split
from btcore.tasks.generation import DrawModel, GenerationConfig, nelbo, train_epochs

KINDS = ("dense", "tt", "bt")


def _configs(args) -> dict[str, GenerationConfig]:
    base = dict(steps=args.steps, latent=args.latent, hidden_size=args.hidden,
                hidden_modes=parse_ints(args.hidden_modes, "hidden_modes"), rank=args.rank, blocks=args.blocks,
                tt_ranks=args.tt_ranks)
    return {k: GenerationConfig(kind=k, **base) for k in KINDS}


def _step_times(configs, train, batch: int, repeats: int) -> dict[str, float]:
    """Median seconds of one training step per model, timed round-robin after two warm-up steps."""
    models = {k: DrawModel(c, generator=torch.Generator().manual_seed(0)) for k, c in configs.items()}
    opts = {k: torch.optim.Adam(m.parameters(), lr=1e-3) for k, m in models.items()}
    noise = torch.Generator().manual_seed(1)
    times = {k: [] for k in models}
    for r in range(repeats + 2):
        x = train[(r * batch) % (len(train) - batch):][:batch]
        for k, m in models.items():
            t0 = time.perf_counter()
            loss, _ = m.loss(x, noise)
            opts[k].zero_grad(set_to_none=True)
            loss.backward()
            opts[k].step()
            if r >= 2:
                times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--steps", type=int, default=GenerationConfig.steps)
    p.add_argument("--latent", type=int, default=GenerationConfig.latent)
    p.add_argument("--hidden", type=int, default=GenerationConfig.hidden_size)
    p.add_argument("--hidden-modes", default=format_ints(GenerationConfig.hidden_modes, ","))
    p.add_argument("--rank", type=int, default=GenerationConfig.rank)
    p.add_argument("--blocks", type=int, default=GenerationConfig.blocks)
    p.add_argument("--tt-ranks", type=int, default=GenerationConfig.tt_ranks)
    p.add_argument("--skip-quality", action="store_true")
    args = p.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    torch.set_num_threads(args.threads)
    configs = _configs(args)
    data = digits_split()
    c = configs["bt"]
    print(f"torch {torch.__version__}, {platform.machine()}, {args.threads} thread(s); digits 28x28, "
          f"T={c.steps}, latent {c.latent}, hidden {c.hidden_size} = {format_ints(c.hidden_modes)}, "
          f"BT R={c.rank} N={c.blocks}, TT ranks {c.tt_ranks}, batch {args.batch}\n")

    steps = _step_times(configs, data.train, args.batch, args.repeats)
    print("| model | read map params | write map params | all params | step (ms) | examples/s | vs dense |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for k, cfg in configs.items():
        m = cfg.image_map_params()
        print(f"| {cfg.describe()} | {m['read']:,} | {m['write']:,} | {cfg.num_params():,} | {steps[k] * 1e3:.1f} | "
              f"{args.batch / steps[k]:,.0f} | {steps['dense'] / steps[k]:.2f}x |")
    if args.skip_quality:
        return

    print(f"\n| model | val nELBO at init | val nELBO after {args.epochs} epochs (nats/image) | "
          "epoch examples/s (median) | seconds |")
    print("|---|---:|---:|---:|---:|")
    total = 0.0
    for k, cfg in configs.items():
        t0 = time.perf_counter()
        model = DrawModel(cfg, generator=torch.Generator().manual_seed(0))
        start = nelbo(model, data.val)
        hist = train_epochs(model, data.train, data.val, epochs=args.epochs, batch=args.batch, seed=0)
        seconds = time.perf_counter() - t0
        total += seconds
        rate = statistics.median(h["examples_per_s"] for h in hist)
        print(f"| {cfg.describe()} | {start:.1f} | {hist[-1]['val_nelbo']:.1f} | {rate:,.0f} | {seconds:.1f} |")
    print(f"\nAll three one after another: {total:.1f} s")


if __name__ == "__main__":
    main()
