"""Amounts of money as every part of the engine accepts them.

An amount is a `Decimal`, finite, 0 or more, at most `MAX_AMOUNT`, and a
whole number of cents. The store keeps amounts as whole cents in a 64-bit
column, so 0.001 would be paid as 0.00 and 129.165 as 129.16 without anyone
being told, and a claim for 1e20 would overflow the column; adjudication
computes with 28 significant digits, which a policy limit of 1e300 would
overflow. Either failed a whole batch of claims instead of refusing one. A
trillion less a cent is far above any single treatment's bill, even in
currencies whose unit is worth a fraction of a US cent.

FHIR intake, credentials and policies all parse through `parse_amount`, so
what one side accepts the other can store and price.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

__all__ = ["CENT", "MAX_AMOUNT", "AmountError", "parse_amount"]

MAX_AMOUNT = Decimal("999999999999.99")
CENT = Decimal("0.01")


class AmountError(ValueError):
    """Raised when a value is no amount: not a number, not finite, negative,
    too large, or (for money) a fraction of a cent.

    The message says which, in words that follow a field's name: "is negative".
    """


def parse_amount(value: object, *, cents: bool = True) -> Decimal:
    """The amount a JSON number or numeric string stands for.

    A float is read through its shortest text form, so `0.2` is exactly
    `Decimal("0.2")`. Raises `AmountError` for anything else. `cents=False`
    is for a rate such as a policy's coinsurance (0.125), not money.
    """
    if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
        raise AmountError('is not an amount such as "12.50"')
    try:
        amount = Decimal(repr(value) if isinstance(value, float) else str(value))
    except InvalidOperation:
        raise AmountError("is not a number") from None
    if not amount.is_finite():
        raise AmountError("is not a finite number")
    if amount < 0:
        raise AmountError("is negative")
    if amount > MAX_AMOUNT:
        raise AmountError(f"is more than the largest amount accepted, {MAX_AMOUNT}")
    if cents and amount != amount.quantize(CENT):
        raise AmountError("has a fraction of a cent; amounts are kept in cents")
    return amount
