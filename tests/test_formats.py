import pytest
import torch

import btcore
from btcore import BTSpec, DenseSpec, TTSpec

UCF_IN, UCF_OUT, UCF_OUT_GRU = (8, 20, 20, 18), (16, 4, 4, 4), (12, 4, 4, 4)


def test_paper_numbers():
    """docs/reference.md, "The paper's UCF11 setting": the UCF11 input-to-hidden map."""
    assert btcore.dense_params(UCF_IN, UCF_OUT) == 58_982_400
    assert btcore.bt_params(UCF_IN, UCF_OUT, 4, 1) == 1_696
    assert btcore.bt_params(UCF_IN, UCF_OUT, 4, 2) == 3_392
    assert round(58_982_400 / 3_392, 1) == 17_388.7
    assert BTSpec(UCF_IN, UCF_OUT, 4, 2).compression == pytest.approx(17_388.68, abs=0.01)
    assert btcore.tt_params(UCF_IN, UCF_OUT, 4) == 3_360
    assert btcore.tt_params(UCF_IN, UCF_OUT_GRU, 4) == 3_232


def test_hand_counts():
    # BT: N * (sum I_k J_k R_k + prod R_k), per-mode ranks.
    assert btcore.bt_params((2, 3), (4, 5), (2, 3), 3) == 3 * (2 * 4 * 2 + 3 * 5 * 3 + 2 * 3)
    # TT: sum r_{k-1} I_k J_k r_k with boundary ranks 1.
    assert btcore.tt_params((2, 3, 4), (5, 6, 7), (2, 3)) == 1 * 2 * 5 * 2 + 2 * 3 * 6 * 3 + 3 * 4 * 7 * 1
    assert btcore.tt_params((2, 3, 4), (5, 6, 7), (1, 2, 3, 1)) == btcore.tt_params((2, 3, 4), (5, 6, 7), (2, 3))
    assert btcore.tucker_params((2, 3), (4, 5), 2) == 2 * 4 * 2 + 3 * 5 * 2 + 4
    assert btcore.cp_params((2, 3), (4, 5), 7) == 7 * (8 + 15 + 1)
    assert btcore.dense_params(6, 20) == 120


def test_special_case_names():
    assert BTSpec((4, 4), (4, 4), 2, 1).kind == "Tucker"
    assert BTSpec((4, 4), (4, 4), 1, 5).kind == "CP"
    assert BTSpec((4, 4), (4, 4), 2, 3).kind == "BT"
    assert btcore.cp_spec((4, 4), (4, 4), 5) == BTSpec((4, 4), (4, 4), 1, 5)
    assert btcore.tucker_spec((4, 4), (4, 4), 3) == BTSpec((4, 4), (4, 4), 3, 1)


@pytest.mark.parametrize("make, message", [
    (lambda: BTSpec((8, 20, 20, 18), (16, 4, 4), 4, 2), r"in_modes has 4 modes but out_modes has 3"),
    (lambda: BTSpec((8, 20), (4, 4), 4, 2, in_size=161), r"in_modes: the product of the modes 8 x 20 = 160 does not equal the size 161"),
    (lambda: BTSpec((2, 2), (2, 2), 0, 2), r"rank must be at least 1, got 0"),
    (lambda: BTSpec((2, 2), (2, 2), 2, 0), r"blocks must be at least 1, got 0"),
    (lambda: BTSpec((2, 2), (2, 2), 2.5, 1), r"rank must be a positive integer, got 2.5"),
    (lambda: BTSpec((2, 2), (2, 2), "4", 1), r"rank must be an int or a sequence"),
    (lambda: BTSpec((2, 2), (2, 2), (2, 2, 2), 1), r"rank has 3 entries; give one int or one rank per mode \(d = 2\)"),
    (lambda: BTSpec((2, 3), (2, 2), 5, 1), r"rank\[0\] = 5 is above mode 1's size I\*J = 2\*2 = 4; .*adds parameters and no expressive power"),
    (lambda: BTSpec((16,) * 4, (16,) * 4, 200, 1), r"the BT core .* has 1,600,000,000 entries .* above the limit .* lower the rank R, the order d"),
    (lambda: TTSpec((2, 2, 2), (2, 2, 2), (2, 2, 2)), r"ranks has 3 entries; a TT-matrix of order d = 3 needs d-1 = 2 inner ranks"),
    (lambda: TTSpec((2, 2, 2), (2, 2, 2), 5), r"ranks\[0\] = 5 is above the largest useful TT rank 4 between cores 1 and 2"),
    (lambda: TTSpec((2, 2), (2, 2), (2, 4, 1)), r"first and last must be 1"),
    (lambda: TTSpec((2, 2), (2, 2), -1), r"ranks must be at least 1"),
    (lambda: DenseSpec((2, 0), (2, 2)), r"in_modes\[1\] must be at least 1"),
    (lambda: DenseSpec((2,) * 9, (2,) * 9), r"order d = 9 is above the supported maximum 8"),
    (lambda: BTSpec(True, 3, 1, 1), r"in_modes must be a sequence of positive integers"),
])
def test_validation_messages(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_macs_follow_the_plan():
    spec = BTSpec(UCF_IN, UCF_OUT, 4, 2)
    for batch in (1, 16, 64):
        plan = spec.plan(batch)
        assert spec.macs(batch) == plan.macs / batch == sum(s.macs for s in plan.steps) / batch
        assert plan.method == "contract"
    # The contraction is far cheaper than the dense product (docs/reference.md: the first step is ~40% of the total).
    assert spec.macs(16) < 0.1 * DenseSpec(UCF_IN, UCF_OUT).macs(16)
    assert DenseSpec(UCF_IN, UCF_OUT).macs(16) == 57_600 * 1_024
    # The first step that touches x costs I * min_k(J_k R) * N per sample (docs/reference.md, "y = x W without forming W").
    first_x = next(s for s in spec.plan(16).steps if "x" in (s.left, s.right))
    assert first_x.macs / 16 == min(j * 4 for j in UCF_OUT) * 57_600 * 2


def test_memory():
    spec = BTSpec(UCF_IN, UCF_OUT, 4, 2)
    m32, m64 = spec.memory(torch.float32, 16), spec.memory("float64", 16)
    assert m32["params"] == 3_392 * 4 and m64["params"] == 3_392 * 8
    assert m32["largest_intermediate"] == spec.plan(16).largest_intermediate * 4
    assert m32["total"] == m32["params"] + m32["largest_intermediate"]
    with pytest.raises(ValueError, match="unknown torch dtype"):
        spec.memory("float33")


def test_summary_row_and_sweep():
    spec = TTSpec(UCF_IN, UCF_OUT, 4)
    row = btcore.summary_row(spec, batch=16)
    assert row["params"] == 3_360 and row["ranks"] == "ranks 1-4-4-4-1" and row["format"] == "TT"
    assert row["macs_per_sample"] == spec.macs(16)
    rows = btcore.param_sweep((4, 4), (4, 4), [1, 2, 16, 17], blocks=[1, 3])
    assert {"format": "BT", "blocks": 3, "rank": 2, "params": btcore.bt_params((4, 4), (4, 4), 2, 3)} in rows
    assert not any(r["rank"] == 17 for r in rows)  # above every mode size: skipped
    assert btcore.format_bytes(3 * 1024**2) == "3.0 MiB"


def test_tt_rank_caps_bound_every_bond():
    caps = btcore.tt_rank_caps((2, 3, 4), (5, 6, 7))
    assert caps == (10, 28)  # min(10, 18*28), min(10*18, 28)
    TTSpec((2, 3, 4), (5, 6, 7), caps)  # the caps themselves are valid
    with pytest.raises(ValueError, match=r"ranks\[1\] = 29 is above the largest useful TT rank 28"):
        TTSpec((2, 3, 4), (5, 6, 7), (10, 29))
    assert btcore.tt_rank_caps((6,), (5,)) == ()


def _brute_force_macs(spec, batch):
    """The fewest multiply-adds over every pairwise contraction order of the spec's network."""
    from btcore.plan import network_with_batch, steps_for

    net = spec.network()
    names, terms, shapes = network_with_batch(net, batch)

    def orders(n):
        if n == 1:
            yield ()
            return
        for i in range(n):
            for j in range(i + 1, n):
                for rest in orders(n - 1):
                    yield ((i, j),) + rest

    return min(sum(s.macs for s in steps_for(names, terms, shapes, net.output, path)) for path in orders(len(terms)))


@pytest.mark.parametrize("spec", [BTSpec((2, 3, 4), (3, 2, 2), 2, 2), BTSpec((4, 5), (3, 2), (2, 3), 3),
                                  TTSpec((2, 3, 4), (3, 2, 2), 2), TTSpec((4, 5, 2, 3), (3, 2, 2, 2), (2, 3, 2)),
                                  BTSpec((3, 2, 2, 2), (2, 2, 3, 2), 2, 1)])
def test_macs_are_the_flop_optimal_count(spec):
    for batch in (1, 5, 64):
        assert spec.macs(batch) * batch == _brute_force_macs(spec, batch)


def test_counts_do_not_depend_on_timed_rates():
    from btcore.contract import Rates, set_rates

    specs = [BTSpec(UCF_IN, UCF_OUT, 4, 2), TTSpec(UCF_IN, UCF_OUT, 4), DenseSpec(UCF_IN, UCF_OUT),
             BTSpec((8, 8, 8, 6), (16, 4, 2, 2), 4, 2)]
    # Two machines the planner sees very differently: copies nearly free, or GEMMs nearly free
    fast_copy = Rates(peak=1e9, half_dim=64.0, copy_bps=1e13, call_s=1e-7, itemsize=4)
    fast_gemm = Rates(peak=1e13, half_dim=0.5, copy_bps=1e8, call_s=1e-3, itemsize=4)
    rows, choices = [], []
    try:
        for r in (fast_copy, fast_gemm):
            set_rates("cpu", torch.float32, r)
            rows.append([(btcore.summary_row(s, 16), s.memory(batch=16), btcore.describe(s)) for s in specs])
            choices.append([btcore.planner_choice(s, 16, "auto") for s in specs])
    finally:
        set_rates("cpu", torch.float32, None)
    assert rows[0] == rows[1]
    assert [c.scheme for c in choices[0]] != [c.scheme for c in choices[1]]  # the planner's answer moved
    for (row, _, _), a, b, s in zip(rows[0], choices[0], choices[1], specs):
        # the planner's scheme never does less work than the FLOP-optimal path
        assert min(a.macs_per_sample, b.macs_per_sample) >= row["macs_per_sample"] == s.macs(16)
        assert a.plan.spec == s and a.modelled_s > 0


# -- the registry ---------------------------------------------------------------------------------

def test_the_registry_lists_every_format_with_its_spec_layer_and_container():
    from btcore.formats import FORMATS, RANK_CONTROLS, spec_for
    from btcore.layers import CONTAINERS, LAYERS

    assert list(FORMATS) == ["dense", "tt", "bt", "tr"]
    assert set(LAYERS) == set(FORMATS)
    assert set(CONTAINERS) == {k for k, f in FORMATS.items() if f.factorized}
    for key, fmt in FORMATS.items():
        assert fmt.key == key and set(fmt.controls) <= set(RANK_CONTROLS)
        spec = fmt.spec_for((4, 5), (3, 4), **(RANK_CONTROLS | {"rank": 2, "tt_ranks": 2, "tr_ranks": 2}))
        assert type(spec) is fmt.spec and spec.key == key and spec.kind == btcore.summary_row(spec)["format"]
        if fmt.factorized:
            assert CONTAINERS[key].random((4, 5), (3, 4), 2, seed=0).spec.key == key
    assert spec_for("tr", (4, 5), (3, 4), tr_ranks=(2, 3), rank=99) == btcore.TRSpec((4, 5), (3, 4), (2, 3))
    assert FORMATS["bt"].params((4, 5), (3, 4), rank=2, blocks=3) == btcore.bt_params((4, 5), (3, 4), 2, 3)
    with pytest.raises(ValueError, match="unknown rank control"):
        spec_for("tt", (4, 5), (3, 4), ttranks=2)
    with pytest.raises(ValueError, match="kind"):
        spec_for("cp", (4, 5), (3, 4))


def test_tr_in_the_tables_sweep_and_rank_caps():
    spec = btcore.TRSpec(UCF_IN, UCF_OUT, 4)
    row = btcore.summary_row(spec, batch=16)
    assert row["format"] == "TR" and row["ranks"] == "ring ranks 4-4-4-4"
    assert row["params"] == 16 * (8 * 16 + 20 * 4 + 20 * 4 + 18 * 4) and row["macs_per_sample"] == spec.macs(16)
    cap = btcore.max_uniform_rank((4, 4), (4, 4), "tr")
    rows = btcore.param_sweep((4, 4), (4, 4), [1, 2, cap, cap + 1, 16], blocks=[1])
    tr = {r["rank"]: r["params"] for r in rows if r["format"] == "TR"}
    assert sorted(tr) == [1, 2, cap]  # ranks the spec refuses are skipped
    btcore.TRSpec((4, 4), (4, 4), cap)
    with pytest.raises(ValueError):
        btcore.TRSpec((4, 4), (4, 4), cap + 1)
    assert tr[2] == btcore.tr_params((4, 4), (4, 4), 2) == 2 * 16 * 2 * 2
    assert not any(r["format"] in ("TT", "TR") for r in btcore.param_sweep((4,), (4,), [1]))  # d = 1: no bond
    with pytest.raises(ValueError, match="no rank"):
        btcore.max_uniform_rank((4, 4), (4, 4), "dense")
