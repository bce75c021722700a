"""btcore.train.io: histories, result files, the output-folder check and checkpoints (saved, and refused when bad)."""

from __future__ import annotations

import io
import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from btcore.train import (CHECKPOINT_FORMAT, HISTORY_COLUMNS, checkpoint_bytes, compare, histories_csv, load_checkpoint, save_checkpoint,
                          save_results)
from train_helpers import data, small_config  # noqa: F401 (data is a fixture)


def test_compare_history_and_checkpoint(data, tmp_path):
    events = []
    cfgs = [small_config("bt", max_steps=3, epochs=1), small_config("bt", max_steps=2, epochs=1)]
    res = compare(cfgs, *data, callback=events.append)
    assert [r.name for r in res] == ["BT-LSTM (R=4, N=2)", "BT-LSTM (R=4, N=2) #2"]
    assert [r.config.name for r in res] == [r.name for r in res]
    assert [c.name for c in cfgs] == ["BT-LSTM (R=4, N=2)"] * 2  # the caller's configurations are not renamed
    assert [r.final["steps"] for r in res] == [3, 2]
    assert events[-1]["overall_progress"] == pytest.approx(1.0)
    progress = [e["overall_progress"] for e in events]
    assert progress == sorted(progress)
    text = histories_csv(res)
    lines = text.strip().splitlines()
    assert lines[0].split(",") == list(HISTORY_COLUMNS)
    assert len(lines) == 1 + 3 + 1 + 2 + 1  # steps + one eval per run
    paths = save_results(res, tmp_path, checkpoints=True)
    assert json.loads(Path(paths["summary"]).read_text())[0]["steps"] == 3
    model, cfg, hist = load_checkpoint(paths[res[0].name])
    assert cfg.model == res[0].config.model and len(hist) == 4
    x, _ = data[1].get([0, 1])
    res[0].model.eval()
    model.eval()
    assert torch.allclose(model(x), res[0].model(x))
    save_checkpoint(tmp_path / "x.pt", res[1].model, res[1].config)
    assert load_checkpoint(tmp_path / "x.pt")[1].name == res[1].name
    # the same checkpoint made in memory (the page's download)
    blob = checkpoint_bytes(res[0].model, res[0].config, res[0].history)
    model2, cfg2, hist2 = load_checkpoint(io.BytesIO(blob))
    (tmp_path / "y.pt").write_bytes(blob)
    assert cfg2 == cfg and hist2 == hist and load_checkpoint(tmp_path / "y.pt")[1] == cfg
    model2.eval()
    assert torch.equal(model2(x), model(x))


# -- checkpoints that are not what they claim --------------------------------------------------------

@pytest.fixture(scope="module")
def good_blob():
    """A real checkpoint of a small TT model, as bytes."""
    from btcore.classifier import SequenceClassifier

    cfg = small_config("tt")
    torch.manual_seed(0)
    return checkpoint_bytes(SequenceClassifier(cfg.model), cfg, [{"event": "eval", "step": 1}])


def _blob_dict(good_blob) -> dict:
    return torch.load(io.BytesIO(good_blob), weights_only=True)


def _refused(path, *says):
    with pytest.raises(ValueError) as exc:
        load_checkpoint(path)
    msg = str(exc.value)
    assert str(path) in msg, msg  # names the file
    for s in says:
        assert s in msg, msg
    return msg


def test_good_checkpoint_loads(good_blob, tmp_path):
    p = tmp_path / "good.pt"
    p.write_bytes(good_blob)
    model, cfg, hist = load_checkpoint(p)
    assert cfg.model.kind == "tt" and hist == [{"event": "eval", "step": 1}]
    assert sum(t.numel() for t in model.parameters()) == cfg.model.num_params()


def test_empty_truncated_and_random_files_are_refused(good_blob, tmp_path):
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    _refused(empty, "empty or cut short")
    cut = tmp_path / "cut.pt"
    cut.write_bytes(good_blob[: len(good_blob) // 2])
    _refused(cut, "unreadable, truncated or not a torch file")
    noise = tmp_path / "noise.pt"
    noise.write_bytes(bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)))
    _refused(noise, "not a torch file")
    text = tmp_path / "notes.pt"
    text.write_text("weights: none\n")
    _refused(text, "not a torch file")
    _refused(tmp_path, "is a folder")
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.pt")


class _RunsCode:
    """Unpickling this object would create a folder: a stand-in for any code a tampered file carries."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.makedirs, (str(self.marker),))


def test_a_pickle_with_code_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "code_ran"
    for name, write in (("torch", lambda p, obj: torch.save(obj, p)),
                        ("plain", lambda p, obj: p.write_bytes(pickle.dumps(obj)))):
        p = tmp_path / f"{name}.pt"
        write(p, {"format": CHECKPOINT_FORMAT, "state_dict": {}, "train_config": _RunsCode(marker)})
        msg = _refused(p)
        # torch's own format names the refused function; a bare pickle stops earlier, at its protocol header
        says = "objects other than tensors and plain data (" if name == "torch" else "not a torch file"
        assert says in msg and (name != "torch" or "makedirs" in msg), msg
        assert not marker.exists()


def _save(tmp_path, name, blob) -> Path:
    p = tmp_path / name
    torch.save(blob, p)
    return p


def test_torch_files_with_wrong_entries_are_refused(good_blob, tmp_path):
    ok = _blob_dict(good_blob)
    _refused(_save(tmp_path, "tensor.pt", torch.zeros(3)), "not a BT Lab checkpoint")
    _refused(_save(tmp_path, "format.pt", {**ok, "format": "other-1"}), "not a BT Lab checkpoint")
    for key in ("train_config", "state_dict"):
        blob = {k: v for k, v in ok.items() if k != key}
        _refused(_save(tmp_path, f"no_{key}.pt", blob), f"the {key!r} entry is missing")
    _refused(_save(tmp_path, "hist.pt", {**ok, "history": "x"}), "'history' entry is not a list")
    bad_cfg = {**ok["train_config"], "optimizer": "lion"}
    _refused(_save(tmp_path, "cfg.pt", {**ok, "train_config": bad_cfg}), "training configuration is invalid",
             "optimizer")
    unknown = {**ok["train_config"], "colour": "red"}
    _refused(_save(tmp_path, "cfg2.pt", {**ok, "train_config": unknown}), "training configuration is invalid")
    no_model = {k: v for k, v in ok["train_config"].items() if k != "model"}
    _refused(_save(tmp_path, "cfg3.pt", {**ok, "train_config": no_model}), "training configuration is invalid")


def test_weights_that_do_not_match_the_configuration_are_refused(good_blob, tmp_path):
    ok = _blob_dict(good_blob)
    sd = ok["state_dict"]
    first = sorted(sd)[0]
    missing = {k: v for k, v in sd.items() if k != first}
    _refused(_save(tmp_path, "missing.pt", {**ok, "state_dict": missing}), "do not match", f"missing {first}")
    extra = {**sd, "head.extra": torch.zeros(2)}
    _refused(_save(tmp_path, "extra.pt", {**ok, "state_dict": extra}), "unexpected head.extra")
    shaped = {**sd, first: torch.zeros(*sd[first].shape, 2)}
    _refused(_save(tmp_path, "shape.pt", {**ok, "state_dict": shaped}), f"weight {first} has shape",
             str(tuple(sd[first].shape)))
    not_tensor = {**sd, first: [1.0, 2.0]}
    _refused(_save(tmp_path, "list.pt", {**ok, "state_dict": not_tensor}), f"weight {first} is a list")
    ints = {**sd, first: torch.zeros(sd[first].shape, dtype=torch.int64)}
    _refused(_save(tmp_path, "ints.pt", {**ok, "state_dict": ints}), "dtype torch.int64")
    # another model's weights under this configuration
    other = small_config("bt")
    blob = {**ok, "train_config": other.to_dict()}
    _refused(_save(tmp_path, "other.pt", blob), "do not match")


def test_an_uploaded_file_object_is_named_in_errors(good_blob):
    buf = io.BytesIO(good_blob[:100])
    with pytest.raises(ValueError, match="the uploaded file"):
        load_checkpoint(buf)


# -- the output folder, checked before training -------------------------------------------------------

def test_check_out_dir(tmp_path):
    from btcore.train import check_out_dir

    assert check_out_dir(tmp_path / "new" / "deeper") == tmp_path / "new" / "deeper"
    assert not (tmp_path / "new").exists()  # a check only: nothing is made
    assert check_out_dir(tmp_path) == tmp_path  # an existing folder without results
    f = tmp_path / "file.txt"
    f.write_text("keep me")
    for overwrite in (False, True):
        with pytest.raises(ValueError, match="out_dir .*is an existing file, not a folder"):
            check_out_dir(f, overwrite=overwrite)
    with pytest.raises(ValueError, match="is a file, so no folder can be made under it"):
        check_out_dir(f / "sub")
    (tmp_path / "summary.json").write_text("[]")
    with pytest.raises(ValueError, match=r"already holds results \(summary.json\).*overwrite=True"):
        check_out_dir(tmp_path, field="--out")
    assert check_out_dir(tmp_path, overwrite=True) == tmp_path
    (tmp_path / "history.csv").mkdir()
    with pytest.raises(ValueError, match="history.csv there is a folder"):
        check_out_dir(tmp_path, overwrite=True)
    assert f.read_text() == "keep me"


def test_check_out_dir_refuses_an_unwritable_place(tmp_path):
    from btcore.train import check_out_dir

    if os.access("/proc/sys", os.W_OK):
        pytest.skip("/proc/sys is writable here (no read-only place to test with)")
    with pytest.raises(ValueError, match="is not writable by this user"):
        check_out_dir("/proc/sys/btlab_results")
