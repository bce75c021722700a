"""Result records shared by the tests of the Approximation page's analysis and figures."""

from app.approximation.run import SweepPoint
from btcore import decompose as dec


def point(fmt: str, params: int, err: float, budget: int | None = None) -> SweepPoint:
    """A result as the page makes it: error text and precision flag from the fit's FitInfo."""
    info = dec.FitInfo(format=fmt, method="ALS", relative_error=err, at_precision=err < dec.AT_PRECISION,
                       params=params)
    return SweepPoint(budget, fmt, params, err, info.error_text, info.at_precision, label=fmt)


ROWS = [point("BT", 1024, 0.0099), point("TT", 960, 0.41), point("Tucker", 945, 0.0101), point("CP", 975, 0.2)]
SWEEP = [point(f, b, e, budget=b)
         for b, errs in ((500, {"BT": 0.3, "TT": 0.6, "Tucker": 0.4, "CP": 0.35}),
                         (1000, {"BT": 0.01, "TT": 0.41, "Tucker": 0.0101, "CP": 0.2}))
         for f, e in errs.items()]
