"""Tests for app.shapes.inputs: range checks, mode suggestions and the chart data, without a UI."""

import pytest

import btcore
from app.shapes import inputs as si
from app.config import PRESETS, UCF11_LSTM_PRESET, LabConfig


def test_defaults_round_trip_through_config_from_inputs():
    for cfg in PRESETS.values():
        assert si.config_from_inputs(si.defaults_for(cfg)) == cfg


@pytest.mark.parametrize("name, value, says", [
    ("d", 0, "Order d must be from 1 to 8, got 0"),
    ("N", 65, "BT blocks N must be from 1 to 64"),
    ("batch", None, "Batch size: enter a whole number"),
    ("I", 2.5, "Input size I: 2.5 is not a whole number"),
])
def test_check_number_names_the_field_and_range(name, value, says):
    with pytest.raises(ValueError, match=says):
        si.check_number(name, value)


def test_suggest_modes_prefers_the_remembered_list_when_it_fits():
    assert si.suggest_modes(57600, 4, (8, 20, 20, 18)) == (8, 20, 20, 18)
    assert si.suggest_modes(57600, 3, (8, 20, 20, 18)) == btcore.factorize(57600, 3)
    assert si.suggest_modes(4096, 4, (8, 20, 20, 18)) == btcore.factorize(4096, 4)


def test_preset_name_finds_the_matching_preset():
    assert si.preset_name(LabConfig()) == UCF11_LSTM_PRESET
    assert si.preset_name(LabConfig(blocks=7)) == "Custom"


def test_heatmap_grid_is_compression_over_rank_and_blocks():
    cfg = LabConfig()
    ranks, blocks, values = si.heatmap_grid(cfg)
    assert ranks == list(range(1, 9)) and blocks == list(range(1, 9))
    assert values[1][3] == pytest.approx(58_982_400 / 3_392)  # N=2, R=4: the paper's 17,388x


@pytest.mark.parametrize("field, text", [("R", "four"), ("tt", "4,a"), ("R", ""), ("tt", " ")])
def test_a_bad_rank_is_explained_as_a_rank_not_as_sizes(field, text):
    values = si.defaults_for(LabConfig()) | {field: text}
    with pytest.raises(ValueError) as err:
        si.config_from_inputs(values)
    msg = str(err.value)
    assert "rank" in msg.lower() and "4,3,2,2" in msg and "8x20x20x18" not in msg


def test_tr_ranks_round_trip_and_reach_the_config():
    cfg = LabConfig(tr_ranks=(4, 3, 2, 3))
    values = si.defaults_for(cfg)
    assert values["tr"] == "4,3,2,3"
    assert si.config_from_inputs(values).tr_spec().params == btcore.tr_params(cfg.in_modes, cfg.out_modes, (4, 3, 2, 3))


def test_the_configurations_fields_are_read_from_the_link_only_by_the_configuration():
    from app.config import CONFIG_PARAMS

    linked = {f.name for f in si.FIELDS if f.linked}
    assert linked == {"preset", "I", "J", "d"} and not linked & set(CONFIG_PARAMS.values())


@pytest.mark.parametrize("given, says", [
    ({"I": 4096}, "`I=4096` was not used (the input modes 8x20x20x18 give I = 57,600); using I=57600"),
    ({"J": 7}, "`J=7` was not used (the output modes 16x4x4x4 give J = 1,024); using J=1024"),
    ({"d": 8}, "`d=8` was not used (the modes 8x20x20x18 and 16x4x4x4 have order d = 4); using d=4"),
    ({"preset": "Small square 1024 x 1024"}, "`preset=Small square 1024 x 1024` was not used"),
])
def test_a_links_sizes_and_preset_must_agree_with_its_modes(given, says):
    cfg = LabConfig()
    values = si.defaults_for(cfg, "Custom") | given
    values, warnings = si.link_check(cfg)(values, set(given))
    assert values == si.defaults_for(cfg, "UCF11 LSTM (paper: BT-LSTM and TT-LSTM)" if "preset" in given else "Custom")
    assert len(warnings) == 1 and says in warnings[0]
    same, none = si.link_check(cfg)(si.defaults_for(cfg, "Custom"), {"I", "J", "d", "preset"})
    assert none == [] and same == si.defaults_for(cfg, "Custom")  # agreeing values pass without a word


def test_uniform_marks_are_the_one_rank_of_each_factorized_format():
    specs = LabConfig(tt_ranks=(4, 3, 4), tr_ranks=2).specs()
    marks = si.uniform_marks(specs)
    assert set(marks) == {"BT", "TR"}  # TT's inner ranks differ
    assert marks["TR"] == (2, btcore.tr_params((8, 20, 20, 18), (16, 4, 4, 4), 2))
    assert si.sweep_ranks(LabConfig((4, 4), (4, 4), 2, 2, 2, tr_ranks=2))[-1] == max(
        btcore.max_uniform_rank((4, 4), (4, 4), k) for k in ("bt", "tt", "tr"))


def test_heatmap_axes_hold_the_configurations_own_rank_and_blocks():
    ranks, blocks, values = si.heatmap_grid(LabConfig(bt_rank=12, blocks=20))
    assert 12 in ranks and 20 in blocks and ranks == sorted(ranks) and blocks == sorted(blocks)
    modes = ((8, 20, 20, 18), (16, 4, 4, 4))
    assert values[blocks.index(20)][ranks.index(12)] == btcore.dense_params(*modes) / btcore.bt_params(*modes, 12, 20)
