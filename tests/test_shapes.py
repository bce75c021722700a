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


@pytest.mark.parametrize("n", [10**9, 10**12, 963_761_198_400, 999_999_999_989, 2 * 999_999_937])
@pytest.mark.parametrize("d", range(1, 9))
def test_factorize_large_sizes_by_factoring(n, d):
    # Used to step through candidate sizes one at a time (factorize(10**9, 3) did not answer in 60 s).
    f = factorize(n, d, max_mode=None)
    assert math.prod(f) == n and len(f) == d and list(f) == sorted(f, reverse=True)
    m = nearest_factorizable(n, d)
    assert 1 <= m <= 10**12 and factorize(m, d, max_mode=None)[0] <= 256
    try:
        assert factorize(n, d) == f
    except ValueError as e:
        assert f"nearby size such as {m:,}" in str(e)


def test_nearest_factorizable_regimes():
    assert nearest_factorizable(10**9, 3) == 256**3  # above max_mode^d: the largest that splits
    assert nearest_factorizable(4_294_036_031, 4) == 256**4  # sparse products near the limit
    m = nearest_factorizable(123_456_789, 5)  # dense: found by the sieve next to n
    assert abs(m - 123_456_789) < 100 and factorize(m, 5)[0] <= 256


def test_factor_arguments_are_checked():
    with pytest.raises(ValueError, match=r"d = 9 is above the supported maximum order 8"):
        factorize(64, 9)
    with pytest.raises(ValueError, match=r"n = 1,000,000,000,001 is above 1,000,000,000,000"):
        factorize(10**12 + 1, 2)
    with pytest.raises(ValueError, match="max_mode must be at least 1"):
        nearest_factorizable(100, 2, max_mode=0)
    with pytest.raises(ValueError, match="n must be a positive integer"):
        prime_factors("12")
    assert prime_factors(999_999_999_989) == [999_999_999_989]
