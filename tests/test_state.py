"""Tests for app.state (session values outside widgets) and its use with app.frame's inputs.

Each script runs in a real Streamlit script run (AppTest), so the values go through the session as in the app.
"""

from pathlib import Path

from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parent.parent


def _namespaces_script():
    import streamlit as st

    from app.state import SESSION, SessionState

    a, b = SessionState("a_"), SessionState("b_")
    st.session_state["seen"] = {
        "missing": a.get("x", "dflt"), "in_before": "x" in a, "popped_absent": a.pop("x", "none"),
    }
    a.set("x", 1)
    b.set("x", 2)
    first = a.setdefault("y", [])
    first.append("kept")
    st.session_state["seen"].update({
        "a": a["x"], "b": b["x"], "raw": st.session_state["a_x"], "in_after": "x" in a,
        "same_list": a.setdefault("y", ["other"]) is first, "key": a.key("x"), "app_wide": SESSION.key("x"),
        "flag_once": (a.pop("x", False), a.pop("x", False)),
    })
    st.session_state["wrong"] = "not a list"
    st.session_state["replaced"] = SESSION.instance("wrong", list, lambda: [3])
    st.session_state["trusted"] = SESSION.instance("replaced", list) is st.session_state["replaced"]


def test_session_state_defaults_namespaces_and_one_shot_values():
    at = AppTest.from_function(_namespaces_script, default_timeout=60).run()
    assert not at.exception
    seen = at.session_state["seen"]
    assert seen["missing"] == "dflt" and seen["in_before"] is False and seen["popped_absent"] == "none"
    assert (seen["a"], seen["b"], seen["raw"], seen["in_after"]) == (1, 2, 1, True)  # one key per namespace
    assert seen["same_list"] and at.session_state["a_y"] == ["kept"]  # setdefault keeps the first value
    assert (seen["key"], seen["app_wide"]) == ("a_x", "x")
    assert seen["flag_once"] == (1, False)  # a popped value is gone
    assert at.session_state["replaced"] == [3] and at.session_state["wrong"] == [3]  # a stray type is replaced
    assert at.session_state["trusted"]  # a value of the right type is kept as it is


def _survival_script():
    import streamlit as st

    from app.state import SessionState

    state = SessionState("demo_")
    if st.checkbox("Show the field", value=True, key="show"):
        st.text_input("Name", key="demo_name")
        if st.session_state["demo_name"]:
            state.set("last_name", st.session_state["demo_name"])
    st.markdown(f"last: {state.get('last_name', '-')}")


def test_a_session_value_survives_the_removal_of_the_widget_it_came_from():
    at = AppTest.from_function(_survival_script, default_timeout=60).run()
    at.text_input(key="demo_name").input("Ada").run()
    at.checkbox(key="show").uncheck().run()
    at.run()  # a second run without the widget: Streamlit has dropped the widget's own value by now
    assert not at.text_input  # the widget is gone ...
    assert "demo_name" not in at.session_state  # ... and so is its value
    assert at.markdown[0].value == "last: Ada"  # the session value is not
    at.checkbox(key="show").check().run()
    assert at.text_input(key="demo_name").value == ""  # the widget alone comes back empty


def _inputs_script():
    import streamlit as st

    from app.frame import Field, page_setup

    fields = (Field("n", 3, "int", 1, 10, widget="count"), Field("word", "abc"))
    frame = page_setup("demo", fields, prefix="demo_", defaults={"word": "xyz"})
    if st.checkbox("Show the inputs", value=True, key="show"):
        st.number_input("N", 1, 10, key="demo_count")
        st.text_input("Word", key="demo_word")
    frame.write_url()
    st.markdown(f"values: {frame.inputs['n']} {frame.inputs['word']}")


def test_page_inputs_start_from_the_defaults_and_round_trip_through_the_url():
    at = AppTest.from_function(_inputs_script, default_timeout=60).run()
    assert not at.exception
    assert at.number_input(key="demo_count").value == 3 and at.text_input(key="demo_word").value == "xyz"
    at.number_input(key="demo_count").set_value(7).run()
    at.text_input(key="demo_word").input("hello").run()
    assert at.query_params["n"] == "7" and at.query_params["word"] == "hello"

    fresh = AppTest.from_function(_inputs_script, default_timeout=60)  # a fresh session opened from that link
    for name, value in at.query_params.items():
        fresh.query_params[name] = value
    fresh.run()
    assert fresh.number_input(key="demo_count").value == 7 and fresh.text_input(key="demo_word").value == "hello"
    assert not fresh.warning


def test_page_inputs_survive_their_widgets_removal():
    at = AppTest.from_function(_inputs_script, default_timeout=60).run()
    at.number_input(key="demo_count").set_value(9).run()
    at.checkbox(key="show").uncheck().run()
    at.run()
    assert "demo_count" not in [w.key for w in at.number_input]
    assert at.markdown[0].value == "values: 9 xyz" and at.query_params["n"] == "9"  # kept, and still in the link
    at.checkbox(key="show").check().run()
    assert at.number_input(key="demo_count").value == 9  # put back into the widget


def test_a_bad_link_value_falls_back_to_the_default_with_a_warning():
    at = AppTest.from_function(_inputs_script, default_timeout=60)
    at.query_params["n"] = "999999"
    at.query_params["word"] = "fine"
    at.run()
    assert at.number_input(key="demo_count").value == 3 and at.text_input(key="demo_word").value == "fine"
    assert len(at.warning) == 1 and "`n=999999` was not used" in at.warning[0].value and "using n=3" in at.warning[0].value
    assert at.query_params["n"] == "3"  # the link now says what is used
    at.run()
    assert not at.warning  # said once


def _config_script():
    import streamlit as st

    from app.config import config_chosen, get_config, pop_config_warnings

    before = config_chosen()
    cfg = get_config()
    st.session_state["seen"] = (before, config_chosen(), cfg.blocks, pop_config_warnings(), pop_config_warnings())


def test_the_shared_configuration_is_read_once_from_the_link_and_kept():
    at = AppTest.from_function(_config_script, default_timeout=60)
    at.query_params["N"] = "3"
    at.query_params["R"] = "x"
    at.run()
    before, after, blocks, warnings, again = at.session_state["seen"]
    assert (before, after, blocks) == (False, True, 3)
    assert len(warnings) == 1 and "`R=" in warnings[0] and again == []  # the warnings are given once
    at.query_params["N"] = "5"
    at.run()
    assert at.session_state["seen"][:3] == (True, True, 3)  # the session keeps its configuration


def test_pages_reach_the_session_only_through_the_state_api():
    """A page is its setup call plus calls into app modules: none touches ``st.session_state`` itself."""
    offenders = [p.name for p in sorted((ROOT / "pages").glob("*.py")) if "session_state" in p.read_text()]
    assert offenders == []


def _fragment_script():
    import streamlit as st

    from app.frame import Field, page_setup

    frame = page_setup("frag", (Field("step", 1, "int", 1, 10), Field("top", 5, "int", 1, 10)), prefix="frag_")
    frame.link(by_fragments=True)

    @frame.fragment("walk")
    def walk() -> None:
        top = st.number_input("Top", 1, 10, key="frag_top")
        if frame.inputs["step"] > top:  # set from code after the widgets, as Learn clamps a stored step
            frame.inputs.set("step", top)
        st.number_input("Step", 1, 10, key="frag_step")

    walk()


def test_a_value_set_inside_a_fragment_reaches_the_url_and_the_copy_link():
    at = AppTest.from_function(_fragment_script, default_timeout=60)
    at.query_params.update({"step": "8", "top": "9"})
    at.run()
    assert not at.exception and at.query_params["step"] == "8"
    at.number_input(key="frag_top").set_value(3).run()
    assert at.number_input(key="frag_step").value == 3
    assert at.query_params["step"] == "3" and at.query_params["top"] == "3"
    (link,) = [c.value for c in at.code]
    assert "step=3" in link and "top=3" in link  # the link is drawn after the fragment's own changes
