"""How an enrollment ends (no I/O): the reason and the last period paid, in Beijing months."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from services.benefits.domain.enrollments import ending
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
