"""Tests of btcore.decompose.settings: FitSettings, the presets and how fit_bt reads them."""

import dataclasses

import numpy as np
import pytest
import torch

from btcore.decompose import ADVISOR_FULL, ADVISOR_SCREEN, DEFAULT, EFFORTS, FitSettings, fit_bt
from btcore.decompose.settings import STOPPING, error_fall
from decompose_cases import bt_dense


def test_presets_are_validated_settings_and_frozen():
    for preset in [DEFAULT, ADVISOR_SCREEN, ADVISOR_FULL, *EFFORTS.values()]:
        assert isinstance(preset, FitSettings)
        assert preset.time_limit is None  # no wall clock in any preset: all reproducible
    with pytest.raises(dataclasses.FrozenInstanceError):
        DEFAULT.max_iter = 5
    assert DEFAULT == FitSettings() and DEFAULT.changes() == {}


def test_replace_validates_and_names_unknown_settings():
    s = FitSettings().replace(max_iter=30, restarts=1)
    assert (s.max_iter, s.restarts) == (30, 1) and s.changes() == {"max_iter": 30, "restarts": 1}
    with pytest.raises(ValueError, match="max_iter"):
        FitSettings().replace(max_iter=0)
    with pytest.raises(TypeError, match="max_iters"):
        FitSettings().replace(max_iters=3)
    with pytest.raises(TypeError, match="max_iters"):
        fit_bt(np.ones((4, 4)), (2, 2), (2, 2), 1, max_iters=3)


def test_settings_object_and_keywords_give_the_same_fit():
    im, om = (4, 4, 4), (4, 4, 2)
    W = np.random.default_rng(0).standard_normal((64, 32))
    quick = EFFORTS["quick"]
    M1, a = fit_bt(W, im, om, 2, 2, settings=quick, seed=3)
    M2, b = fit_bt(W, im, om, 2, 2, seed=3, **quick.changes())
    assert a.errors == b.errors and a.status == b.status
    assert all(torch.equal(x, y) for x, y in zip(M1.factors, M2.factors))
    # keywords override the settings object
    _, c = fit_bt(W, im, om, 2, 2, settings=quick, seed=3, max_iter=5, method="als")
    assert c.method == "ALS" and c.iterations <= 5 + quick.refine_iter  # compressed fit, then refinement


def test_error_fall_reads_the_window():
    assert error_fall([1.0, 0.5], 10) == pytest.approx(0.5)
    assert error_fall([4.0] + [2.0] * 10 + [1.0], 10) == pytest.approx(0.5)
    assert np.isnan(error_fall([0.0, 0.0]))
    assert STOPPING.window == 10


def test_extra_starts_are_a_work_budget():
    # a swamp that ALS from its three starts does not leave: "auto" tries further starts, counted
    im = om = (4, 4, 4)
    W = bt_dense(im, om, 4, 3, seed=1)
    _, none = fit_bt(W, im, om, 4, 3, seed=0, extra_starts=0, nls_budget=0, warn=False)
    assert len(none.start_kinds) == 3
    _, two = fit_bt(W, im, om, 4, 3, seed=0, extra_starts=2, nls_budget=0, warn=False)
    assert len(two.start_kinds) <= 5


def test_default_is_within_half_a_percent_of_thorough_on_a_photo():
    # the camera photo at 64 x 64 (4x4x4 -> 4x4x4), N = 3, R = 3: the compressed fit leaves most of
    # the gain to the refinement on the full tensor, whose ALS tail is slow. Refining 5 sweeps (the
    # old default) ended 3.9% above thorough; refining to refine_tol ends within 0.5%
    import skimage.data
    W = skimage.data.camera().astype(np.float64)[::8, ::8] / 255.0
    im = om = (4, 4, 4)
    errs = {}
    for name, s in [("default", DEFAULT), ("thorough", EFFORTS["thorough"]),
                    ("five sweeps", DEFAULT.replace(refine_iter=5))]:
        errs[name] = fit_bt(W, im, om, 3, 3, settings=s, warn=False)[1].relative_error
    assert errs["thorough"] <= errs["default"] <= 1.005 * errs["thorough"]
    assert errs["five sweeps"] > 1.02 * errs["thorough"]
