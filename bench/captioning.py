"""Benchmark: the captioning task on generated scenes, dense vs TT vs BT image maps.

Part 1: generating the default scene set (2,000 train + 300 validation), cold (cache cleared), median.
Part 2: one training step (teacher-forced forward, backward, Adam update) of each captioner on the
same batch, timed round-robin (one step of each model in turn, so machine load drifts hit them
alike), medians, as examples/s. Target: BT at least as fast as dense.
Part 3: the race: each model trained for ``--epochs`` epochs (``btcore.tasks.captioning.train_epochs``,
evaluated after every epoch) one after another; per model the training seconds, the final
validation BLEU-4 / exact / token accuracy and the parameter counts, against the image-blind
positional-unigram baseline. Target: all three together under 90 s.

Usage: ``python bench/captioning.py [--threads 1] [--epochs 8] [--batch 32] [--lr 3e-3] [--repeats 15]``.
Not a test: it asserts nothing and prints markdown tables.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch

from btcore.tasks import scenes
from btcore.tasks.captioning import Captioner, corpus_bleu, positional_unigram_caption, train_epochs
from btcore.tasks.scenes import SceneConfig, caption_config, make_scenes

KINDS = ("dense", "tt", "bt")


def _generation(repeats: int) -> float:
    times = []
    for _ in range(repeats):
        scenes._generate.cache_clear()
        t0 = time.perf_counter()
        make_scenes(SceneConfig())
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _step_times(models, train, batch: int, repeats: int) -> dict[str, float]:
    idx, caps = train.pairs()
    images = train.images[idx[:batch]]
    opts = {k: torch.optim.Adam(m.parameters(), lr=1e-3) for k, m in models.items()}
    tokens = next(iter(models.values())).vocabulary.encode_batch(caps[:batch])
    times: dict[str, list[float]] = {k: [] for k in models}
    for r in range(repeats + 2):  # two warm-up rounds
        for k, m in models.items():
            t0 = time.perf_counter()
            loss = m.loss(images, tokens)
            opts[k].zero_grad()
            loss.backward()
            opts[k].step()
            if r >= 2:
                times[k].append(time.perf_counter() - t0)
    return {k: batch / statistics.median(v) for k, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, {args.threads} thread(s), "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}\n")

    print(f"Scene generation (2,000 + 300, cold): {_generation(3) * 1e3:.0f} ms (median of 3)\n")
    train, val = make_scenes(SceneConfig())
    base = positional_unigram_caption([r[0] for r in train.captions])
    base_bleu = corpus_bleu([base] * len(val), val.captions)

    models = {k: Captioner(caption_config(k), generator=torch.Generator().manual_seed(args.seed)) for k in KINDS}
    speed = _step_times(models, train, args.batch, args.repeats)
    print(f"Training step, batch {args.batch} (median of {args.repeats}, round-robin)\n")
    print("| model | image-map params | all params | examples/s | vs dense |")
    print("|---|---:|---:|---:|---:|")
    for k, m in models.items():
        print(f"| {m.config.describe()} | {m.image_map_params():,} | {m.num_params:,} | {speed[k]:,.0f} | "
              f"{speed[k] / speed['dense']:.2f}x |")

    print(f"\nRace: {args.epochs} epochs each, batch {args.batch}, Adam lr {args.lr}, seed {args.seed}; "
          f"baseline (constant caption '{base}'): BLEU-4 {base_bleu:.1f}\n")
    print("| model | train s | eval s | examples/s | val BLEU-4 | exact | token acc |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    total = time.perf_counter()
    for k in KINDS:
        model = Captioner(caption_config(k), generator=torch.Generator().manual_seed(args.seed))
        t0 = time.perf_counter()
        hist = train_epochs(model, train, val, args.epochs, batch=args.batch, lr=args.lr, seed=args.seed)
        wall = time.perf_counter() - t0
        train_s = sum(h["seconds"] for h in hist)
        last = hist[-1]
        print(f"| {model.config.describe()} | {train_s:.1f} | {wall - train_s:.1f} | {last['examples'] / train_s:,.0f} "
              f"| {last['val_bleu']:.1f} | {last['val_exact']:.2f} | {last['val_token_acc']:.3f} |")
    print(f"\nAll three, one after another: {time.perf_counter() - total:.1f} s")


if __name__ == "__main__":
    main()
