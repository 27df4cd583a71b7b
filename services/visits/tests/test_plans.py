"""Plans as data: the shipped file, strict parsing, month arithmetic, windows and states."""

from __future__ import annotations

import copy
import tomllib
from datetime import date, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.visits.domain.plans import (
    TIERS,
    Offset,
    Step,
    TaskState,
    Window,
    add_months,
    age_span,
    occurrences,
    parse_plans,
    state_on,
)

PLANS_FILE = Path(__file__).resolve().parents[1] / "plans.toml"
SHIPPED = tomllib.loads(PLANS_FILE.read_text("utf-8"))

dates = st.dates(min_value=date(1900, 1, 1), max_value=date(2200, 12, 31))
units = st.sampled_from(["d", "m"])
ORDER = [TaskState.scheduled, TaskState.due, TaskState.overdue, TaskState.missed]


@st.composite
def steps(draw: st.DrawFn, repeat: bool = False) -> Step:
    unit = draw(units)
    cap = 400 if unit == "d" else 60
    due = draw(st.integers(0, cap))
    overdue = due + draw(st.integers(0, cap))
    expiry = overdue + draw(st.integers(0 if overdue > due else 1, cap))
    rep = draw(st.integers(max(1, expiry - due), cap + expiry)) if repeat else None
    raw = _raw_step(due=f"{due}{unit}", overdue=f"{overdue}{unit}", expiry=f"{expiry}{unit}")
    if rep is not None:
        raw["repeat"] = f"{rep}{unit}"
    return _only_step(raw)


def _raw_step(**fields: Any) -> dict[str, Any]:
    return {
        "code": "s",
        "name": "步骤",
        "service": "svc",
        "tier": "village",
        "due": "0d",
        "overdue": "7d",
        "expiry": "14d",
        **fields,
    }


def _raw_plan(**fields: Any) -> dict[str, Any]:
    return {
        "code": "p",
        "name": "计划",
        "subject": "mother",
        "source": "规范",
        "trigger": {"event": "lingju.registry.child.born", "anchor": "birth_date"},
        "steps": [_raw_step()],
        **fields,
    }


def _only_step(raw_step: dict[str, Any]) -> Step:
    return parse_plans({"plans": [_raw_plan(steps=[raw_step])]})["p"].steps[0]


# -- the shipped file -----------------------------------------------------------------------


def test_every_shipped_plan_parses_with_sources() -> None:
    plans = parse_plans(SHIPPED)
    assert list(plans) == [
        "postpartum",
        "newborn",
        "iud_followup",
        "procedure_review",
        "newly_married",
        "two_cancer_screening",
    ]
    for plan in plans.values():
        assert plan.source.strip() and plan.name and plan.steps
        assert {s.tier for s in plan.steps} <= set(TIERS)
    assert "第三版" in plans["postpartum"].source and "第三版" in plans["newborn"].source
    assert "本团队解读" in plans["two_cancer_screening"].note  # the interval is our reading
    # Every tier is used by some plan, so each assignment path has real data behind it.
    assert {s.tier for p in plans.values() for s in p.steps} == set(TIERS)


@pytest.mark.parametrize("anchor", [date(2024, 1, 31), date(2024, 2, 29), date(2025, 12, 31)])
def test_shipped_steps_are_ordered_for_any_anchor(anchor: date) -> None:
    for plan in parse_plans(SHIPPED).values():
        windows = [s.window(anchor) for s in plan.steps]
        for w in windows:
            assert w.due_on <= w.overdue_on <= w.expires_on and w.due_on < w.expires_on
        assert [w.due_on for w in windows] == sorted(w.due_on for w in windows), plan.code


def test_postpartum_schedule() -> None:
    plan = parse_plans(SHIPPED)["postpartum"]
    assert (plan.subject, plan.trigger.event, plan.trigger.anchor) == (
        "mother",
        "lingju.registry.child.born",
        "birth_date",
    )
    born = date(2025, 3, 1)
    first, second, check = (s.window(born) for s in plan.steps)
    # Within a week of the (approximated) discharge: overdue a week after it opened.
    assert first.overdue_on - first.due_on == timedelta(days=7)
    assert second.due_on > first.due_on
    assert check.due_on == born + timedelta(days=42)
    assert plan.steps[2].tier == "township"


def test_iud_follow_ups_at_1_3_6_12_months_then_yearly() -> None:
    plan = parse_plans(SHIPPED)["iud_followup"]
    assert plan.trigger.procedures == ("iud_insertion",)
    inserted = date(2024, 1, 31)
    yearly = plan.steps[-1]
    runs = [s.window(inserted).due_on for s in plan.steps[:-1]]
    runs += [w.due_on for w in occurrences(yearly, inserted, date(2027, 12, 31))]
    assert runs == [
        date(2024, 2, 29),  # 31 Jan + 1m: leap February's end
        date(2024, 4, 30),
        date(2024, 7, 31),
        date(2025, 1, 31),
        date(2026, 1, 31),  # counted from the anchor: no drift after a clamped month
        date(2027, 1, 31),
    ]
    assert all(s.repeat is None for s in plan.steps[:-1]) and yearly.repeat == Offset(12, "m")


def test_screening_women_35_to_64_every_three_years() -> None:
    plan = parse_plans(SHIPPED)["two_cancer_screening"]
    assert (plan.trigger.sex, plan.trigger.ages) == ("female", (35, 64))
    start, last = age_span(plan, date(1972, 2, 29))
    assert start == date(2007, 2, 28)  # 29 Feb birthday: 28 Feb in a common year
    assert last == date(2037, 2, 27)  # the day before the 65th birthday
    dues = [w.due_on for w in occurrences(plan.steps[0], start, last)]
    assert dues[0] == start and dues[-1] <= last
    # At 35, 38, ... 62: the run at 65 would open after she ages out.
    assert len(dues) == 10 and dues[-1] == date(2034, 2, 28)


def test_procedures_map_to_one_plan_each() -> None:
    plans = parse_plans(SHIPPED)
    procs = [p for plan in plans.values() for p in plan.trigger.procedures]
    assert len(procs) == len(set(procs))
    assert "tubal_ligation" in plans["procedure_review"].trigger.procedures


# -- month arithmetic ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "months", "expected"),
    [
        (date(2025, 1, 31), 1, date(2025, 2, 28)),
        (date(2024, 1, 31), 1, date(2024, 2, 29)),
        (date(2024, 2, 29), 12, date(2025, 2, 28)),
        (date(2024, 2, 29), 48, date(2028, 2, 29)),
        (date(2025, 3, 31), 1, date(2025, 4, 30)),
        (date(2025, 12, 15), 1, date(2026, 1, 15)),
        (date(2025, 8, 31), 6, date(2026, 2, 28)),
        (date(2025, 5, 10), 0, date(2025, 5, 10)),
    ],
)
def test_add_months_clamps_to_the_month_end(day: date, months: int, expected: date) -> None:
    assert add_months(day, months) == expected


@given(dates, st.integers(0, 600))
def test_add_months_keeps_the_day_or_clamps(day: date, months: int) -> None:
    result = add_months(day, months)
    assert (result.year * 12 + result.month) - (day.year * 12 + day.month) == months
    assert result.day == day.day or (result.day < day.day and (result + timedelta(1)).day == 1)


@given(dates, st.integers(0, 600))
def test_add_months_is_monotonic(day: date, months: int) -> None:
    assert add_months(day, months) <= add_months(day, months + 1)
    assert add_months(day, months) <= add_months(day + timedelta(1), months)


# -- windows and states -------------------------------------------------------------------------


@given(steps(), dates)
def test_window_is_always_ordered(step: Step, anchor: date) -> None:
    w = step.window(anchor)
    assert anchor <= w.due_on <= w.overdue_on <= w.expires_on
    assert w.due_on < w.expires_on


@given(steps(), dates, st.lists(st.integers(-100, 2000), min_size=2, max_size=8))
def test_states_only_move_forward_as_the_days_pass(
    step: Step, anchor: date, shifts: list[int]
) -> None:
    w = step.window(anchor)
    days = sorted(anchor + timedelta(days=n) for n in shifts)
    seen = [ORDER.index(state_on(w, d)) for d in days]
    assert seen == sorted(seen)


@given(steps(), dates)
def test_each_state_at_its_first_day(step: Step, anchor: date) -> None:
    w = step.window(anchor)
    assert state_on(w, w.due_on - timedelta(1)) == TaskState.scheduled
    assert state_on(w, w.expires_on) == TaskState.missed
    assert state_on(w, w.expires_on - timedelta(1)) in (TaskState.due, TaskState.overdue)
    if w.due_on < w.overdue_on:
        assert state_on(w, w.due_on) == TaskState.due
    if w.overdue_on < w.expires_on:
        assert state_on(w, w.overdue_on) == TaskState.overdue


def test_done_and_cancelled_are_stored_facts_that_win_over_dates() -> None:
    w = Window(date(2025, 1, 10), date(2025, 1, 17), date(2025, 1, 24))
    assert state_on(w, date(2025, 1, 1)) == TaskState.scheduled
    assert state_on(w, date(2025, 1, 10)) == TaskState.due
    assert state_on(w, date(2025, 1, 17)) == TaskState.overdue
    assert state_on(w, date(2025, 1, 24)) == TaskState.missed
    assert state_on(w, date(2025, 3, 1), done=True) == TaskState.done  # done late is done
    assert state_on(w, date(2025, 1, 12), cancelled=True) == TaskState.cancelled
    assert state_on(w, date(2025, 1, 12), done=True, cancelled=True) == TaskState.done


@given(steps(repeat=True), dates, st.integers(0, 3000))
def test_repeats_never_overlap_and_stop_at_until(step: Step, anchor: date, span: int) -> None:
    until = anchor + timedelta(days=span)
    runs = list(occurrences(step, anchor, until))
    assert all(w.due_on <= until for w in runs)
    assert step.window(anchor, len(runs)).due_on > until  # nothing due by `until` left out
    for earlier, later in pairwise(runs):
        assert earlier.expires_on <= later.due_on
        assert earlier.due_on < later.due_on


def test_a_step_that_does_not_repeat_occurs_once() -> None:
    step = _only_step(_raw_step(due="3d"))
    assert list(occurrences(step, date(2025, 1, 1), date(2026, 1, 1))) == [
        Window(date(2025, 1, 4), date(2025, 1, 8), date(2025, 1, 15))
    ]
    assert list(occurrences(step, date(2025, 1, 1), date(2025, 1, 3))) == []
    with pytest.raises(ValueError, match="does not repeat"):
        step.window(date(2025, 1, 1), 1)


# -- malformed files ----------------------------------------------------------------------------


def _with(change: Any) -> dict[str, Any]:
    raw = copy.deepcopy(SHIPPED)
    change(raw)
    return raw


def _iud_step(raw: dict[str, Any], i: int) -> dict[str, Any]:
    return raw["plans"][2]["steps"][i]  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda r: _iud_step(r, 1).update(overdue="2m"),
            r"plans\[2\] \(iud_followup\)\.steps\[1\] \(month_3\): offsets must be ordered",
        ),
        (
            lambda r: _iud_step(r, 1).update(expiry="3m", overdue="3m"),
            r"\(month_3\): expiry 3m must be after due 3m",
        ),
        (
            lambda r: _iud_step(r, 0).update(due="1 month"),
            r"steps\[0\] \(month_1\)\.due: an offset is a whole number",
        ),
        (lambda r: _iud_step(r, 0).update(due="-1m"), r"\.due: an offset"),
        (lambda r: _iud_step(r, 0).update(due=30), r"\.due: an offset"),
        (lambda r: _iud_step(r, 0).update(expiry="99999m"), r"longer than 100 years"),
        (lambda r: _iud_step(r, 0).update(overdue="60d"), r"must use one unit"),
        (lambda r: _iud_step(r, 0).update(colour="red"), r"steps\[0\]: unknown key\(s\) colour"),
        (lambda r: _iud_step(r, 0).update(tier="county"), r"\.tier: 'county' is not one of"),
        (lambda r: _iud_step(r, 0).update(repeat="2m"), r"only the last step may repeat"),
        (lambda r: _iud_step(r, 3).update(repeat="6m"), r"would open the next run"),
        (lambda r: _iud_step(r, 3).update(repeat="0m"), r"repeat: must be longer than 0"),
        (lambda r: _iud_step(r, 2).update(due="2m"), r"steps are listed in the order"),
        (lambda r: _iud_step(r, 1).update(code="month_1"), r"step code 'month_1' is used twice"),
        (lambda r: _iud_step(r, 0).pop("service"), r"missing key\(s\) service"),
        (lambda r: r["plans"][0].update(extra=1), r"plans\[0\]: unknown key\(s\) extra"),
        (lambda r: r["plans"][0].update(subject="wife"), r"subject: 'wife' is not one of"),
        (lambda r: r["plans"][0].update(source=" "), r"source: expected non-empty text"),
        (lambda r: r["plans"][0].update(steps=[]), r"needs at least one step"),
        (lambda r: r["plans"][1].update(code="postpartum"), r"'postpartum' is used twice"),
        (
            lambda r: r["plans"][0]["trigger"].update(anchor="discharge_date"),
            r"plans\[0\] \(postpartum\)\.trigger\.anchor: 'discharge_date' is not one of",
        ),
        (
            lambda r: r["plans"][0]["trigger"].update(event="lingju.registry.person.died"),
            r"trigger\.event: .* is not one of",
        ),
        (
            lambda r: r["plans"][0]["trigger"].update(procedures=["x"]),
            r"procedures: only for",
        ),
        (lambda r: r["plans"][2]["trigger"].pop("procedures"), r"list the procedure codes"),
        (
            lambda r: r["plans"][3]["trigger"]["procedures"].append("iud_insertion"),
            r"procedure 'iud_insertion' already starts plan 'iud_followup'",
        ),
        (lambda r: r["plans"][5]["trigger"].update(ages=[64, 35]), r"ages: expected"),
        (lambda r: r["plans"][5]["trigger"].update(ages=[35.0, 64]), r"ages: expected"),
        (lambda r: r["plans"][5]["trigger"].pop("sex"), r"trigger\.sex: expected"),
        (lambda r: r["plans"][0]["trigger"].update(sex="female"), r"sex: only for age plans"),
        (lambda r: r.update(plans=[]), r"no \[\[plans\]\]"),
        (lambda r: r.update(version=2), r"plans\.toml: unknown key\(s\) version"),
    ],
)
def test_malformed_files_are_refused_naming_the_place(change: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_plans(_with(change))


def test_a_step_that_is_not_a_table_is_refused() -> None:
    with pytest.raises(ValueError, match=r"steps\[0\]: expected a table, got str"):
        parse_plans({"plans": [_raw_plan(steps=["visit"])]})


def test_a_window_offered_late_is_due_from_that_day_with_the_steps_own_grace() -> None:
    w = Window(date(2030, 1, 15), date(2031, 1, 15), date(2033, 1, 15))
    assert w.offered_from(date(2030, 3, 1)) == Window(
        date(2030, 3, 1), date(2031, 3, 1), date(2033, 1, 15)
    )
    # Late in the round: overdue no later than the round's end.
    assert w.offered_from(date(2032, 6, 1)) == Window(
        date(2032, 6, 1), date(2033, 1, 15), date(2033, 1, 15)
    )
    # Before it opens, or once it has closed, the window is as it was.
    assert w.offered_from(date(2029, 12, 1)) == w
    assert w.offered_from(date(2033, 1, 15)) == w
