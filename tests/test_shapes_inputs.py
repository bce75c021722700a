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
