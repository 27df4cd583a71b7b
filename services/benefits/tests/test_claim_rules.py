"""The pure rule of capped claims: min(requested, reduced, remaining), a ceiling never a floor."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.benefits.domain.claims import approvable, remaining
from shared import money

CAP = 5_000_000  # 50,000 yuan, the shipped assisted-reproduction cap

caps = st.integers(min_value=0, max_value=10**9)
amounts = st.integers(min_value=1, max_value=10**8)


def approve_all(cap: int, claims: list[tuple[int, int | None]]) -> tuple[list[int], int]:
    """Approve claims one after another against one counter, as the database does."""
    used, granted = 0, []
    for requested, reduced in claims:
        x = approvable(cap, used, requested, reduced).amount_fen
        granted.append(x)
        used += x
    return granted, used


@given(caps, st.lists(amounts, max_size=30))
def test_without_reductions_the_sum_is_min_of_cap_and_asked(cap: int, requested: list[int]) -> None:
    """Approvals sum to min(cap, total asked): never over the cap, never less than possible."""
    granted, used = approve_all(cap, [(r, None) for r in requested])
    assert used == sum(granted) == min(cap, sum(requested))
    assert all(0 <= g <= r for g, r in zip(granted, requested, strict=True))


@given(caps, st.lists(st.tuples(amounts, st.none() | amounts), max_size=30))
def test_with_reductions_the_cap_and_every_claim_bound_the_amount(
    cap: int, claims: list[tuple[int, int | None]]
) -> None:
    """An officer's reduction only lowers: nothing above what was asked or reduced to."""
    granted, used = approve_all(cap, claims)
    assert used <= cap
    for g, (requested, reduced) in zip(granted, claims, strict=True):
        assert 0 <= g <= requested
        if reduced is not None:
            assert g <= reduced


@given(st.lists(amounts, min_size=1, max_size=20))
def test_a_cap_reached_exactly_leaves_nothing(requested: list[int]) -> None:
    """Claims summing to exactly the cap are all approved in full, and 0 remains."""
    cap = sum(requested)
    granted, used = approve_all(cap, [(r, None) for r in requested])
    assert granted == requested
    assert remaining(cap, used) == 0
    nothing = approvable(cap, used, 1)
    assert (nothing.amount_fen, nothing.remaining_fen, nothing.limited_by) == (0, 0, "cap")


@given(caps, st.integers(min_value=0, max_value=10**9), amounts, st.none() | amounts)
def test_one_approval(cap: int, used: int, requested: int, reduced: int | None) -> None:
    """The amount is exactly the least of the three bounds, and says which one decided."""
    a = approvable(cap, used, requested, reduced)
    left = max(0, cap - used)
    bounds = [requested, left] + ([reduced] if reduced is not None else [])
    assert a.amount_fen == min(bounds)
    assert a.remaining_fen == left == remaining(cap, used)
    assert a.partial == (a.amount_fen < requested)
    assert a.limited_by == (
        "requested"
        if a.amount_fen == requested
        else ("reduced" if reduced is not None and a.amount_fen == reduced else "cap")
    )


def test_examples_of_the_shipped_cap() -> None:
    """30,000 + 20,000 yuan fill the cap; an 8,000 yuan claim after 45,000 gets 5,000."""
    assert approvable(CAP, 0, 3_000_000).amount_fen == 3_000_000
    assert approvable(CAP, 3_000_000, 2_000_000).amount_fen == 2_000_000
    assert approvable(CAP, CAP, 800_000).amount_fen == 0
    late = approvable(CAP, 4_500_000, 800_000)
    assert (late.amount_fen, late.limited_by, late.partial) == (500_000, "cap", True)
    cut = approvable(CAP, 0, 800_000, 600_000)
    assert (cut.amount_fen, cut.limited_by) == (600_000, "reduced")
    assert approvable(CAP, 0, 800_000, 900_000).amount_fen == 800_000  # never above the ask


def test_a_cap_lowered_below_the_used_sum_leaves_zero_not_negative() -> None:
    assert remaining(1_000, 5_000) == 0
    assert approvable(1_000, 5_000, 100).amount_fen == 0


@pytest.mark.parametrize("bad", [0, -1, -5_000_000])
def test_non_positive_amounts_are_refused(bad: int) -> None:
    with pytest.raises(ValueError):
        approvable(CAP, 0, bad)
    with pytest.raises(ValueError):
        approvable(CAP, 0, 100, bad)


@pytest.mark.parametrize("bad", [1.0, 100.5, True, "100", None])
def test_only_integer_fen(bad: object) -> None:
    with pytest.raises(TypeError):
        approvable(CAP, 0, bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        approvable(CAP, 0, 100, bad if bad is not None else 1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        approvable(bad if bad is not None else 2.5, 0, 100)  # type: ignore[arg-type]


def test_negative_counters_are_refused() -> None:
    with pytest.raises(ValueError):
        remaining(-1, 0)
    with pytest.raises(ValueError):
        remaining(CAP, -1)


def test_yuan_reads_without_a_float() -> None:
    def yuan(fen: int) -> str:
        return money.yuan(fen, grouped=True)

    assert yuan(5_000_000) == "50,000.00"
    assert yuan(123_456_789) == "1,234,567.89"
    assert yuan(5) == "0.05"
    assert yuan(-150) == "-1.50"
