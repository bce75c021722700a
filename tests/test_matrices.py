import pytest
import torch

import btcore
from btcore import BTMatrix, TTMatrix


def test_random_is_seeded_and_counts_params():
    a = BTMatrix.random((8, 20, 20, 18), (16, 4, 4, 4), 4, 2, seed=7)
    b = BTMatrix.random((8, 20, 20, 18), (16, 4, 4, 4), 4, 2, seed=7)
    assert a.num_params == 3_392 == sum(t.numel() for t in a.factors + [a.core])
    assert all(torch.equal(x, y) for x, y in zip(a.factors + [a.core], b.factors + [b.core]))
    t = TTMatrix.random((8, 20, 20, 18), (16, 4, 4, 4), 4, seed=7)
    assert t.num_params == 3_360 == sum(c.numel() for c in t.cores)
    assert a.shape == t.shape == (57_600, 1_024)


@pytest.mark.parametrize("make", [
    lambda std, seed: BTMatrix.random((4, 8, 8), (8, 4, 8), 3, 2, std=std, seed=seed, dtype=torch.float64),
    lambda std, seed: BTMatrix.random((4, 8, 8, 4), (4, 8, 8, 4), 4, 1, std=std, seed=seed, dtype=torch.float64),
    lambda std, seed: TTMatrix.random((4, 8, 8), (8, 4, 8), (6, 6), std=std, seed=seed, dtype=torch.float64),
    lambda std, seed: TTMatrix.random((4, 8, 8, 4), (4, 8, 8, 4), 5, std=std, seed=seed, dtype=torch.float64),
])
def test_random_has_the_target_std(make):
    # E[W^2] = std^2 exactly; one draw of a product of Gaussians is heavy-tailed, so average 16 draws.
    mean_square = sum(make(0.05, seed).to_dense().pow(2).mean().item() for seed in range(16)) / 16
    assert mean_square**0.5 == pytest.approx(0.05, rel=0.1)


def test_block_and_to():
    M = BTMatrix.random((2, 3), (3, 2), 2, 3, seed=0, dtype=torch.float64)
    total = sum(M.block(n).to_dense() for n in range(3))
    torch.testing.assert_close(total, M.to_dense())
    assert M.to(torch.float32).dtype == torch.float32
    assert "BTMatrix(in_modes=(2, 3)" in repr(M) and "TTMatrix(" in repr(TTMatrix.random((2, 2), (2, 2), 2))


def test_constructor_errors():
    with pytest.raises(ValueError, match=r"factors\[0\] must have shape \(N, I_k, J_k, R_k\)"):
        BTMatrix([torch.zeros(2, 2, 2)], torch.zeros(1, 2))
    with pytest.raises(ValueError, match="core shape .* does not match the factors"):
        BTMatrix([torch.zeros(1, 2, 2, 2), torch.zeros(1, 2, 2, 3)], torch.zeros(1, 2, 2))
    with pytest.raises(ValueError, match="one dtype"):
        BTMatrix([torch.zeros(1, 2, 2, 2)], torch.zeros(1, 2, dtype=torch.float64))
    with pytest.raises(ValueError, match="ends with rank 2 but cores\\[1\\] starts with 3"):
        TTMatrix([torch.zeros(1, 2, 2, 2), torch.zeros(3, 2, 2, 1)])
    with pytest.raises(ValueError, match="must be 1"):
        TTMatrix([torch.zeros(2, 2, 2, 1)])


def test_to_dense_refuses_what_does_not_fit(monkeypatch):
    M = BTMatrix.random((8, 20, 20, 18), (16, 4, 4, 4), 4, 2, seed=0)
    monkeypatch.setattr(btcore.memory, "available_memory", lambda device=None: 100 * 1024**2)
    with pytest.raises(ValueError, match=r"the dense 57,600 x 1,024 matrix needs 225.0 MiB, more than 50% .* use btcore.matmul"):
        M.to_dense()
    with pytest.raises(ValueError, match="the BT tensors needs"):
        BTMatrix.random((256,) * 3, (256,) * 3, 128, 1, seed=0)


@pytest.mark.parametrize("std", [-1.0, 0.0, float("nan"), float("inf")])
def test_random_refuses_bad_std(std):
    with pytest.raises(ValueError, match="std must be a finite number > 0"):
        BTMatrix.random((2, 3), (3, 2), 1, std=std)
    with pytest.raises(ValueError, match="std must be a finite number > 0"):
        TTMatrix.random((2, 3), (3, 2), 1, std=std)


def test_random_refuses_bad_dtype_seed_device():
    with pytest.raises(TypeError, match="dtype must be a real floating-point"):
        BTMatrix.random((2, 3), (3, 2), 1, dtype=torch.int64)
    with pytest.raises(ValueError, match="seed must be an integer"):
        TTMatrix.random((2, 3), (3, 2), 1, seed=-1)
    with pytest.raises(ValueError, match="device must be a torch device"):
        BTMatrix.random((2, 3), (3, 2), 1, device="nowhere")
    with pytest.raises(TypeError, match="must be a torch.Tensor"):
        TTMatrix([[1.0]])


def test_check_allocation_arguments():
    with pytest.raises(ValueError, match="nbytes must be a non-negative number"):
        btcore.check_allocation(-1, "x", "y")
    with pytest.raises(ValueError, match="fraction must be a number in"):
        btcore.check_allocation(1, "x", "y", fraction=2.0)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize("make", [lambda dev: BTMatrix.random((2, 3), (3, 2), 1, device=dev),
                                  lambda dev: TTMatrix.random((2, 3), (3, 2), 1, device=dev)])
def test_random_refuses_an_unavailable_device_by_name(make):
    # torch itself ends in an AssertionError ("Torch not compiled with CUDA enabled") or a RuntimeError
    for dev in ("cuda", "cuda:1"):
        with pytest.raises(ValueError, match=f"device '{dev}' is not available on this machine"):
            make(dev)
    assert make("cpu").device == torch.device("cpu")
