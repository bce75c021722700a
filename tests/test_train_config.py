"""btcore.train.config: model configurations, the fallbacks, memory estimates, TrainConfig and device checks."""

from __future__ import annotations

import pytest
import torch

from btcore.tasks.action import fit_model_config, model_config
from btcore.train import TrainConfig, estimate_memory, train
from train_helpers import data  # noqa: F401 (a fixture)


def test_configs_and_errors(data):
    cfg = model_config("bt", frame_shape=(3, 32, 32), hidden=256)
    assert cfg.in_modes == (8, 8, 8, 6) and cfg.hidden_modes == (4, 4, 4, 4) and cfg.input_size == 3072
    fitted, notes = fit_model_config("bt", frame_shape=(3, 32, 32), hidden=64, rank=40, blocks=2)
    assert fitted.rank == 4 and notes and "rank" in notes[0]
    assert fit_model_config("tt", frame_shape=(3, 32, 32), hidden=64)[1] == []
    paper, _ = fit_model_config("bt", frame_shape=(3, 120, 160), hidden=256, in_modes=(8, 20, 20, 18),
                                hidden_modes=(4, 4, 4, 4))
    assert paper.in_modes == (8, 20, 20, 18) and paper.input_map_params() == 3_392
    other, _ = fit_model_config("bt", frame_shape=(3, 32, 32), hidden=64, in_modes=(8, 20, 20, 18))
    assert other.in_modes == (8, 8, 8, 6)  # modes that do not multiply to the frame size are ignored
    mem = estimate_memory(model_config("dense", frame_shape=(3, 120, 160), hidden=256), 16, 8)
    assert mem["params"] > 4 * 57_600 * 1024 and mem["training"] > mem["params"]
    with pytest.raises(ValueError, match="optimizer"):
        TrainConfig(cfg, optimizer="lion")
    with pytest.raises(ValueError, match="features"):
        train(TrainConfig(cfg, epochs=1), *data)  # 3x32x32 model on 3x16x16 frames


def test_check_device_accepts_cpu_and_auto():
    from btcore.train import check_device, pick_device

    assert check_device("cpu") == torch.device("cpu") == check_device(" CPU ")
    assert check_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert pick_device(torch.device("cpu")) == torch.device("cpu")


@pytest.mark.parametrize("value, says", [("tpu", "must be 'auto', 'cpu', 'cuda' or 'cuda:K'"),
                                         ("mps", "must be 'auto'"), ("cpu:1", "must be 'auto'"),
                                         ("cuda:x", "must be 'auto'"), ("cuda:-1", "must be 'auto'")])
def test_check_device_refuses_other_devices(value, says):
    from btcore.train import check_device

    with pytest.raises(ValueError, match="--device") as exc:
        check_device(value, "--device")
    assert says in str(exc.value) and repr(value) in str(exc.value)


def test_check_device_refuses_cuda_that_is_not_there(monkeypatch):
    from btcore.train import check_device, pick_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for value in ("cuda", "cuda:0"):
        with pytest.raises(ValueError, match="CUDA is not available on this machine; use 'cpu' or 'auto'"):
            check_device(value)
    assert pick_device("auto") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert check_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(ValueError, match=r"has 2 GPU\(s\), cuda:0 to cuda:1"):
        check_device("cuda:2")
