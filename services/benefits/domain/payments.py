"""Money and settlement rules of payment runs. Pure: no I/O.

Money is integer fen; yuan appear only as text in the bank file, formatted from fen.
"""

from __future__ import annotations

from services.benefits.domain.programs import Period, Program, monthly_amount


def yuan(fen: int) -> str:
    """Fen as yuan with two decimals, exactly: 12345 -> "123.45", -5 -> "-0.05"."""
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), 100)
    return f"{sign}{whole}.{cents:02d}"


def periods(first: Period, last: Period) -> list[Period]:
    """Every period from ``first`` through ``last`` (empty when last < first)."""
    return [first.plus(i) for i in range(first.months_until(last) + 1)]


def due_fen(program: Program, region_code: str, case: str, first: Period, last: Period) -> int:
    """What is due for the months first..last, each at the amount in force for that month."""
    return sum(monthly_amount(program, region_code, p, case) for p in periods(first, last))


def overpaid_fen(
    program: Program, region_code: str, case: str, ends_after: Period, settled_through: Period
) -> int:
    """What was sent for months after an enrollment's last payable period (a death recorded
    after the month was already paid): the months ends_after+1 .. settled_through, each at the
    amount in force for it, which is what the run paid (paid periods are never re-rated)."""
    if settled_through <= ends_after:
        return 0
    return due_fen(program, region_code, case, ends_after.next(), settled_through)
