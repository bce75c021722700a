"""Unit tests of the Learn page's data helpers (app/learn_data.py) and figure builders (app/charts_learn.py)."""

import math

import pytest

import btcore
from app.learn import charts as cl
from app.learn import content as ld
from app.config import LabConfig, PRESETS, UCF11_LSTM_PRESET

UCF = PRESETS[UCF11_LSTM_PRESET]


# ------------------------------------------------------------------ diagrams
@pytest.mark.parametrize("d", [1, 2, 3, 4, 5, 8])
def test_tt_diagram_has_d_cores_and_labelled_legs(d):
    im, om = tuple(range(2, 2 + d)), tuple(range(3, 3 + d))
    spec = btcore.TTSpec(im, om, 2)
    fig = cl.tt_diagram(spec)
    names = cl.node_names(fig)
    assert len(names) == d and all(n.startswith("G") for n in names)
    labels = cl.diagram_labels(fig)
    for k in range(d):
        assert any(f"= {im[k]}" in t and t.startswith("i") for t in labels)
        assert any(f"= {om[k]}" in t and t.startswith("j") for t in labels)
    assert sum(t.startswith("r") for t in labels) == d - 1  # one bond label per inner rank
    # 2 legs per core + d-1 bonds, all drawn as line shapes (never one line per row/column)
    assert len(fig.layout.shapes) == 2 * d + (d - 1)


@pytest.mark.parametrize("d,n", [(2, 1), (3, 2), (4, 3), (5, 4), (4, 2)])
def test_bt_diagram_has_n_blocks_of_d_plus_1_nodes(d, n):
    im, om = (3,) * d, (2,) * d
    spec = btcore.BTSpec(im, om, 2, n)
    fig = cl.bt_diagram(spec)
    names = cl.node_names(fig)
    assert len(names) == n * (d + 1)
    assert sum(x.startswith("C") for x in names) == n
    labels = cl.diagram_labels(fig)
    assert sum(t.startswith("R") for t in labels) == n * d
    assert sum(t == "i₁ = 3" for t in labels) == n and sum(t == "j₁ = 2" for t in labels) == n
    assert sum(t == "+" for t in labels) == n - 1


@pytest.mark.parametrize("n, hidden", [(9, 5), (6, 2), (5, 1)])
def test_bt_diagram_elides_many_blocks_and_counts_the_hidden_ones(n, hidden):
    spec = btcore.BTSpec((4, 4), (4, 4), 2, n)
    fig = cl.bt_diagram(spec, max_blocks=4)
    cores = [x for x in cl.node_names(fig) if x.startswith("C")]
    assert len(cl.node_names(fig)) == 4 * 3 and len(cores) == 4  # blocks 1, 2, 3 and n drawn, the rest elided
    assert n - len(cores) == hidden
    assert any(f"{hidden} more" in t for t in cl.diagram_labels(fig))
    assert any(f"C{'₀₁₂₃₄₅₆₇₈₉'[n]}" == x for x in cl.node_names(fig))


def test_diagram_hover_has_shape_and_params():
    spec = UCF.bt_spec()
    fig = cl.bt_diagram(spec)
    (tr,) = [t for t in fig.data if t.name == cl.NODE_TRACE]
    hover = dict(zip(tr.text, tr.hovertext))
    core = hover["C₁"]
    assert "4 × 4 × 4 × 4" in core and "256 parameters" in core
    a = hover["A₁⁽²⁾"]
    assert "20 × 4 × 4" in a and "320 parameters" in a
    # the node parameters add up to the format's count
    total = sum(int(h.split("<br>")[-1].split()[0].replace(",", "")) for h in tr.hovertext)
    assert total == spec.params


def test_large_dense_diagram_is_one_node_two_legs():
    fig = cl.dense_diagram(UCF.dense_spec())
    assert cl.node_names(fig) == ["W"]
    assert len(fig.layout.shapes) == 2
    labels = " ".join(cl.diagram_labels(fig))
    assert "57,600" in labels and "1,024" in labels and "8×20×20×18" in labels and "16×4×4×4" in labels
    (tr,) = fig.data
    assert "58,982,400 parameters" in tr.hovertext[0]


def test_tt_hover_params_sum_to_spec():
    spec = UCF.tt_spec()
    (tr,) = cl.tt_diagram(spec).data
    assert sum(int(h.split("<br>")[-1].split()[0].replace(",", "")) for h in tr.hovertext) == spec.params == 3360


# ------------------------------------------------------------------ tensorization
def test_tensorization_grid_4x4():
    g = ld.tensorization_grid((4, 4), (4, 4))
    assert g.n_blocks == 16 and g.n_inner == 16
    # entry (i, j) = ((i1, i2), (j1, j2)): block p1 = i1*4 + j1, inner q = i2*4 + j2
    for i in range(16):
        for j in range(16):
            i1, i2, j1, j2 = i // 4, i % 4, j // 4, j % 4
            assert g.block[i][j] == i1 * 4 + j1
            assert g.inner[i][j] == i2 * 4 + j2
    # the regrouping is a bijection
    assert len({(g.block[i][j], g.inner[i][j]) for i in range(16) for j in range(16)}) == 256


def test_tensorization_grid_order3_matches_torch_interleaving():
    import torch

    im, om = (2, 3, 2), (2, 2, 3)
    g = ld.tensorization_grid(im, om)
    I, J = math.prod(im), math.prod(om)
    W = torch.arange(I * J).reshape(I, J)
    # interleave: (i1, i2, i3, j1, j2, j3) -> (i1, j1, i2, j2, i3, j3), then (i1 j1) x rest
    T = W.reshape(*im, *om).permute(0, 3, 1, 4, 2, 5).reshape(im[0] * om[0], -1)
    for i in range(I):
        for j in range(J):
            assert T[g.block[i][j], g.inner[i][j]] == W[i, j]


def test_tensorization_figure():
    fig = cl.tensorization_figure(ld.tensorization_grid((4, 4), (4, 4)))
    w, r = fig.data
    assert len(w.z) == 16 and len(w.z[0]) == 16 and len(r.z) == 16 and len(r.z[0]) == 16
    assert w.texttemplate == "%{text}"
    assert len(set(fig.layout.template.layout.colorway or []) | set(c for _, c in w.colorscale)) >= 16
    assert len(fig.layout.shapes) == 3 + 3  # block boundaries
    assert not cl.tensorization_figure(ld.tensorization_grid((8, 8), (8, 8))).data[0].texttemplate


def _hover(template: str, x: int, y: int, data) -> str:
    """A plotly hover template filled in for one heatmap cell (x = column, y = row)."""
    out = template.replace("%{x}", str(x)).replace("%{y}", str(y)).replace("<extra></extra>", "")
    for k, v in enumerate(data):
        out = out.replace(f"%{{customdata[{k}]}}", str(v))
    assert "%{" not in out
    return out


def test_tensorization_hover_names_each_entry_and_where_it_goes():
    """Every cell's hover on W names its indices and the right-panel cell it moves to, and that cell's hover
    names it back: the two panels are one regrouping of the same entries."""
    g = ld.tensorization_grid((4, 3), (2, 3))
    w, r = cl.tensorization_figure(g).data
    I, J = len(g.rows), len(g.cols)
    for i in range(I):
        for j in range(J):
            text = _hover(w.hovertemplate, j, i, w.customdata[i][j])
            p, q = g.block[i][j], g.inner[i][j]
            pairs = " ".join(f"({a},{b})" for a, b in zip(g.rows[i], g.cols[j]))
            assert text == (f"W[{i}, {j}]<br>i = ({','.join(map(str, g.rows[i]))}), j = ({','.join(map(str, g.cols[j]))})"
                            f"<br>pairs (i<sub>k</sub>, j<sub>k</sub>): {pairs}<br>→ row {p}, column {q} on the right")
            back = _hover(r.hovertemplate, q, p, r.customdata[p][q])
            assert back == f"row (i₁,j₁) = ({p // 2},{p % 2}), column {q}<br>holds W[{i}, {j}]"


def test_tensorization_rejects_mismatched_orders():
    with pytest.raises(ValueError):
        ld.tensorization_grid((4, 4), (16,))


# ------------------------------------------------------------------ walkthrough data
@pytest.mark.parametrize("make", [UCF.bt_spec, UCF.tt_spec, UCF.dense_spec])
def test_walkthrough_rows_are_btcore_steps(make):
    spec = make()
    plan = spec.plan(UCF.batch)
    rows = ld.walkthrough_rows(spec, UCF.batch)
    assert len(rows) == len(plan.steps)
    for row, step in zip(rows, plan.steps):
        assert row["result shape"] == ld.shape_text(step.result_shape)
        assert row["multiply-adds"] == step.macs
        assert row["result bytes"] == step.result_elements * 4
    per_sample = sum(r["multiply-adds / sample"] for r in rows)
    assert per_sample == pytest.approx(btcore.summary_row(spec, UCF.batch)["macs_per_sample"], rel=1e-12)


def test_uses_x_marks_weight_only_steps():
    steps = UCF.bt_spec().plan(UCF.batch).steps
    flags = ld.uses_x(steps)
    assert flags[-1] and any(flags)
    for s, f in zip(steps, flags):
        if not f:
            assert "x" not in (s.left, s.right) and "b" not in s.result_indices
    rows = ld.walkthrough_rows(UCF.bt_spec(), UCF.batch)
    assert [r["involves x"] for r in rows] == flags
    assert all(ld.uses_x(UCF.tt_spec().plan(4).steps))


def test_index_meanings_cover_every_letter():
    for spec in (UCF.bt_spec(), UCF.tt_spec(), UCF.dense_spec(), btcore.BTSpec((4, 4), (4, 4), 2, 1)):
        m = ld.index_meanings(spec, 16)
        net = spec.network()
        assert set("".join(net.terms)) == set(m)
        assert m["b"] == ("batch b", 16)
    m = ld.index_meanings(UCF.bt_spec(), 16)
    assert m["n"] == ("block n", 2)
    assert sum(v[0].startswith("Tucker rank") for v in m.values()) == 4
    assert sum(v[0].startswith("TT bond") for v in ld.index_meanings(UCF.tt_spec(), 1).values()) == 3


def test_step_sentence_names_tensors_and_cost():
    spec = UCF.bt_spec()
    step = spec.plan(16).steps[1]
    text = ld.step_sentence(step, ld.index_meanings(spec, 16))
    assert step.left in text and step.right in text and f"{step.macs:,}" in text
    assert ld.shape_text(step.result_shape) in text
    assert btcore.format_bytes(step.result_elements * 4) in text


def test_build_specs_reports_invalid_formats():
    specs, errors = ld.build_specs(LabConfig((4, 4), (4, 4), 99, 2, 2))
    assert set(specs) == {"TT", "TR", "Dense"} and "rank" in errors["BT"]
    specs, errors = ld.build_specs(LabConfig((4, 4), (16,), 2, 2, 2))
    assert specs == {} and set(errors) == {"BT", "TT", "TR", "Dense"}


# ------------------------------------------------------------------ sizes, budget, UCF11
def test_ucf11_numbers_match_the_paper():
    u = ld.ucf11_example()
    assert u["dense"] == 58_982_400
    assert u["bt_n1"] == 1_696 and u["bt_n2"] == 3_392 and u["tt"] == 3_360
    assert math.floor(u["ratio_bt_n2"]) == 17_388
    assert u["recurrent"] == 256 * 1024


def test_budget_pairs_fit_and_are_maximal():
    rows = ld.budget_pairs(UCF.in_modes, UCF.out_modes, 3_392, range(1, 10))
    assert {(r["R"], r["N"]) for r in rows} >= {(4, 2)}
    for r in rows:
        assert r["params"] == btcore.bt_params(UCF.in_modes, UCF.out_modes, r["R"], r["N"]) <= 3_392
        assert btcore.bt_params(UCF.in_modes, UCF.out_modes, r["R"], r["N"] + 1) > 3_392
        assert r["factors"] + r["core"] == r["params"]
    assert ld.budget_pairs(UCF.in_modes, UCF.out_modes, 10, range(1, 4)) == []


def test_growth_rows_core_is_r_to_the_d():
    rows = ld.growth_rows(1024, 1024, 2, range(1, 6), range(2, 6))
    assert {r["d"] for r in rows} == {2, 3, 4, 5}
    for r in rows:
        assert r["core_per_block"] == r["R"] ** r["d"]
        assert r["core"] == 2 * r["R"] ** r["d"]
        assert r["params"] == btcore.bt_params(r["in_modes"], r["out_modes"], r["R"], 2)
    own = ld.growth_rows(UCF.in_size, UCF.out_size, 2, [4], [3, 4], own=(UCF.in_modes, UCF.out_modes))
    mine = next(r for r in own if r["d"] == 4)
    assert mine["in_modes"] == UCF.in_modes and mine["params"] == 3_392
    assert next(r for r in own if r["d"] == 3)["in_modes"] == btcore.factorize(UCF.in_size, 3)
    # a prime size cannot be split into d modes of at most 256: skipped, not raised
    assert ld.growth_rows(257 * 263, 16, 1, [1], [2]) == []


# ------------------------------------------------------------------ cost charts
def test_step_bars_and_stack():
    walk = {n: ld.walkthrough_rows(UCF.spec(key), UCF.batch) for n, key in ld.FORMATS.items()}
    fig = cl.step_bars(walk["BT"], color="#d62728", dense_per_sample=58_982_400, selected=2)
    (bar,) = fig.data
    assert list(bar.y) == [r["multiply-adds / sample"] for r in walk["BT"]]
    assert bar.marker.opacity[1] == 1.0 and bar.marker.opacity[0] < 1
    stack = cl.format_cost_stack(walk)
    bars = [t for t in stack.data if t.type == "bar"]
    assert len(bars) == max(len(r) for r in walk.values())
    totals = {}
    for t in bars:
        for x, y in zip(t.x, t.y):
            totals[x] = totals.get(x, 0) + y
    assert totals["Dense"] == 58_982_400
    assert totals["BT"] == pytest.approx(UCF.bt_spec().macs(UCF.batch))


def test_growth_and_budget_charts():
    rows = ld.growth_rows(1024, 1024, 1, range(1, 5), range(2, 5))
    fig = cl.growth_chart(rows, current=(3, 2))
    assert sum(t.name == "your choice" for t in fig.data) == 2
    b = ld.budget_pairs((4, 8, 8, 4), (4, 8, 8, 4), 5000, range(1, 6))
    fig = cl.budget_chart(b, 5000, current=(3, 2))
    factors, cores = fig.data
    assert [f + c for f, c in zip(factors.y, cores.y)] == [r["params"] for r in b]
    assert all(t.startswith("N = ") for t in cores.text)


@pytest.mark.parametrize("make", [UCF.bt_spec, UCF.tt_spec, UCF.dense_spec])
def test_contraction_tree_has_every_operand_and_step(make):
    spec = make()
    steps = spec.plan(16).steps
    fig = cl.contraction_tree(steps, selected=1)
    names = cl.node_names(fig, cl.PATH_TRACE)
    assert sorted(names) == sorted(set(spec.network().names) | {s.result for s in steps})
    assert len(names) == 2 * len(steps) + 1
    (tr,) = fig.data
    y = dict(zip(tr.text, tr.y))
    assert all(y[s.result] == k for k, s in enumerate(steps, 1))
    assert y["x"] == 0
    hot = {n for n, w in zip(tr.text, tr.marker.line.width) if w == 3}
    assert hot == {steps[0].left, steps[0].right, steps[0].result}
    assert len(fig.layout.shapes) == 2 * len(steps)


def test_step_shapes_name_their_indices_with_b_for_the_batch():
    from app.learn import content as ld

    spec = UCF.bt_spec()
    rows = ld.walkthrough_rows(spec, 16)
    plan = spec.plan(16)
    for row, step in zip(rows, plan.steps):
        assert row["result indices"] == " × ".join(f"{c}={n:,}" for c, n in zip(step.result_indices, step.result_shape))
    assert any(r["result indices"].startswith("b=16") or " b=16" in r["result indices"] for r in rows[:-1])
    assert ld.indexed_shape("bA", (16, 8)) == "b=16 × A=8"


@pytest.mark.parametrize("d, n", [(2, 2), (4, 2), (6, 3), (4, 9)])
def test_every_diagram_label_is_at_least_12_px(d, n):
    spec = btcore.BTSpec((2,) * d, (2,) * d, 2, n)
    tt = btcore.TTSpec((2,) * d, (2,) * d, 2)
    for fig in (cl.bt_diagram(spec), cl.tt_diagram(tt)):
        sizes = [a.font.size for a in fig.layout.annotations]
        assert sizes and min(sizes) >= 12


# ------------------------------------------------------------------ the ring
@pytest.mark.parametrize("d", [1, 2, 3, 4, 6, 8])
def test_tr_diagram_has_d_cores_and_d_bonds_with_the_closing_one(d):
    im, om = tuple(range(2, 2 + d)), tuple(range(3, 3 + d))
    ranks = 1 if d == 1 else tuple(2 + k % 2 for k in range(d))
    spec = btcore.TRSpec(im, om, ranks)
    fig = cl.tr_diagram(spec)
    names = cl.node_names(fig)
    assert names == [f"G{ld.sub(k + 1)}" for k in range(d)]
    labels = cl.diagram_labels(fig)
    bonds = [t for t in labels if t.startswith("r")]
    assert bonds == [f"r{ld.sub(k + 1)} = {spec.ranks[k]}" + (f" = r{ld.sub(0)}" if k == d - 1 else "") for k in range(d)]
    for k in range(d):
        assert f"i{ld.sub(k + 1)} = {im[k]}" in labels and f"j{ld.sub(k + 1)} = {om[k]}" in labels
    # 2 legs per core + d bonds (the closing one dashed): line shapes, arcs or, for one core, a loop
    assert len(fig.layout.shapes) == 3 * d
    bond_shapes = [s for s in fig.layout.shapes if s.type in ("path", "circle")]
    assert len(bond_shapes) == d and bond_shapes[-1].line.dash == "dash"
    assert min(a.font.size for a in fig.layout.annotations) >= 12


def test_tr_hover_gives_each_cores_shape_and_the_counts_sum_to_the_spec():
    spec = btcore.TRSpec((8, 20, 20, 18), (16, 4, 4, 4), (4, 3, 2, 3))
    (nodes,) = [t for t in cl.tr_diagram(spec).data if t.name == cl.NODE_TRACE]
    total = 0
    for hover, shape in zip(nodes.hovertext, spec.core_shapes()):
        assert f"shape {ld.shape_text(shape)}" in hover
        n = math.prod(shape)
        assert f"{n:,} parameters" in hover
        total += n
    assert total == spec.params == btcore.tr_params(spec.in_modes, spec.out_modes, (4, 3, 2, 3))
    assert "r₄ (= r₀" in nodes.hovertext[0]  # core 1's left bond is the ring's closing one


def test_eight_cores_keep_their_labels_apart():
    spec = btcore.TRSpec((2, 3, 2, 3, 2, 3, 2, 3), (3, 2, 3, 2, 3, 2, 3, 2), 2)
    fig = cl.tr_diagram(spec)
    # the figure is drawn at equal x/y scale; at its height every label centre stays >= 1 unit from the others,
    # about 50 px at the app's width, more than a 12 px label's height
    pts = [(a.x, a.y) for a in fig.layout.annotations]
    gaps = [math.dist(p, q) for i, p in enumerate(pts) for q in pts[i + 1:]]
    assert min(gaps) >= 1.0


def test_tr_index_meanings_name_the_closing_bond():
    spec = btcore.TRSpec((4, 4, 4), (2, 2, 2), (2, 3, 4))
    meanings = ld.index_meanings(spec, 5)
    net = spec.network()
    assert set(meanings) == set("".join(net.terms))
    closing = net.terms[-1][-1]
    assert closing == net.terms[1][0] and "closing the ring" in meanings[closing][0] and meanings[closing][1] == 4


def test_ring_growth_rows_are_the_librarys_counts():
    im, om = (8, 20, 20, 18), (16, 4, 4, 4)
    rows = ld.ring_growth_rows(im, om, range(1, 6))
    assert [r["TR"] for r in rows] == [btcore.tr_params(im, om, r) for r in range(1, 6)]
    assert [r["TT"] for r in rows] == [btcore.tt_params(im, om, r) for r in range(1, 6)]
    assert rows[3]["TR"] == 5_760 and rows[0]["TR"] == rows[0]["TT"]  # rank 1: the ring is the chain
    fig = cl.ring_growth_chart(rows, current=4)
    assert [t.name for t in fig.data] == ["TT", "TR", "your TR"] and list(fig.data[2].y) == [5_760]


def test_diagram_and_chart_text_is_at_least_12_px_and_log_axes_label_only_decades():
    import json

    from app.shapes import charts as sc
    from app.shapes import inputs as si

    cfg = PRESETS[UCF11_LSTM_PRESET]
    walk = ld.walkthrough_rows(cfg.bt_spec(), cfg.batch)
    rows = ld.growth_rows(cfg.in_size, cfg.out_size, 2, range(1, 9), range(2, 7), own=(cfg.in_modes, cfg.out_modes))
    figs = [cl.bt_diagram(cfg.bt_spec()), cl.tt_diagram(cfg.tt_spec()), cl.tr_diagram(cfg.tr_spec()),
            cl.step_bars(walk, color="red", dense_per_sample=10**6, selected=1, title="t"),
            cl.growth_chart(rows, current=(4, 4)), sc.bt_heatmap(*si.heatmap_grid(cfg), current=(4, 2))]
    for fig in figs:
        spec = json.loads(fig.to_json())
        text = json.dumps(spec["data"])
        assert "<sup>" not in text and "<sub>" not in text  # drawn at ~70% of the font
        fonts = [font["size"] for font in (t.get("textfont") for t in spec["data"]) if isinstance(font, dict)
                 and isinstance(font.get("size"), (int, float))]
        fonts += [a["font"]["size"] for a in spec["layout"].get("annotations", []) if "size" in a.get("font", {})]
        assert all(size >= 12 for size in fonts), fonts
        for name, axis in spec["layout"].items():
            if name.startswith("yaxis") and axis.get("type") == "log":
                assert axis.get("dtick") is not None, name  # no in-between "2", "5" labels
