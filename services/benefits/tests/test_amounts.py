"""Effective-dated amounts per region, yearly amounts split exactly, periods, the file's data."""

from __future__ import annotations

import tomllib
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.benefits.domain.programs import (
    SHANGHAI,
    Period,
    Program,
    monthly_amount,
    parse_programs,
    rule_in_force,
)

PROGRAMS_FILE = Path(__file__).resolve().parents[1] / "programs.toml"
DISTRICT_VILLAGE = "330102001001"  # the seed documents' district, 上城区
ELSEWHERE = "110105001001"


def real() -> dict[str, Program]:
    return parse_programs(tomllib.loads(PROGRAMS_FILE.read_text("utf-8")))


def program(*amounts: dict[str, Any], cap_fen: int | None = None) -> Program:
    raw: dict[str, Any] = {"code": "p", "name": "P", "amounts": list(amounts)}
    if cap_fen is not None:
        raw["cap_fen"] = cap_fen
    return parse_programs({"programs": [raw]})["p"]


def amount(start: str, fen: int, region: str = "", **extra: Any) -> dict[str, Any]:
    return {"from": start, "region": region, "amount_fen": fen, "source": "test", **extra}


# -- periods ---------------------------------------------------------------------------------


def test_period_orders_and_steps_across_the_year() -> None:
    assert Period(2025, 12) < Period(2026, 1) < Period(2026, 2)
    assert Period(2025, 12).next() == Period(2026, 1)
    assert Period(2026, 1).previous() == Period(2025, 12)
    assert Period(2025, 1).months_until(Period(2027, 3)) == 26
    assert str(Period(2026, 2)) == "2026-02" == str(Period.parse("2026-02"))


def test_period_of_an_instant_is_the_beijing_month() -> None:
    """2025-01-31T20:00Z is 2025-02-01 04:00 in Beijing: it belongs to February."""
    assert Period.of(datetime(2025, 1, 31, 20, 0, tzinfo=UTC)) == Period(2025, 2)
    assert Period.of(datetime(2025, 1, 31, 15, 59, tzinfo=UTC)) == Period(2025, 1)
    assert Period.of(datetime(2025, 3, 1, 0, 0, tzinfo=SHANGHAI)) == Period(2025, 3)
    assert Period.of(date(2024, 2, 29)) == Period(2024, 2)
    with pytest.raises(ValueError):
        Period.of(datetime(2025, 1, 31, 20, 0))


@pytest.mark.parametrize("text", ["2025-13", "2025-00", "2025-1", "25-01", "2025/01", ""])
def test_malformed_periods_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        Period.parse(text)


# -- amounts in force --------------------------------------------------------------------------


def test_a_raise_applies_from_its_month_and_never_before() -> None:
    """80 yuan from 2012-01, raised to 100 from 2026-01: 2025-12 stays 80, 2026-01 is 100."""
    p = program(amount("2012-01", 8000), amount("2026-01", 10000))
    assert monthly_amount(p, ELSEWHERE, Period(2025, 12)) == 8000
    assert monthly_amount(p, ELSEWHERE, Period(2026, 1)) == 10000
    assert monthly_amount(p, ELSEWHERE, Period(2026, 2)) == 10000
    assert monthly_amount(p, ELSEWHERE, Period(2011, 12)) == 0  # before any rule: nothing


def test_until_closes_a_rule() -> None:
    p = program(amount("2020-01", 5000, until="2020-06"))
    assert monthly_amount(p, ELSEWHERE, Period(2020, 6)) == 5000
    assert monthly_amount(p, ELSEWHERE, Period(2020, 7)) == 0


def test_the_county_override_wins_over_the_national_amount() -> None:
    """The district 330102 pays 120 from 2014-01; the national default stays 80."""
    rural = real()["rural_reward_assistance"]
    assert monthly_amount(rural, DISTRICT_VILLAGE, Period(2013, 12)) == 8000
    assert monthly_amount(rural, DISTRICT_VILLAGE, Period(2014, 1)) == 12000
    assert monthly_amount(rural, DISTRICT_VILLAGE, Period(2026, 1)) == 12000
    assert monthly_amount(rural, ELSEWHERE, Period(2026, 1)) == 8000
    assert monthly_amount(rural, "330103001001", Period(2026, 1)) == 8000  # neighbour district
    rule = rule_in_force(rural, DISTRICT_VILLAGE, Period(2026, 1))
    assert rule is not None and rule.region == "330102" and "2014" in rule.source


def test_the_most_specific_region_wins_even_after_a_national_raise() -> None:
    """A county row keeps applying until the county adds a newer row of its own."""
    p = program(
        amount("2012-01", 8000),
        amount("2014-01", 12000, region="3301"),
        amount("2020-01", 15000, region="330102"),
        amount("2026-01", 13000),  # national raise: not for the counties that override
    )
    assert monthly_amount(p, "330102001001", Period(2026, 1)) == 15000
    assert monthly_amount(p, "330105001001", Period(2026, 1)) == 12000
    assert monthly_amount(p, "330102001001", Period(2019, 12)) == 12000
    assert monthly_amount(p, ELSEWHERE, Period(2026, 1)) == 13000


def test_yearly_amount_is_monthly_and_sums_exactly() -> None:
    """3,600 yuan a year is 300 yuan a month; twelve months sum to the year."""
    childcare = real()["childcare_subsidy"]
    months = [monthly_amount(childcare, ELSEWHERE, Period(2025, m)) for m in range(1, 13)]
    assert months == [30000] * 12
    assert sum(months) == 360000
    assert monthly_amount(childcare, ELSEWHERE, Period(2024, 12)) == 0  # starts 2025-01


def test_an_indivisible_yearly_amount_puts_the_remainder_in_december() -> None:
    p = program(amount("2025-01", 100_001, per="year"))
    months = [monthly_amount(p, ELSEWHERE, Period(2025, m)) for m in range(1, 13)]
    assert months[:11] == [8333] * 11
    assert months[11] == 8333 + 5
    assert sum(months) == 100_001


@given(yearly=st.integers(min_value=0, max_value=10**9), year=st.integers(2000, 2100))
def test_twelve_months_always_sum_to_the_yearly_amount(yearly: int, year: int) -> None:
    p = program(amount("2000-01", yearly, per="year"))
    months = [monthly_amount(p, ELSEWHERE, Period(year, m)) for m in range(1, 13)]
    assert sum(months) == yearly
    assert all(isinstance(m, int) and m >= 0 for m in months)
    assert max(months) - min(months) <= 11  # the remainder is always less than 12 fen


def test_special_assistance_amount_depends_on_the_case() -> None:
    special = real()["special_assistance"]
    assert monthly_amount(special, ELSEWHERE, Period(2022, 7), "child_died") == 59000
    assert monthly_amount(special, ELSEWHERE, Period(2022, 7), "child_disabled") == 46000
    assert monthly_amount(special, ELSEWHERE, Period(2022, 6), "child_died") == 0
    assert monthly_amount(special, ELSEWHERE, Period(2022, 7)) == 0  # a case must be named


# -- the shipped file ---------------------------------------------------------------------------


def test_the_shipped_programs_and_their_sources() -> None:
    programs = real()
    assert list(programs) == [
        "only_child_parent_reward",
        "rural_reward_assistance",
        "special_assistance",
        "childcare_subsidy",
        "assisted_reproduction_reimbursement",
    ]
    assert programs["only_child_parent_reward"].founded_by_certificate == "only_child_honor"
    assert monthly_amount(programs["only_child_parent_reward"], ELSEWHERE, Period(2026, 1)) == 1000
    for p in programs.values():
        assert p.source
        for a in p.amounts:
            assert a.source and isinstance(a.amount_fen, int)
    special = programs["special_assistance"].eligibility
    assert (special.mother_age, special.father_age) == (49, 49)
    assert programs["rural_reward_assistance"].eligibility.age == 60


def test_the_cap_is_parsed_in_fen() -> None:
    reimbursement = real()["assisted_reproduction_reimbursement"]
    assert reimbursement.cap_fen == 5_000_000  # 50,000 yuan per couple
    assert reimbursement.cap_source
    assert reimbursement.amounts == ()
    assert monthly_amount(reimbursement, ELSEWHERE, Period(2026, 1)) == 0
    assert program(cap_fen=0).cap_fen == 0


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (amount("2025-01", 80.0), "integer number of fen"),
        (amount("2025-01", True), "integer number of fen"),
        (amount("2025-01", -1), "integer number of fen"),
        (amount("2025-01", 8000, per="week"), "per must be"),
        ({"from": "2025-01", "amount_fen": 8000}, "source"),
        (amount("2025-01", 8000, until="2024-12"), "before from"),
        (amount("2025-1", 8000), "YYYY-MM"),
    ],
)
def test_malformed_amounts_are_refused(entry: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        program(entry)


def test_a_float_cap_is_refused() -> None:
    with pytest.raises(ValueError, match="cap_fen"):
        program(cap_fen=50000.0)  # type: ignore[arg-type]
