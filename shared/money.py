"""Money is integer fen (DESIGN §4); yuan exist only as text for people and banks."""

from __future__ import annotations


def yuan(fen: int, *, grouped: bool = False) -> str:
    """Fen as yuan with exactly two decimals, never through a float: 12345 -> "123.45",
    -5 -> "-0.05"; ``grouped`` adds thousands separators for reading: "50,000.00"."""
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), 100)
    return f"{sign}{whole:,}.{cents:02d}" if grouped else f"{sign}{whole}.{cents:02d}"
