"""Every eligibility rule, its month edges, and the explanation an officer reads out."""

from __future__ import annotations

import tomllib
from datetime import date
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.benefits.domain.eligibility import (
    Child,
    Eligibility,
    Facts,
    Person,
    age_in,
    birthday_in,
    evaluate,
    month_of_birthday,
)
from services.benefits.domain.programs import Period, Program, parse_programs

PROGRAMS = parse_programs(
    tomllib.loads((Path(__file__).resolve().parents[1] / "programs.toml").read_text("utf-8"))
)
VILLAGE = "330102001001"


def person(
    born: date,
    sex: str = "female",
    household: str = "rural",
    died_on: date | None = None,
) -> Person:
    return Person(sex, born, household, VILLAGE, died_on)  # type: ignore[arg-type]


def check(code: str, facts: Facts, as_of: Period) -> Eligibility:
    e = evaluate(PROGRAMS[code], facts, as_of)
    # Every answer is explained, in both languages, sentence for sentence.
    assert e.reasons_zh and len(e.reasons_zh) == len(e.reasons_en)
    return e


# -- birthdays -------------------------------------------------------------------------------


def test_29_february_counts_on_28_february_in_a_non_leap_year() -> None:
    assert birthday_in(date(1964, 2, 29), 2024) == date(2024, 2, 29)
    assert birthday_in(date(1964, 2, 29), 2025) == date(2025, 2, 28)
    assert month_of_birthday(date(1965, 2, 28), 60) == Period(2025, 2)
    assert age_in(date(1966, 1, 31), Period(2026, 1)) == 60
    assert age_in(date(1966, 2, 1), Period(2026, 1)) == 59


# -- rural reward-and-assistance ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("born", "turns_60", "first"),
    [
        (date(1966, 1, 1), Period(2026, 1), Period(2026, 2)),  # born on the 1st
        (date(1966, 1, 31), Period(2026, 1), Period(2026, 2)),  # born on the 31st
        (date(1965, 12, 31), Period(2025, 12), Period(2026, 1)),  # across the year
        (date(1964, 2, 29), Period(2024, 2), Period(2024, 3)),  # leap day, leap 60th year
        (date(1968, 2, 29), Period(2028, 2), Period(2028, 3)),
        (date(1963, 2, 28), Period(2023, 2), Period(2023, 3)),
    ],
)
def test_rural_reward_starts_the_month_after_the_60th_birthday(
    born: date, turns_60: Period, first: Period
) -> None:
    facts = Facts(person(born))
    at_birthday = check("rural_reward_assistance", facts, turns_60)
    assert not at_birthday.eligible
    assert at_birthday.from_period == first
    after = check("rural_reward_assistance", facts, first)
    assert after.eligible and after.from_period == first and after.until_period is None
    assert f"{turns_60}" in after.reasons_zh[0] and "60" in after.reasons_en[0]


def test_rural_reward_29_february_birth_in_a_non_leap_60th_year() -> None:
    """Born 29 Feb 1964 -> if the 60th year were not leap it would count on 28 Feb: still Feb."""
    assert month_of_birthday(date(1964, 2, 29), 61) == Period(2025, 2)
    e = check("rural_reward_assistance", Facts(person(date(1964, 2, 29))), Period(2024, 3))
    assert e.eligible and e.from_period == Period(2024, 3)


def test_rural_reward_is_for_rural_households_only() -> None:
    e = check(
        "rural_reward_assistance",
        Facts(person(date(1950, 5, 5), household="urban")),
        Period(2026, 1),
    )
    assert not e.eligible and e.from_period is None
    assert "农业户口" in e.reasons_zh[0] and "rural" in e.reasons_en[0]


def test_death_mid_month_is_paid_for_that_month_not_after() -> None:
    facts = Facts(person(date(1950, 5, 5), sex="male", died_on=date(2027, 5, 15)))
    assert check("rural_reward_assistance", facts, Period(2027, 5)).eligible
    after = check("rural_reward_assistance", facts, Period(2027, 6))
    assert not after.eligible
    assert after.until_period == Period(2027, 5)
    assert any("去世" in r for r in after.reasons_zh)


def test_death_before_60_opens_no_window() -> None:
    facts = Facts(person(date(1970, 5, 5), died_on=date(2029, 3, 1)))
    e = check("rural_reward_assistance", facts, Period(2030, 6))
    assert (e.eligible, e.from_period, e.until_period) == (False, None, None)


def test_rural_reward_never_starts_before_the_program_pays() -> None:
    """Turned 60 in 1990: the window opens with the first amount rule, 2012-01."""
    e = check("rural_reward_assistance", Facts(person(date(1930, 3, 3))), Period(2012, 1))
    assert e.eligible and e.from_period == Period(2012, 1)


@given(born=st.dates(min_value=date(1900, 1, 1), max_value=date(2100, 12, 31)))
def test_rural_reward_first_period_is_exactly_one_month_after_the_birthday_month(
    born: date,
) -> None:
    e = evaluate(PROGRAMS["rural_reward_assistance"], Facts(person(born)), Period(2200, 1))
    birthday = month_of_birthday(born, 60)
    first = e.from_period
    assert first is not None
    if birthday >= Period(2012, 1):  # after the program's first amount period
        assert first > birthday
        assert birthday.months_until(first) == 1
    else:
        assert first == Period(2012, 1)


# -- only-child parents' reward ------------------------------------------------------------------


def test_only_child_reward_until_the_month_before_the_18th_birthday() -> None:
    """A child born 29 Feb 2008 turns 18 on 28 Feb 2026: the last month paid is 2026-01."""
    facts = Facts(person(date(1980, 1, 1)), (Child(date(2008, 2, 29)),), True)
    last = check("only_child_parent_reward", facts, Period(2026, 1))
    assert last.eligible
    assert (last.from_period, last.until_period) == (Period(2008, 2), Period(2026, 1))
    assert not check("only_child_parent_reward", facts, Period(2026, 2)).eligible


def test_only_child_reward_needs_the_certificate_and_one_child() -> None:
    child = Child(date(2015, 6, 1))
    no_cert = check(
        "only_child_parent_reward", Facts(person(date(1985, 1, 1)), (child,)), Period(2026, 1)
    )
    assert not no_cert.eligible and "光荣证" in no_cert.reasons_zh[0]
    two = Facts(person(date(1985, 1, 1)), (child, Child(date(2018, 1, 1))), True)
    assert not check("only_child_parent_reward", two, Period(2026, 1)).eligible


def test_only_child_reward_ends_with_the_childs_death() -> None:
    child = Child(date(2015, 6, 1), alive=False, died_on=date(2024, 8, 20))
    facts = Facts(person(date(1985, 1, 1)), (child,), True)
    e = check("only_child_parent_reward", facts, Period(2024, 9))
    assert not e.eligible and e.until_period == Period(2024, 8)


# -- special assistance -------------------------------------------------------------------------


def test_special_assistance_child_died_from_the_month_after_49() -> None:
    mother = person(date(1975, 3, 10), household="urban")
    facts = Facts(mother, (Child(date(2000, 1, 1), alive=False, died_on=date(2020, 2, 2)),))
    before = check("special_assistance", facts, Period(2024, 3))
    assert not before.eligible and before.from_period == Period(2024, 4)
    e = check("special_assistance", facts, Period(2024, 4))
    assert e.eligible and e.case == "child_died"
    assert "49" in e.rule


def test_special_assistance_disabled_child_and_the_fathers_age() -> None:
    father = person(date(1970, 7, 31), sex="male")
    facts = Facts(father, (Child(date(1998, 1, 1), disabled=True),))
    e = check("special_assistance", facts, Period(2026, 1))
    # He turned 49 in 2019-07, before the 2022-07 national standard: it opens with the program.
    assert e.eligible and e.case == "child_disabled" and e.from_period == Period(2022, 7)
    assert any("父亲" in r for r in e.reasons_zh)


def test_special_assistance_starts_after_a_later_death_of_the_child() -> None:
    mother = person(date(1960, 1, 1))
    facts = Facts(mother, (Child(date(1990, 1, 1), alive=False, died_on=date(2023, 5, 31)),))
    assert check("special_assistance", facts, Period(2026, 1)).from_period == Period(2023, 6)


def test_special_assistance_not_for_a_healthy_child_or_two_children() -> None:
    mother = person(date(1960, 1, 1))
    assert not check(
        "special_assistance", Facts(mother, (Child(date(1990, 1, 1)),)), Period(2026, 1)
    ).eligible
    two = (Child(date(1990, 1, 1), alive=False), Child(date(1992, 1, 1)))
    assert not check("special_assistance", Facts(mother, two), Period(2026, 1)).eligible


# -- childcare subsidy ----------------------------------------------------------------------------


def test_a_child_born_before_2025_counts_only_its_months_under_3_from_2025() -> None:
    """Born 15 Mar 2022: turns 3 in 2025-03, so 2025-01 and 2025-02 count."""
    facts = Facts(person(date(1995, 1, 1), household="urban"), (Child(date(2022, 3, 15)),))
    e = check("childcare_subsidy", facts, Period(2025, 2))
    assert e.eligible and (e.from_period, e.until_period) == (Period(2025, 1), Period(2025, 2))
    assert not check("childcare_subsidy", facts, Period(2025, 3)).eligible
    assert "2 个月" in e.reasons_zh[0] and "2 months" in e.reasons_en[0]


@pytest.mark.parametrize(
    ("born", "last"),
    [
        (date(2025, 6, 1), Period(2028, 5)),  # born on the 1st
        (date(2025, 1, 31), Period(2027, 12)),  # born on the 31st
        (date(2024, 2, 29), Period(2027, 1)),  # 3rd birthday counts on 28 Feb 2027
    ],
)
def test_childcare_until_the_month_before_the_3rd_birthday(born: date, last: Period) -> None:
    facts = Facts(person(date(1995, 1, 1)), (Child(born),))
    assert check("childcare_subsidy", facts, last).eligible
    turned_3 = check("childcare_subsidy", facts, last.next())
    assert not turned_3.eligible and turned_3.until_period == last


def test_childcare_is_per_child() -> None:
    children = (Child(date(2021, 12, 1)), Child(date(2024, 7, 7)), Child(date(2026, 3, 3)))
    e = check("childcare_subsidy", Facts(person(date(1990, 1, 1)), children), Period(2026, 1))
    assert e.eligible and (e.from_period, e.until_period) == (Period(2025, 1), Period(2029, 2))
    assert "不计" in e.reasons_zh[0]  # the first turned 3 in 2024-12, before the program
    assert not check("childcare_subsidy", Facts(person(date(1990, 1, 1))), Period(2026, 1)).eligible


# -- capped reimbursement -------------------------------------------------------------------------


def test_assisted_reproduction_for_bereaved_families_with_the_cap() -> None:
    mother = person(date(1985, 1, 1))
    dead = Child(date(2010, 1, 1), alive=False, died_on=date(2024, 3, 3))
    e = check("assisted_reproduction_reimbursement", Facts(mother, (dead,)), Period(2026, 1))
    assert e.eligible and e.from_period == Period(2024, 3)
    assert "50000" in e.reasons_zh[0]
    alive = Facts(mother, (Child(date(2010, 1, 1)),))
    assert not check("assisted_reproduction_reimbursement", alive, Period(2026, 1)).eligible


def test_an_unknown_rule_is_explained_not_crashed() -> None:
    p = Program("x", "X")
    e = evaluate(p, Facts(person(date(1950, 1, 1))), Period(2026, 1))
    assert not e.eligible and e.reasons_en
