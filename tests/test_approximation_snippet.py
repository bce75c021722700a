"""The Approximation page's code snippet (app.snippets.approximation_snippet) runs and reproduces the fits."""

from __future__ import annotations

import numpy as np
import pytest

import btcore
from app.approximation import plan
from app.snippets import approximation_snippet


def _spec(**kw):
    inp = plan.SpecInputs("4x4x4", "4x4x4", target_kwargs={"noise": 0.01}, sweep_points=0, **kw)
    return plan.build_spec(inp)


@pytest.mark.parametrize("mode", ["parameter budget", "explicit ranks"])
def test_snippet_runs_and_reproduces_the_page_fits(mode, capsys):
    spec = _spec(mode=mode, budget=300, bt_rank="2", blocks=2, tt_ranks="3,2", tucker_rank="3", cp_rank=4)
    code = approximation_snippet(spec, budget=300)
    scope = {}
    exec(compile(code, "<snippet>", "exec"), scope)
    out = capsys.readouterr().out
    W = btcore.target_matrices.make_target("bt", spec.in_modes, spec.out_modes, 0, noise=0.01)
    assert np.array_equal(scope["W"], W)  # the page's target
    for t in spec.main:
        assert f"{t.task.format} {t.task.params} " in out  # each main fit at the page's size
    df = scope["df"]
    assert (df["params"] <= 300).all() and btcore.recommended(df).params <= 300
    assert "btcore.fit_tt(W, (4, 4, 4), (4, 4, 4), ranks=" in code and "suggest_formats(W, budget=300" in code


def test_snippet_for_an_uploaded_matrix_loads_it(tmp_path, monkeypatch, capsys):
    spec = _spec(mode="explicit ranks", formats=("TT",), tt_ranks="2")
    code = approximation_snippet(spec, budget=200, uploaded=True)
    assert "np.load(\"matrix.npy\")" in code and "make_target" not in code
    np.save(tmp_path / "matrix.npy", np.random.default_rng(0).standard_normal((64, 64)))
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "<snippet>", "exec"), {})
    assert capsys.readouterr().out.startswith("TT ")


def test_snippet_fits_tr_as_the_page_does(capsys):
    from btcore import decompose as dec

    spec = _spec(mode="explicit ranks", formats=("TR",), tr_ranks="2,3,2")
    code = approximation_snippet(spec, budget=300)
    scope = {}
    exec(compile(code, "<snippet>", "exec"), scope)
    (task,) = [t.task for t in spec.main]
    M, info = dec.fit_task(scope["W"], spec.in_modes, spec.out_modes, task, seed=0,
                           fit_kwargs=plan.effort_kwargs(spec.effort, "TR"))
    assert scope["info"].params == info.params and tuple(scope["info"].ranks) == (2, 3, 2)
    assert scope["info"].relative_error == pytest.approx(info.relative_error, rel=1e-9)
    assert capsys.readouterr().out.startswith(f"TR {info.params} ")
