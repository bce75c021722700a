"""Mode factorizations and checks on tensorized shapes.

A matrix of shape (I, J) is tensorized by writing I = I_1 * ... * I_d and J = J_1 * ... * J_d.
The functions here choose and validate those modes.
"""

from __future__ import annotations

import math
import re
from numbers import Integral
from typing import Iterable, Sequence

__all__ = [
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
    "check_positive_int",
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


def parse_ints(text: str, field: str) -> tuple[int, ...]:
    """Parse ``"8x20x20x18"``, ``"8, 20, 20, 18"`` or ``"8 20 20 18"`` into a tuple of positive ints.

    Raises ``ValueError`` naming ``field`` for anything that is not a list of positive integers.
    """
    parts = [p for p in re.split(r"[x×*,;\s]+", str(text).strip()) if p]
    if not parts:
        raise ValueError(f"{field}: enter at least one positive integer, e.g. 8x20x20x18")
    out = []
    for p in parts:
        try:
            v = int(p)
        except ValueError:
            raise ValueError(f"{field}: {p!r} is not a positive integer; write the sizes like 8x20x20x18") from None
        if v < 1:
            raise ValueError(f"{field}: every entry must be at least 1, got {v}")
        out.append(v)
    return tuple(out)


def parse_rank(text: str, field: str) -> int | tuple[int, ...]:
    """One int (all modes) or a list of ints (per mode / per bond), parsed as :func:`parse_ints`."""
    vals = parse_ints(text, field)
    return vals[0] if len(vals) == 1 else vals


def format_ints(values, sep: str = "x") -> str:
    """``(8, 20, 20, 18)`` -> ``"8x20x20x18"`` (the inverse of :func:`parse_ints`)."""
    return sep.join(str(v) for v in values)


def rank_text(rank) -> str:
    """A rank as the user types it: ``4`` or ``4,3,2,2`` (the inverse of :func:`parse_rank`)."""
    return str(rank) if isinstance(rank, Integral) else format_ints(rank, ",")


def prime_factors(n: int) -> list[int]:
    """Prime factors of ``n`` with multiplicity, ascending (``[]`` for 1)."""
    n = check_positive_int(n, "n")
    out, p = [], 2
    while p * p <= n:
        while n % p == 0:
            out.append(p)
            n //= p
        p += 1 if p == 2 else 2
    if n > 1:
        out.append(n)
    return out


def _divisors(n: int) -> list[int]:
    small, large = [], []
    i = 1
    while i * i <= n:
        if n % i == 0:
            small.append(i)
            if i * i != n:
                large.append(n // i)
        i += 1
    return small + large[::-1]


def _balanced_splits(n: int, d: int, lo: int, divisors: list[int]):
    """Yield non-decreasing tuples of d divisors (each >= lo) whose product is n."""
    if d == 1:
        if n >= lo:
            yield (n,)
        return
    for f in divisors:
        if f < lo:
            continue
        if f ** d > n:
            break
        if n % f == 0:
            for rest in _balanced_splits(n // f, d - 1, f, divisors):
                yield (f,) + rest


def factorize(n: int, d: int, *, max_mode: int | None = MAX_MODE) -> tuple[int, ...]:
    """The ``d`` factors of ``n``, as balanced as possible, largest first.

    "Balanced" minimises the largest factor, then the spread (sum of squared logs), so
    ``factorize(57600, 4) == (16, 16, 15, 15)`` and ``factorize(1024, 4) == (8, 8, 4, 4)``.
    Factors of 1 appear only when ``n`` has fewer than ``d`` prime factors.

    Parameters
    ----------
    n : int
        The size to factorize (at least 1).
    d : int
        Number of factors (the tensor order), at least 1.
    max_mode : int or None
        Largest acceptable factor; ``None`` disables the check.

    Raises
    ------
    ValueError
        If the most balanced factorization still has a factor above ``max_mode`` (typically
        ``n`` has a large prime factor); the message suggests a nearby size that factorizes.
    """
    n = check_positive_int(n, "n")
    d = check_positive_int(d, "d")
    divisors = _divisors(n)
    best, best_key = None, None
    for split in _balanced_splits(n, d, 1, divisors):
        key = (split[-1], sum(math.log(f) ** 2 for f in split))
        if best_key is None or key < best_key:
            best, best_key = split, key
    assert best is not None  # (1, .., 1, n) always exists
    result = tuple(sorted(best, reverse=True))
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


def nearest_factorizable(n: int, d: int, *, max_mode: int = MAX_MODE) -> int:
    """The size closest to ``n`` (ties: the larger) that splits into ``d`` modes of at most ``max_mode``."""
    n = check_positive_int(n, "n")
    limit = max_mode ** d
    for delta in range(0, n + 1):
        for m in (n + delta, n - delta):
            if 1 <= m <= limit and factorize(m, d, max_mode=None)[0] <= max_mode:
                return m
    return 1
