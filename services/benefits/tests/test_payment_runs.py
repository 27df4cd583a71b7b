"""Payment runs over HTTP on SQLite and PostgreSQL with a real broker: draft (set-based),
approve (maker-checker), export (ledger, bank file), reconcile (return file).

Enrollments and accounts are seeded straight into benefits' tables: their lifecycle is tested
elsewhere; here it is what a run makes of them.
"""

from __future__ import annotations

import asyncio
import csv
import io
import uuid
from datetime import date
from typing import Any

from sqlalchemy import select, update

from services.benefits.domain import payments as rules
from services.benefits.models import (
    Enrollment,
    LedgerEntry,
    PayeeAccount,
    PaymentLine,
    PersonFacts,
)
from services.benefits.payments import ACCOUNT_CONTEXT
from shared.clock import FixedClock
from tests.support import OTHER_TOWNSHIP, TOWNSHIP, VILLAGE, InProcessStack

RURAL = "rural_reward_assistance"
CHILDCARE = "childcare_subsidy"
ASSISTED = "assisted_reproduction_reimbursement"
DISTRICT = "330102"
OTHER_VILLAGE = "330102002001"  # in OTHER_TOWNSHIP
PROBLEM = "application/problem+json"


def problem(r: Any, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    body = r.json()
    assert body["code"] == code, body
    return body  # type: ignore[no-any-return]


# -- seeding -----------------------------------------------------------------------------------


async def seed_person(
    stack: InProcessStack, region: str = VILLAGE, person_id: str | None = None
) -> str:
    person_id = person_id or str(uuid.uuid4())
    async with stack.rt("benefits").db.session() as s:
        s.add(
            PersonFacts(
                person_id=person_id,
                sex="female",
                # Young and urban: no sweep founds anything for them behind the test's back.
                birth_date=date(1990, 1, 15),
                region_code=region,
                household_type="urban",
            )
        )
        await s.commit()
    return person_id


async def seed_enrollment(
    stack: InProcessStack,
    *,
    pays_from: str,
    program: str = RURAL,
    region: str = VILLAGE,
    person_id: str | None = None,
    payee_id: str | None = None,
    pays_until: str | None = None,
    settled_through: str | None = None,
    status: str = "active",
    confirmed: bool = True,
    case: str = "",
    account: bool = True,
) -> Enrollment:
    """An enrollment (and, unless ``account`` is False, an account for its payee)."""
    person_id = person_id or await seed_person(stack, region)
    payee_id = payee_id or person_id
    e = Enrollment(
        id=str(uuid.uuid4()),
        program=program,
        person_id=person_id,
        payee_id=payee_id,
        case=case,
        status=status,
        region_code=region,
        source="certificate",
        source_ref=str(uuid.uuid4()),
        starts_on=date(int(pays_from[:4]), int(pays_from[5:]), 1),
        pays_from=pays_from,
        pays_until=pays_until,
        settled_through=settled_through,
        prepared_by="system",
        confirmed_by="officer-c" if confirmed else None,
    )
    async with stack.rt("benefits").db.session() as s:
        s.add(e)
        await s.commit()
    if account:
        await seed_account(stack, payee_id)
    return e


def account_no_of(person_id: str) -> str:
    return "62284800" + str(uuid.UUID(person_id).int)[:11]


async def seed_account(stack: InProcessStack, person_id: str, name: str = "王芳") -> None:
    rt = stack.rt("benefits")
    no = account_no_of(person_id)
    async with rt.db.session() as s:
        if await s.get(PayeeAccount, person_id) is None:
            s.add(
                PayeeAccount(
                    person_id=person_id,
                    account_name=name,
                    bank_name="浙江农商银行",
                    account_no_enc=rt.cipher.encrypt(no, context=ACCOUNT_CONTEXT),
                    account_no_masked=rules.mask_account_no(no),
                    updated_by="test",
                )
            )
            await s.commit()


async def enrollment(stack: InProcessStack, enrollment_id: str) -> Enrollment:
    async with stack.rt("benefits").db.session() as s:
        e = await s.get(Enrollment, enrollment_id)
        assert e is not None
        return e


async def set_enrollment(stack: InProcessStack, enrollment_id: str, **values: Any) -> None:
    async with stack.rt("benefits").db.session() as s:
        await s.execute(update(Enrollment).where(Enrollment.id == enrollment_id).values(**values))
        await s.commit()


async def lines_of(stack: InProcessStack, run_id: str) -> list[PaymentLine]:
    async with stack.rt("benefits").db.session() as s:
        rows = await s.scalars(
            select(PaymentLine).where(PaymentLine.run_id == run_id).order_by(PaymentLine.line_no)
        )
        return list(rows.all())


async def ledger_of(stack: InProcessStack, enrollment_id: str) -> list[LedgerEntry]:
    async with stack.rt("benefits").db.session() as s:
        rows = await s.scalars(
            select(LedgerEntry)
            .where(LedgerEntry.enrollment_id == enrollment_id)
            .order_by(LedgerEntry.id)
        )
        return list(rows.all())


# -- the flow over HTTP ------------------------------------------------------------------------


def maker(stack: InProcessStack, region: str = DISTRICT) -> dict[str, str]:
    return stack.auth("county_officer", region, sub="officer-a")


def checker(stack: InProcessStack, region: str = DISTRICT) -> dict[str, str]:
    return stack.auth("county_officer", region, sub="officer-b")


async def draft(
    stack: InProcessStack,
    period: str,
    program: str = RURAL,
    region: str = DISTRICT,
    headers: dict[str, str] | None = None,
    expect: int = 201,
) -> dict[str, Any]:
    r = await stack.benefits.post(
        "/api/v1/payment-runs",
        json={"program": program, "period": period, "region": region},
        headers=headers or maker(stack),
    )
    assert r.status_code == expect, r.text
    return r.json()  # type: ignore[no-any-return]


async def approve(stack: InProcessStack, run: dict[str, Any]) -> dict[str, Any]:
    r = await stack.benefits.post(
        f"/api/v1/payment-runs/{run['id']}/approve",
        json={"version": run["version"]},
        headers=checker(stack),
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "approved"
    return r.json()  # type: ignore[no-any-return]


async def export(stack: InProcessStack, run: dict[str, Any]) -> dict[str, Any]:
    r = await stack.benefits.post(
        f"/api/v1/payment-runs/{run['id']}/export",
        json={"version": run["version"]},
        headers=maker(stack),
    )
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


async def bank_file(stack: InProcessStack, run: dict[str, Any]) -> tuple[list[list[str]], Any]:
    r = await stack.benefits.get(
        f"/api/v1/payment-runs/{run['id']}/disbursement-file", headers=maker(stack)
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    return list(csv.reader(io.StringIO(r.content.decode("utf-8"), newline=""))), r.headers


async def pay_run(
    stack: InProcessStack, period: str, program: str = RURAL, region: str = DISTRICT
) -> dict[str, Any]:
    """Draft, approve and export a run."""
    return await export(stack, await approve(stack, await draft(stack, period, program, region)))


def return_file(*rows: tuple[str, str, str]) -> str:
    out = "reference,result,reason\r\n"
    return out + "".join(f"{a},{b},{c}\r\n" for a, b, c in rows)


async def reconcile(
    stack: InProcessStack, run: dict[str, Any], body: str, expect: int = 200
) -> dict[str, Any]:
    r = await stack.benefits.post(
        f"/api/v1/payment-runs/{run['id']}/reconciliation",
        content=body.encode("utf-8"),
        headers={**maker(stack), "Content-Type": "text/csv"},
    )
    assert r.status_code == expect, r.text
    return r.json()  # type: ignore[no-any-return]


async def all_paid(stack: InProcessStack, run: dict[str, Any]) -> dict[str, Any]:
    rows, _ = await bank_file(stack, run)
    return await reconcile(stack, run, return_file(*((r[0], "paid", "") for r in rows[1:-1])))


def months(line: PaymentLine) -> tuple[str, str, int, int]:
    return line.period_from, line.period_until, line.months, line.amount_fen


# -- drafting ----------------------------------------------------------------------------------


async def test_the_same_run_twice_is_one_set_of_lines(stack: InProcessStack) -> None:
    for _ in range(3):
        await seed_enrollment(stack, pays_from="2026-01", settled_through="2025-12")
    first = await draft(stack, "2026-01")
    assert (first["status"], first["line_count"], first["total_fen"]) == ("draft", 3, 36000)
    assert first["code"] == "PR-RRA-2026-01-330102"
    again = await draft(stack, "2026-01", expect=200)
    assert again["id"] == first["id"]
    # With an Idempotency-Key, by another officer: still the one run.
    r = await stack.benefits.post(
        "/api/v1/payment-runs",
        json={"program": RURAL, "period": "2026-01", "region": DISTRICT},
        headers={**checker(stack), "Idempotency-Key": "k-1"},
    )
    assert (r.status_code, r.json()["id"]) == (200, first["id"])
    assert len(await lines_of(stack, first["id"])) == 3
    assert await stack.count_rows("benefits", "payment_runs") == 1


async def test_an_effective_dated_raise_across_a_run(stack: InProcessStack) -> None:
    """Region 330102 paid 80 until 2013-12 and 120 from 2014-01: back pay 80 + 120 + 120."""
    e = await seed_enrollment(stack, pays_from="2013-12")
    run = await draft(stack, "2014-02")
    [line] = await lines_of(stack, run["id"])
    assert months(line) == ("2013-12", "2014-02", 3, 8000 + 12000 + 12000)
    assert (line.enrollment_id, line.status, line.settled_before) == (e.id, "pending", None)
    assert (run["line_count"], run["total_fen"]) == (1, 32000)


async def test_back_pay_for_late_confirmation_and_after_suspension(stack: InProcessStack) -> None:
    late = await seed_enrollment(stack, pays_from="2025-10", confirmed=False)
    paid = await seed_enrollment(stack, pays_from="2025-10", settled_through="2025-10")
    paused = await seed_enrollment(
        stack, pays_from="2025-10", settled_through="2025-10", status="suspended"
    )
    nov = await draft(stack, "2025-11")
    # Neither the unconfirmed nor the suspended enrollment is paid.
    assert [line.enrollment_id for line in await lines_of(stack, nov["id"])] == [paid.id]
    await export(stack, await approve(stack, nov))

    await set_enrollment(stack, late.id, confirmed_by="officer-c")
    await set_enrollment(stack, paused.id, status="active")
    dec = await draft(stack, "2025-12")
    by_enrollment = {line.enrollment_id: months(line) for line in await lines_of(stack, dec["id"])}
    assert by_enrollment == {
        late.id: ("2025-10", "2025-12", 3, 36000),  # every month since pays_from
        paused.id: ("2025-11", "2025-12", 2, 24000),  # the months it was suspended
        paid.id: ("2025-12", "2025-12", 1, 12000),
    }


async def test_a_yearly_program_is_run_in_its_pay_month_only(stack: InProcessStack) -> None:
    """Childcare subsidy: 3,600 a year, paid once a year in December to the parent's account."""
    mother = await seed_person(stack)
    child = await seed_enrollment(
        stack, program=CHILDCARE, pays_from="2025-03", pays_until="2027-08", payee_id=mother
    )
    body = problem(
        await stack.benefits.post(
            "/api/v1/payment-runs",
            json={"program": CHILDCARE, "period": "2025-06", "region": DISTRICT},
            headers=maker(stack),
        ),
        422,
        "not_pay_month",
    )
    assert "12" in body["detail"]
    run = await draft(stack, "2025-12", program=CHILDCARE)
    [line] = await lines_of(stack, run["id"])
    assert months(line) == ("2025-03", "2025-12", 10, 300000)
    assert (line.person_id, line.payee_id) == (child.person_id, mother)
    assert run["code"] == "PR-CS-2025-12-330102"


async def test_periods_programs_and_open_runs_are_checked(stack: InProcessStack) -> None:
    stack.rt("benefits").clock = FixedClock(date(2026, 6, 30))
    future = "2026-07"
    problem(
        await stack.benefits.post(
            "/api/v1/payment-runs",
            json={"program": RURAL, "period": future, "region": DISTRICT},
            headers=maker(stack),
        ),
        422,
        "period_in_future",
    )
    for bad in ({"program": "nope"}, {"period": "2026-13"}, {"region": "33x"}):
        r = await stack.benefits.post(
            "/api/v1/payment-runs",
            json={"program": RURAL, "period": "2026-01", "region": DISTRICT, **bad},
            headers=maker(stack),
        )
        problem(r, 422, "validation_failed")
    township = await draft(stack, "2026-01", region=TOWNSHIP)
    # Another period over the same villages while that run is open: refused.
    for region in (DISTRICT, TOWNSHIP, VILLAGE):
        r = await stack.benefits.post(
            "/api/v1/payment-runs",
            json={"program": RURAL, "period": "2026-02", "region": region},
            headers=maker(stack),
        )
        assert township["code"] in problem(r, 409, "run_open")["detail"]
    # The same period for the whole district would pay the township twice: refused too.
    problem(
        await stack.benefits.post(
            "/api/v1/payment-runs",
            json={"program": RURAL, "period": "2026-01", "region": DISTRICT},
            headers=maker(stack),
        ),
        409,
        "run_open",
    )
    # Another township, or another program, is free.
    await draft(stack, "2026-02", region=OTHER_TOWNSHIP)
    await draft(stack, "2026-02", program="special_assistance")
    # Once exported, the next period may be drafted.
    await export(stack, await approve(stack, township))
    await draft(stack, "2026-02", region=TOWNSHIP)


async def test_regions_and_roles(stack: InProcessStack) -> None:
    mine = await seed_enrollment(stack, pays_from="2026-01")
    await seed_enrollment(stack, pays_from="2026-01", region=OTHER_VILLAGE)
    other_officer = stack.auth("township_officer", OTHER_TOWNSHIP, sub="officer-x")
    problem(
        await stack.benefits.post(
            "/api/v1/payment-runs",
            json={"program": RURAL, "period": "2026-01", "region": TOWNSHIP},
            headers=other_officer,
        ),
        403,
        "out_of_region",
    )
    for role in ("resident", "village_worker", "village_agent", "admin"):
        r = await stack.benefits.post(
            "/api/v1/payment-runs",
            json={"program": RURAL, "period": "2026-01", "region": TOWNSHIP},
            headers=stack.auth(role, TOWNSHIP, person_id="p-1"),
        )
        problem(r, 403, "forbidden")
    run = await draft(stack, "2026-01", region=TOWNSHIP, headers=maker(stack, TOWNSHIP))
    # Only the township's enrollment: the other township's is not in its region.
    assert [line.enrollment_id for line in await lines_of(stack, run["id"])] == [mine.id]
    url = f"/api/v1/payment-runs/{run['id']}"
    problem(await stack.benefits.get(url, headers=other_officer), 403, "out_of_region")
    problem(
        await stack.benefits.post(
            f"{url}/approve", json={"version": run["version"]}, headers=other_officer
        ),
        403,
        "out_of_region",
    )
    listed = await stack.benefits.get("/api/v1/payment-runs", headers=other_officer)
    assert listed.json() == {"items": [], "next_cursor": None}
    for headers in (maker(stack), stack.auth("admin")):
        r = await stack.benefits.get(url, headers=headers)
        assert (r.status_code, r.headers["etag"]) == (200, '"1"'), r.text


async def test_maker_checker_and_guarded_transitions(stack: InProcessStack) -> None:
    await seed_enrollment(stack, pays_from="2026-01")
    run = await draft(stack, "2026-01")
    url = f"/api/v1/payment-runs/{run['id']}"
    body = problem(
        await stack.benefits.post(
            f"{url}/approve", json={"version": run["version"]}, headers=maker(stack)
        ),
        403,
        "maker_checker",
    )
    assert "另一名" in body["detail"]
    problem(
        await stack.benefits.post(f"{url}/export", json={"version": 1}, headers=maker(stack)),
        409,
        "invalid_transition",
    )
    problem(
        await stack.benefits.post(f"{url}/approve", json={"version": 7}, headers=checker(stack)),
        409,
        "version_conflict",
    )
    problem(
        await stack.benefits.post(
            f"{url}/approve", json={}, headers={**checker(stack), "If-Match": '"7"'}
        ),
        412,
        "precondition_failed",
    )
    problem(
        await stack.benefits.post(f"{url}/approve", json={}, headers=checker(stack)),
        428,
        "version_required",
    )
    approved = await approve(stack, run)
    assert (approved["approved_by"], approved["version"]) == ("officer-b", 2)
    problem(
        await stack.benefits.post(f"{url}/approve", json={"version": 2}, headers=checker(stack)),
        409,
        "invalid_transition",
    )
    problem(
        await stack.benefits.get(f"{url}/disbursement-file", headers=maker(stack)),
        409,
        "invalid_transition",
    )
    exported = await export(stack, approved)
    assert (exported["status"], exported["exported_by"]) == ("exported", "officer-a")
    problem(
        await stack.benefits.post(f"{url}/export", json={"version": 3}, headers=maker(stack)),
        409,
        "invalid_transition",
    )


# -- export: ledger, settlement, the bank file ---------------------------------------------------


async def test_export_writes_the_ledger_and_the_bank_file(stack: InProcessStack) -> None:
    a = await seed_enrollment(stack, pays_from="2025-11", settled_through="2025-12")
    b = await seed_enrollment(stack, pays_from="2025-11")
    run = await draft(stack, "2026-01")
    assert (run["line_count"], run["total_fen"]) == (2, 12000 + 36000)
    # The snapshot: an account changed after the draft is not what this run pays.
    async with stack.rt("benefits").db.session() as s:
        await s.execute(
            update(PayeeAccount)
            .where(PayeeAccount.person_id == a.payee_id)
            .values(account_name="改名")
        )
        await s.commit()
    run = await export(stack, await approve(stack, run))
    assert ((await enrollment(stack, a.id)).settled_through) == "2026-01"
    assert ((await enrollment(stack, b.id)).settled_through) == "2026-01"
    [entry] = await ledger_of(stack, b.id)
    assert (entry.kind, entry.period_from, entry.period_until, entry.amount_fen) == (
        "payment",
        "2025-11",
        "2026-01",
        36000,
    )
    assert entry.reason == rules.payment_reason(
        "农村部分计划生育家庭奖励扶助", "2025-11", "2026-01", 3
    )
    assert entry.run_id == run["id"] and entry.line_id is not None

    rows, headers = await bank_file(stack, run)
    assert rows[0] == ["reference", "account_no", "account_name", "amount"]
    assert rows[-1] == ["TOTAL", "2", "", "480.00"]
    assert (headers["x-control-line-count"], headers["x-control-total-fen"]) == ("2", "48000")
    by_account = {r[1]: r for r in rows[1:-1]}
    assert by_account[account_no_of(a.payee_id)][1:] == [
        account_no_of(a.payee_id),
        "王芳",
        "120.00",
    ]
    assert by_account[account_no_of(b.payee_id)][3] == "360.00"
    assert sorted(r[0] for r in rows[1:-1]) == [
        f"{run['code']}-000001",
        f"{run['code']}-000002",
    ]
    lines = await stack.benefits.get(
        f"/api/v1/payment-runs/{run['id']}/lines", headers=maker(stack)
    )
    assert lines.status_code == 200, lines.text
    for item in lines.json()["items"]:
        assert item["account_no_masked"].startswith("*") and item["status"] == "exported"
        assert item["account_no_masked"][-4:] in {
            account_no_of(a.payee_id)[-4:],
            account_no_of(b.payee_id)[-4:],
        }


async def test_held_lines_without_an_account(stack: InProcessStack) -> None:
    has = await seed_enrollment(stack, pays_from="2026-01")
    lacks = await seed_enrollment(stack, pays_from="2026-01", account=False)
    run = await draft(stack, "2026-01")
    assert (run["line_count"], run["total_fen"], run["held_count"]) == (1, 12000, 1)
    held = [line for line in await lines_of(stack, run["id"]) if line.status == "held"]
    assert [(line.enrollment_id, line.amount_fen) for line in held] == [(lacks.id, 12000)]
    run = await export(stack, await approve(stack, run))
    rows, _ = await bank_file(stack, run)
    assert len(rows) == 3 and rows[-1] == ["TOTAL", "1", "", "120.00"]
    assert (await enrollment(stack, lacks.id)).settled_through is None  # still owed
    assert await ledger_of(stack, lacks.id) == []
    await all_paid(stack, run)

    # The account arrives: the next run pays both months.
    r = await stack.benefits.put(
        f"/api/v1/persons/{lacks.payee_id}/payee-account",
        json={"account_name": "李四", "bank_name": "农业银行", "account_no": "622848001234567890"},
        headers=stack.auth("village_worker", VILLAGE),
    )
    assert r.status_code == 201, r.text
    feb = await draft(stack, "2026-02")
    got = {line.enrollment_id: months(line) for line in await lines_of(stack, feb["id"])}
    assert got == {
        lacks.id: ("2026-01", "2026-02", 2, 24000),
        has.id: ("2026-02", "2026-02", 1, 12000),
    }
    assert feb["held_count"] == 0


async def test_death_paid_through_its_month_and_nothing_after(stack: InProcessStack) -> None:
    # Recorded before the draft, through either column an ending may have written.
    by_until = await seed_enrollment(
        stack, pays_from="2025-01", settled_through="2025-12", status="ended", pays_until="2026-01"
    )
    by_ending = await seed_enrollment(stack, pays_from="2025-01", settled_through="2025-12")
    await set_enrollment(stack, by_ending.id, status="ended", ends_after="2026-01")
    # Recorded after the draft, while the run awaits approval.
    late = await seed_enrollment(stack, pays_from="2025-01", settled_through="2025-12")
    run = await draft(stack, "2026-03")
    got = {line.enrollment_id: months(line) for line in await lines_of(stack, run["id"])}
    assert got == {
        by_until.id: ("2026-01", "2026-01", 1, 12000),
        by_ending.id: ("2026-01", "2026-01", 1, 12000),
        late.id: ("2026-01", "2026-03", 3, 36000),
    }
    await set_enrollment(stack, late.id, status="ended", pays_until="2026-01", ends_after="2026-01")
    run = await export(stack, await approve(stack, run))
    # The snapshot is paid as approved, and the months after the death are to be recovered.
    rows, _ = await bank_file(stack, run)
    assert rows[-1] == ["TOTAL", "3", "", "600.00"]
    entries = [
        (e.kind, e.period_from, e.period_until, e.amount_fen)
        for e in await ledger_of(stack, late.id)
    ]
    assert entries == [
        ("payment", "2026-01", "2026-03", 36000),
        ("correction", "2026-02", "2026-03", -24000),
    ]
    [_, correction] = await ledger_of(stack, late.id)
    assert correction.reason == rules.correction_reason(
        "农村部分计划生育家庭奖励扶助", "2026-02", "2026-03"
    )
    assert sum(e.amount_fen for e in await ledger_of(stack, late.id)) == 12000  # one month
    await all_paid(stack, run)
    after = await draft(stack, "2026-04")
    assert (after["line_count"], after["held_count"]) == (0, 0)
    # An empty run has nothing to reconcile once exported.
    after = await export(stack, await approve(stack, after))
    assert after["status"] == "reconciled"


async def test_runs_are_listed_by_period_program_and_status(stack: InProcessStack) -> None:
    await seed_enrollment(stack, pays_from="2025-12")
    first = await draft(stack, "2025-12")
    await export(stack, await approve(stack, first))
    r = await stack.benefits.post(
        "/api/v1/payment-runs",
        json={"program": RURAL, "period": "2026-01", "region": DISTRICT},
        headers={**maker(stack), "Idempotency-Key": "jan"},
    )
    assert r.status_code == 201, r.text
    replay = await stack.benefits.post(
        "/api/v1/payment-runs",
        json={"program": RURAL, "period": "2026-01", "region": DISTRICT},
        headers={**maker(stack), "Idempotency-Key": "jan"},
    )
    assert (replay.status_code, replay.headers["idempotent-replayed"]) == (201, "true")
    assert replay.json()["id"] == r.json()["id"]
    await draft(stack, "2026-01", program="special_assistance", region=OTHER_TOWNSHIP)

    async def listed(**params: Any) -> list[str]:
        out: list[str] = []
        cursor = None
        while True:
            q = {**params, "limit": 1, **({"cursor": cursor} if cursor else {})}
            page = await stack.benefits.get("/api/v1/payment-runs", params=q, headers=maker(stack))
            assert page.status_code == 200, page.text
            out += [f"{i['period']} {i['region']} {i['status']}" for i in page.json()["items"]]
            cursor = page.json()["next_cursor"]
            if cursor is None:
                return out

    assert await listed() == [
        "2026-01 330102 draft",
        "2026-01 330102002 draft",
        "2025-12 330102 exported",
    ]
    assert await listed(status="exported") == ["2025-12 330102 exported"]
    assert await listed(period="2026-01", program=RURAL) == ["2026-01 330102 draft"]
    assert await listed(program=CHILDCARE) == []
    township = await stack.benefits.get(
        "/api/v1/payment-runs", headers=stack.auth("township_officer", OTHER_TOWNSHIP)
    )
    assert [i["region"] for i in township.json()["items"]] == [OTHER_TOWNSHIP]
    bad = await stack.benefits.get(
        "/api/v1/payment-runs", params={"cursor": "!!"}, headers=maker(stack)
    )
    problem(bad, 422, "validation_failed")


async def test_concurrent_drafts_and_approvals_make_one_of_each(stack: InProcessStack) -> None:
    for _ in range(5):
        await seed_enrollment(stack, pays_from="2026-01")
    officers = [stack.auth("county_officer", DISTRICT, sub=f"officer-{i}") for i in range(4)]
    responses = await asyncio.gather(
        *(
            stack.benefits.post(
                "/api/v1/payment-runs",
                json={"program": RURAL, "period": "2026-01", "region": DISTRICT},
                headers=h,
            )
            for h in officers
        )
    )
    assert sorted(r.status_code for r in responses) == [200, 200, 200, 201], [
        r.text for r in responses
    ]
    [run_id] = {r.json()["id"] for r in responses}
    assert len(await lines_of(stack, run_id)) == 5
    assert await stack.count_rows("benefits", "payment_lines") == 5
    maker_sub = next(r.json()["prepared_by"] for r in responses if r.status_code == 201)
    checkers = [h for i, h in enumerate(officers) if f"officer-{i}" != maker_sub]
    approvals = await asyncio.gather(
        *(
            stack.benefits.post(
                f"/api/v1/payment-runs/{run_id}/approve", json={"version": 1}, headers=h
            )
            for h in checkers
        )
    )
    assert sorted(r.status_code for r in approvals) == [200, 409, 409], [r.text for r in approvals]
