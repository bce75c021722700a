"""AppTest of the Learn page: renders for many configurations, and its per-step numbers are btcore's."""

import pytest

import btcore
from app.config import CONFIG_KEY, LabConfig
from app.learn import content as ld
from conftest import open_page, plotly_specs

CONFIGS = {
    "d2_N1": LabConfig((4, 4), (4, 4), 2, 1, 2, 8),
    "d3_N2": LabConfig((4, 8, 8), (8, 4, 8), 3, 2, 4, 32),
    "d4_N3_ucf": LabConfig((8, 20, 20, 18), (16, 4, 4, 4), 4, 3, 4, 16),
    "d5_N4": LabConfig((2, 4, 4, 4, 2), (2, 4, 4, 4, 2), 2, 4, (2, 3, 3, 2), 4),
}


def _open_tab(at, name: str):
    """Open the walkthrough's tab of format ``name`` (as a click does: the tab's state, then a rerun)."""
    at.session_state["learn_steps_tab"] = ld.LABELS[name]
    return at.run()


def _walk_tables(at, names=("BT", "TT", "TR", "Dense")) -> dict:
    """The walkthrough tables by format, each tab opened in turn: only the open tab is drawn."""
    tables = {}
    for name in names:
        _open_tab(at, name)
        assert not at.exception, name
        shown = [df.value for df in at.dataframe if "tensors that meet" in df.value.columns]
        assert len(shown) == 1, name  # one tab's table, not all four
        tables[name] = shown[0]
    return tables


def _nodes(at, trace: str = "tensors") -> list[int]:
    """Number of nodes in each diagram ("tensors") or contraction tree ("path"), in page order."""
    return [len(t["x"]) for spec in plotly_specs(at) for t in spec["data"] if t.get("name") == trace]


def _check_tables(at, cfg: LabConfig) -> None:
    tables = _walk_tables(at)
    assert set(tables) == {"BT", "TT", "TR", "Dense"}
    for name, spec in (("BT", cfg.bt_spec()), ("TT", cfg.tt_spec()), ("TR", cfg.tr_spec()), ("Dense", cfg.dense_spec())):
        # the walkthrough follows the FLOP-optimal path (spec.plan, counted without timing), so its
        # totals equal the Shapes page's; the timed planner's scheme is only named beside it
        plan = spec.plan(cfg.batch)
        df = tables[name]
        assert len(df) == len(plan.steps)
        assert list(df["result shape"]) == [" × ".join(map(str, s.result_shape)) for s in plan.steps]
        assert list(df["multiply-adds"]) == [s.macs for s in plan.steps]
        assert list(df["tensors that meet"]) == [f"{s.left} · {s.right}" for s in plan.steps]
        assert df["multiply-adds"].sum() == plan.macs
        assert df["multiply-adds / sample"].sum() == pytest.approx(
            btcore.summary_row(spec, cfg.batch)["macs_per_sample"], rel=1e-12)


def test_default_configuration_renders():
    at = open_page("learn")
    assert not at.exception
    assert not at.error
    assert at.title[0].value == "Learn: BT, TT and TR"
    cfg = LabConfig()
    # dense: 1 node; TT: d cores; BT: N blocks of d + 1 nodes; TR: d cores in a ring
    assert _nodes(at) == [1, cfg.d, cfg.blocks * (cfg.d + 1), cfg.d]
    _check_tables(at, cfg)
    text = " ".join(m.value for m in at.markdown)
    assert "17,388.7" in text and "Tucker" in text and "CP" in text and "recurrent" in text.lower()
    assert len(at.latex) >= 4
    ucf = next(df.value for df in at.dataframe if "fewer than dense" in df.value.columns)
    assert list(ucf["parameters"]) == [58_982_400, 3_360, 1_696, 3_392]
    links = [p.label for p in at.get("page_link")]
    assert any(label.startswith("Shapes & parameters") for label in links)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_configurations_render_with_btcore_steps(name):
    cfg = CONFIGS[name]
    at = open_page("learn", state={CONFIG_KEY: cfg})
    assert not at.exception, name
    assert not at.error, [e.value for e in at.error]
    assert _nodes(at) == [1, cfg.d, cfg.blocks * (cfg.d + 1), cfg.d]
    _check_tables(at, cfg)
    specs = {"BT": cfg.bt_spec(), "TT": cfg.tt_spec(), "TR": cfg.tr_spec(), "Dense": cfg.dense_spec()}
    for name, spec in specs.items():
        _open_tab(at, name)
        # the open tab's contraction tree: every operand plus one node per step
        assert _nodes(at, "path") == [2 * len(spec.plan(cfg.batch).steps) + 1], name
        slower = name != "Dense" and spec.macs(cfg.batch) >= specs["Dense"].macs(cfg.batch)
        assert sum("as many multiply-adds as the dense matrix" in i.value for i in at.info) == int(slower), name
        if name != "Dense":
            assert f"learn_step_{name}" in {s.key for s in at.slider}, name


def test_per_sample_sum_equals_the_shapes_page():
    cfg = CONFIGS["d3_N2"]
    learn = _walk_tables(open_page("learn", state={CONFIG_KEY: cfg}))
    shapes = open_page("shapes", state={CONFIG_KEY: cfg})
    assert not shapes.exception
    table = shapes.dataframe[0].value.set_index("format")
    for name in ("BT", "TT", "TR", "Dense"):
        assert learn[name]["multiply-adds / sample"].sum() == pytest.approx(
            table.loc[name, "multiply-adds / sample"], rel=1e-12)


def test_stepping_through_the_walkthrough():
    at = open_page("learn", state={CONFIG_KEY: CONFIGS["d4_N3_ucf"]})
    plan = CONFIGS["d4_N3_ucf"].bt_spec().plan(16)
    at.slider(key="learn_step_BT").set_value(3).run()
    assert not at.exception
    step = plan.steps[2]
    text = next(m.value for m in at.markdown if m.value.startswith("**Step 3 of"))
    assert f"{step.macs:,}" in text and " × ".join(map(str, step.result_shape)) in text
    bars = next(s for s in plotly_specs(at) if "Block-Term: multiply-adds" in str(s["layout"].get("title")))
    assert bars["data"][0]["marker"]["opacity"][2] == 1.0


def test_many_blocks_are_elided_and_feel_widgets_respond():
    cfg = LabConfig((4, 4), (4, 4), 2, 9, 2, 8)
    at = open_page("learn", state={CONFIG_KEY: cfg})
    assert not at.exception and not at.error
    assert _nodes(at)[2] == 4 * 3
    at.slider(key="learn_grow_d").set_value(3).run()
    at.slider(key="learn_grow_r").set_value(2).run()
    assert not at.exception
    at.number_input(key="learn_budget").set_value(20).run()  # below one rank-1 block (33): explained, not raised
    assert not at.exception
    assert any("exceeds this budget" in i.value for i in at.info)


@pytest.mark.parametrize("cfg", [
    LabConfig((57600,), (1024,), 4, 2, 4, 16, tr_ranks=1),  # d = 1: one mode per side (a one-core ring: rank 1)
    LabConfig((2,) * 8, (2,) * 8, 2, 64, 2, 1),           # d = 8, 64 blocks (elided in the diagram)
    LabConfig((4, 8, 8, 4), (4, 8, 8, 4), (3, 2, 2, 3), 2, (4, 8, 4), 256),  # per-mode ranks
])
def test_edge_configurations_render(cfg):
    at = open_page("learn", state={CONFIG_KEY: cfg})
    assert not at.exception and not at.error
    assert _nodes(at) == [1, cfg.d, min(cfg.blocks, 4) * (cfg.d + 1), cfg.d]
    _check_tables(at, cfg)


@pytest.mark.parametrize("cfg, bad", [
    (LabConfig((4, 4), (4, 4), 99, 2, 2, 8), {"BT"}),           # Tucker rank above the mode size
    (LabConfig((4, 4), (4, 4), 2, 2, 50, 8), {"TT"}),           # TT rank above the useful maximum
    (LabConfig((4, 4), (4, 4), 2, 2, 2, 8, tr_ranks=9), {"TR"}),  # TR rank above the useful maximum
    (LabConfig((4, 4), (16,), 2, 2, 2, 8), {"BT", "TT", "TR", "Dense"}),  # orders differ
])
def test_invalid_configurations_are_explained(cfg, bad):
    at = open_page("learn", state={CONFIG_KEY: cfg})
    assert not at.exception
    errors = " ".join(e.value for e in at.error)
    for name in bad:
        assert f"{name} cannot be built" in errors
    if bad == {"BT"}:  # "I*J = 4*4" must not become Markdown italics
        assert r"I\*J = 4\*4 = 16" in errors
    assert at.info  # the explanation
    if "Dense" not in bad:  # the valid formats are still taught
        valid = [n for n in ("BT", "TT", "TR", "Dense") if n not in bad]
        tables = _walk_tables(at, valid)
        assert list(tables["Dense"]["multiply-adds"]) == [cfg.dense_spec().plan(cfg.batch).macs]


def test_inputs_survive_a_page_switch_and_open_from_a_link():
    from streamlit.testing.v1 import AppTest

    from conftest import ROOT

    at = open_page("learn")
    at.slider(key="learn_grow_d").set_value(3).run()
    at.slider(key="learn_grow_n").set_value(6).run()
    at.number_input(key="learn_budget").set_value(5000).run()
    at.slider(key="learn_step_BT").set_value(2).run()
    _open_tab(at, "TT")
    at.switch_page(str(ROOT / "pages" / "shapes.py")).run()
    at.switch_page(str(ROOT / "pages" / "learn.py")).run()
    assert not at.exception
    kept = {k: at.session_state[k] for k in ("learn_grow_d", "learn_grow_n", "learn_budget", "learn_step_BT",
                                             "learn_steps_tab")}
    assert kept == {"learn_grow_d": 3, "learn_grow_n": 6, "learn_budget": 5000, "learn_step_BT": 2,
                    "learn_steps_tab": "Tensor-Train"}
    assert [s.key for s in at.slider if s.key.startswith("learn_step_")] == ["learn_step_TT"]  # the tab drawn
    query = dict(at.query_params)
    fresh = AppTest.from_file(str(ROOT / "app" / "main.py"), default_timeout=120)
    fresh.query_params.update(query)
    fresh.switch_page(str(ROOT / "pages" / "learn.py")).run()
    assert not fresh.exception
    assert {k: fresh.session_state[k] for k in kept} == kept


def test_text_has_a_table_of_contents_real_bullets_and_typed_ranks():
    cfg = LabConfig((2, 4, 4, 4, 2), (2, 4, 4, 4, 2), (2, 3, 3, 2, 2), 2, (2, 3, 3, 2), 4)
    at = open_page("learn", state={CONFIG_KEY: cfg})
    assert not at.exception
    text = [m.value for m in at.markdown]
    toc = next(t for t in text if t.startswith("**On this page:**"))
    assert toc.count("](#") == 5
    assert not any("\\n-" in t for t in text)  # no literal backslash-n in the special cases
    cases = next(t for t in text if "**Tucker** is BT with one block" in t)
    assert cases.count("\n- ") == 3  # four separate bullets
    mine = next(t for t in text if t.startswith("**Your configuration:**"))
    assert "R = 2,3,3,2,2" in mine and "TT ranks 2,3,3,2" in mine and "(" not in mine.split("d = 5")[1]


def test_the_code_shown_runs(capsys):
    at = open_page("learn", state={CONFIG_KEY: LabConfig((4, 4), (4, 4), 2, 2, 2, 8)})
    (code,) = [c for c in at.code if "BTLinear" in c.value]
    exec(compile(code.value, "<learn snippet>", "exec"), {})
    assert "multiply-adds" in capsys.readouterr().out


def test_tr_is_taught_with_the_librarys_numbers_and_its_link_restores_it():
    from streamlit.testing.v1 import AppTest

    from conftest import ROOT

    cfg = LabConfig((4, 8, 8), (8, 4, 8), 3, 2, 4, 32, tr_ranks=(2, 5, 3))
    at = open_page("learn", state={CONFIG_KEY: cfg})
    assert not at.exception and not at.error
    spec = btcore.TRSpec(cfg.in_modes, cfg.out_modes, (2, 5, 3))
    ring = next(s for s in plotly_specs(at) if str(s["layout"].get("title", {}).get("text")).startswith("Tensor Ring"))
    (nodes,) = [t for t in ring["data"] if t.get("name") == "tensors"]
    assert len(nodes["x"]) == 3 and all(f"shape {' × '.join(map(str, s))}" in h
                                        for h, s in zip(nodes["hovertext"], spec.core_shapes()))
    assert any(r"P_{\mathrm{TR}}" in x.value and f"{spec.params:,}".replace(",", "{,}") in x.value for x in at.latex)
    text = " ".join(m.value for m in at.markdown)
    assert "TR ranks 2,5,3" in text
    _open_tab(at, "TR")
    text = " ".join(m.value for m in at.markdown)
    choice = btcore.planner_choice(spec, 32)
    assert f"`{choice.scheme}`" in text and "(planner)" in text
    at.slider(key="learn_step_TR").set_value(2).run()
    step = spec.plan(32).steps[1]
    assert any(m.value.startswith("**Step 2 of") and f"{step.macs:,}" in m.value for m in at.markdown)
    query = dict(at.query_params)
    assert query["tr"] == "2,5,3" and query["step_TR"] == "2" and query["steps_tab"] == "Tensor Ring"
    fresh = AppTest.from_file(str(ROOT / "app" / "main.py"), default_timeout=120)
    fresh.query_params.update(query)
    fresh.switch_page(str(ROOT / "pages" / "learn.py")).run()
    assert not fresh.exception and not fresh.error
    assert fresh.session_state[CONFIG_KEY].tr_ranks == (2, 5, 3) and fresh.session_state["learn_step_TR"] == 2
    # the link opens the Tensor Ring tab at its step, and only that tab is drawn
    assert any(m.value.startswith("**Step 2 of") and f"{step.macs:,}" in m.value for m in fresh.markdown)
    assert [s.key for s in fresh.slider if s.key.startswith("learn_step_")] == ["learn_step_TR"]


def test_a_bad_tr_link_value_falls_back_with_a_warning_on_learn():
    from streamlit.testing.v1 import AppTest

    from conftest import ROOT

    at = AppTest.from_file(str(ROOT / "app" / "main.py"), default_timeout=120)
    at.query_params.update({"tr": "999"})
    at.switch_page(str(ROOT / "pages" / "learn.py")).run()
    assert not at.exception and not at.error
    assert any("`tr=999`" in w.value and "using tr=4" in w.value for w in at.warning)
    assert at.session_state[CONFIG_KEY] == LabConfig()


def test_the_open_tab_falls_back_when_its_format_cannot_be_built_or_the_link_names_none():
    from streamlit.testing.v1 import AppTest

    from conftest import ROOT

    at = open_page("learn", state={CONFIG_KEY: LabConfig((4, 4), (4, 4), 2, 2, 2, 8)})
    _open_tab(at, "TR")
    assert dict(at.query_params)["steps_tab"] == "Tensor Ring"
    at.session_state[CONFIG_KEY] = LabConfig((4, 4), (4, 4), 2, 2, 2, 8, tr_ranks=9)  # TR invalid now
    at.run()
    assert not at.exception and any("TR cannot be built" in e.value for e in at.error)
    assert at.session_state["learn_steps_tab"] == "Block-Term" and dict(at.query_params)["steps_tab"] == "Block-Term"
    assert [s.key for s in at.slider if s.key.startswith("learn_step_")] == ["learn_step_BT"]
    bad = AppTest.from_file(str(ROOT / "app" / "main.py"), default_timeout=120)
    bad.query_params.update({"steps_tab": "Hierarchical Tucker"})
    bad.switch_page(str(ROOT / "pages" / "learn.py")).run()
    assert not bad.exception and not bad.error
    assert any("steps_tab" in w.value for w in bad.warning) and bad.session_state["learn_steps_tab"] == "Block-Term"
