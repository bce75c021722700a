"""Corpus BLEU-4 by sacrebleu, from sufficient statistics that add over batches and processes.

sacrebleu's corpus BLEU is a function of per-corpus sums (matched and total n-grams of each order,
hypothesis and closest-reference lengths), so a validation set scored batch by batch, or split over
DistributedDataParallel processes, gives exactly the score of the whole set in one call:
:func:`bleu_stats` on each part, the parts' values added, :func:`bleu_from_stats` on the sum.
Settings are those of :func:`btcore.tasks.captioning.corpus_bleu`: whitespace tokens
(``tokenize="none"``), exponential smoothing, n-grams up to 4.
"""

from __future__ import annotations

from typing import Sequence

from sacrebleu.metrics import BLEU

__all__ = ["BLEU_ORDER", "BLEU_KEYS", "bleu_stats", "bleu_from_stats", "corpus_bleu"]

BLEU_ORDER = 4
#: Keys of :func:`bleu_stats`: matched and total n-grams of orders 1..4, then the two lengths.
BLEU_KEYS = tuple(f"bleu_match{k}" for k in range(1, BLEU_ORDER + 1)) + tuple(
    f"bleu_total{k}" for k in range(1, BLEU_ORDER + 1)) + ("bleu_sys_len", "bleu_ref_len")
_SMOOTH = "exp"


def _metric() -> BLEU:
    return BLEU(tokenize="none", smooth_method=_SMOOTH, max_ngram_order=BLEU_ORDER)


def bleu_stats(hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> dict[str, float]:
    """The BLEU sufficient statistics of ``hypotheses`` against ``references[i]`` (one or more each), keyed by :data:`BLEU_KEYS`."""
    refs = [tuple(r) if isinstance(r, (list, tuple)) else (r,) for r in references]
    if len(refs) != len(hypotheses):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(refs)} reference lists")
    if not refs:
        return dict.fromkeys(BLEU_KEYS, 0.0)
    if any(not r for r in refs):
        raise ValueError("every hypothesis needs at least one reference")
    width = max(len(r) for r in refs)
    streams = [[r[k] if k < len(r) else None for r in refs] for k in range(width)]
    s = _metric().corpus_score(list(hypotheses), streams)
    values = [*s.counts, *s.totals, s.sys_len, s.ref_len]
    return {k: float(v) for k, v in zip(BLEU_KEYS, values)}


def bleu_from_stats(stats: dict[str, float]) -> float:
    """Corpus BLEU-4 (0-100) from summed :func:`bleu_stats`."""
    n = BLEU_ORDER
    v = [int(round(stats[k])) for k in BLEU_KEYS]
    score = BLEU.compute_bleu(v[:n], v[n:2 * n], v[2 * n], v[2 * n + 1], smooth_method=_SMOOTH,
                              max_ngram_order=n)
    return float(score.score)


def corpus_bleu(hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> float:
    """Corpus BLEU-4 (0-100) by sacrebleu: whitespace tokens, exponential smoothing.

    ``references[i]`` holds the reference captions of hypothesis i (any number >= 1).
    """
    if not hypotheses and not references:
        raise ValueError("BLEU needs at least one hypothesis")
    return bleu_from_stats(bleu_stats(hypotheses, references))
