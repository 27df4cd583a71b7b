"""benefits's indicators over HTTP on SQLite and PostgreSQL: every figure as known from a
seeding through the real flows, and equal to a count taken with plain SQL in benefits's own
database, for the county, a township and a village, and for each report's breakdown."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import text

from services.benefits.events import programs
from services.benefits.reports import INDICATORS
from services.benefits.tests.enrollment_support import (
    ENROLLMENTS,
    assert_problem,
    die,
    set_columns,
    wait_for,
)
from services.benefits.tests.test_payment_runs import (
    approve,
    bank_file,
    draft,
    export,
    reconcile,
    return_file,
)
from shared.clock import SHANGHAI, FixedClock
from tests.support import InProcessStack, eventually, make_id_number

COUNTY = "330102"
T1, T2 = "330102001", "330102002"
V1, V2, V3 = "330102001001", "330102001002", "330102002001"
RURAL = "rural_reward_assistance"
ONLY_CHILD = "only_child_parent_reward"
TODAY = date(2026, 11, 20)
URL = "/api/v1/reports/indicators"


def at(day: str, hour: int = 10, minute: int = 0) -> datetime:
    """A Beijing time, as the UTC timestamp the database keeps."""
    d = date.fromisoformat(day)
    return datetime(d.year, d.month, d.day, hour, minute, tzinfo=SHANGHAI).astimezone(UTC)


# -- seeding through the flows ------------------------------------------------------------------


async def _register(stack: InProcessStack, birth: date, village: str) -> str:
    r = await stack.registry.post(
        "/api/v1/persons",
        json={
            "id_number": make_id_number(birth, "female"),
            "name": "测试居民",
            "phone": "13800138000",
            "region_code": village,
            "household_type": "rural",
        },
        headers=stack.auth("village_agent", village[:9]),
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def _maker(stack: InProcessStack) -> dict[str, str]:
    return stack.auth("county_officer", COUNTY, sub="maker-1")


async def _apply_rural(stack: InProcessStack, person_id: str) -> dict[str, Any]:
    async def apply() -> dict[str, Any]:
        r = await stack.benefits.post(
            ENROLLMENTS, json={"program": RURAL, "person_id": person_id}, headers=_maker(stack)
        )
        assert r.status_code == 201, r.text  # 404 until benefits has the person's facts
        return r.json()  # type: ignore[no-any-return]

    return await eventually(apply)


async def _confirm(stack: InProcessStack, enrollment: dict[str, Any]) -> None:
    r = await stack.benefits.post(
        f"{ENROLLMENTS}/{enrollment['id']}/confirm",
        json={"version": enrollment["version"]},
        headers=stack.auth("county_officer", COUNTY, sub="checker-1"),
    )
    assert r.status_code == 200, r.text


async def _account(stack: InProcessStack, person_id: str, n: int) -> None:
    r = await stack.benefits.put(
        f"/api/v1/persons/{person_id}/payee-account",
        json={
            "account_name": "王芳",
            "bank_name": "浙江农商银行",
            "account_no": f"6228480{n:012d}",
        },
        headers=_maker(stack),
    )
    assert r.status_code == 201, r.text


async def _reconcile(stack: InProcessStack, run: dict[str, Any], results: dict[str, str]) -> None:
    """Apply a return file giving ``results`` (person id -> paid | failed) for the run's lines."""
    rows, _ = await bank_file(stack, run)
    async with stack.rt("benefits").db.session() as s:
        found = await s.execute(
            text("SELECT line_no, person_id FROM payment_lines WHERE run_id = :r"),
            {"r": run["id"]},
        )
        person_of_line = {f"{run['code']}-{no:06d}": pid for no, pid in found}
    answers = [
        (row[0], results[person_of_line[row[0]]], "账户已冻结")
        for row in rows[1:-1]
        if person_of_line[row[0]] in results
    ]
    await reconcile(
        stack,
        run,
        return_file(*((ref, res, "" if res == "paid" else why) for ref, res, why in answers)),
    )


async def _seed(stack: InProcessStack) -> dict[str, str]:
    """Rural reward applications in three villages of two townships and an only-child reward
    certificate, confirmed at known times; a death; rural runs for 2026-09 and 2026-10 and an
    only-child run for 2026-11, reconciled with one failure and one line still unanswered."""
    for service in ("registry", "benefits"):
        stack.rt(service).clock = FixedClock(TODAY)
    born = date(1966, 8, 10)  # 60 in August 2026
    people = {
        "r1": await _register(stack, born, V1),
        "r2": await _register(stack, born, V1),
        "r3": await _register(stack, born, V2),
        "r4": await _register(stack, born, V3),
        "r5": await _register(stack, born, V3),  # applied, never confirmed
        "r6": await _register(stack, born, V2),  # dies on 2026-10-15
    }
    enrollment = {k: await _apply_rural(stack, pid) for k, pid in people.items()}
    for k in ("r1", "r2", "r3", "r4", "r6"):
        await _confirm(stack, enrollment[k])
    cert = await stack.issue_certificate()  # both parents in V1, founded pending
    for who in ("mother", "father"):
        pid = cert[who]["id"]
        people[who] = pid
        [enrollment[who]] = await wait_for(
            stack, lambda items: [e["status"] for e in items] == ["pending_review"], person_id=pid
        )
        await _confirm(stack, enrollment[who])
    # Row timestamps are on the real clock: stand in for when each step happened.
    times = {
        "r1": (at("2026-09-25"), at("2026-10-02")),  # 7 days, October
        "r2": (at("2026-10-05"), at("2026-10-08")),  # 3 days, October
        "r3": (at("2026-10-21", 23, 30), at("2026-10-31", 23, 30)),  # 10 days, October (Beijing)
        "r4": (at("2026-10-10", 8), at("2026-10-14", 20)),  # 4.5 days, October
        "r6": (at("2026-09-01"), at("2026-09-03")),  # 2 days, September
        "mother": (at("2026-11-01", 9), at("2026-11-02", 9)),  # 1 day, November
        # 2026-10-31T16:30Z: already 1 November in Beijing; half a day.
        "father": (at("2026-10-31", 12, 30), at("2026-11-01", 0, 30)),
        "r5": (at("2026-10-20"), None),
    }
    for k, (created, confirmed_at) in times.items():
        await set_columns(stack, enrollment[k]["id"], created_at=created, confirmed_at=confirmed_at)
    for n, k in enumerate(("r1", "r2", "r3", "r4", "r6", "mother", "father")):
        await _account(stack, people[k], n)

    # September's run (back pay from each pays_from), all paid.
    sep = await export(stack, await approve(stack, await draft(stack, "2026-09")))
    await _reconcile(stack, sep, {people[k]: "paid" for k in ("r1", "r2", "r3", "r4", "r6")})
    # r6 dies in October: that month is still paid.
    await die(stack, people["r6"], date(2026, 10, 15))
    await wait_for(
        stack, lambda items: [e["status"] for e in items] == ["ended"], person_id=people["r6"]
    )
    octo = await export(stack, await approve(stack, await draft(stack, "2026-10")))
    # r3's account is frozen; r6's line has no answer from the bank yet.
    await _reconcile(
        stack,
        octo,
        {people["r1"]: "paid", people["r2"]: "paid", people["r3"]: "failed", people["r4"]: "paid"},
    )
    nov = await export(
        stack, await approve(stack, await draft(stack, "2026-11", program=ONLY_CHILD))
    )
    await _reconcile(stack, nov, {people["mother"]: "paid", people["father"]: "paid"})
    return {k: e["pays_from"] for k, e in enrollment.items()}


# -- reading reports ----------------------------------------------------------------------------


async def _report(stack: InProcessStack, region: str, month: str) -> dict[str, dict[str, Any]]:
    r = await stack.benefits.get(
        URL,
        params={"region": region, "month": month},
        headers=stack.auth("county_officer", COUNTY),
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["service"], body["region"], body["month"]) == ("benefits", region, month)
    assert [i["code"] for i in body["indicators"]] == [i.code for i in INDICATORS]
    return {i["code"]: i for i in body["indicators"]}


def _figures(ind: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    return ind["value"], {r["region"]: r["value"] for r in ind["by_region"]}


# -- the same figures, counted with plain SQL ---------------------------------------------------


async def _sql(stack: InProcessStack, sql: str, **params: Any) -> list[Any]:
    async with stack.rt("benefits").db.session() as s:
        return list((await s.execute(text(sql), params)).all())


def _digits(region: str) -> int:
    return {6: 9, 9: 12, 12: 12}[len(region)]


async def _sql_enrolled(
    stack: InProcessStack, region: str, month: str, as_of_end: datetime, program: str | None
) -> dict[str, float]:
    rows = await _sql(
        stack,
        "SELECT region_code, program, status, ends_after, confirmed_at FROM enrollments"
        " WHERE region_code LIKE :like",
        like=region + "%",
    )
    out: dict[str, float] = {}
    for code, prog, status, ends_after, confirmed_at in rows:
        if confirmed_at is None or (program and prog != program):
            continue
        when = _aware(confirmed_at)
        if when >= as_of_end:
            continue
        if status == "active" or (status == "ended" and ends_after > month):
            key = code[: _digits(region)]
            out[key] = out.get(key, 0) + 1
    return out


def _aware(value: Any) -> datetime:
    if isinstance(value, str):  # SQLite hands a raw column back as text
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


async def _sql_paid(
    stack: InProcessStack, region: str, month: str, program: str | None
) -> dict[str, float]:
    rows = await _sql(
        stack,
        "SELECT pl.region_code, pl.amount_fen FROM payment_lines pl"
        " JOIN payment_runs r ON r.id = pl.run_id"
        " WHERE r.period = :month AND pl.status = 'paid' AND pl.region_code LIKE :like"
        + (" AND pl.program = :program" if program else ""),
        month=month,
        like=region + "%",
        program=program,
    )
    out: dict[str, float] = {}
    for code, fen in rows:
        out[code[: _digits(region)]] = out.get(code[: _digits(region)], 0) + fen
    return out


async def _sql_results(stack: InProcessStack, region: str, month: str) -> dict[str, list[str]]:
    rows = await _sql(
        stack,
        "SELECT pl.region_code, pl.status FROM payment_lines pl"
        " JOIN payment_runs r ON r.id = pl.run_id"
        " WHERE r.period = :month AND pl.status IN ('paid', 'failed')"
        " AND pl.region_code LIKE :like",
        month=month,
        like=region + "%",
    )
    out: dict[str, list[str]] = {}
    for code, status in rows:
        out.setdefault(code[: _digits(region)], []).append(status)
    return out


async def _sql_lags(stack: InProcessStack, region: str, month: str) -> dict[str, list[float]]:
    rows = await _sql(
        stack,
        "SELECT region_code, created_at, confirmed_at FROM enrollments"
        " WHERE confirmed_at IS NOT NULL AND region_code LIKE :like",
        like=region + "%",
    )
    out: dict[str, list[float]] = {}
    for code, created, confirmed_at in rows:
        if _aware(confirmed_at).astimezone(SHANGHAI).strftime("%Y-%m") != month:
            continue
        days = round((_aware(confirmed_at) - _aware(created)).total_seconds() / 86400, 2)
        out.setdefault(code[: _digits(region)], []).append(days)
    return out


def _median(values: list[float]) -> float | None:
    ordered = sorted(values)
    return ordered[(len(ordered) + 1) // 2 - 1] if ordered else None


def _split(per: dict[str, float], region: str) -> tuple[float, dict[str, float]]:
    """Total and breakdown as the report gives them (a village report has no breakdown)."""
    return sum(per.values()), ({} if len(region) == 12 else per)


async def _assert_matches_sql(
    stack: InProcessStack, region: str, month: str, as_of_end: datetime
) -> None:
    got = await _report(stack, region, month)
    for prog in [None, *(p for p in programs() if f"enrolled.{p}" in got)]:
        code = f"enrolled.{prog}" if prog else "enrolled"
        want = await _sql_enrolled(stack, region, month, as_of_end, prog)
        assert _figures(got[code]) == _split(want, region), code
    for prog in [None, *programs()]:
        code = f"paid_fen.{prog}" if prog else "paid_fen"
        want = await _sql_paid(stack, region, month, prog)
        assert _figures(got[code]) == _split(want, region), code
    results = await _sql_results(stack, region, month)
    rate = got["payment_success_rate"]
    paid = sum(r.count("paid") for r in results.values())
    answered = sum(len(r) for r in results.values())
    assert (rate["numerator"], rate["denominator"]) == (paid, answered)
    assert rate["value"] == (round(paid / answered, 4) if answered else None)
    if len(region) < 12:
        assert {r["region"]: (r["numerator"], r["denominator"]) for r in rate["by_region"]} == {
            k: (v.count("paid"), len(v)) for k, v in results.items()
        }
    lags = await _sql_lags(stack, region, month)
    every = [d for ds in lags.values() for d in ds]
    lag = got["confirmation_lag_days"]
    assert (lag["value"], lag["denominator"]) == (_median(every), len(every))
    if len(region) < 12:
        assert {r["region"]: r["value"] for r in lag["by_region"]} == {
            k: _median(v) for k, v in lags.items()
        }


# -- the tests ------------------------------------------------------------------------------------


async def test_every_indicator_is_the_count_taken_in_the_database(stack: InProcessStack) -> None:
    pays_from = await _seed(stack)
    assert {pays_from[k] for k in ("r1", "r2", "r3", "r4", "r6")} == {"2026-09"}
    assert (pays_from["mother"], pays_from["father"]) == ("2026-11", "2026-11")

    # October, county by township: r1, r2 (V1), r3 (V2, confirmed 23:30 on the 31st) and r4
    # (V3) enrolled; r6 died in October; the parents were confirmed in November (Beijing).
    octo = await _report(stack, COUNTY, "2026-10")
    assert _figures(octo["enrolled"]) == (4, {T1: 3, T2: 1})
    assert _figures(octo[f"enrolled.{RURAL}"]) == (4, {T1: 3, T2: 1})
    assert _figures(octo[f"enrolled.{ONLY_CHILD}"]) == (0, {})
    # Lags 7, 3, 10 (T1) and 4.5 (T2): nearest-rank medians.
    assert _figures(octo["confirmation_lag_days"]) == (4.5, {T1: 7, T2: 4.5})
    assert octo["confirmation_lag_days"]["denominator"] == 4
    # One month at 120 yuan each for r1, r2, r4; r3's came back, r6's is unanswered.
    assert _figures(octo["paid_fen"]) == (36000, {T1: 24000, T2: 12000})
    assert _figures(octo[f"paid_fen.{RURAL}"]) == (36000, {T1: 24000, T2: 12000})
    assert _figures(octo[f"paid_fen.{ONLY_CHILD}"]) == (0, {})
    rate = octo["payment_success_rate"]
    assert (rate["value"], rate["numerator"], rate["denominator"]) == (0.75, 3, 4)
    assert [
        (r["region"], r["value"], r["numerator"], r["denominator"]) for r in rate["by_region"]
    ] == [
        (T1, 0.6667, 2, 3),
        (T2, 1.0, 1, 1),
    ]

    # October, a township by village, and a village (no breakdown).
    t1 = await _report(stack, T1, "2026-10")
    assert _figures(t1["enrolled"]) == (3, {V1: 2, V2: 1})
    assert _figures(t1["confirmation_lag_days"]) == (7, {V1: 3, V2: 10})
    assert _figures(t1["paid_fen"]) == (24000, {V1: 24000})
    assert _figures(t1["payment_success_rate"]) == (0.6667, {V1: 1.0, V2: 0.0})
    v2 = await _report(stack, V2, "2026-10")
    assert _figures(v2["enrolled"]) == (1, {})
    assert _figures(v2["confirmation_lag_days"]) == (10, {})
    assert _figures(v2["paid_fen"]) == (0, {})
    assert _figures(v2["payment_success_rate"]) == (0.0, {})

    # September: r6 alone was enrolled; the run paid five lines of back pay from September.
    sep = await _report(stack, COUNTY, "2026-09")
    assert _figures(sep["enrolled"]) == (1, {T1: 1})
    assert _figures(sep["confirmation_lag_days"]) == (2, {T1: 2})
    assert _figures(sep["paid_fen"]) == (60000, {T1: 48000, T2: 12000})
    assert _figures(sep["payment_success_rate"]) == (1.0, {T1: 1.0, T2: 1.0})

    # November, the current month: taken today; both parents enrolled and paid 10 yuan.
    nov = await _report(stack, COUNTY, "2026-11")
    assert _figures(nov["enrolled"]) == (6, {T1: 5, T2: 1})
    assert _figures(nov[f"enrolled.{ONLY_CHILD}"]) == (2, {T1: 2})
    assert _figures(nov["confirmation_lag_days"]) == (0.5, {T1: 0.5})
    assert _figures(nov["paid_fen"]) == (2000, {T1: 2000})
    assert _figures(nov[f"paid_fen.{ONLY_CHILD}"]) == (2000, {T1: 2000})
    assert _figures(nov[f"paid_fen.{RURAL}"]) == (0, {})
    assert _figures(nov["payment_success_rate"]) == (1.0, {T1: 1.0})

    # A month with no data: zero counts, null rates and median.
    jul = await _report(stack, COUNTY, "2026-07")
    for code, ind in jul.items():
        if ind["unit"] in ("count", "fen"):
            assert _figures(ind) == (0, {}), code
        else:
            assert _figures(ind) == (None, {}), code
    assert (
        jul["payment_success_rate"]["numerator"],
        jul["payment_success_rate"]["denominator"],
    ) == (0, 0)

    # Every figure equals the count taken with plain SQL, at every level and month.
    ends = {
        "2026-07": at("2026-08-01", 0),
        "2026-09": at("2026-10-01", 0),
        "2026-10": at("2026-11-01", 0),
        "2026-11": at("2026-11-21", 0),  # today's end
    }
    for month, end in ends.items():
        for region in (COUNTY, T1, T2, V1, V2, V3):
            await _assert_matches_sql(stack, region, month, end)

    # CSV: one row per indicator and region (the report's, then its breakdown).
    r = await stack.benefits.get(
        URL,
        params={"region": COUNTY, "month": "2026-10", "format": "csv"},
        headers=stack.auth("county_officer", COUNTY),
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert len(rows) == sum(1 + len(i["by_region"]) for i in octo.values())
    assert {(row["indicator"], row["region"]) for row in rows} == {
        (code, region)
        for code, i in octo.items()
        for region in [COUNTY, *(b["region"] for b in i["by_region"])]
    }
    [t1_rate] = [
        row for row in rows if (row["indicator"], row["region"]) == ("payment_success_rate", T1)
    ]
    assert (t1_rate["level"], t1_rate["value"], t1_rate["numerator"], t1_rate["denominator"]) == (
        "township",
        "0.6667",
        "2",
        "3",
    )


async def test_a_region_outside_yours_and_a_month_not_begun_are_refused(
    stack: InProcessStack,
) -> None:
    stack.rt("benefits").clock = FixedClock(TODAY)
    mine = stack.auth("township_officer", T1)
    r = await stack.benefits.get(URL, params={"region": T2, "month": "2026-10"}, headers=mine)
    assert_problem(r, 403, "out_of_region")
    r = await stack.benefits.get(URL, params={"region": COUNTY, "month": "2026-10"}, headers=mine)
    assert_problem(r, 403, "out_of_region")
    r = await stack.benefits.get(URL, params={"region": T1, "month": "2026-12"}, headers=mine)
    assert_problem(r, 422, "validation_failed")
    # Inside the caller's region, the current month: served, with nothing to count yet.
    r = await stack.benefits.get(URL, params={"region": V1}, headers=mine)
    assert r.status_code == 200, r.text
    assert (r.json()["month"], r.json()["as_of"]) == ("2026-11", TODAY.isoformat())
    assert {i["code"]: i["value"] for i in r.json()["indicators"]}["enrolled"] == 0
