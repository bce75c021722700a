"""app.training.worker: the training job on the synthetic task and on a clip folder, and stops."""

from __future__ import annotations

import numpy as np

from app.jobs import Job
from app.training.worker import DataSpec, end_unstarted, make_target
from btcore.tasks.action import model_config
from btcore.train import TrainConfig

FRAME = (3, 16, 16)


def _runs(*kinds):
    return [TrainConfig(model_config(k, frame_shape=FRAME, hidden=16, classes=4), epochs=1, batch_size=16)
            for k in kinds]


def test_synthetic_job_trains_every_run():
    spec = DataSpec(FRAME, 4, 0, classes=4, train_size=32, val_size=16, noise=0.05)
    assert spec.source == "synthetic"
    job = Job(make_target(_runs("tt", "tt"), spec), name="t").start()
    assert job.join(120) and job.status == "done", job.error
    ends = [e for e in job.events if e["event"] == "end"]
    assert [e["run"] for e in ends] == ["TT-LSTM (ranks 4)", "TT-LSTM (ranks 4) #2"]
    assert job.info.data == "32 training / 16 validation clips, 4 classes" and job.info.chance == 0.25


def test_clip_folder_job(tmp_path):
    for k, name in enumerate(("clap", "wave")):
        (tmp_path / name).mkdir()
        for i in range(4):
            np.save(tmp_path / name / f"c{i}.npy", np.random.default_rng(k * 10 + i).random((5, 16, 16, 3)))
    spec = DataSpec(FRAME, 4, 0, folder=tmp_path)
    assert spec.source == "folder"
    job = Job(make_target(_runs("bt"), spec), name="t").start()
    assert job.join(120) and job.status == "done", job.error
    assert job.info.data == "6 training / 2 validation clips, 2 classes"


def test_stop_before_training_ends_every_planned_run():
    spec = DataSpec(FRAME, 4, 0, classes=4, train_size=32, val_size=16)
    job = Job(make_target(_runs("dense", "bt"), spec), name="t")
    job.stop()  # stopped before it starts: the clips are never generated
    job.start()
    assert job.join(60) and job.status == "stopped"
    ends = [e for e in job.events if e["event"] == "end"]
    assert [e["status"] for e in ends] == ["stopped", "stopped"] and job.message == "stopped by request"
    end_unstarted(job, _runs("dense"))  # runs that already ended get no second end event
    assert len([e for e in job.events if e["event"] == "end"]) == 2


def test_the_job_keeps_each_runs_newest_preview_not_one_per_evaluation():
    from app.training.worker import split_preview

    first = {"event": "eval", "run": "BT", "step": 4, "epoch": 1.0, "val_loss": 1.0, "preview": {"kind": "images"}}
    ev, previews = split_preview(first, {})
    assert "preview" not in ev and ev["val_loss"] == 1.0 and "preview" in first  # the trainer's event is untouched
    assert previews == {"BT": {"kind": "images", "step": 4, "epoch": 1.0}}
    ev, previews = split_preview({**first, "step": 8, "epoch": 2.0, "preview": {"kind": "images", "v": 2}}, previews)
    assert previews == {"BT": {"kind": "images", "v": 2, "step": 8, "epoch": 2.0}}
    step = {"event": "step", "run": "BT", "step": 9}
    assert split_preview(step, previews) == (step, previews)


def test_stop_while_a_clip_folder_is_read_ends_the_job_at_the_next_file(tmp_path, monkeypatch):
    import btcore.clips
    from PIL import Image

    for name in ("clap", "wave"):
        for i in range(4):
            (tmp_path / name / f"c{i}").mkdir(parents=True)
            for t in range(5):
                Image.fromarray(np.full((16, 16, 3), 40 * t, np.uint8)).save(tmp_path / name / f"c{i}" / f"{t}.png")
    job = Job(make_target(_runs("bt"), DataSpec(FRAME, 4, 0, folder=tmp_path)), name="t")
    reads, real = [], btcore.clips._read_image

    def read(p):  # the user presses Stop while the 6th of the 32 frames is read
        reads.append(p)
        if len(reads) == 6:
            job.stop()
        return real(p)

    monkeypatch.setattr(btcore.clips, "_read_image", read)
    job.start()
    assert job.join(60) and job.status == "stopped"
    assert len(reads) == 6  # no file read after the stop
    assert [e["status"] for e in job.events if e["event"] == "end"] == ["stopped"]
