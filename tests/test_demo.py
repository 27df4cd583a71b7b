"""The demo county (issue 8): seeded through the APIs of the running stack, it holds what the
dashboard and the README walk-through show: every application state, enrollments founded by
the issued certificates, a month paid and reconciled, visits done and tasks due."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from services.benefits.models import Enrollment, PaymentLine
from services.registry.models import Application, Person
from shared.demo import COUNTY, PROGRAM, seed_county
from tests.support import InProcessStack


async def _count(stack: InProcessStack, service: str, query: Any) -> int:
    async with stack.rt(service).db.session() as s:
        return int((await s.execute(query)).scalar_one())


async def test_a_small_county_seeds_every_state_and_twice_is_once(stack: InProcessStack) -> None:
    summary = await seed_county(stack.clients, stack.settings, 120, None, wait_timeout=30)
    assert not summary.skipped
    made = summary.made
    assert (
        made["residents"]
        == await _count(stack, "registry", select(func.count()).select_from(Person))
        - made["births"]
    )
    assert made["families"] > 0 and made["births"] > 0

    # Every state an application can be in after its reviews (revoked is an officer's later
    # act), seen by the county officer through the API; issued ones counted below.
    officer = stack.auth("county_officer", COUNTY)
    for status in ("submitted", "in_review", "materials_required", "returned", "rejected"):
        r = await stack.registry.get(
            "/api/v1/applications", params={"status": status}, headers=officer
        )
        assert r.status_code == 200, r.text
        assert r.json()["items"], status
    issued = await _count(
        stack,
        "registry",
        select(func.count())
        .select_from(Application)
        .where(Application.status == "issued", Application.type == "only_child_honor"),
    )
    # Each issued honor certificate founded an enrollment for each parent.
    enrollments = await _count(
        stack,
        "benefits",
        select(func.count()).select_from(Enrollment).where(Enrollment.program == PROGRAM),
    )
    assert issued > 0 and enrollments == 2 * issued

    # The month's run was reconciled: paid lines, as many as the summary says.
    r = await stack.benefits.get("/api/v1/payment-runs", headers=officer)
    assert r.status_code == 200, r.text
    [run] = r.json()["items"]
    assert run["status"] == "reconciled" and run["paid_count"] > 0
    paid = await _count(
        stack,
        "benefits",
        select(func.count()).select_from(PaymentLine).where(PaymentLine.status == "paid"),
    )
    assert paid == run["paid_count"] == made["payment lines paid"]

    # Visits: some done, some still due or overdue; appointments attended.
    r = await stack.visits.get(
        "/api/v1/tasks", params={"state": "done", "limit": 200}, headers=officer
    )
    assert r.status_code == 200, r.text
    assert len(r.json()["items"]) == made["visits done"] > 0
    r = await stack.visits.get(
        "/api/v1/tasks", params={"state": "due,overdue,scheduled", "limit": 200}, headers=officer
    )
    assert r.json()["items"]
    assert made["appointments attended"] > 0

    # The registry's figures for the month show the applications received and issued.
    r = await stack.registry.get(
        "/api/v1/reports/indicators", params={"region": COUNTY}, headers=officer
    )
    assert r.status_code == 200, r.text
    values = {v["code"]: v["value"] for v in r.json()["indicators"]}
    assert values["applications_received"] > 0 and values["applications_issued"] > 0

    # Seeding the same county again finds it and leaves it as it is.
    again = await seed_county(stack.clients, stack.settings, 120, None)
    assert again.skipped and not again.made
    assert await _count(stack, "registry", select(func.count()).select_from(Person)) == (
        made["residents"] + made["births"]
    )
