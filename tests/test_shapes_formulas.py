"""app.shapes.formulas: each parameter formula carries the spec's own numbers and ends at its count."""

import btcore
from app.config import LabConfig
from app.shapes import formulas


def _terms(tex: str) -> list[list[int]]:
    # the "a\cdot b\cdot c\cdot d" products of the sum (at d <= 4 the first line ends with them)
    body = tex.split("\\\\")[0].rsplit(" = ", 1)[1]
    return [[int(x) for x in t.strip(" ()").split("\\cdot")] for t in body.split(" + ")]


def test_tr_formula_closes_the_ring_and_sums_to_the_count():
    cfg = LabConfig(tr_ranks=(4, 3, 2, 3))
    spec = cfg.tr_spec()
    tex = formulas.tr_formula(spec)
    terms = _terms(tex)
    assert [tuple(t) for t in terms] == spec.core_shapes()  # r_0 = r_d = 3 opens the first core
    assert sum(a * b * c * d for a, b, c, d in terms) == spec.params == btcore.tr_params(cfg.in_modes, cfg.out_modes,
                                                                                       (4, 3, 2, 3))
    assert tex.endswith(f"{formulas.tex_int(spec.params)} \\end{{aligned}}")


def test_every_listed_format_has_its_formula_with_its_count():
    specs = LabConfig().specs()
    texts = formulas.formulas(specs)
    assert [t.split("P_{\\mathrm{")[1].split("}")[0] for t in texts] == ["BT", "TT", "TR", "dense"]
    by_kind = {s.kind: s for s in specs}
    for t, kind in zip(texts, ("BT", "TT", "TR", "Dense")):
        assert formulas.tex_int(by_kind[kind].params) in t
    assert _terms(formulas.tt_formula(by_kind["TT"]))[0][0] == 1  # TT: r_0 = 1
