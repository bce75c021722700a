import math

import pytest
from hypothesis import given, settings, strategies as st

import btcore
from btcore.shapes import check_modes, factorize, nearest_factorizable, prime_factors


def test_factorize_examples():
    assert factorize(57600, 4) == (16, 16, 15, 15)
    assert factorize(1024, 4) == (8, 8, 4, 4)
    assert factorize(256, 4) == (4, 4, 4, 4)
    assert factorize(12, 1) == (12,)
    assert factorize(7, 2) == (7, 1)  # fewer prime factors than modes: ones appear


def _all_splits(n, d):
    if d == 1:
        return [(n,)]
    return [(f,) + rest for f in range(1, n + 1) if n % f == 0 for rest in _all_splits(n // f, d - 1)]


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 3000), st.integers(1, 4))
def test_factorize_is_a_most_balanced_split(n, d):
    f = factorize(n, d, max_mode=None)
    assert len(f) == d and math.prod(f) == n
    assert list(f) == sorted(f, reverse=True)
    # No split has a smaller largest factor (brute force over all ordered splits).
    assert f[0] == min(max(s) for s in _all_splits(n, d))


def test_factorize_large_prime_is_a_clear_error():
    with pytest.raises(ValueError, match=r"largest prime factor is 1,021.*nearby size such as 1,022 \(73 x 14\)"):
        factorize(1021, 2)
    assert nearest_factorizable(1021, 2) == 1022


def test_factorize_rejects_bad_arguments():
    with pytest.raises(ValueError, match="n must be at least 1"):
        factorize(0, 2)
    with pytest.raises(ValueError, match="d must be a positive integer"):
        factorize(16, 2.5)


def test_prime_factors():
    assert prime_factors(57600) == [2] * 8 + [3] * 2 + [5] * 2
    assert prime_factors(1) == []


def test_check_modes_messages():
    assert check_modes([8, 20, 20, 18], "in_modes", 57600) == (8, 20, 20, 18)
    with pytest.raises(ValueError, match=r"in_modes: the product of the modes 8 x 20 x 20 x 17 = 54,400 does not equal the size 57,600"):
        check_modes([8, 20, 20, 17], "in_modes", 57600)
    with pytest.raises(ValueError, match=r"out_modes\[1\] must be at least 1, got 0"):
        check_modes([4, 0], "out_modes")
    with pytest.raises(ValueError, match=r"in_modes\[0\] must be a positive integer, got 2.5"):
        check_modes([2.5, 2], "in_modes")
    with pytest.raises(ValueError, match="at least one mode"):
        check_modes([], "in_modes")
    with pytest.raises(ValueError, match="sequence of positive integers"):
        check_modes("8x20", "in_modes")


def test_public_names():
    assert btcore.factorize is factorize
