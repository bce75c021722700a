"""btcore.tasks.bleu: corpus BLEU-4 from sufficient statistics that add over parts."""

from __future__ import annotations

import pytest
from sacrebleu.metrics import BLEU

from btcore.tasks.bleu import BLEU_KEYS, bleu_from_stats, bleu_stats, corpus_bleu

HYPS = ["a small red circle on the left", "a large blue square", "", "a small red circle left of a large cyan cross",
        "a blue square at the top"]
REFS = [("a small red circle on the left",), ("a large blue square on the right", "a large blue square at the top"),
        ("a small green triangle above a large red circle",), ("a small red circle left of a large cyan cross",),
        ("a large blue square at the top",)]


def test_equals_sacrebleu_on_the_whole_corpus():
    streams = [[r[0] for r in REFS], [r[1] if len(r) > 1 else None for r in REFS]]
    want = BLEU(tokenize="none").corpus_score(HYPS, streams).score
    assert corpus_bleu(HYPS, REFS) == pytest.approx(want, abs=1e-12)
    assert corpus_bleu([r[0] for r in REFS], REFS) == pytest.approx(100.0)


@pytest.mark.parametrize("cut", [1, 2, 4])
def test_statistics_of_parts_add_up_to_the_corpus_score(cut):
    parts = [bleu_stats(HYPS[:cut], REFS[:cut]), bleu_stats(HYPS[cut:], REFS[cut:])]
    total = {k: parts[0][k] + parts[1][k] for k in BLEU_KEYS}
    assert bleu_from_stats(total) == pytest.approx(corpus_bleu(HYPS, REFS), abs=1e-12)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="2 hypotheses but 1"):
        bleu_stats(["a", "b"], [("a",)])
    with pytest.raises(ValueError, match="at least one reference"):
        bleu_stats(["a"], [()])
    with pytest.raises(ValueError, match="at least one hypothesis"):
        corpus_bleu([], [])
    assert bleu_stats([], []) == dict.fromkeys(BLEU_KEYS, 0.0)
