"""Tests of btcore.decompose.advise: the format and rank advisor (suggest_formats)."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
import torch

import btcore
from btcore.decompose import advise
from btcore.decompose.advise import ADVISOR_COLUMNS, recommended, search_tensorizations, suggest_formats


@pytest.fixture(scope="module")
def noisy():
    """A 64 x 64 exact BT (N=2, R=2 on 4x4x4 -> 4x4x4) plus 1% noise, and its advice at a budget of 400."""
    W = btcore.target_matrices.make_target("bt", (4, 4, 4), (4, 4, 4), 1, rank=2, blocks=2, noise=0.01)
    return W, suggest_formats(W, budget=400, max_order=3, rtol=0.0)


def _brute_front(df) -> list[bool]:
    p, e = df["params"].to_numpy(), np.maximum(df["error"].to_numpy(), btcore.decompose.AT_PRECISION)
    return [not any((p[j] <= p[i] and e[j] <= e[i]) and (p[j] < p[i] or e[j] < e[i]) for j in range(len(p)))
            for i in range(len(p))]


def test_table_columns_budget_order_and_front(noisy):
    W, df = noisy
    assert list(df.columns) == ADVISOR_COLUMNS
    assert len(df) > 20 and set(df["format"]) == {"BT", "TT", "Tucker", "CP", "TR"}
    assert (df["params"] <= 400).all()  # every candidate within the budget
    assert list(df["params"]) == sorted(df["params"])
    assert list(df["pareto"]) == _brute_front(df)
    front = df[df["pareto"]]
    assert list(front["error"]) == sorted(front["error"], reverse=True)  # more parameters, lower error
    for _, r in df.iterrows():  # parameter counts are the formats' own
        spec = (btcore.TTSpec(r.in_modes, r.out_modes, r.ranks) if r.format == "TT"
                else btcore.TRSpec(r.in_modes, r.out_modes, r.ranks) if r.format == "TR"
                else btcore.BTSpec(r.in_modes, r.out_modes, r.ranks, r.blocks))
        assert spec.params == r.params and np.prod(r.in_modes) == 64 and np.prod(r.out_modes) == 64
        assert (r.blocks is None) == (r.format in ("TT", "TR"))
    assert df.attrs["shape"] == (64, 64) and not df.attrs["stopped"]


def test_errors_are_real_fits(noisy):
    """A row's error is what fitting that format at those ranks gives (TT-SVD is direct: equal)."""
    W, df = noisy
    tt = df[df["format"] == "TT"].iloc[-1]
    M, _ = btcore.fit_tt(W, tt.in_modes, tt.out_modes, tt.ranks)
    assert btcore.relative_error(W, M) == pytest.approx(tt.error, rel=1e-8)
    best = recommended(df)
    if best.format != "TT":
        M, _ = btcore.fit_bt(W, best.in_modes, best.out_modes, best.ranks, best.blocks, restarts=3)
        assert btcore.relative_error(W, M) <= best.error * 1.05


def test_budget_rule_lowest_error_and_near_noise(noisy):
    W, df = noisy
    best = recommended(df)
    assert best.name == df.attrs["recommended"]
    assert best.error == df["error"].min()  # rtol=0: strictly the lowest error within the budget
    assert best.error < 0.012  # the noise floor (1%)
    assert "lowest error" in df.attrs["rule"]
    loose = suggest_formats(W, budget=400, max_order=3, rtol=0.5)
    pick = recommended(loose)
    tied = loose[loose["error"] <= loose["error"].min() * 1.5]
    assert pick.params == tied["params"].min()  # ties: the fewest parameters


def test_target_error_rule_fewest_params(noisy):
    W, _ = noisy
    df = suggest_formats(W, target_error=0.3, max_order=3, max_params=400)
    pick = recommended(df)
    reach = df[df["error"] <= 0.3]
    assert pick.error <= 0.3 and pick.params == reach["params"].min()
    assert "fewest parameters" in df.attrs["rule"]
    none = suggest_formats(W, target_error=1e-6, max_order=2, max_params=200, formats=("tt",))
    assert "no candidate reaches" in none.attrs["rule"] and recommended(none).error == none["error"].min()


def test_recovers_an_exact_bt_structure_at_its_size():
    M = btcore.BTMatrix.random((4, 4, 4), (4, 4, 4), 3, 2, seed=0, dtype=torch.float64)
    W = M.to_dense().numpy()
    df = suggest_formats(W, budget=M.num_params, max_order=3)
    best = recommended(df)
    assert best.format == "BT" and best.blocks == 2 and best.ranks == (3, 3, 3)
    assert sorted(zip(best.in_modes, best.out_modes)) == [(4, 4)] * 3 and best.error < 1e-6


def test_recovers_an_exact_tt_structure_at_its_size():
    T = btcore.TTMatrix.random((4, 4, 4), (4, 4, 4), (1, 3, 3, 1), seed=0, dtype=torch.float64)
    W = T.to_dense().numpy()
    df = suggest_formats(W, budget=T.num_params, max_order=3)
    best = recommended(df)
    assert best.format == "TT" and best.ranks == (1, 3, 3, 1) and best.error < 1e-8
    assert best.params == T.num_params


def test_tensorizations_are_distinct_and_cover_the_matrix():
    shapes = search_tensorizations((256, 64), 4, extra=[((4, 4, 4, 4), (4, 4, 2, 2))])
    assert shapes[0] == ((4, 4, 4, 4), (4, 4, 2, 2))  # the given one first
    assert ((256, 1), (1, 64)) in shapes  # the plain matrix: its TT is the truncated SVD
    keys = [advise._canonical(i, o, True) for i, o in shapes]
    assert len(set(keys)) == len(keys)
    for i, o in shapes:
        assert np.prod(i) == 256 and np.prod(o) == 64 and 2 <= len(i) <= 4
    assert {len(i) for i, _ in shapes} == {2, 3, 4}


def test_progress_and_stop():
    W = btcore.target_matrices.make_target("tt", (4, 4, 4), (4, 4, 4), 0, ranks=2, noise=0.01)
    seen = []
    df = suggest_formats(W, budget=300, max_order=3, progress=lambda f, m: seen.append((f, m)))
    fr = [f for f, _ in seen]
    assert fr == sorted(fr) and 0 <= fr[0] and fr[-1] == 1.0 and all(isinstance(m, str) for _, m in seen)
    calls = []

    def stop():
        calls.append(1)
        return len(calls) > 12

    part = suggest_formats(W, budget=300, max_order=3, should_stop=stop)
    assert part.attrs["stopped"] and 0 < len(part) < len(df)
    assert list(part["pareto"]) == _brute_front(part)
    none = suggest_formats(W, budget=300, should_stop=lambda: True)
    assert none.empty and none.attrs["recommended"] is None
    with pytest.raises(ValueError, match="no recommendation"):
        recommended(none)


def test_progress_counts_every_candidate_and_stop_ends_the_search():
    """Progress says "candidate k of n", k rising by one to n at the end; Stop during the screening
    ends the search before any full fit."""
    W = btcore.target_matrices.make_target("tt", (4, 4, 4), (4, 4, 4), 0, ranks=2, noise=0.01)
    seen = []
    df = suggest_formats(W, budget=300, max_order=3, progress=lambda f, m: seen.append(m))
    counts = [tuple(map(int, g)) for m in seen for g in re.findall(r"candidate (\d+) of (\d+)", m)]
    assert [k for k, _ in counts] == list(range(1, len(counts) + 1)) and all(k <= n for k, n in counts)
    tally = [tuple(map(int, g)) for m in seen for g in re.findall(r"(\d+) of (\d+) candidates evaluated", m)]
    assert tally == [(len(counts), len(counts))]  # every planned candidate was evaluated
    assert len(counts) >= len(df)  # every row was counted once (a full refit counts again)
    screening = []

    def stop():
        return bool(screening)

    part = suggest_formats(W, budget=300, max_order=3, should_stop=stop,
                           progress=lambda f, m: screening.append(m) if "screening" in m else None)
    assert part.attrs["stopped"] and "full" not in set(part["stage"]) and "full" in set(df["stage"])
    assert set(part[part["stage"] == "screen"]["format"]) <= {"BT", "CP"} and len(part) < len(df)


def test_same_input_same_table_bit_for_bit():
    W = btcore.target_matrices.make_target("bt", (4, 4, 4), (4, 4, 4), 3, rank=2, blocks=3, noise=0.02)
    a = suggest_formats(W, budget=500, max_order=3, seed=1)
    b = suggest_formats(W, budget=500, max_order=3, seed=1)
    cols = [c for c in ADVISOR_COLUMNS if c != "seconds"]
    pd.testing.assert_frame_equal(a[cols], b[cols], check_exact=True)
    assert a.attrs["recommended"] == b.attrs["recommended"]


def test_tt_rows_are_tt_svd_errors_and_bt_cp_rows_use_the_budget(noisy):
    """Every TT row's error is fit_tt's (the advisor computes it from singular values); with a budget and
    no tie tolerance (rtol=0: no smaller tied model is searched) each BT/CP row has the most blocks of
    its ranks that fit in it."""
    W, df = noisy
    for _, r in df[df["format"] == "TT"].iterrows():
        _, info = btcore.fit_tt(W, r.in_modes, r.out_modes, r.ranks)
        assert info.relative_error == pytest.approx(r.error, rel=1e-9, abs=1e-12)
    als = df[df["format"].isin(["BT", "CP"])]
    assert set(als["format"]) == {"BT", "CP"}
    for _, r in als.iterrows():
        assert btcore.BTSpec(r.in_modes, r.out_modes, r.ranks, r.blocks + 1).params > 400 >= r.params


def test_budget_pick_is_the_smallest_tied_model_not_only_the_most_blocks():
    """The Approximation page's default target (2 blocks of rank 3 on 4x4x4x4 + 1% noise) at a budget of
    2,000: every model of the most blocks within the budget stops at the noise floor, and the smaller
    generating structure (546 parameters) ties with them within rtol. It is found and recommended."""
    W = btcore.target_matrices.bt_structured((4, 4, 4, 4), (4, 4, 4, 4), seed=0, rank=3, blocks=2, noise=0.01)
    df = suggest_formats(W, budget=2000, max_order=4)
    pick = recommended(df)
    assert (pick.format, pick.ranks, pick.blocks, pick.params) == ("BT", (3, 3, 3, 3), 2, 546)
    assert pick.error <= df["error"].min() * 1.02
    tied = df[df["error"] <= df["error"].min() * 1.02]
    assert pick.params == tied["params"].min()
    big = df[(df["format"] == "BT") & (df["ranks"] == (3, 3, 3, 3)) & (df["in_modes"] == (4, 4, 4, 4))]
    assert big["blocks"].max() == 7  # the budget phase's row of that rank is still there


def test_pick_is_within_two_percent_of_full_fits_on_a_photo():
    """camera at 64 x 64, budget 3%: the pick is within 2% of the best full fit of every BT and CP row."""
    skimage_data = pytest.importorskip("skimage.data")
    W = skimage_data.camera()[::8, ::8].astype(np.float64) / 255.0
    budget = int(0.03 * W.size)
    df = suggest_formats(W, budget=budget, max_order=3)
    pick = recommended(df)
    best = df["error"].min()
    for _, r in df[df["format"].isin(["BT", "CP"]) & (df["stage"] != "full")].iterrows():
        task = btcore.decompose.FitTask(r.format, tuple(r.ranks), int(r.blocks), int(r.params))
        _, info = btcore.decompose.fit_task(W, r.in_modes, r.out_modes, task,
                                            fit_kwargs={"settings": btcore.decompose.ADVISOR_FULL})
        best = min(best, info.relative_error)
    assert pick.error <= 1.02 * best


@pytest.mark.parametrize("kwargs, message", [
    ({"budget": 0}, "budget"),
    ({"budget": 2.5}, "budget"),
    ({"target_error": -1}, "target_error"),
    ({"target_error": float("nan")}, "target_error"),
    ({"formats": ("bt", "ht")}, "formats"),
    ({"formats": ()}, "formats"),
    ({"formats": "bt"}, "formats"),
    ({"max_order": 1}, "max_order"),
    ({"max_order": 9}, "max_order"),
    ({"seed": -1}, "seed"),
    ({"progress": 3}, "progress"),
    ({"should_stop": "no"}, "should_stop"),
    ({"tensorizations": [((4, 4), (4, 3))]}, "tensorizations"),
    ({"tensorizations": [(4, 4)]}, "tensorizations"),
    ({"rtol": 1.5}, "rtol"),
    ({"max_screen": 0}, "max_screen"),
    ({"max_params": -3}, "max_params"),
    ({"fit_kwargs": [1]}, "fit_kwargs"),
])
def test_bad_arguments_name_the_field(kwargs, message):
    W = np.ones((16, 16))
    with pytest.raises(ValueError, match=message):
        suggest_formats(W, **kwargs)


def test_bad_matrix():
    with pytest.raises(ValueError, match="W"):
        suggest_formats(np.ones(16), budget=10)
    bad = np.ones((8, 8))
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        suggest_formats(bad, budget=10)
