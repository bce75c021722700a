"""Mode factorizations and checks on tensorized shapes.

A matrix of shape (I, J) is tensorized by writing I = I_1 * ... * I_d and J = J_1 * ... * J_d.
The functions here choose and validate those modes.
"""

from __future__ import annotations

import bisect
import functools
import math
import re
from numbers import Integral
from typing import Iterable, Sequence

import numpy as np

__all__ = [
    "MAX_FACTOR_SIZE",
    "MAX_MODE",
    "MAX_ORDER",
    "check_choice",
    "format_ints",
    "pair_modes",
    "parse_ints",
    "parse_rank",
    "rank_text",
    "factorize",
    "prime_factors",
    "check_modes",
    "as_modes",
    "size_and_modes",
    "check_positive_int",
    "check_rank_value",
    "nearest_factorizable",
    "prod",
]

#: Default largest mode size :func:`factorize` accepts. A mode of size m costs m * J_k * R parameters
#: per block; past a few hundred the "tensorized" layer is essentially a dense one.
MAX_MODE = 256
#: Largest tensor order supported (einsum index letters are finite, and d > 8 is never useful here).
MAX_ORDER = 8


def prod(values: Iterable[int]) -> int:
    """Exact integer product (1 for an empty sequence)."""
    return math.prod(int(v) for v in values)


def check_positive_int(value, field: str) -> int:
    """Return ``value`` as an ``int``, or raise ``ValueError`` naming ``field``.

    Accepts Python and NumPy integers, and floats with an integral value (``4.0``); rejects bools,
    non-integral floats, strings and values below 1.
    """
    if isinstance(value, bool):
        raise ValueError(f"{field} must be a positive integer, got {value!r}")
    if isinstance(value, Integral):
        v = int(value)
    elif isinstance(value, float) and value.is_integer():
        v = int(value)
    else:
        raise ValueError(f"{field} must be a positive integer, got {value!r}")
    if v < 1:
        raise ValueError(f"{field} must be at least 1, got {v}")
    return v


def check_rank_value(value, field_name: str):
    """A rank control's value: a positive int, or a tuple of positive ints (lists from JSON become tuples)."""
    if isinstance(value, (list, tuple)):
        return tuple(check_positive_int(v, f"{field_name}[{k}]") for k, v in enumerate(value))
    return check_positive_int(value, field_name)


def check_modes(modes: Sequence[int], field: str = "modes", size: int | None = None) -> tuple[int, ...]:
    """Validate a sequence of mode sizes and return it as a tuple of ints.

    Parameters
    ----------
    modes : sequence of int
        Mode sizes, each at least 1.
    field : str
        Name used in error messages (``"in_modes"``, ``"out_modes"``...).
    size : int, optional
        If given, the product of the modes must equal it.

    Raises
    ------
    ValueError
        If ``modes`` is empty or not a sequence, has a non-integer or non-positive entry, or its
        product is not ``size``.
    """
    if isinstance(modes, (str, bytes)) or not hasattr(modes, "__len__"):
        raise ValueError(f"{field} must be a sequence of positive integers, got {modes!r}")
    if len(modes) == 0:
        raise ValueError(f"{field} must have at least one mode, got an empty sequence")
    out = tuple(check_positive_int(m, f"{field}[{k}]") for k, m in enumerate(modes))
    if size is not None:
        total = prod(out)
        if total != size:
            shown = " x ".join(map(str, out))
            raise ValueError(
                f"{field}: the product of the modes {shown} = {total:,} does not equal the size {size:,}; "
                f"choose modes whose product is {size:,} (for example {' x '.join(map(str, factorize(size, len(out), max_mode=None)))})"
            )
    return out


def as_modes(value, field: str) -> tuple[int, ...]:
    """Modes from one int (a single mode) or a sequence of ints, checked by :func:`check_modes`.

    Parameters
    ----------
    value : int or sequence of int
        ``256`` or ``(4, 4, 4, 4)``.
    field : str
        The argument's name, used in messages.

    Returns
    -------
    tuple of int
    """
    if isinstance(value, Integral) and not isinstance(value, bool):
        value = (value,)
    return check_modes(value, field)


def size_and_modes(x, field: str) -> tuple[int, tuple[int, ...] | None]:
    """(size, modes or None) of one side of a matrix, from an int or a sequence of modes.

    Parameters
    ----------
    x : int or sequence of int
        A size (``256``) or its modes (``(4, 4, 4, 4)``).
    field : str
        The argument's name, used in messages.

    Returns
    -------
    (int, tuple of int or None)
    """
    if isinstance(x, Integral) and not isinstance(x, bool):
        return check_positive_int(x, field), None
    modes = check_modes(x, field)
    return prod(modes), modes


def pair_modes(in_modes, out_modes, in_size: int | None = None, out_size: int | None = None):
    """Validate input and output modes of one tensorized matrix and return them as two tuples.

    A bare int is one mode. Both sides need the same order d (at most :data:`MAX_ORDER`); with
    ``in_size`` / ``out_size`` the products must equal them.
    """
    if isinstance(in_modes, Integral) and not isinstance(in_modes, bool):
        in_modes = (in_modes,)
    if isinstance(out_modes, Integral) and not isinstance(out_modes, bool):
        out_modes = (out_modes,)
    i = check_modes(in_modes, "in_modes", in_size)
    o = check_modes(out_modes, "out_modes", out_size)
    if len(i) != len(o):
        raise ValueError(
            f"in_modes has {len(i)} modes but out_modes has {len(o)}; both need the same order d "
            "(pad the shorter one with modes of size 1)"
        )
    if len(i) > MAX_ORDER:
        raise ValueError(f"order d = {len(i)} is above the supported maximum {MAX_ORDER}; use fewer, larger modes")
    return i, o


def check_choice(value, choices: Sequence, field: str):
    """Return ``value`` if it is one of ``choices``, else raise ``ValueError`` naming ``field``."""
    if value not in tuple(choices):
        raise ValueError(f"{field} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def parse_ints(text: str, field: str, example: str = "write the sizes like 8x20x20x18") -> tuple[int, ...]:
    """Parse ``"8x20x20x18"``, ``"8, 20, 20, 18"`` or ``"8 20 20 18"`` into a tuple of positive ints.

    Raises ``ValueError`` naming ``field`` for anything that is not a list of positive integers;
    ``example`` (how to write the field) ends the message.
    """
    parts = [p for p in re.split(r"[x×*,;\s]+", str(text).strip()) if p]
    if not parts:
        raise ValueError(f"{field}: enter at least one positive integer; {example}")
    out = []
    for p in parts:
        try:
            v = int(p)
        except ValueError:
            raise ValueError(f"{field}: {p!r} is not a positive integer; {example}") from None
        if v < 1:
            raise ValueError(f"{field}: every entry must be at least 1, got {v}")
        out.append(v)
    return tuple(out)


def parse_rank(text: str, field: str) -> int | tuple[int, ...]:
    """One int (all modes) or a list of ints (per mode / per bond), parsed as :func:`parse_ints`."""
    vals = parse_ints(text, field, "write one rank for all, like 4, or one per mode or bond, like 4,3,2,2")
    return vals[0] if len(vals) == 1 else vals


def format_ints(values, sep: str = "x") -> str:
    """``(8, 20, 20, 18)`` -> ``"8x20x20x18"`` (the inverse of :func:`parse_ints`)."""
    return sep.join(str(v) for v in values)


def rank_text(rank) -> str:
    """A rank as the user types it: ``4`` or ``4,3,2,2`` (the inverse of :func:`parse_rank`)."""
    return str(rank) if isinstance(rank, Integral) else format_ints(rank, ",")


#: Largest n that :func:`prime_factors`, :func:`factorize` and :func:`nearest_factorizable` accept:
#: trial division by the primes up to 10^6 factors every n up to 10^12 completely.
MAX_FACTOR_SIZE = 10**12
_TRIAL_LIMIT = 10**6


@functools.lru_cache(maxsize=1)
def _small_primes() -> np.ndarray:
    """The primes up to 10^6 (sieve of Eratosthenes, int64), computed once."""
    sieve = np.ones(_TRIAL_LIMIT + 1, dtype=bool)
    sieve[:2] = False
    for p in range(2, int(_TRIAL_LIMIT**0.5) + 1):
        if sieve[p]:
            sieve[p * p :: p] = False
    return np.flatnonzero(sieve).astype(np.int64)


def _check_size(n, field: str = "n") -> int:
    n = check_positive_int(n, field)
    if n > MAX_FACTOR_SIZE:
        raise ValueError(f"{field} = {n:,} is above {MAX_FACTOR_SIZE:,}, the largest size factorized here; "
                         "choose the modes yourself")
    return n


def _check_order(d) -> int:
    d = check_positive_int(d, "d")
    if d > MAX_ORDER:
        raise ValueError(f"d = {d} is above the supported maximum order {MAX_ORDER}; use d <= {MAX_ORDER}")
    return d


def _factor_counts(n: int) -> dict[int, int]:
    """{prime: multiplicity} of ``1 <= n <= 10^12``: one vectorised trial division by the primes <= 10^6."""
    primes = _small_primes()
    primes = primes[: np.searchsorted(primes, math.isqrt(n), side="right")]
    out: dict[int, int] = {}
    for p in primes[n % primes == 0].tolist():
        while n % p == 0:
            out[p] = out.get(p, 0) + 1
            n //= p
    if n > 1:  # no prime factor <= 10^6 and n <= 10^12 = (10^6)^2: n is prime
        out[n] = out.get(n, 0) + 1
    return out


def prime_factors(n: int) -> list[int]:
    """Prime factors of ``n`` (1 <= n <= 10^12) with multiplicity, ascending (``[]`` for 1)."""
    counts = _factor_counts(_check_size(n))
    return [p for p in sorted(counts) for _ in range(counts[p])]


def _divisors(n: int) -> list[int]:
    """All divisors of ``n``, ascending (at most 6,720 for n <= 10^12), built from its prime factors."""
    divs = [1]
    for p, e in _factor_counts(n).items():
        divs = [x * p**k for x in divs for k in range(e + 1)]
    return sorted(divs)


def _ceil_root(m: int, k: int) -> int:
    """The smallest integer r with r**k >= m (exact, whatever float rounding does)."""
    r = max(1, int(round(m ** (1.0 / k))))
    while r**k < m:
        r += 1
    while r > 1 and (r - 1) ** k >= m:
        r -= 1
    return r


def _between(divs: list[int], m: int, lo: int, hi: int) -> list[int]:
    """Divisors of ``m`` (itself a divisor of the number ``divs`` lists) in [lo, hi], ascending."""
    return [f for f in divs[bisect.bisect_left(divs, lo) : bisect.bisect_right(divs, hi)] if m % f == 0]


def _fits(n: int, d: int, cap: int, divs: list[int]) -> bool:
    """Whether ``n`` splits into ``d`` factors (divisors from ``divs``) each at most ``cap``."""
    seen: dict[tuple[int, int], bool] = {}

    def fits(m: int, k: int) -> bool:
        if m <= cap:
            return True
        if k == 1 or m > cap**k:
            return False
        key = (m, k)
        if key not in seen:
            # The largest factor is at least the k-th root of m.
            seen[key] = any(fits(m // f, k - 1) for f in reversed(_between(divs, m, _ceil_root(m, k), cap)))
        return seen[key]

    return fits(n, d)


def _balanced(n: int, d: int, divs: list[int]) -> tuple[int, ...]:
    """The most balanced split: smallest largest factor, then smallest sum of squared logs."""
    # 1. The smallest largest factor: the first divisor >= n^(1/d) that admits a split.
    top = next(m for m in divs[bisect.bisect_left(divs, _ceil_root(n, d)) :] if _fits(n, d, m, divs))
    # 2. Among splits with that largest factor, the smallest sum of squared logs, by branch and bound.
    best: list = [math.inf, None]

    def search(m: int, k: int, cap: int, cost: float, acc: tuple[int, ...]) -> None:
        if k == 1:
            if m <= cap and cost + math.log(m) ** 2 < best[0]:
                best[0], best[1] = cost + math.log(m) ** 2, acc + (m,)
            return
        for f in _between(divs, m, _ceil_root(m, k), cap):
            # With the largest remaining factor f, the rest costs at least (k-1) (log(m/f)/(k-1))^2;
            # the bound grows with f above m^(1/k), so the first f past the best ends the loop.
            rest = math.log(m // f) / (k - 1)
            if cost + math.log(f) ** 2 + (k - 1) * rest * rest >= best[0] - 1e-12:
                break
            if m // f <= f ** (k - 1):
                search(m // f, k - 1, f, cost + math.log(f) ** 2, acc + (f,))

    if d == 1:
        return (n,)
    search(n // top, d - 1, top, math.log(top) ** 2, (top,))
    return best[1]


def factorize(n: int, d: int, *, max_mode: int | None = MAX_MODE) -> tuple[int, ...]:
    """The ``d`` factors of ``n``, as balanced as possible, largest first.

    "Balanced" minimises the largest factor, then the spread (sum of squared logs), so
    ``factorize(57600, 4) == (16, 16, 15, 15)`` and ``factorize(1024, 4) == (8, 8, 4, 4)``.
    Factors of 1 appear only when ``n`` has fewer than ``d`` prime factors. The search works on
    the divisors of ``n`` (from its prime factors), so it answers in milliseconds for any n up to
    10^12.

    Parameters
    ----------
    n : int
        The size to factorize, 1 <= n <= 10^12.
    d : int
        Number of factors (the tensor order), 1 <= d <= :data:`MAX_ORDER`.
    max_mode : int or None
        Largest acceptable factor; ``None`` disables the check.

    Raises
    ------
    ValueError
        For arguments out of range, or if the most balanced factorization still has a factor above
        ``max_mode`` (typically ``n`` has a large prime factor); the message then suggests a nearby
        size that factorizes.
    """
    n = _check_size(n)
    d = _check_order(d)
    if max_mode is not None:
        max_mode = check_positive_int(max_mode, "max_mode")
    result = _balanced(n, d, _divisors(n))
    if max_mode is not None and result[0] > max_mode:
        big = max(prime_factors(n))
        hint = nearest_factorizable(n, d, max_mode=max_mode)
        raise ValueError(
            f"size {n:,} cannot be split into {d} modes of at most {max_mode}: its largest prime factor is "
            f"{big:,}" + ("" if big > max_mode else f" and the best split is {' x '.join(map(str, result))}")
            + f". Use a nearby size such as {hint:,} ({' x '.join(map(str, factorize(hint, d, max_mode=None)))}), "
            "pad the input, or choose the modes yourself."
        )
    return result


def _packs(m: int, d: int, max_mode: int, primes: list[int]) -> bool:
    """Whether ``m`` (``max_mode``-smooth) splits into ``d`` factors <= ``max_mode``.

    Best-fit-decreasing packing of its primes into d bins answers most sizes at once; only when it
    fails is the exact divisor search of :func:`_fits` run.
    """
    if m <= max_mode:
        return True
    counts: dict[int, int] = {}
    rest = m
    for p in primes:
        if p * p > rest:
            break
        while rest % p == 0:
            counts[p] = counts.get(p, 0) + 1
            rest //= p
    if rest > 1:
        counts[rest] = counts.get(rest, 0) + 1
    bins = [1] * d
    for p in sorted((p for p in counts for _ in range(counts[p])), reverse=True):
        fit = [k for k, b in enumerate(bins) if b * p <= max_mode]
        if not fit:
            break
        k = max(fit, key=lambda k: bins[k])
        bins[k] *= p
    else:
        return True
    divs = [1]
    for p, e in counts.items():
        divs = [x * p**k for x in divs for k in range(e + 1)]
    return _fits(m, d, max_mode, sorted(divs))


def _nearest_by_products(n: int, d: int, max_mode: int, dist: int) -> int | None:
    """The nearest product of ``d`` factors <= ``max_mode`` within ``dist`` of ``n``, by branch and bound.

    Factors are chosen largest first (non-increasing); a branch is dropped when the products it can
    still reach, between p * f and p * f^k, miss [n - dist, n + dist]. Fast when such products are
    sparse (sizes near ``max_mode ** d``), slow when they are dense: :func:`nearest_factorizable`
    uses it only after the sieve found nothing nearby.
    """
    best: list = [(dist + 1, 0), None]  # key (distance, -size): ties go to the larger size

    def low(p: int, k: int) -> int:  # smallest f with p * f^k >= n - distance
        return _ceil_root(max(1, -(-(n - best[0][0]) // p)), k)

    def search(p: int, k: int, cap: int) -> None:
        if k == 1:
            for f in (n // p, n // p + 1):
                if 1 <= f <= cap and (abs(p * f - n), -p * f) < best[0]:
                    best[0], best[1] = (abs(p * f - n), -p * f), p * f
            return
        f = min(cap, (n + best[0][0]) // p)
        while f >= low(p, k):
            search(p * f, k - 1, f)
            f -= 1

    search(1, d, max_mode)
    return best[1]


def nearest_factorizable(n: int, d: int, *, max_mode: int = MAX_MODE) -> int:
    """The size closest to ``n`` (ties: the larger) that splits into ``d`` modes of at most ``max_mode``.

    Sizes above ``max_mode ** d`` never split, so from there on the answer is ``max_mode ** d``.
    Below it, two searches cover the two regimes: where such sizes are dense, windows around ``n``
    (doubling in width) are sieved by the primes up to ``max_mode`` and only the ``max_mode``-smooth
    sizes are tried, nearest first; where they are sparse (near ``max_mode ** d``) a branch and
    bound over products of d factors finds the nearest. Well under a second for n <= 10^12 and
    d <= :data:`MAX_ORDER`.
    """
    n = _check_size(n)
    d = _check_order(d)
    max_mode = check_positive_int(max_mode, "max_mode")
    limit = min(max_mode**d, MAX_FACTOR_SIZE)
    n = min(n, limit)  # max_mode ** d splits, and nothing above it does
    if factorize(n, d, max_mode=None)[0] <= max_mode:
        return n
    primes = _small_primes()
    primes = primes[primes <= max_mode].tolist()
    done, width, tried = 0, 256, 0
    # The sieve costs little per size; each smooth size costs a split check. Where smooth sizes are
    # common but few split (small d near max_mode ** d), the product search is the fast one.
    while tried < 400 and width <= 1 << 21:
        lo, hi = max(1, n - width), min(limit, n + width)
        rest = np.arange(lo, hi + 1, dtype=np.int64)
        for p in primes:  # divide out every power of every prime <= max_mode, one progression at a time
            q = p
            while q <= hi:
                rest[(-lo) % q :: q] //= p
                q *= p
        # What remains is 1, a prime above max_mode, or a product of them: at most max_mode means smooth.
        smooth = (np.flatnonzero(rest <= max_mode) + lo).tolist()
        for m in sorted((m for m in smooth if done < abs(m - n) <= width), key=lambda m: (abs(m - n), -m)):
            if _packs(m, d, max_mode, primes):
                return m
            tried += 1
        if lo == 1 and hi == limit:
            return 1  # pragma: no cover - 1 always splits
        done, width = width, 2 * width
    found = _nearest_by_products(n, d, max_mode, max(limit - n, n - 1))
    return found if found is not None else 1
