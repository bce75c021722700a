"""btcore.tasks.sequences: the user's .npz of sequences, its refusals, the task and the CLI's --data file.npz."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from btcore.tasks import make_task
from btcore.tasks.sequences import (SequencesTask, load_sequences, resolve_npz_path, sequence_header,
                                    split_sequences)
from btcore.train import main


def _npz(x, y, **more) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, X=x, y=y, **more)
    return buf.getvalue()


def _data(n=12, t=5, d=6, k=3, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % k
    x = (rng.normal(size=(n, t, d)) + y[:, None, None]).astype(np.float32)
    return x, y


def test_loads_bytes_and_path_exactly(tmp_path):
    x, y = _data()
    xs, ys, k = load_sequences(_npz(x, y))
    assert k == 3 and torch.equal(xs, torch.from_numpy(x)) and torch.equal(ys, torch.from_numpy(y).long())
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "seq.npz").write_bytes(_npz(x, y))
    task = SequencesTask(data_source="d/seq.npz", root=str(tmp_path))
    assert task.frames == 5 and task.features == 6
    train, val = task.data(0)
    assert len(train) + len(val) == 12 and train.classes == 3
    assert set(val.labels.tolist()) == {0, 1, 2}  # every class held out once at least
    both = torch.cat([train.x, val.x]).sort(0).values
    assert torch.equal(both, torch.from_numpy(x).sort(0).values)  # a split, nothing lost or copied twice


def test_split_is_stratified_and_seeded():
    y = torch.tensor([0] * 8 + [1] * 4)
    a, b = split_sequences(y, 0.25, 3)
    assert sorted(np.concatenate([a, b]).tolist()) == list(range(12))
    assert (y[b] == 0).sum() == 2 and (y[b] == 1).sum() == 1
    assert np.array_equal(b, split_sequences(y, 0.25, 3)[1])


@pytest.mark.parametrize("make, says", [
    (lambda x, y: _npz(x[0], y), "X must have 3 axes"),
    (lambda x, y: _npz(x, y[:, None]), "y must have 1 axis"),
    (lambda x, y: _npz(x, y[:-1]), "12 examples but y has 11"),
    (lambda x, y: _npz(x[:, :, :0], y), "at least one time step"),
    (lambda x, y: _npz(np.where(np.arange(6) == 2, np.nan, x), y), "NaN or infinite"),
    (lambda x, y: _npz(x, y.astype(float)), "integer class labels"),
    (lambda x, y: _npz(x, np.where(y == 2, 5, y)), "never occur"),
    (lambda x, y: _npz(x, np.where(y == 2, -1, y)), "0..K-1"),
    (lambda x, y: _npz(x, np.r_[y[:-1], 3]), "fewer than 2 examples"),
    (lambda x, y: _npz(x, np.zeros_like(y)), "at least 2"),
    (lambda x, y: np.savez(io.BytesIO(), a=x) or _npz_only(x), "no X or y"),
    (lambda x, y: b"not a zip", "not a readable .npz"),
])
def test_refusals(make, says):
    x, y = _data()
    with pytest.raises(ValueError, match=says.replace("(", r"\(").replace(".", r"\.")):
        load_sequences(make(x, y))


def _npz_only(x):
    buf = io.BytesIO()
    np.savez(buf, Z=x)
    return buf.getvalue()


def test_size_checked_from_the_headers_before_reading():
    x, y = _data(n=400, t=50, d=60)
    blob = _npz(x, y)
    with pytest.raises(ValueError, match="limit"):
        sequence_header(blob, max_bytes=x.nbytes - 1)
    assert sequence_header(blob, max_bytes=x.nbytes + y.nbytes).features == 60


def test_paths_stay_inside_the_root(tmp_path):
    root, out = tmp_path / "root", tmp_path / "outside"
    root.mkdir(), out.mkdir()
    x, y = _data()
    (out / "s.npz").write_bytes(_npz(x, y))
    (root / "link.npz").symlink_to(out / "s.npz")
    for p, says in (("../outside/s.npz", "'..'"), (str(out / "s.npz"), "outside the data root"),
                    ("link.npz", "outside the data root"), ("none.npz", "no such file"), ("s.npy", "not a .npz")):
        with pytest.raises(ValueError, match=says) as exc:
            resolve_npz_path(p, root)
        assert str(out) not in str(exc.value) or p == str(out / "s.npz")


def test_modes_tensorized_and_editable():
    x, y = _data(d=24)
    task = make_task("sequences", data_source=_npz(x, y))
    cfg = task.model_config("bt", hidden=16, d=2, rank=2, blocks=1)
    assert cfg.in_modes == (6, 4) and cfg.classes == 3
    task = make_task("sequences", data_source=_npz(x, y), in_modes=(2, 3, 4))
    assert task.model_config("tt", hidden=8, tt_ranks=2).in_modes == (2, 3, 4)
    with pytest.raises(ValueError, match="multiply to 25"):
        make_task("sequences", data_source=_npz(x, y), in_modes=(5, 5))


def test_cli_trains_on_a_npz(tmp_path, capsys):
    x, y = _data(n=24, d=8)
    f = tmp_path / "seq.npz"
    f.write_bytes(_npz(x, y))
    args = ["--data", str(f), "--model", "dense", "--hidden", "8", "--d", "2", "--epochs", "2", "--batch", "6",
            "--threads", "1"]
    assert main(args) == 0
    last = [ln for ln in capsys.readouterr().out.splitlines() if ln][-1]
    assert '"task": "sequences"' in last and '"steps": 6' in last
    f.write_bytes(_npz(x[:, :, :0], y))
    assert main(args) == 2
    assert capsys.readouterr().err.startswith("error: --data")
