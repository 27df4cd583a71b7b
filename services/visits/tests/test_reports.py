"""Visits' indicators (GET /api/v1/reports/indicators), on SQLite and PostgreSQL: a small county
seeded through the real flows (registry events on the broker, the visit and appointment APIs,
the business day moved by time travel), then every figure checked twice: against the number
the seeding makes it, and against a count taken directly in visits' database with plain SQL,
for the county, a township and a village, and for each region of the breakdown.

The month reported is March 2030, on 10 April 2030 (stock figures as of 31 March). Dates are in
2029-2030 so the workers, which run at start-up on the real date, never touch them.
"""

from __future__ import annotations

import csv
import io
import uuid
from datetime import date, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import Date, bindparam, text

from services.visits.models import Task
from services.visits.reports import INDICATORS
from services.visits.tests.test_plan_runs import person_event
from services.visits.tests.test_tasks import (
    add_person,
    child_born,
    emit,
    family_registered,
    person_died,
    problem,
    tasks_of,
    today_is,
)
from shared.clock import SHANGHAI, FixedClock
from shared.db import UtcDateTime
from shared.reports import Month
from tests.support import OTHER_TOWNSHIP, TOWNSHIP, VILLAGE, InProcessStack

COUNTY = "330102"
T1, T2 = TOWNSHIP, OTHER_TOWNSHIP
V1, V2, V3 = VILLAGE, TOWNSHIP + "002", OTHER_TOWNSHIP + "001"
MARCH = Month(2030, 3)
REPORT_DAY = date(2030, 4, 10)
AS_OF = date(2030, 3, 31)


def api(stack: InProcessStack) -> httpx.AsyncClient:
    return stack.visits


def county_officer(stack: InProcessStack) -> dict[str, str]:
    return stack.auth("county_officer", COUNTY, sub="officer-county")


def at(day: date, hh_mm: str = "09:30") -> datetime:
    return datetime.fromisoformat(f"{day.isoformat()}T{hh_mm}:00").replace(tzinfo=SHANGHAI)


# -- seeding through the real flows -------------------------------------------------------------


async def open_task(stack: InProcessStack, person: str, step: str) -> Task:
    """The person's earliest open task of ``step`` (a screening round, a visit)."""
    rows = [t for t in await tasks_of(stack, person) if t.step == step and t.closed is None]
    assert rows, (person, step)
    return min(rows, key=lambda t: t.occurrence)


async def visit(
    stack: InProcessStack, person: str, step: str, when: datetime, *, given: bool = True
) -> None:
    """A visit recorded on the day it was made (a county officer may record any task)."""
    t = await open_task(stack, person, step)
    today_is(stack, when.astimezone(SHANGHAI).date())
    r = await api(stack).post(
        f"/api/v1/tasks/{t.id}/visits",
        json={
            "id": str(uuid.uuid4()),
            "performed_at": when.isoformat(),
            "place": "家中",
            "consent": {"given": given},
            "findings": {"notes": "记录"} if given else {},
            "task_version": t.version,
        },
        headers=county_officer(stack),
    )
    assert r.status_code == 201, r.text


async def birth(stack: InProcessStack, village: str, born: date) -> tuple[str, str]:
    mother, child = await add_person(stack, village), await add_person(stack, village, "male")
    event = child_born(mother, child, born)
    event["data"]["region_code"] = village
    await emit(stack, event, subject=child)
    return mother, child


async def marriage(stack: InProcessStack, village: str, married: date) -> str:
    wife, husband = await add_person(stack, village), await add_person(stack, village, "male")
    event = family_registered(wife, husband, married)
    event["data"]["region_code"] = village
    await emit(stack, event)
    return wife


async def woman(stack: InProcessStack, village: str, born: date) -> str:
    """A woman registered with registry (her age plans start on the business day)."""
    pid = str(uuid.uuid4())
    await emit(stack, person_event(pid, born=born, region=village), subject=pid)
    return pid


async def slot(stack: InProcessStack, station_id: str, starts: datetime) -> str:
    r = await api(stack).post(
        "/api/v1/slots",
        json={
            "station_id": station_id,
            "service": "pre_pregnancy_check",
            "starts_at": starts.isoformat(),
            "ends_at": (starts + timedelta(hours=3)).isoformat(),
            "capacity": 10,
        },
        headers=stack.auth("township_officer", T1, sub="officer-1"),
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def booked(stack: InProcessStack, slot_id: str, village: str) -> str:
    person = await add_person(stack, village)
    r = await api(stack).post(
        "/api/v1/appointments",
        json={"slot_id": slot_id, "person_id": person},
        headers=stack.auth("resident", village, person_id=person),
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def mark(stack: InProcessStack, appointment_id: str, outcome: str, when: datetime) -> None:
    stack.rt("visits").clock = FixedClock(when)
    r = await api(stack).post(
        f"/api/v1/appointments/{appointment_id}/{outcome}",
        headers=stack.auth("township_officer", T1, sub="officer-1"),
    )
    assert r.status_code == 200, r.text


async def seed(stack: InProcessStack) -> None:
    """The county's March 2030; each line says what it adds to the March figures."""
    # Two-cancer screening (rounds due from 1 January to 31 March 2030, women counted once).
    today_is(stack, date(2029, 11, 1))
    w3 = await woman(stack, V2, date(1980, 1, 15))  # rounds due 2029-11-01 and 2030-01-15
    await visit(stack, w3, "screening", at(date(2029, 11, 5)))  # 2029's round: not 2030's
    today_is(stack, date(2030, 2, 1))
    w1 = await woman(stack, V1, date(1980, 1, 15))  # eligible, screened 03-20
    await woman(stack, V1, date(1985, 7, 1))  # eligible, not screened
    await woman(stack, V3, date(1995, 12, 10))  # due 2030-12-10: after March, not counted
    w5 = await woman(stack, V3, date(1980, 1, 15))  # declined: left out
    # Two rounds in 2030 (due 02-01, overdue 03-20; and due 03-20): one woman, screened 03-01.
    w6 = await woman(stack, V3, date(1980, 3, 20))
    assert len(await tasks_of(stack, w6)) == 2

    # Newly married (counselling overdue from 03-03): V1 never visited, V2 visited 04-05,
    # V3's wife dies 03-02 (cancelled: left out).
    await marriage(stack, V1, date(2030, 2, 1))
    f2 = await marriage(stack, V2, date(2030, 2, 1))
    f3 = await marriage(stack, V3, date(2030, 2, 1))

    # Appointments at the township station (slots made and booked ahead of time).
    r = await api(stack).post(
        "/api/v1/stations",
        json={"name": "清波街道社区卫生服务中心", "region_code": T1},
        headers=county_officer(stack),
    )
    assert r.status_code == 201, r.text
    st = r.json()["id"]
    s_feb = await slot(stack, st, at(date(2030, 2, 28), "23:30"))  # February in Beijing
    s0 = await slot(stack, st, at(date(2030, 3, 1), "00:30"))  # March in Beijing, Feb in UTC
    s1 = await slot(stack, st, at(date(2030, 3, 10), "09:00"))
    s2 = await slot(stack, st, at(date(2030, 4, 2), "09:00"))  # April
    a_feb = await booked(stack, s_feb, V2)
    a0 = await booked(stack, s0, V2)
    a1, a2 = await booked(stack, s1, V1), await booked(stack, s1, V1)
    a3 = await booked(stack, s1, V2)
    a4 = await booked(stack, s1, V3)
    await booked(stack, s1, V3)  # never marked, still booked: in the denominator
    a5 = await booked(stack, s2, V1)
    cancel = await api(stack).post(
        f"/api/v1/appointments/{a3}/cancel",
        headers=stack.auth("township_officer", T1, sub="officer-1"),
    )
    assert cancel.status_code == 200, cancel.text

    # Births on 1 March: first postpartum visit due 03-04, overdue 03-11; second overdue 03-22;
    # the newborn's home visit overdue 03-11 (the rest falls due later).
    today_is(stack, date(2030, 3, 1))
    m1, c1 = await birth(stack, V1, date(2030, 3, 1))
    m2, c2 = await birth(stack, V2, date(2030, 3, 1))
    m3, c3 = await birth(stack, V3, date(2030, 3, 1))

    await mark(stack, a_feb, "no-show", at(date(2030, 3, 1), "08:00"))
    await mark(stack, a0, "no-show", at(date(2030, 3, 1), "08:00"))
    await visit(stack, w6, "screening", at(date(2030, 3, 1)))  # on time (overdue 03-20)
    await visit(stack, w5, "screening", at(date(2030, 3, 2)), given=False)
    await emit(stack, person_died(f3, date(2030, 3, 2)))
    await visit(stack, m2, "home_visit_1", at(date(2030, 3, 5)), given=False)  # declined
    await visit(stack, m1, "home_visit_1", at(date(2030, 3, 6)))  # on time
    await visit(stack, c1, "home_visit", at(date(2030, 3, 8)))  # on time
    await visit(stack, m3, "home_visit_1", at(date(2030, 3, 10), "23:30"))  # last day in time
    # 07:00 in Beijing on 03-11 is 23:00 UTC on 03-10: late, by the Beijing date.
    await visit(stack, c3, "home_visit", at(date(2030, 3, 11), "07:00"))
    await mark(stack, a1, "attended", at(date(2030, 3, 10), "10:00"))
    await mark(stack, a2, "no-show", at(date(2030, 3, 10), "10:00"))
    await mark(stack, a4, "no-show", at(date(2030, 3, 10), "10:00"))
    await visit(stack, c2, "home_visit", at(date(2030, 3, 12)))  # late
    await visit(stack, m3, "home_visit_2", at(date(2030, 3, 16)))  # on time
    await visit(stack, w1, "screening", at(date(2030, 3, 20)))
    # Born 20 March: first visit due 03-23, overdue 03-30, missed 04-03; done 04-01 (late);
    # the newborn's visit, overdue 03-30, never done.
    today_is(stack, date(2030, 3, 20))
    m5, _ = await birth(stack, V2, date(2030, 3, 20))
    await visit(stack, m1, "home_visit_2", at(date(2030, 3, 25)))  # late (overdue 03-22)
    await visit(stack, m5, "home_visit_1", at(date(2030, 4, 1)))  # late; open on 03-31
    await mark(stack, a5, "no-show", at(date(2030, 4, 2), "10:00"))  # April
    await visit(stack, w3, "screening", at(date(2030, 4, 3)))  # after the report day
    await visit(stack, f2, "counselling", at(date(2030, 4, 5)))  # late; open on 03-31
    today_is(stack, REPORT_DAY)


# -- the same figures, counted directly in visits' database -------------------------------------


def _visit_day(stack: InProcessStack) -> str:
    if stack.rt("visits").db.is_sqlite:
        return "date(v.performed_at, '+8 hours')"
    return "CAST(v.performed_at AT TIME ZONE 'Asia/Shanghai' AS DATE)"


DIRECT: dict[str, tuple[str, str | None]] = {
    # code: (numerator or count, denominator)
    "followup_on_time_rate": (
        "SELECT count(*) FROM tasks t JOIN visit_records v ON v.task_id = t.id"
        " WHERE t.region_code LIKE :r AND t.overdue_on >= :first AND t.overdue_on <= :as_of"
        " AND t.closed = 'done' AND {day} < t.overdue_on",
        "SELECT count(*) FROM tasks t WHERE t.region_code LIKE :r AND t.overdue_on >= :first"
        " AND t.overdue_on <= :as_of AND (t.closed IS NULL OR t.closed = 'done')",
    ),
    "tasks_overdue": (
        "SELECT count(*) FROM tasks t LEFT JOIN visit_records v ON v.task_id = t.id"
        " WHERE t.region_code LIKE :r AND t.overdue_on <= :as_of AND t.expires_on > :as_of"
        " AND (t.closed IS NULL OR (t.closed <> 'cancelled' AND {day} > :as_of))",
        None,
    ),
    "postpartum_first_visit_in_window_rate": (
        "SELECT count(*) FROM tasks t JOIN visit_records v ON v.task_id = t.id"
        " WHERE t.region_code LIKE :r AND t.plan = 'postpartum' AND t.step = 'home_visit_1'"
        " AND t.due_on >= :first AND t.due_on < :next AND t.closed = 'done'"
        " AND {day} < t.overdue_on",
        "SELECT count(*) FROM tasks t WHERE t.region_code LIKE :r AND t.plan = 'postpartum'"
        " AND t.step = 'home_visit_1' AND t.due_on >= :first AND t.due_on < :next"
        " AND (t.closed IS NULL OR t.closed = 'done')",
    ),
    "two_cancer_screening_coverage_rate": (
        "SELECT count(DISTINCT t.person_id) FROM tasks t JOIN visit_records v"
        " ON v.task_id = t.id WHERE t.region_code LIKE :r AND t.plan = 'two_cancer_screening'"
        " AND t.due_on >= :jan1 AND t.due_on < :next AND t.closed = 'done'"
        " AND {day} <= :as_of",
        "SELECT count(DISTINCT t.person_id) FROM tasks t WHERE t.region_code LIKE :r"
        " AND t.plan = 'two_cancer_screening' AND t.due_on >= :jan1 AND t.due_on < :next"
        " AND (t.closed IS NULL OR t.closed = 'done')",
    ),
    "appointment_no_show_rate": (
        "SELECT count(*) FROM appointments a JOIN slots s ON s.id = a.slot_id"
        " WHERE a.person_region LIKE :r AND s.starts_at >= :start AND s.starts_at < :end"
        " AND a.status = 'no_show'",
        "SELECT count(*) FROM appointments a JOIN slots s ON s.id = a.slot_id"
        " WHERE a.person_region LIKE :r AND s.starts_at >= :start AND s.starts_at < :end"
        " AND a.status <> 'cancelled'",
    ),
}


async def direct(stack: InProcessStack, sql: str, region: str, month: Month, as_of: date) -> int:
    params: dict[str, Any] = {
        "r": region + "%",
        "first": month.first_day,
        "next": month.next_first_day,
        "jan1": date(month.year, 1, 1),
        "as_of": as_of,
        "start": month.start,
        "end": month.end,
    }
    stmt = text(sql.format(day=_visit_day(stack)))
    used = {k: v for k, v in params.items() if f":{k}" in sql}
    stmt = stmt.bindparams(
        *(
            bindparam(k, type_=UtcDateTime() if isinstance(v, datetime) else Date())
            for k, v in used.items()
            if k != "r"
        )
    )
    async with stack.rt("visits").db.session() as s:
        return int(await s.scalar(stmt, used) or 0)


async def report(
    stack: InProcessStack, region: str, month: str = "2030-03", **params: str
) -> httpx.Response:
    return await api(stack).get(
        "/api/v1/reports/indicators",
        params={"region": region, "month": month, **params},
        headers=county_officer(stack),
    )


async def figures(stack: InProcessStack, region: str) -> dict[str, dict[str, Any]]:
    """The report for ``region`` by indicator code, each checked against the database: the
    region's figure and every breakdown region's."""
    r = await report(stack, region)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["as_of"] == AS_OF.isoformat() and body["region"] == region
    got = {i["code"]: i for i in body["indicators"]}
    assert list(got) == [i.code for i in INDICATORS]
    for code, (num_sql, den_sql) in DIRECT.items():
        ind = got[code]
        rows = [(region, ind)] + [(b["region"], b) for b in ind["by_region"]]
        for where, fig in rows:
            num = await direct(stack, num_sql, where, MARCH, AS_OF)
            if den_sql is None:
                assert fig["value"] == num, (code, where)
                continue
            den = await direct(stack, den_sql, where, MARCH, AS_OF)
            assert (fig["numerator"], fig["denominator"]) == (num, den), (code, where)
            assert fig["value"] == (round(num / den, 4) if den else None), (code, where)
    return got


def by(ind: dict[str, Any]) -> dict[str, tuple[Any, ...]]:
    """The breakdown: region -> (numerator, denominator) for a rate, (value,) for a count."""
    if ind["unit"] == "count":
        return {b["region"]: (b["value"],) for b in ind["by_region"]}
    return {b["region"]: (b["numerator"], b["denominator"]) for b in ind["by_region"]}


def nd(ind: dict[str, Any]) -> tuple[Any, Any, Any]:
    return ind["numerator"], ind["denominator"], ind["value"]


# -- tests --------------------------------------------------------------------------------------


async def test_every_figure_matches_the_seeding_and_the_database(stack: InProcessStack) -> None:
    await seed(stack)

    county = await figures(stack, COUNTY)
    on_time = county["followup_on_time_rate"]
    assert nd(on_time) == (5, 13, round(5 / 13, 4))
    assert by(on_time) == {T1: (2, 9), T2: (3, 4)}
    overdue = county["tasks_overdue"]
    assert overdue["value"] == 4 and by(overdue) == {T1: (4,)}
    postpartum = county["postpartum_first_visit_in_window_rate"]
    assert nd(postpartum) == (2, 3, 0.6667)
    assert by(postpartum) == {T1: (1, 2), T2: (1, 1)}
    screening = county["two_cancer_screening_coverage_rate"]
    assert nd(screening) == (2, 4, 0.5)
    assert by(screening) == {T1: (1, 3), T2: (1, 1)}
    no_show = county["appointment_no_show_rate"]
    assert nd(no_show) == (3, 5, 0.6)
    assert by(no_show) == {T1: (2, 3), T2: (1, 2)}

    township = await figures(stack, T1)
    assert nd(township["followup_on_time_rate"]) == (2, 9, 0.2222)
    assert by(township["followup_on_time_rate"]) == {V1: (2, 4), V2: (0, 5)}
    assert by(township["tasks_overdue"]) == {V1: (1,), V2: (3,)}
    # V2's only other first visit was declined: left out, not a failure.
    assert by(township["postpartum_first_visit_in_window_rate"]) == {V1: (1, 1), V2: (0, 1)}
    assert by(township["two_cancer_screening_coverage_rate"]) == {V1: (1, 2), V2: (0, 1)}
    assert by(township["appointment_no_show_rate"]) == {V1: (1, 2), V2: (1, 1)}

    village = await figures(stack, V3)
    assert nd(village["followup_on_time_rate"]) == (3, 4, 0.75)
    assert village["tasks_overdue"]["value"] == 0
    assert nd(village["postpartum_first_visit_in_window_rate"]) == (1, 1, 1.0)
    assert nd(village["two_cancer_screening_coverage_rate"]) == (1, 1, 1.0)
    assert nd(village["appointment_no_show_rate"]) == (1, 2, 0.5)
    assert all(i["by_region"] == [] for i in village.values())

    # CSV: one row per indicator and region (the county's, then its breakdown), same figures.
    r = await report(stack, COUNTY, format="csv")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text.lstrip("\ufeff"))))
    expected = [(c, COUNTY) for c in county] + [
        (c, b["region"]) for c, i in county.items() for b in i["by_region"]
    ]
    assert sorted((row["indicator"], row["region"]) for row in rows) == sorted(expected)
    on_time_row = next(
        row for row in rows if (row["indicator"], row["region"]) == ("followup_on_time_rate", T2)
    )
    assert (on_time_row["numerator"], on_time_row["denominator"], on_time_row["value"]) == (
        "3",
        "4",
        "0.75",
    )
    assert on_time_row["formula"] == INDICATORS[0].formula


async def test_a_month_without_data_has_zero_counts_and_null_rates(stack: InProcessStack) -> None:
    today_is(stack, REPORT_DAY)
    r = await report(stack, COUNTY, month="2029-06")
    assert r.status_code == 200, r.text
    for ind in r.json()["indicators"]:
        if ind["unit"] == "count":
            assert ind["value"] == 0, ind
        else:
            assert (ind["value"], ind["numerator"], ind["denominator"]) == (None, 0, 0), ind
        assert ind["by_region"] == []
        assert ind["formula"] and ind["name"]


async def test_a_region_outside_the_callers_is_refused(stack: InProcessStack) -> None:
    today_is(stack, REPORT_DAY)
    r = await api(stack).get(
        "/api/v1/reports/indicators",
        params={"region": T2, "month": "2030-03"},
        headers=stack.auth("township_officer", T1, sub="officer-1"),
    )
    problem(r, 403, "out_of_region")


async def test_a_month_not_begun_is_refused(stack: InProcessStack) -> None:
    today_is(stack, REPORT_DAY)
    problem(await report(stack, COUNTY, month="2030-05"), 422, "validation_failed")


def test_every_indicator_is_defined_once_with_its_formula() -> None:
    codes = [i.code for i in INDICATORS]
    assert len(set(codes)) == len(codes) == len(DIRECT) and set(codes) == set(DIRECT)
    assert all(i.name and len(i.formula) > 60 for i in INDICATORS)
