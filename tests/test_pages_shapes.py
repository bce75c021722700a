"""AppTest of the home page and the Shapes & parameters page."""

import pytest

import btcore
from app.state import CONFIG_KEY, LabConfig
from conftest import ROOT, open_page, plotly_specs


def metrics(at) -> dict:
    return {m.label: m.value for m in at.metric}


def test_home_lists_every_page():
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app" / "main.py"), default_timeout=120).run()
    assert not at.exception
    assert any("Block-Term" in m.value for m in at.markdown)


def test_default_is_the_paper_preset_and_shows_btcore_numbers():
    at = open_page("shapes")
    assert not at.exception and not at.error
    m = metrics(at)
    assert m["Dense parameters"] == f"{btcore.dense_params((8, 20, 20, 18), (16, 4, 4, 4)):,}" == "58,982,400"
    assert m["BT (R=4, N=2) parameters"] == "3,392"
    assert m["TT (ranks 1-4-4-4-1) parameters"] == "3,360"
    bt_delta = next(x.delta for x in at.metric if x.label.startswith("BT"))
    assert bt_delta.startswith("17,388.7x")
    table = at.dataframe[0].value
    assert list(table["format"]) == ["Dense", "TT", "BT", "Tucker", "CP"]
    spec = btcore.BTSpec((8, 20, 20, 18), (16, 4, 4, 4), 4, 2)
    bt_row = table[table["format"] == "BT"].iloc[0]
    assert bt_row["parameters"] == 3_392
    assert bt_row["multiply-adds / sample"] == pytest.approx(spec.macs(16))
    assert at.selectbox(key="shapes_preset").value == "UCF11 LSTM (paper: BT-LSTM and TT-LSTM)"
    figs = plotly_specs(at)
    assert len(figs) == 2
    stars = [t for t in figs[0]["data"] if t.get("name") == "your BT"]
    assert stars and stars[0]["y"] == [3_392]
    assert any("3{,}392" in x.value for x in at.latex)


def test_editing_modes_updates_numbers_and_shared_config():
    at = open_page("shapes")
    at.selectbox(key="shapes_preset").set_value("Small square 1024 x 1024").run()
    assert metrics(at)["BT (R=3, N=2) parameters"] == f"{btcore.bt_params((4, 8, 8, 4), (4, 8, 8, 4), 3, 2):,}"
    at.text_input(key="shapes_bt_rank").set_value("2,3,3,2").run()
    assert not at.error
    assert metrics(at)["BT (R=(2,3,3,2), N=2) parameters"] == f"{btcore.bt_params((4, 8, 8, 4), (4, 8, 8, 4), (2, 3, 3, 2), 2):,}"
    assert at.session_state[CONFIG_KEY].bt_rank == (2, 3, 3, 2)


def test_changing_size_suggests_balanced_modes():
    at = open_page("shapes")
    at.number_input(key="shapes_in_size").set_value(4096).run()
    assert at.text_input(key="shapes_in_modes").value == "x".join(map(str, btcore.factorize(4096, 4)))
    assert not at.error


@pytest.mark.parametrize("key, value, message", [
    ("shapes_in_modes", "8x20x20x17", "does not equal the size 57,600"),
    ("shapes_bt_rank", "129", "rank[0] = 129 is above mode 1's size I*J = 8*16 = 128"),
    ("shapes_tt_ranks", "4,4", "ranks has 2 entries"),
    ("shapes_out_modes", "16x8x8", "in_modes has 4 modes but out_modes has 3"),
    ("shapes_bt_rank", "four", "BT rank: 'four' is not a positive integer"),
])
def test_bad_input_shows_an_error_and_keeps_the_widgets(key, value, message):
    at = open_page("shapes")
    at.text_input(key=key).set_value(value).run()
    assert not at.exception
    assert any(message in e.value.replace("\\", "") for e in at.error), [e.value for e in at.error]
    assert at.text_input(key=key).value == value  # what the user typed is kept
    assert at.number_input(key="shapes_blocks").value == 2


def test_prime_size_explains_instead_of_failing():
    at = open_page("shapes")
    at.number_input(key="shapes_in_size").set_value(1021).run()
    assert not at.exception
    assert any("largest prime factor is 1,021" in w.value for w in at.warning)
    assert any("does not equal the size 1,021" in e.value for e in at.error)


def test_page_uses_the_shared_config():
    cfg = LabConfig((4, 4), (4, 4), 2, 3, 2)
    at = open_page("shapes", state={CONFIG_KEY: cfg})
    assert metrics(at)["BT (R=2, N=3) parameters"] == f"{btcore.bt_params((4, 4), (4, 4), 2, 3):,}"


def test_gru_preset_name_survives_a_page_switch():
    name = "UCF11 GRU (paper shapes: BT-GRU and TT-GRU)"
    at = open_page("shapes")
    at.selectbox(key="shapes_preset").set_value(name).run()
    at.switch_page(str(ROOT / "pages" / "learn.py")).run()
    at.switch_page(str(ROOT / "pages" / "shapes.py")).run()
    assert at.selectbox(key="shapes_preset").value == name
    assert metrics(at)["TT (ranks 1-4-4-4-1) parameters"] == "3,232"  # the paper's TT-GRU


def test_error_text_keeps_products_literal():
    at = open_page("shapes")
    at.text_input(key="shapes_bt_rank").set_value("129").run()
    assert any(r"I\*J = 8\*16 = 128" in e.proto.body for e in at.error)
