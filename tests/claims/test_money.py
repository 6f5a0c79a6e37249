"""Amounts as every part of the engine accepts them (claims.money)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from claims.money import MAX_AMOUNT, AmountError, parse_amount
from claims.store import cents


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("12.50", Decimal("12.50")),
        (0, Decimal(0)),
        (0.2, Decimal("0.2")),  # the float's shortest text, not its binary value
        (Decimal("3"), Decimal("3")),
        ("999999999999.99", MAX_AMOUNT),
        ("277.3200000000000000000000000", Decimal("277.32")),  # whole cents
    ],
)
def test_amounts_within_bounds_are_read_exactly(
    value: object, expected: Decimal
) -> None:
    assert parse_amount(value) == expected


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (True, 'is not an amount such as "12.50"'),
        (None, 'is not an amount such as "12.50"'),
        ([1], 'is not an amount such as "12.50"'),
        ("twelve", "is not a number"),
        (float("nan"), "is not a finite number"),
        ("Infinity", "is not a finite number"),
        ("-0.01", "is negative"),
        (1e20, "is more than the largest amount accepted, 999999999999.99"),
        ("1000000000000", "is more than the largest amount accepted, 999999999999.99"),
        ("129.165", "has a fraction of a cent; amounts are kept in cents"),
        (0.001, "has a fraction of a cent; amounts are kept in cents"),
        ("1E-999999", "has a fraction of a cent; amounts are kept in cents"),
    ],
)
def test_other_values_are_refused_saying_why(value: object, problem: str) -> None:
    with pytest.raises(AmountError) as refused:
        parse_amount(value)
    assert str(refused.value) == problem


def test_the_largest_amount_fits_the_stores_64_bit_cents() -> None:
    assert cents(MAX_AMOUNT) < 2**63


def test_a_rate_may_have_any_fraction() -> None:
    assert parse_amount("0.125", cents=False) == Decimal("0.125")
