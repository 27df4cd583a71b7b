"""Claims of capped reimbursement programs (报销): how much of a claim may be approved.

Pure: no I/O. Money is integer fen. The cap is a ceiling on the sum a couple is ever approved,
never a floor: approving pays at most what was asked (or what the officer reduced it to), and
a claim is never topped up to reach the cap.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


def _fen(value: object, name: str, *, positive: bool) -> int:
    # bool is an int subclass and a float would silently lose or invent fen: refuse both.
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer number of fen, got {value!r}")
    if positive and value <= 0:
        raise ValueError(f"{name} must be positive, got {value}")
    if value < 0:
        raise ValueError(f"{name} must not be negative, got {value}")
    return value


def remaining(cap_fen: int, used_fen: int) -> int:
    """What is left under the cap; never negative (a cap lowered below the used sum leaves 0)."""
    _fen(cap_fen, "cap_fen", positive=False)
    _fen(used_fen, "used_fen", positive=False)
    return max(0, cap_fen - used_fen)


LimitedBy = Literal["requested", "reduced", "cap"]


@dataclass(frozen=True)
class Approvable:
    """The amount an approval may grant now, and what decided it."""

    amount_fen: int  # 0: nothing left under the cap
    remaining_fen: int  # before this approval
    limited_by: LimitedBy

    @property
    def partial(self) -> bool:
        """Less than the claim asked for (reduced by the officer or by the cap)."""
        return self.limited_by != "requested"


def approvable(
    cap_fen: int, used_fen: int, requested_fen: int, reduced_fen: int | None = None
) -> Approvable:
    """min(requested, reduced, remaining): the cap and an officer's reduction only ever lower
    the amount. Raises TypeError for a non-integer and ValueError for a non-positive request
    or reduction."""
    requested = _fen(requested_fen, "requested_fen", positive=True)
    left = remaining(cap_fen, used_fen)
    amount = requested
    limited_by: LimitedBy = "requested"
    if reduced_fen is not None:
        reduced = _fen(reduced_fen, "reduced_fen", positive=True)
        if reduced < amount:
            amount, limited_by = reduced, "reduced"
    if left < amount:
        amount, limited_by = left, "cap"
    return Approvable(amount_fen=amount, remaining_fen=left, limited_by=limited_by)
