"""btcore.train.sweep: a grid of BT (R, N) runs, its rows and CSV."""

from __future__ import annotations

import pytest

from btcore.train import compare, sweep_configs, sweep_csv, sweep_rows
from train_helpers import data, small_config  # noqa: F401 (data is a fixture)


def test_sweep_trains_every_pair_and_rows_carry_rank_and_blocks(data):
    cfgs = sweep_configs(small_config("bt", max_steps=3, stall_fraction=None), [1, 2], [1, 2])
    assert [(c.model.rank, c.model.blocks) for c in cfgs] == [(1, 1), (1, 2), (2, 1), (2, 2)]
    assert len({c.name for c in cfgs}) == 4
    events = []
    res = compare(cfgs + [small_config("tt", max_steps=3)], *data, callback=events.append)
    ends = [e for e in events if e["event"] == "end"]
    assert [(e["rank"], e["blocks"]) for e in ends][:4] == [(1, 1), (1, 2), (2, 1), (2, 2)]
    assert ends[4]["rank"] is None and ends[4]["kind"] == "tt"
    rows = sweep_rows(res)
    assert rows[3]["params"] > rows[0]["params"] and rows[3]["rank"] == 2
    lines = sweep_csv(rows).splitlines()
    assert lines[0].startswith("run,kind,rank,blocks,params") and len(lines) == 6
    assert lines[5].split(",")[1:4] == ["tt", "", ""]  # no rank or blocks for the TT reference: empty, not "None"


def test_sweep_refuses_what_does_not_fit():
    with pytest.raises(ValueError, match="BT model"):
        sweep_configs(small_config("tt"), [2], [1])
    with pytest.raises(ValueError, match=r"sweep \(R=99, N=1\)"):
        sweep_configs(small_config("bt"), [99], [1])
