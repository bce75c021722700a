"""app.study.plan and app.study.sources: the checked study of the page's inputs, the data root listed safely."""

from __future__ import annotations

import io

import numpy as np
import pytest

from app.study.inputs import FROM_STUDY, fields
from app.study.plan import make_plan, parse_blocks, parse_budgets
from app.study.sources import checkpoint_path, npz_files


def _values(**changes):
    return {**{f.name: f.default for f in fields()}, **changes}


@pytest.mark.parametrize("text", ["", "0", "1,x", "-5", "1000000000"])
def test_bad_budgets_name_the_field(text):
    with pytest.raises(ValueError, match="^Budgets: "):
        parse_budgets(text)


def test_budgets_sorted_once_each_and_blocks():
    assert parse_budgets("3000, 1000,3000") == [1000, 3000]
    assert parse_blocks("1,2,2") == [1, 2]
    with pytest.raises(ValueError, match="^BT blocks N"):
        parse_blocks("0")


def test_plan_fills_each_budget_and_follows_the_grid(tmp_path):
    plan = make_plan(_values(s_blocks="1,2", s_budgets="2000,8000"), None, tmp_path)
    assert plan.jobs[0].format == "dense"
    for j in plan.jobs[1:]:
        assert j.config.model.input_map_params() <= j.budget
    assert {j.blocks for j in plan.jobs if j.format == "bt"} == {1, 2}
    assert plan.base.epochs == 4 and plan.task.frame_shape == (3, 16, 16)


@pytest.mark.parametrize("changes, field", [({"s_frame": "3x0"}, "Frame size"), ({"s_modes": "7x7"}, "Input modes"),
                                            ({"s_tt": False, "s_bt": False, "s_tr": False}, "Formats"),
                                            ({"s_data": "upload"}, "Data"), ({"s_task": "sequences"}, "Data"),
                                            ({"s_compress": "nope.pt"}, "Compress from")])
def test_refusals_name_the_field(tmp_path, changes, field):
    with pytest.raises(ValueError, match=f"^{field}"):
        make_plan(_values(**changes), None, tmp_path)


def test_compress_from_the_study_adds_compressed_jobs(tmp_path):
    plan = make_plan(_values(s_compress=FROM_STUDY, s_finetune=3), None, tmp_path)
    assert plan.compress == FROM_STUDY and plan.finetune_epochs == 3
    from btcore.compress import COMPRESS_FORMATS

    assert {j.format for j in plan.jobs if j.phase == "compressed"} == set(COMPRESS_FORMATS)  # every ticked one


def test_the_data_root_lists_only_files_inside_it(tmp_path):
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    buf = io.BytesIO()
    np.savez(buf, X=np.zeros((4, 2, 3), np.float32), y=np.arange(4) % 2)
    (root / "sub" / "a.npz").write_bytes(buf.getvalue())
    (root / ".hidden.npz").write_bytes(buf.getvalue())
    (tmp_path / "out.npz").write_bytes(buf.getvalue())
    (root / "out.npz").symlink_to(tmp_path / "out.npz")
    (tmp_path / "m.pt").write_bytes(b"x")
    assert npz_files(root) == ["sub/a.npz"]
    assert npz_files(tmp_path / "missing") == []
    with pytest.raises(ValueError, match="inside the data root"):
        checkpoint_path("../m.pt", root)
