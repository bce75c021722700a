"""AppTest of the home page and the Shapes & parameters page."""

import pytest

import btcore
from app.config import CONFIG_KEY, LabConfig
from conftest import ROOT, open_page, plotly_specs, round_trip


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
    assert list(table["format"]) == ["Dense", "TT", "BT", "TR", "Tucker", "CP"]
    spec = btcore.BTSpec((8, 20, 20, 18), (16, 4, 4, 4), 4, 2)
    bt_row = table[table["format"] == "BT"].iloc[0]
    assert bt_row["parameters"] == 3_392
    assert bt_row["multiply-adds / sample"] == round(spec.macs(16))
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
    ("shapes_out_modes", "16x8x8", "Order d is 4 but the output modes 16x8x8 are 3"),
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


# -- state that outlives widgets, and links ------------------------------------------------------

def _switch_away_and_back(at, away: str = "learn"):
    return round_trip(at, "shapes", away)


def test_every_input_survives_a_page_switch():
    at = open_page("shapes")
    at.selectbox(key="shapes_preset").set_value("Small square 1024 x 1024").run()
    at.text_input(key="shapes_bt_rank").set_value("2,3,3,2").run()
    at.number_input(key="shapes_blocks").set_value(5).run()
    at.text_input(key="shapes_tt_ranks").set_value("3,5,3").run()
    at.number_input(key="shapes_batch").set_value(64).run()
    before = {k: at.session_state[k] for k in ("shapes_in_modes", "shapes_out_modes", "shapes_bt_rank",
                                               "shapes_blocks", "shapes_tt_ranks", "shapes_batch", "shapes_preset")}
    _switch_away_and_back(at)
    assert not at.exception
    after = {k: at.session_state[k] for k in before}
    assert after == before
    assert metrics(at)["BT (R=(2,3,3,2), N=5) parameters"] == f"{btcore.bt_params((4, 8, 8, 4), (4, 8, 8, 4), (2, 3, 3, 2), 5):,}"


def test_a_link_opens_the_same_state_in_a_fresh_session():
    from streamlit.testing.v1 import AppTest

    at = open_page("shapes")
    at.selectbox(key="shapes_preset").set_value("Teaching example 16 x 16").run()
    at.number_input(key="shapes_blocks").set_value(3).run()
    query = dict(at.query_params)
    assert query["in"] == "4x4" and query["N"] == "3"
    fresh = AppTest.from_file(str(ROOT / "app" / "main.py"), default_timeout=120)
    fresh.query_params.update(query)
    fresh.switch_page(str(ROOT / "pages" / "shapes.py")).run()
    assert not fresh.exception and not fresh.error
    assert metrics(fresh) == metrics(at)
    assert fresh.text_input(key="shapes_in_modes").value == "4x4"


@pytest.mark.parametrize("query", [
    {"in": "8x0x20x18"}, {"N": "-3"}, {"batch": "lots"}, {"d": "99"}, {"R": "999"}, {"preset": "no such preset"},
    {"in": "x" * 2000}, {"I": "1e400", "J": "nan"},
])
def test_bad_query_values_fall_back_with_a_warning(query):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app" / "main.py"), default_timeout=120)
    at.query_params.update(query)
    at.switch_page(str(ROOT / "pages" / "shapes.py")).run()
    assert not at.exception
    assert at.warning or at.error  # said, not silently replaced
    assert len(at.dataframe) == 2  # the tables are shown (for valid or last valid inputs)


def test_typed_modes_are_never_overwritten_and_the_suggestion_is_offered():
    at = open_page("shapes")
    at.text_input(key="shapes_out_modes").set_value("4x16x4x4").run()
    at.number_input(key="shapes_out_size").set_value(2048).run()
    assert at.text_input(key="shapes_out_modes").value == "4x16x4x4"  # what the user typed stays
    (use,) = [b for b in at.button if b.key == "shapes_use_suggestion"]
    assert "8x8x8x4" in use.label
    use.click().run()
    assert at.text_input(key="shapes_out_modes").value == "8x8x8x4" and not at.error


def test_a_size_round_trip_returns_to_the_preset_modes():
    at = open_page("shapes")
    at.number_input(key="shapes_in_size").set_value(57601).run()
    assert at.text_input(key="shapes_out_modes").value == "16x4x4x4"  # the other side is untouched
    at.number_input(key="shapes_in_size").set_value(57600).run()
    assert at.text_input(key="shapes_in_modes").value == "8x20x20x18"
    assert not at.error


@pytest.mark.parametrize("key, value, says", [
    ("shapes_d", 0, "Order d must be from 1 to 8, got 0"),
    ("shapes_blocks", -3, "BT blocks N must be from 1 to 64, got -3"),
    ("shapes_batch", 999999999, "Batch size must be from 1 to 65,536, got 999,999,999"),
    ("shapes_in_size", 0, "Input size I must be from 1 to 1,000,000,000, got 0"),
])
def test_out_of_range_numbers_are_named_and_the_last_results_stay(key, value, says):
    at = open_page("shapes")
    at.number_input(key=key).set_value(value).run()
    assert not at.exception
    assert any(says in e.value.replace("\\", "") for e in at.error), [e.value for e in at.error]
    assert any("last valid configuration" in w.value for w in at.warning)
    assert len(at.dataframe) == 2 and metrics(at)["BT (R=4, N=2) parameters"] == "3,392"


def test_lesson_flag_hides_the_advanced_controls():
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app" / "main.py"), default_timeout=120)
    at.query_params["lesson"] = "1"
    at.switch_page(str(ROOT / "pages" / "shapes.py")).run()
    assert not at.exception
    assert "shapes_batch" not in [n.key for n in at.number_input]
    assert not at.get("download_button")
    assert at.query_params.get("lesson") == "1"
    plain = open_page("shapes")
    assert "shapes_batch" in [n.key for n in plain.number_input] and plain.get("download_button")


def test_the_code_shown_runs_and_gives_the_page_numbers(capsys):
    at = open_page("shapes")
    (code,) = [c for c in at.code if "btcore.BTSpec" in c.value]
    exec(compile(code.value, "<shapes snippet>", "exec"), {})
    out = capsys.readouterr().out
    assert "3392" in out and "3360" in out and "58982400" in out


def test_home_has_a_start_here_path_in_page_order():
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app" / "main.py"), default_timeout=120).run()
    labels = [p.label for p in at.get("page_link")]
    assert labels == ["1. Shapes & parameters", "2. Learn: BT, TT and TR", "3. Approximation", "4. Training",
                      "5. Format study"]
    assert any("Start here" in h.value for h in at.subheader)


@pytest.mark.parametrize("query, field, default", [
    ({"batch": "999999"}, "batch", 16), ({"batch": str(10**15)}, "batch", 16), ({"N": "65"}, "blocks", 2),
])
def test_a_bad_link_value_falls_back_to_the_default_with_a_warning(query, field, default):
    from streamlit.testing.v1 import AppTest

    from conftest import ROOT

    at = AppTest.from_file(str(ROOT / "app" / "main.py"), default_timeout=120)
    at.query_params.update(query)
    at.switch_page(str(ROOT / "pages" / "shapes.py")).run()
    assert not at.exception
    assert at.number_input(key=f"shapes_{field}").value == default
    name, value = next(iter(query.items()))
    warnings = " ".join(w.value for w in at.warning)
    assert f"`{name}={value}`" in warnings and f"using {name}={value}" not in warnings  # never "using the bad value"
    assert len(at.warning) == 1  # one warning per bad field, not one from the page and one from the configuration
    assert at.query_params[name] == str(default)


@pytest.mark.parametrize("page", ["shapes", "learn"])
@pytest.mark.parametrize("query", [{"in": "256x256x256x256"}, {"in": "256x256x256x256", "out": "256x256x256x256"},
                                   {"batch": str(10**15)}, {"out": "1000000x1000000"}])
def test_huge_sizes_in_a_link_are_refused_clearly(page, query):
    from streamlit.testing.v1 import AppTest

    from conftest import ROOT

    at = AppTest.from_file(str(ROOT / "app" / "main.py"), default_timeout=120)
    at.query_params.update(query)
    at.switch_page(str(ROOT / "pages" / f"{page}.py")).run()
    assert not at.exception
    assert any("must be from 1 to" in w.value for w in at.warning) or at.error


def test_changing_d_under_typed_modes_never_shows_results_for_another_d():
    at = open_page("shapes")
    at.text_input(key="shapes_in_modes").set_value("8x20x360").run()
    at.text_input(key="shapes_out_modes").set_value("16x8x8").run()
    assert at.number_input(key="shapes_d").value == 3  # typed modes of one count set d
    assert not at.error and "BT (R=4, N=2) parameters" in [m.label for m in at.metric]
    at.number_input(key="shapes_d").set_value(4).run()  # the typed modes stay; the results must not claim d = 4
    assert not at.exception
    errors = " ".join(e.value for e in at.error)
    assert "Order d is 4" in errors and "8x20x360" in errors
    assert any("last valid configuration" in w.value for w in at.warning)
    assert at.button(key="shapes_use_suggestion")  # the modes for d = 4 are offered


def test_an_order_d_error_is_labelled_as_the_order():
    at = open_page("shapes")
    at.number_input(key="shapes_d").set_value(99).run()
    assert not at.exception
    text = " ".join(w.value for w in at.warning) + " ".join(e.value for e in at.error)
    assert "Order d" in text and "put size" not in text


def test_tr_is_listed_with_the_librarys_counts_and_the_planners_scheme_beside():
    at = open_page("shapes")
    at.text_input(key="shapes_tr_ranks").set_value("4,3,2,3").run()
    assert not at.exception and not at.error
    modes = ((8, 20, 20, 18), (16, 4, 4, 4))
    spec = btcore.TRSpec(*modes, (4, 3, 2, 3))
    assert metrics(at)["TR (ring ranks 4-3-2-3) parameters"] == f"{btcore.tr_params(*modes, (4, 3, 2, 3)):,}"
    row = at.dataframe[0].value.set_index("format").loc["TR"]
    assert row["parameters"] == spec.params == 3_408  # 3*8*16*4 + 4*20*4*3 + 3*20*4*2 + 2*18*4*3
    assert row["multiply-adds / sample"] == round(spec.plan(16).macs / 16) == round(spec.macs(16))
    row = at.dataframe[1].value.set_index("format").loc["TR"]  # the planner's table, right beside
    choice = btcore.planner_choice(spec, 16)
    assert row["the scheme btcore.matmul runs here (planner)"] == choice.scheme
    assert row["planner's modelled time (ms)"] == round(1e3 * choice.modelled_s, 3)
    assert at.session_state[CONFIG_KEY].tr_ranks == (4, 3, 2, 3)
    assert at.query_params["tr"] == "4,3,2,3"
    assert any(r"P_{\mathrm{TR}}" in x.value and "3\\cdot8\\cdot16\\cdot4" in x.value and "3{,}408" in x.value
               for x in at.latex)  # r_0 = r_d = 3 closes the ring in the first term


def test_uniform_tr_is_a_line_and_your_mark_on_the_parameters_chart():
    at = open_page("shapes")
    fig = plotly_specs(at)[0]
    line = next(t for t in fig["data"] if t.get("name") == "TR")
    modes = ((8, 20, 20, 18), (16, 4, 4, 4))
    assert line["y"] == [btcore.tr_params(*modes, r) for r in line["x"]]
    mark = next(t for t in fig["data"] if t.get("name") == "your TR")
    assert mark["x"] == [4] and mark["y"] == [btcore.tr_params(*modes, 4)] == [5_760]


def test_a_tr_link_round_trips_into_a_fresh_session_and_a_bad_one_falls_back():
    from streamlit.testing.v1 import AppTest

    at = open_page("shapes")
    at.text_input(key="shapes_tr_ranks").set_value("2,5,3,4").run()
    fresh = AppTest.from_file(str(ROOT / "app" / "main.py"), default_timeout=120)
    fresh.query_params.update(dict(at.query_params))
    fresh.switch_page(str(ROOT / "pages" / "shapes.py")).run()
    assert not fresh.exception and not fresh.error
    assert fresh.text_input(key="shapes_tr_ranks").value == "2,5,3,4"
    assert metrics(fresh) == metrics(at)
    for bad in ("abc", "0"):
        at = AppTest.from_file(str(ROOT / "app" / "main.py"), default_timeout=120)
        at.query_params.update({"tr": bad})
        at.switch_page(str(ROOT / "pages" / "shapes.py")).run()
        assert not at.exception and not at.error
        assert at.text_input(key="shapes_tr_ranks").value == "4"  # the default, not the bad value
        assert any("`tr" in w.value for w in at.warning)


def test_a_rank_or_block_count_beyond_the_usual_heatmap_is_still_marked():
    at = open_page("shapes")
    at.text_input(key="shapes_bt_rank").set_value("12").run()
    at.number_input(key="shapes_blocks").set_value(20).run()
    assert not at.error
    heat = plotly_specs(at)[1]
    assert "12" in heat["data"][0]["x"] and "20" in heat["data"][0]["y"]
    box = heat["layout"]["shapes"][0]
    assert heat["data"][0]["x"][round(box["x0"] + 0.5)] == "12"
    assert heat["data"][0]["y"][round(box["y0"] + 0.5)] == "20"


@pytest.mark.parametrize("query, name, key, used", [
    ({"R": "100000"}, "R", "bt_rank", "4"), ({"R": "4,4,4,4,4,4"}, "R", "bt_rank", "4"),
    ({"in": "8x20", "out": "16x4x4x4"}, "in", "in_modes", "8x20x20x18"),
    ({"in": "256x256x256x256"}, "in", "in_modes", "8x20x20x18"),
    ({"in": "250x250x250x64", "out": "256x256x256x64"}, "out", "out_modes", "16x4x4x4"),
    ({"I": "4096"}, "I", "in_size", 57600), ({"d": "8"}, "d", "d", 4), ({"batch": "999999"}, "batch", "batch", 16),
])
def test_a_bad_link_value_never_lands_in_its_field(query, name, key, used):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app" / "main.py"), default_timeout=120)
    at.query_params.update(query)
    at.switch_page(str(ROOT / "pages" / "shapes.py")).run()
    assert not at.exception and not at.error  # the default is used, so the results are for what is shown
    assert at.session_state[f"shapes_{key}"] == used
    (warning,) = at.warning  # exactly one, naming the field and its value
    assert f"`{name}={query[name]}` was not used" in warning.value and f"using {name}={used}" in warning.value
    assert at.query_params[name] == str(used)  # the URL says what is used
    assert all(at.query_params[k] == v for k, v in query.items() if k != name)  # the rest of the link is kept


def test_link_warnings_keep_products_literal():
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app" / "main.py"), default_timeout=120)
    at.query_params.update({"R": "100000"})
    at.switch_page(str(ROOT / "pages" / "shapes.py")).run()
    assert r"I\*J = 8\*16 = 128" in at.warning[0].proto.body  # Markdown would eat the unescaped *


@pytest.mark.parametrize("d", [1, 5, 9])
def test_an_order_d_change_is_explained_once_in_the_fields_words(d):
    at = open_page("shapes")
    at.text_input(key="shapes_out_modes").set_value("16x8x8").run()  # typed: 3 modes beside 4 input modes
    at.number_input(key="shapes_d").set_value(d).run()
    assert not at.exception
    errors = [e.value for e in at.error]
    texts = errors + [w.value for w in at.warning]
    assert not any("in_modes" in t or "out_modes" in t for t in texts), texts  # the fields' labels, not the API's
    assert len(errors) == 1 and not any(w.value in errors[0] for w in at.warning)  # no message said twice
    assert "Order d" in errors[0]


def test_compression_factors_have_one_format_and_modelled_times_are_formatted():
    at = open_page("shapes")
    table = at.dataframe[0].value.set_index("format")
    deltas = {m.label.split(" (")[0]: m.delta for m in at.metric if m.delta}
    from app.shapes.tables import COMPRESSION, format_factor

    assert deltas["TR"] == f"{format_factor(table.loc['TR', COMPRESSION])} fewer" == "10,240x fewer"
    assert all(d == f"{format_factor(table.loc[k, COMPRESSION])} fewer" for k, d in deltas.items())
    planner = at.dataframe[1].proto.columns
    assert '"planner\'s modelled time (ms)"' in planner and "localized" in planner
