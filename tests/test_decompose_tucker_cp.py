"""Tests of btcore.decompose.tucker_cp: Tucker (HOOI) and CP fits."""

import math
import threading
import warnings

import numpy as np
import pytest
import torch

import btcore.decompose.tucker_cp as tc
from btcore.decompose import fit_cp, fit_tucker, interleave, relative_error
from btcore.decompose.btmodel import bt_gradient
from decompose_cases import bt_dense as _bt
from decompose_cases import nonincreasing


def test_fit_tucker_recovers_exact_tucker():
    im, om = (3, 4, 5), (4, 3, 2)
    W = _bt(im, om, 3, 1, seed=3)
    M, info = fit_tucker(W, im, om, 3)
    assert info.format == "Tucker" and M.spec.blocks == 1
    assert info.relative_error < 1e-6 and relative_error(W, M) < 1e-6


def test_fit_cp_recovers_exact_cp():
    im, om = (3, 4, 5), (4, 3, 2)
    W = _bt(im, om, 1, 4, seed=3)
    M, info = fit_cp(W, im, om, 4)
    assert info.format == "CP" and M.spec.ranks == (1, 1, 1) and M.spec.blocks == 4
    assert info.relative_error < 1e-6 and relative_error(W, M) < 1e-6


def _real_targets():
    """scikit-image's camera photo at 128 x 128 and scikit-learn's digits matrix (1792 x 64)."""
    skimage_data = pytest.importorskip("skimage.data")
    datasets = pytest.importorskip("sklearn.datasets")
    cam = skimage_data.camera()[::4, ::4].astype(np.float64) / 255.0
    digits = datasets.load_digits().data[:1792].astype(np.float64)
    return [("camera 128", cam, (4, 4, 8), (4, 4, 8)), ("digits", digits, (7, 4, 8, 8), (2, 2, 4, 4))]


def _tensorly(kind, W, im, om, rank, **kw):
    """The relative error of tensorly's ``tucker`` / ``parafac`` (its defaults unless ``kw``) on numpy arrays."""
    tl = pytest.importorskip("tensorly")
    from tensorly.decomposition import parafac, tucker

    assert tl.get_backend() == "numpy"  # tensorly's process-wide backend is left alone
    T = interleave(W, im, om)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # random_state: tensorly fills factor columns beyond a mode size at random (seeded here)
        M = (tl.tucker_to_tensor(tucker(T, rank=[min(rank, n) for n in T.shape], random_state=0, **kw))
             if kind == "Tucker" else tl.cp_to_tensor(parafac(T, rank=rank, random_state=0, **kw)))
    return float(np.linalg.norm(T - M) / np.linalg.norm(T))


@pytest.mark.parametrize("kind,rank", [("Tucker", 3), ("Tucker", 6), ("CP", 4), ("CP", 12)])
def test_tucker_and_cp_as_accurate_as_tensorly_on_real_targets(kind, rank):
    fit = fit_tucker if kind == "Tucker" else fit_cp
    for name, W, im, om in _real_targets():
        M, info = fit(W, im, om, rank, warn=False)
        ref = _tensorly(kind, W, im, om, rank)
        assert info.relative_error <= ref * (1 + 1e-9), (name, info.relative_error, ref)
        assert info.relative_error == pytest.approx(relative_error(W, M), rel=1e-9)
        assert info.errors[-1] == info.relative_error and nonincreasing(info.errors)


def test_hooi_iterates_are_tensorlys():
    """The same start, update order and error formula: after k iterations the error is tensorly's."""
    name, W, im, om = _real_targets()[1]
    for k in (1, 2, 5):
        _, info = fit_tucker(W, im, om, 4, max_iter=k, tol=0.0)
        assert info.iterations == k and info.status == "max_iter"
        assert info.relative_error == pytest.approx(_tensorly("Tucker", W, im, om, 4, n_iter_max=k, tol=0),
                                                    rel=1e-10)


def _bits(M, info):
    return ([f.numpy().tobytes() for f in M.factors], M.core.numpy().tobytes(), info.errors, info.status,
            info.reason, info.iterations)


def test_same_seed_gives_bit_identical_fits_in_any_thread():
    tl = pytest.importorskip("tensorly")
    W = _real_targets()[0][1]
    im, om = (4, 4, 8), (4, 4, 8)
    calls = [(fit_tucker, 5), (fit_cp, 6)]
    ref = [_bits(*fit(W, im, om, r, seed=3, warn=False)) for fit, r in calls]
    assert ref == [_bits(*fit(W, im, om, r, seed=3, warn=False)) for fit, r in calls]
    out = {}

    def work(i):
        if i == 1:  # a thread with its own tensorly backend keeps it; the fit uses numpy
            tl.set_backend("pytorch", local_threadsafe=True)
        out[i] = [_bits(*fit(W, im, om, r, seed=3, warn=False)) for fit, r in calls]
        out[f"backend {i}"] = tl.get_backend()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert out[0] == ref and out[1] == ref
    assert out["backend 0"] == "numpy" and out["backend 1"] == "pytorch" and tl.get_backend() == "numpy"


def test_status_rules():
    im, om = (3, 4, 5), (4, 3, 2)
    W = _bt(im, om, 1, 4, seed=3).numpy() + 1e-3 * np.random.default_rng(0).standard_normal((60, 24))
    _, info = fit_cp(W, im, om, 4, max_iter=3)  # cut by its budget: never converged
    assert info.status == "max_iter" and not info.converged and info.iterations <= 4
    seen = []
    _, info = fit_cp(W, im, om, 4, progress=lambda it, e: seen.append((it, e)), should_stop=lambda: len(seen) > 5)
    assert info.status == "stopped" and not info.converged and [i for i, _ in seen] == list(range(len(seen)))
    _, info = fit_tucker(W, im, om, 3, time_limit=0.0)
    assert info.status == "time_limit" and not info.reproducible
    _, info = fit_tucker(_bt(im, om, 3, 1, seed=3), im, om, 3)  # exact: converged at precision
    assert info.converged and info.reason == "at numerical precision" and info.relative_error < 1e-8
    _, info = fit_tucker(W, im, om, 2, tol=1e-3)
    # ended on its tolerance: converged only with the error flat and the gradient below gtol
    assert info.status in ("converged", "stalled")
    assert info.converged == (info.grad_norm <= 1e-5 and info.errors[-2] - info.errors[-1] <= 1e-3 * info.errors[-2])


def test_gradients_match_the_bt_model_gradient():
    rng = np.random.default_rng(0)
    T = rng.standard_normal((4, 5, 6, 3))
    T /= np.linalg.norm(T)
    U = [np.linalg.qr(rng.standard_normal((m, r)))[0] for m, r in zip(T.shape, (2, 3, 2, 2))]
    lead, trail = [0, 1], [2, 3]
    B = tc._project(T, U, lead)
    core = tc._project(B, U, trail)
    gU, gC = bt_gradient(torch.from_numpy(tc._expand(core, U) - T), [torch.from_numpy(u)[None] for u in U],
                         torch.from_numpy(core)[None])
    ref = math.sqrt(sum(float((g * g).sum()) for g in gU) + float((gC * gC).sum()))
    assert tc._tucker_gradient(T, core, U, B, lead, trail) == pytest.approx(ref, rel=1e-10)
    A = [a / np.linalg.norm(a, axis=0) for a in (rng.standard_normal((m, 3)) for m in T.shape)]
    lam = rng.standard_normal(3)
    model = np.einsum("n,in,jn,kn,ln->ijkl", lam, *A)
    gU, gC = bt_gradient(torch.from_numpy(model - T), [torch.from_numpy(a.T[:, :, None]) for a in A],
                         torch.from_numpy(lam.reshape(3, 1, 1, 1, 1)))
    ref = math.sqrt(sum(float((g * g).sum()) for g in gU) + float((gC * gC).sum()))
    assert tc._cp_gradient(T, lam, A) == pytest.approx(ref, rel=1e-10)


def test_order_one_and_zero_targets_are_exact():
    W = np.random.default_rng(0).standard_normal((8, 6))
    for fit, rank in ((fit_tucker, 1), (fit_cp, 3)):
        M, info = fit(W, (8,), (6,), rank)  # one mode: the vectorised matrix is its own rank-one term
        assert relative_error(W, M) < 1e-12 and info.converged
        M, info = fit(np.zeros((8, 8)), (2, 4), (4, 2), 2)
        assert float(M.to_dense().abs().max()) == 0.0 and info.relative_error == 0.0 and info.converged


def test_cp_iterates_are_tensorlys_parafac_with_line_search():
    """The same start, updates, extrapolations and error formulas as parafac(linesearch=True): after k
    iterations (line-search ones included) the error is tensorly's, to rounding."""
    tl = pytest.importorskip("tensorly")
    from tensorly.decomposition import parafac

    name, W, im, om = _real_targets()[0]
    T = interleave(W, im, om)
    T = T / np.linalg.norm(T)
    for rank, k in ((4, 3), (12, 12), (70, 15)):  # 70: above the mode sizes (random columns)
        start = tc._cp_start(T, rank, 0)
        A, errs = tc._parafac(T, start, k, 0.0, lambda e: False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            (w, B), ref = parafac(T, rank, n_iter_max=k, init=(None, [f.copy() for f in start]), tol=0.0,
                                  linesearch=True, return_errors=True)
        assert len(errs) == len(ref)
        assert errs == pytest.approx([float(e) for e in ref], rel=1e-9)
        M = tl.cp_to_tensor((w, B))
        assert tc._cp_error(T, A) == pytest.approx(float(np.linalg.norm(T - M)), rel=1e-8)
        mine = tc._mttkrps(T, A)
        for j in range(T.ndim):
            from tensorly.tenalg import unfolding_dot_khatri_rao
            np.testing.assert_allclose(mine[j], unfolding_dot_khatri_rao(T, (None, A), j), rtol=1e-10, atol=1e-13)
