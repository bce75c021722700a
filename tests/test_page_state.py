"""Tests for app.frame: field parsing from URL text (the AppTest round trips are in the page tests)."""

import pytest

from app.frame import Field


@pytest.mark.parametrize("field, text, value", [
    (Field("n", 1, "int", 1, 10), "7", 7),
    (Field("x", 0.5, "float", 0, 1), "0.25", 0.25),
    (Field("b", False, "bool"), "1", True),
    (Field("b", True, "bool"), "off", False),
    (Field("c", "a", "choice", choices=("a", "b")), "b", "b"),
    (Field("c", "a", "choice", choices=lambda: ("a", "z")), "z", "z"),
    (Field("t", ""), "8x20x20x18", "8x20x20x18"),
])
def test_parse_accepts_valid_text(field, text, value):
    assert field.parse(text) == value
    assert field.parse(field.format(value)) == value  # round trip


@pytest.mark.parametrize("field, text, says", [
    (Field("n", 1, "int", 1, 10), "11", "from 1 to 10"),
    (Field("n", 1, "int", 1, 10), "2.5", "an integer"),
    (Field("x", 0.5, "float", 0, 1), "nan", "finite"),
    (Field("x", 0.5, "float", 0, 1), "1e400", "finite"),
    (Field("b", False, "bool"), "maybe", "1 or 0"),
    (Field("c", "a", "choice", choices=("a", "b")), "q", "one of a, b"),
])
def test_parse_refuses_invalid_text_saying_what_is_accepted(field, text, says):
    with pytest.raises(ValueError, match=says):
        field.parse(text)


def test_text_is_capped_so_a_huge_link_cannot_bloat_the_session():
    assert len(Field("t", "").parse("x" * 10_000)) == 500


def test_home_keeps_the_lesson_flag_and_offers_the_way_off():
    from streamlit.testing.v1 import AppTest

    from conftest import ROOT

    at = AppTest.from_file(str(ROOT / "app" / "main.py"), default_timeout=120)
    at.query_params["lesson"] = "1"
    at.run()
    assert not at.exception
    assert at.query_params["lesson"] == "1"
    assert any("Lesson view" in i.value for i in at.info)
    at.button(key="home_leave_lesson").click().run()
    assert "lesson" not in at.query_params and not any("Lesson view" in i.value for i in at.info)


# ------------------------------------------------------------------ the shared configuration's URL form
@pytest.mark.parametrize("tr", [4, (4, 3, 2, 3), 1])
def test_the_configurations_tr_ranks_round_trip_through_the_link(tr):
    from app.config import LabConfig, config_from_query, config_query

    cfg = LabConfig(tr_ranks=tr, blocks=3)
    query = config_query(cfg)
    assert query["tr"] == (str(tr) if isinstance(tr, int) else ",".join(map(str, tr)))
    back, warnings = config_from_query(query)
    assert back == cfg and warnings == []
    assert back.tr_spec().params == __import__("btcore").tr_params(cfg.in_modes, cfg.out_modes, tr)


@pytest.mark.parametrize("text, says", [("abc", "not a positive integer"), ("0", "at least 1"),
                                        ("999", "no expressive power"), ("4,4", "")])
def test_a_bad_tr_link_value_alone_falls_back_and_the_rest_is_kept(text, says):
    from app.config import LabConfig, config_from_query

    cfg, warnings = config_from_query({"tr": text, "N": "3"})
    assert cfg == LabConfig(blocks=3)  # the link's N is kept, its tr is the default
    assert len(warnings) == 1 and "`tr=" in warnings[0] and says in warnings[0]


def test_an_old_link_without_tr_keeps_working_on_small_modes():
    import btcore
    from app.config import config_from_query

    cfg, warnings = config_from_query({"in": "2x2", "out": "2x2", "R": "1", "tt": "2"})
    assert warnings == [] and cfg.in_modes == (2, 2)
    assert cfg.tr_ranks == min(4, btcore.max_uniform_rank((2, 2), (2, 2), "tr"))
