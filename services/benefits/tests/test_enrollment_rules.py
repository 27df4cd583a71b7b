"""Enrollment rules (no I/O): endings and the last period paid in Beijing months, the months
an enrollment pays, overpaid months, transitions and maker-checker."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.benefits.domain.eligibility import Eligibility
from services.benefits.domain.enrollments import (
    END_REASONS,
    OVERPAID_ZH,
    TRANSITIONS,
    InvalidTransition,
    aged_out,
    capped_until,
    ending,
    next_status,
    overpaid_months,
    pays_window,
    reached_age,
    rejection,
)
from services.benefits.domain.programs import Period


def test_death_on_the_31st_is_paid_for_that_month_and_not_after() -> None:
    assert ending("death", date(2026, 1, 31)) == ("death", Period(2026, 1))


def test_death_on_the_1st_is_still_paid_for_that_month() -> None:
    assert ending("death", date(2026, 3, 1)) == ("death", Period(2026, 3))


def test_revocation_on_the_last_day_of_a_month_ends_after_that_month() -> None:
    end = ending("certificate_revoked", date(2026, 2, 28))
    assert (end.reason, str(end.ends_after)) == ("certificate_revoked", "2026-02")


def test_revocation_at_the_turn_of_the_year() -> None:
    assert str(ending("certificate_revoked", date(2025, 12, 31)).ends_after) == "2025-12"


def test_an_instant_counts_in_beijing_time() -> None:
    # 2026-01-31T20:00Z is already 1 February in Beijing.
    instant = datetime(2026, 1, 31, 20, 0, tzinfo=UTC)
    assert ending("death", instant).ends_after == Period(2026, 2)


def test_an_unknown_reason_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown ending reason"):
        ending("moved_away", date(2026, 1, 1))


# -- the new ending reasons ---------------------------------------------------------------------


def test_the_ending_reasons() -> None:
    assert END_REASONS == {"certificate_revoked", "death", "child_died", "age_out", "rejected"}
    assert set(OVERPAID_ZH) == END_REASONS  # every ending can explain a recovery


def test_a_childs_death_ends_the_reward_with_that_month() -> None:
    assert ending("child_died", date(2026, 10, 15)) == ("child_died", Period(2026, 10))


def test_an_age_out_ends_with_the_last_month_of_the_window() -> None:
    assert ending("age_out", Period(2026, 11)) == ("age_out", Period(2026, 11))


def test_a_rejection_owes_nothing() -> None:
    end = rejection(Period(2026, 1))
    assert end == ("rejected", Period(2025, 12))
    assert capped_until(Period(2030, 5), end.ends_after) < Period(2026, 1)
    assert capped_until(None, end.ends_after) == Period(2025, 12)


# -- every ending caps the window ---------------------------------------------------------------

periods = st.builds(Period, st.integers(2000, 2060), st.integers(1, 12))


def test_capped_until_keeps_the_earlier_month() -> None:
    assert capped_until(Period(2030, 5), Period(2026, 1)) == Period(2026, 1)
    assert capped_until(Period(2025, 5), Period(2026, 1)) == Period(2025, 5)
    assert capped_until(None, Period(2026, 1)) == Period(2026, 1)


@given(st.one_of(st.none(), periods), periods)
def test_capped_until_never_pays_after_the_ending(until: Period | None, ends_after: Period) -> None:
    capped = capped_until(until, ends_after)
    assert capped <= ends_after
    assert until is None or capped <= until
    assert capped in (until, ends_after)


# -- overpaid months (a death recorded after its month was paid) ------------------------------


def test_nothing_overpaid_when_settled_through_the_ending_or_before() -> None:
    assert overpaid_months(Period(2026, 8), None, Period(2026, 1)) is None
    assert overpaid_months(Period(2026, 8), Period(2026, 8), Period(2026, 1)) is None
    assert overpaid_months(Period(2026, 8), Period(2026, 3), Period(2026, 1)) is None


def test_overpaid_months_run_from_the_month_after_the_ending() -> None:
    assert overpaid_months(Period(2026, 8), Period(2026, 11), Period(2026, 1)) == (
        Period(2026, 9),
        Period(2026, 11),
    )


def test_overpaid_months_start_no_earlier_than_the_first_month_paid() -> None:
    # A death before the enrollment's first month: only what was sent is recovered.
    assert overpaid_months(Period(2026, 8), Period(2026, 11), Period(2026, 11)) == (
        Period(2026, 11),
        Period(2026, 11),
    )
    assert overpaid_months(Period(2026, 8), Period(2026, 10), Period(2026, 11)) is None


@given(periods, st.one_of(st.none(), periods), periods)
def test_overpaid_months_are_exactly_the_settled_months_after_the_ending(
    ends_after: Period, settled: Period | None, pays_from: Period
) -> None:
    paid = set() if settled is None else set(_months(pays_from, settled))
    owed = {p for p in paid if p <= ends_after}
    got = overpaid_months(ends_after, settled, pays_from)
    expected = paid - owed
    if got is None:
        assert expected == set()
    else:
        assert set(_months(*got)) == expected


def _months(first: Period, last: Period) -> list[Period]:
    return [first.plus(i) for i in range(max(first.months_until(last) + 1, 0))]


# -- the months an enrollment pays ------------------------------------------------------------


def _eligibility(start: Period | None, until: Period | None) -> Eligibility:
    return Eligibility(True, start, until, "rule", ["因为"], ["because"])


def test_the_window_starts_no_earlier_than_the_founding_month() -> None:
    e = _eligibility(Period(2012, 6), Period(2030, 5))
    assert pays_window(e, Period(2026, 11)) == (Period(2026, 11), Period(2030, 5))
    assert pays_window(e, Period(2010, 1)) == (Period(2012, 6), Period(2030, 5))
    assert pays_window(e) == (Period(2012, 6), Period(2030, 5))


def test_no_window_no_enrollment() -> None:
    assert pays_window(_eligibility(None, None)) is None
    # The child turned 18 before the certificate was issued: nothing is owed.
    assert pays_window(_eligibility(Period(2005, 6), Period(2023, 5)), Period(2026, 11)) is None


def test_an_open_ended_window_and_a_future_start() -> None:
    assert pays_window(_eligibility(Period(2030, 7), None), Period(2026, 11)) == (
        Period(2030, 7),
        None,
    )


@given(periods, st.one_of(st.none(), periods), st.one_of(st.none(), periods))
def test_a_pays_window_is_never_empty_nor_earlier_than_asked(
    start: Period, until: Period | None, not_before: Period | None
) -> None:
    window = pays_window(_eligibility(start, until), not_before)
    if window is None:
        assert until is not None and until < max(start, not_before or start)
        return
    first, last = window
    assert first >= start and (not_before is None or first >= not_before)
    assert last == until and (last is None or first <= last)


def test_aged_out_is_strictly_after_the_window() -> None:
    assert not aged_out(None, Period(2026, 12))
    assert not aged_out(Period(2026, 11), Period(2026, 11))
    assert aged_out(Period(2026, 11), Period(2026, 12))


@pytest.mark.parametrize(
    ("born", "before", "month"),
    [
        (date(1966, 3, 1), Period(2026, 2), Period(2026, 3)),
        (date(1966, 3, 31), Period(2026, 2), Period(2026, 3)),
        (date(1964, 2, 29), Period(2024, 1), Period(2024, 2)),
        (date(1966, 12, 31), Period(2026, 11), Period(2026, 12)),
    ],
    ids=["1st", "31st", "29-feb", "new-year"],
)
def test_reached_age_in_the_birthday_month(born: date, before: Period, month: Period) -> None:
    assert not reached_age(born, 60, before)
    assert reached_age(born, 60, month)
    assert reached_age(born, 60, month.next())


# -- transitions and maker-checker ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "status", "target"),
    [
        ("confirm", "pending_review", "active"),
        ("reject", "pending_review", "ended"),
        ("suspend", "active", "suspended"),
        ("resume", "suspended", "active"),
    ],
)
def test_allowed_transitions(action: str, status: str, target: str) -> None:
    assert next_status(action, status) == target


@pytest.mark.parametrize(
    ("action", "status"),
    [
        ("confirm", "active"),
        ("confirm", "ended"),
        ("confirm", "suspended"),
        ("reject", "active"),
        ("suspend", "pending_review"),
        ("suspend", "ended"),
        ("resume", "active"),
        ("resume", "ended"),
    ],
)
def test_refused_transitions(action: str, status: str) -> None:
    with pytest.raises(InvalidTransition):
        next_status(action, status)


def test_an_ended_enrollment_never_moves_again() -> None:
    for action in TRANSITIONS:
        with pytest.raises(InvalidTransition):
            next_status(action, "ended")
