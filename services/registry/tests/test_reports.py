"""registry's indicators (issue 8): seeded through the real flows over three months, each
figure checked against the number known from the seeding and against a direct count in
registry's database, for the county, a township, a village and the breakdown."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import bindparam, func, select, text, update

from services.registry.models import Application, ApplicationAction
from services.registry.reports import INDICATORS
from shared.clock import SHANGHAI, FixedClock
from shared.db import UtcDateTime
from shared.reports import Month, nearest_rank
from tests.support import OTHER_TOWNSHIP, TOWNSHIP, VILLAGE, InProcessStack, make_id_number

COUNTY = "330102"
V1, V2, V3 = VILLAGE, "330102001002", "330102002001"  # V3 lies in the other township
BIRTH = ("id_card", "household_register")  # birth_registration: township review only
HONOR = ("household_register", "marriage_certificate", "child_birth_certificate")
# The figures a village can have: the breakdown regions of a report come from these.
KINDS = (
    "applications_received",
    "applications_issued",
    "applications_rejected",
    "applications_overdue",
)
REVIEWER = {"village": ("village_worker", 12), "township": ("township_officer", 9)}


def at(day: date, hour: int = 9, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), SHANGHAI)


class Seeder:
    """Drives registry's API at chosen moments of its business clock.

    The service writes row timestamps (``created_at``, the log's ``at``) on the real clock
    (shared/clock.py): in production the two clocks agree. The test travels in time with a
    FixedClock, so after each step it moves the rows that step wrote to the moment it
    travelled to, as the service would have written them on that day.
    """

    def __init__(self, stack: InProcessStack) -> None:
        self.stack = stack
        self.clock = FixedClock(date(2025, 3, 1))
        stack.rt("registry").clock = self.clock

    async def submit(
        self,
        when: datetime,
        village: str,
        *,
        via: str,
        type_: str = "birth_registration",
        materials: tuple[str, ...] = BIRTH,
    ) -> dict[str, Any]:
        self.clock.set(when)
        r = await self.stack.registry.post(
            "/api/v1/persons",
            json={
                "id_number": make_id_number(date(1995, 5, 1)),
                "name": "统计居民",
                "phone": "13800138000",
                "region_code": village,
                "household_type": "rural",
            },
            headers=self.stack.auth("village_agent", village[:9]),
        )
        assert r.status_code == 201, r.text
        person = r.json()["id"]
        headers = (
            self.stack.auth("resident", person_id=person)
            if via == "self"
            else self.stack.auth("village_agent", village[:9])
        )
        before = await self._last_action_id()
        r = await self.stack.registry.post(
            "/api/v1/applications",
            json={
                "type": type_,
                "applicant_id": person,
                "materials": [{"code": c, "ref": f"upload-{c}"} for c in materials],
            },
            headers=headers,
        )
        assert r.status_code == 201, r.text
        app: dict[str, Any] = r.json()
        assert app["submitted_via"] == via
        await self._stamp(app["id"], before, when, created=True)
        return app

    async def review(
        self, when: datetime, app: dict[str, Any], decision: str, level: str = "township"
    ) -> dict[str, Any]:
        self.clock.set(when)
        role, digits = REVIEWER[level]
        before = await self._last_action_id()
        r = await self.stack.registry.post(
            f"/api/v1/applications/{app['id']}/review",
            json={"decision": decision, "version": app["version"], "comment": "材料不符"},
            headers=self.stack.auth(role, app["region"][:digits]),
        )
        assert r.status_code == 200, r.text
        await self._stamp(app["id"], before, when)
        return {**r.json(), "region": app["region"]}

    async def _last_action_id(self) -> int:
        async with self.stack.rt("registry").db.session() as s:
            return int(await s.scalar(select(func.coalesce(func.max(ApplicationAction.id), 0))))

    async def _stamp(self, app_id: str, before: int, when: datetime, created: bool = False) -> None:
        async with self.stack.rt("registry").db.session() as s:
            await s.execute(
                update(ApplicationAction)
                .where(ApplicationAction.application_id == app_id, ApplicationAction.id > before)  # type: ignore[arg-type]
                .values(at=when)
            )
            if created:
                await s.execute(
                    update(Application).where(Application.id == app_id).values(created_at=when)  # type: ignore[arg-type]
                )
            await s.commit()


async def seed(stack: InProcessStack) -> dict[str, dict[str, Any]]:
    """Thirteen applications over March to May 2025 (birth registration: 3 working days)."""
    sd = Seeder(stack)
    apps: dict[str, dict[str, Any]] = {}

    async def submit(name: str, when: datetime, village: str, via: str, **kw: Any) -> None:
        apps[name] = {**await sd.submit(when, village, via=via, **kw), "region": village}

    async def review(name: str, when: datetime, decision: str, level: str = "township") -> None:
        apps[name] = await sd.review(when, apps[name], decision, level)

    # Submitted in March.
    await submit("A9", at(date(2025, 3, 3)), V1, "self")  # never reviewed: overdue from March
    await submit(
        "A10", at(date(2025, 3, 10)), V2, "agent", type_="only_child_honor", materials=HONOR
    )
    await review("A10", at(date(2025, 3, 12)), "approve", "village")  # in review at the township
    await submit("A1", at(date(2025, 3, 25)), V1, "agent")
    await submit("A11", at(date(2025, 3, 31), 23, 30), V1, "agent")  # March, Shanghai time
    # Submitted in April.
    await review("A1", at(date(2025, 4, 1)), "approve")  # issued after 7 days, late
    await submit("A2", at(date(2025, 4, 1)), V1, "self")
    await review("A2", at(date(2025, 4, 2)), "approve")  # 1 day, on time
    await submit("A3", at(date(2025, 4, 3)), V1, "agent")
    await review("A3", at(date(2025, 4, 3), 16), "reject")  # same day, on time
    await submit("A4", at(date(2025, 4, 7)), V2, "agent")
    await submit("A5", at(date(2025, 4, 8)), V2, "self")
    await submit("A6", at(date(2025, 4, 10)), V3, "agent")
    await review("A6", at(date(2025, 4, 11)), "reject")  # 1 day, on time
    await submit("A7", at(date(2025, 4, 14)), V3, "agent")  # never reviewed
    await submit("A13", at(date(2025, 4, 15)), V2, "agent")
    await review("A13", at(date(2025, 4, 16)), "return")  # off the statutory clock
    await submit("A8", at(date(2025, 4, 28)), V1, "agent", materials=("id_card",))  # incomplete
    assert apps["A8"]["status"] == "materials_required"
    await review("A4", at(date(2025, 4, 30), 23, 30), "approve")  # 23 days, late; still April
    # May.
    await review("A5", at(date(2025, 5, 1), 0, 30), "approve")  # issued just after April ended
    await submit("A12", at(date(2025, 5, 1), 0, 10), V3, "self")
    await review("A10", at(date(2025, 5, 6)), "approve")  # issued in May: open all April
    assert apps["A10"]["status"] == "issued"
    sd.clock.set(at(date(2025, 5, 20)))  # the day the reports are asked for
    return apps


# What the seeding gives for April 2025, per village (the shape ``direct`` counts in).
APRIL: dict[str, dict[str, Any]] = {
    "applications_received": {V1: 3, V2: 3, V3: 2},  # A2 A3 A8 | A4 A5 A13 | A6 A7
    "agents": {V1: 2, V2: 2, V3: 2},  # A3 A8 | A4 A13 | A6 A7
    "applications_issued": {V1: 2, V2: 1},  # A1 A2 | A4
    "applications_rejected": {V1: 1, V3: 1},  # A3 | A6
    "on_time": {V1: 2, V3: 1},  # A2 A3 | A6 (A1 and A4 closed late)
    "days": {V1: [0, 1, 7], V2: [23], V3: [1]},
    "applications_overdue": {V1: 2, V2: 2, V3: 1},  # A9 A11 | A5 A10 | A7, as of 30 April
}


def figure(data: dict[str, Any], code: str, region: str) -> Any:
    """An indicator for a region of any level from per-village figures: the value, and for a
    rate also its numerator and denominator."""

    def total(key: str) -> int:
        return sum(v for r, v in data.get(key, {}).items() if r.startswith(region))

    def rate(n: int, d: int) -> tuple[float | None, int, int]:
        return (round(n / d, 4) if d else None, n, d)

    days = [float(d) for r, ds in data.get("days", {}).items() if r.startswith(region) for d in ds]
    closed = total("applications_issued") + total("applications_rejected")
    match code:
        case "on_time_completion_rate":
            return rate(total("on_time"), closed)
        case "agent_submission_share":
            return rate(total("agents"), total("applications_received"))
        case "processing_days.median":
            return nearest_rank(days, 0.5)
        case "processing_days.p90":
            return nearest_rank(days, 0.9)
        case _:
            return total(code)


def shown(v: dict[str, Any], code: str) -> Any:
    """The same figure as the report shows it."""
    if code in ("on_time_completion_rate", "agent_submission_share"):
        return (v["value"], v["numerator"], v["denominator"])
    return v["value"]


async def direct(stack: InProcessStack, month: Month, as_of: date) -> dict[str, Any]:
    """Every figure per village, counted with plain SQL (the local days taken in Python)."""
    start = bindparam("start", month.start, type_=UtcDateTime)
    end = bindparam("end", month.end, type_=UtcDateTime)
    day_after = datetime.combine(as_of + timedelta(days=1), time(0), SHANGHAI).astimezone(UTC)
    out: dict[str, dict[str, Any]] = defaultdict(dict)
    async with stack.rt("registry").db.session() as s:
        received = await s.execute(
            text(
                "SELECT region_code, COUNT(*), SUM(CASE WHEN submitted_via = 'agent' "
                "THEN 1 ELSE 0 END) FROM applications "
                "WHERE created_at >= :start AND created_at < :end GROUP BY region_code"
            ).bindparams(start, end)
        )
        for region, n, agents in received:
            out["applications_received"][region] = n
            out["agents"][region] = agents
        closures = await s.execute(
            text(
                "SELECT a.region_code, l.to_status, l.at, a.created_at, a.due_date "
                "FROM application_actions l JOIN applications a ON a.id = l.application_id "
                "WHERE l.action IN ('approve', 'reject') "
                "AND l.to_status IN ('issued', 'rejected') AND l.at >= :start AND l.at < :end"
            )
            .bindparams(start, end)
            .columns(at=UtcDateTime, created_at=UtcDateTime)
        )
        for region, status, closed_at, created_at, due in closures:
            closed_on = closed_at.astimezone(SHANGHAI).date()
            due = due if isinstance(due, date) else date.fromisoformat(due)
            key = f"applications_{status}"
            out[key][region] = out[key].get(region, 0) + 1
            out["on_time"][region] = out["on_time"].get(region, 0) + (closed_on <= due)
            days = (closed_on - created_at.astimezone(SHANGHAI).date()).days
            out["days"][region] = sorted([*out["days"].get(region, []), days])
        overdue = await s.execute(
            text(
                "SELECT a.region_code, COUNT(*) FROM applications a "
                "JOIN application_actions l ON l.application_id = a.id "
                "WHERE l.id = (SELECT MAX(x.id) FROM application_actions x "
                "WHERE x.application_id = a.id AND x.at < :day_after) "
                "AND l.to_status IN ('submitted', 'in_review') AND a.due_date < :as_of "
                "GROUP BY a.region_code"
            ).bindparams(
                bindparam("day_after", day_after, type_=UtcDateTime), bindparam("as_of", as_of)
            )
        )
        for region, n in overdue:
            out["applications_overdue"][region] = n
    # Like the report, a village with none of a figure is absent from it.
    return {k: {r: n for r, n in v.items() if n} for k, v in out.items() if any(v.values())}


async def report(
    stack: InProcessStack, region: str, month: str, role: str = "county_officer", **params: str
) -> Any:
    return await stack.registry.get(
        "/api/v1/reports/indicators",
        params={"region": region, "month": month, **params},
        headers=stack.auth(role, COUNTY if role == "county_officer" else region[:9]),
    )


def assert_report(rep: dict[str, Any], data: dict[str, Any], checked: dict[str, Any]) -> None:
    """Every indicator of a report, its total and its breakdown, equals the figure from the
    seeding (``data``) and the one counted directly in the database (``checked``)."""
    region = rep["region"]
    below = {6: 9, 9: 12}.get(len(region))
    assert [v["code"] for v in rep["indicators"]] == [i.code for i in INDICATORS]
    for v in rep["indicators"]:
        code = v["code"]
        assert v["formula"] and v["name"]
        assert shown(v, code) == figure(data, code, region) == figure(checked, code, region), code
        parts = {
            r["region"]: r for r in v["by_region"]
        }  # only regions with something to count appear
        if below is None:
            assert parts == {}
            continue
        seeded_parts = {
            r[:below] for key in KINDS for r in data.get(key, {}) if r.startswith(region)
        }
        assert set(parts) <= seeded_parts, code
        for part in seeded_parts:
            want = figure(data, code, part)
            assert want == figure(checked, code, part), (code, part)
            if part in parts:
                assert shown(parts[part], code) == want, (code, part)
            else:  # absent: nothing of its kind there
                assert want in (0, None) or (isinstance(want, tuple) and want[2] == 0), code


# -- the tests --------------------------------------------------------------------------------


async def test_every_figure_matches_the_seeding_and_a_direct_count(stack: InProcessStack) -> None:
    apps = await seed(stack)
    april = Month(2025, 4)
    checked = await direct(stack, april, date(2025, 4, 30))
    assert checked == APRIL  # the plain count agrees with what the seeding did
    for region in (COUNTY, TOWNSHIP, OTHER_TOWNSHIP, V1, V2):
        r = await report(stack, region, "2025-04")
        assert r.status_code == 200, r.text
        rep = r.json()
        assert (rep["service"], rep["month"], rep["as_of"]) == ("registry", "2025-04", "2025-04-30")
        assert rep["level"] == {6: "county", 9: "township", 12: "village"}[len(region)]
        assert_report(rep, APRIL, checked)
    # The county's figures, spelled out.
    rep = (await report(stack, COUNTY, "2025-04")).json()
    values = {v["code"]: v for v in rep["indicators"]}
    assert values["applications_received"]["value"] == 8
    assert [(p["region"], p["value"]) for p in values["applications_received"]["by_region"]] == [
        (TOWNSHIP, 6),
        (OTHER_TOWNSHIP, 2),
    ]
    assert (values["applications_issued"]["value"], values["applications_rejected"]["value"]) == (
        3,
        2,
    )
    assert shown(values["on_time_completion_rate"], "on_time_completion_rate") == (0.6, 3, 2 + 3)
    assert (values["processing_days.median"]["value"], values["processing_days.p90"]["value"]) == (
        1,
        23,
    )
    assert values["processing_days.median"]["denominator"] == 5
    assert values["applications_overdue"]["value"] == 5
    assert shown(values["agent_submission_share"], "agent_submission_share") == (0.75, 6, 8)

    # March: a flow month with the Shanghai day boundary (A11 at 23:30 on the 31st).
    march = await direct(stack, Month(2025, 3), date(2025, 3, 31))
    rep = (await report(stack, COUNTY, "2025-03")).json()
    assert rep["as_of"] == "2025-03-31"
    values = {v["code"]: v["value"] for v in rep["indicators"]}
    assert values["applications_received"] == 4  # A9 A10 A1 A11
    assert values["applications_overdue"] == 2  # A9, and A1 (due 28 March, issued 1 April)
    assert values["applications_issued"] == 0
    assert_report(rep, march, march)

    # May, the current month: overdue is taken today (20 May) and agrees with the queue.
    may = await direct(stack, Month(2025, 5), date(2025, 5, 20))
    rep = (await report(stack, COUNTY, "2025-05")).json()
    assert rep["as_of"] == "2025-05-20"
    values = {v["code"]: v["value"] for v in rep["indicators"]}
    assert values["applications_received"] == 1  # A12, just after midnight on 1 May
    assert values["applications_issued"] == 2  # A5 (00:30 on 1 May) and A10
    assert values["processing_days.p90"] == 57  # A10: 10 March to 6 May
    assert values["applications_overdue"] == 4  # A7 A9 A11 A12
    assert_report(rep, may, may)
    queue = await stack.registry.get(
        "/api/v1/applications",
        params={"overdue": "true", "region": COUNTY},
        headers=stack.auth("county_officer", COUNTY),
    )
    assert queue.status_code == 200, queue.text
    assert {a["id"] for a in queue.json()["items"]} == {
        apps[n]["id"] for n in ("A7", "A9", "A11", "A12")
    }


async def test_empty_month_csv_and_refusals(stack: InProcessStack) -> None:
    await seed(stack)
    # A month with nothing in it: counts are 0, rates and quantiles null, nothing below.
    rep = (await report(stack, COUNTY, "2025-01")).json()
    for v in rep["indicators"]:
        if v["unit"] == "count":
            assert v["value"] == 0, v["code"]
        else:
            assert v["value"] is None, v["code"]
        assert v["by_region"] == [], v["code"]

    # CSV: one row per indicator and region (the report's own, then each one below it).
    r = await report(stack, TOWNSHIP, "2025-04", format="csv")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text.lstrip("\ufeff"))))
    as_json = (await report(stack, TOWNSHIP, "2025-04")).json()
    wanted = [
        (v["code"], region)
        for v in as_json["indicators"]
        for region in [TOWNSHIP, *(p["region"] for p in v["by_region"])]
    ]
    assert [(row["indicator"], row["region"]) for row in rows] == wanted
    assert len(set(wanted)) == len(wanted)
    received = {
        row["region"]: row["value"] for row in rows if row["indicator"] == "applications_received"
    }
    assert received == {TOWNSHIP: "6", V1: "3", V2: "3"}
    share = next(
        r for r in rows if r["indicator"] == "agent_submission_share" and r["region"] == V1
    )
    assert (share["value"], share["numerator"], share["denominator"]) == ("0.6667", "2", "3")

    # A township officer may not look at the other township; a month not begun is refused.
    r = await stack.registry.get(
        "/api/v1/reports/indicators",
        params={"region": OTHER_TOWNSHIP, "month": "2025-04"},
        headers=stack.auth("township_officer", TOWNSHIP),
    )
    assert r.status_code == 403, r.text
    assert r.json()["code"] == "out_of_region"
    r = await report(stack, COUNTY, "2025-06")  # the clock stands at 20 May 2025
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "validation_failed"
    # Residents and village workers get no reports.
    for headers in (
        stack.auth("resident", person_id="p"),
        stack.auth("village_worker", VILLAGE),
    ):
        r = await stack.registry.get(
            "/api/v1/reports/indicators", params={"month": "2025-04"}, headers=headers
        )
        assert r.status_code == 403, r.text
