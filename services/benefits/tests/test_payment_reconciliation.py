"""The bank's return file on SQLite and PostgreSQL: paid and failed lines, failed months owed
again and paid exactly once, all-or-nothing files, idempotent re-uploads, claims, events."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select

from services.benefits.domain import payments as rules
from services.benefits.models import ChildLink, Claim, LedgerEntry
from services.benefits.tests.test_payment_runs import (
    ASSISTED,
    CHILDCARE,
    all_paid,
    approve,
    bank_file,
    draft,
    enrollment,
    export,
    ledger_of,
    lines_of,
    maker,
    months,
    pay_run,
    problem,
    reconcile,
    return_file,
    seed_account,
    seed_enrollment,
    seed_person,
    set_enrollment,
)
from tests.support import VILLAGE, InProcessStack, published

DISBURSED = "lingju.benefits.payment.disbursed"
FAILED = "lingju.benefits.payment.failed"


def refs(rows: list[list[str]]) -> dict[str, str]:
    """account number -> reference, from a bank file."""
    return {r[1]: r[0] for r in rows[1:-1]}


async def net(stack: InProcessStack, enrollment_id: str) -> int:
    return sum(e.amount_fen for e in await ledger_of(stack, enrollment_id))


async def test_a_failed_line_is_paid_in_the_next_run_exactly_once(stack: InProcessStack) -> None:
    a = await seed_enrollment(stack, pays_from="2026-01", settled_through="2025-12")
    b = await seed_enrollment(stack, pays_from="2026-01", settled_through="2025-12")
    jan = await pay_run(stack, "2026-01")
    rows, _ = await bank_file(stack, jan)
    by_line = {line.enrollment_id: line for line in await lines_of(stack, jan["id"])}
    ref_a = rules.line_reference(jan["code"], by_line[a.id].line_no)
    ref_b = rules.line_reference(jan["code"], by_line[b.id].line_no)
    assert {ref_a, ref_b} == {r[0] for r in rows[1:-1]}
    body = return_file((ref_a, "paid", ""), (ref_b, "failed", "账户已销户"))
    out = await reconcile(stack, jan, body)
    assert (out["applied_paid"], out["applied_failed"], out["unchanged"]) == (1, 1, 0)
    assert {k: out["run"][k] for k in ("status", "paid_count", "paid_fen", "failed_count")} == {
        "status": "reconciled",
        "paid_count": 1,
        "paid_fen": 12000,
        "failed_count": 1,
    }
    assert out["run"]["failed_fen"] == 12000
    # b's month is owed again; the ledger shows it sent and returned, with the bank's reason.
    assert (await enrollment(stack, b.id)).settled_through == "2025-12"
    assert (await enrollment(stack, a.id)).settled_through == "2026-01"
    [paid, reversal] = await ledger_of(stack, b.id)
    assert (paid.kind, paid.amount_fen, reversal.kind, reversal.amount_fen) == (
        "payment",
        12000,
        "reversal",
        -12000,
    )
    assert reversal.reason == rules.reversal_reason(
        "农村部分计划生育家庭奖励扶助", "2026-01", "2026-01", "账户已销户"
    )
    [failed_line] = [
        line for line in await lines_of(stack, jan["id"]) if line.enrollment_id == b.id
    ]
    assert (failed_line.status, failed_line.failure_reason) == ("failed", "账户已销户")

    # One event each, through the outbox, named by the line's reference.
    [disbursed] = await published(stack, "benefits", DISBURSED)
    assert (disbursed["subject"], disbursed["data"]["enrollment_id"]) == (ref_a, a.id)
    assert disbursed["data"]["amount_fen"] == 12000
    [failed] = await published(stack, "benefits", FAILED)
    assert (failed["subject"], failed["data"]["reason"]) == (ref_b, "账户已销户")

    # The same file again changes nothing; a contradicting one is refused.
    again = await reconcile(stack, jan, body)
    assert (again["applied_paid"], again["applied_failed"], again["unchanged"]) == (0, 0, 2)
    assert again["run"]["version"] == out["run"]["version"]
    problem(
        await stack.benefits.post(
            f"/api/v1/payment-runs/{jan['id']}/reconciliation",
            content=return_file((ref_b, "paid", "")).encode(),
            headers={**_officer(stack), "Content-Type": "text/csv"},
        ),
        409,
        "reconciliation_conflict",
    )
    assert len(await published(stack, "benefits", DISBURSED)) == 1
    assert len(await ledger_of(stack, b.id)) == 2

    # The next run pays b's January with February; a only February.
    feb = await draft(stack, "2026-02")
    got = {line.enrollment_id: months(line) for line in await lines_of(stack, feb["id"])}
    assert got == {
        b.id: ("2026-01", "2026-02", 2, 24000),
        a.id: ("2026-02", "2026-02", 1, 12000),
    }
    feb = await export(stack, await approve(stack, feb))
    await all_paid(stack, feb)
    # Paid exactly once overall: two months each, every fen of it in the ledger.
    assert await net(stack, a.id) == await net(stack, b.id) == 24000


def _officer(stack: InProcessStack) -> dict[str, str]:
    return stack.auth("county_officer", "330102", sub="officer-a")


async def test_a_file_is_applied_whole_or_not_at_all(stack: InProcessStack) -> None:
    e = await seed_enrollment(stack, pays_from="2026-01")
    held = await seed_enrollment(stack, pays_from="2026-01", account=False)
    run = await pay_run(stack, "2026-01")
    lines = {line.enrollment_id: line for line in await lines_of(stack, run["id"])}
    good = rules.line_reference(run["code"], lines[e.id].line_no)
    not_sent = rules.line_reference(run["code"], lines[held.id].line_no)
    url = f"/api/v1/payment-runs/{run['id']}/reconciliation"
    headers = {**_officer(stack), "Content-Type": "text/csv"}
    for unknown in (not_sent, "PR-XXX-2026-01-330102-000001", f"{run['code']}-000099"):
        r = await stack.benefits.post(
            url, content=return_file((good, "paid", ""), (unknown, "paid", "")), headers=headers
        )
        body = problem(r, 422, "unknown_references")
        assert unknown in body["detail"] and good not in body["detail"]
    for bad in (
        "reference,result\r\nX,paid\r\n",
        f"reference,result,reason\r\n{good},maybe,\r\n",
        f"reference,result,reason\r\n{good},paid,\r\n{good},failed,x\r\n",
        "",
        "reference,result,reason\r\n",
    ):
        problem(
            await stack.benefits.post(url, content=bad.encode(), headers=headers),
            422,
            "return_file_invalid",
        )
    problem(
        await stack.benefits.post(url, content=b"\xff\xfe", headers=headers),
        422,
        "return_file_invalid",
    )
    assert sorted(x.status for x in await lines_of(stack, run["id"])) == ["exported", "held"]
    assert await published(stack, "benefits", DISBURSED) == []
    # A BOM and upper case from a spreadsheet are fine.
    out = await reconcile(stack, run, "\ufeff" + return_file((good, "PAID", "")))
    assert (out["applied_paid"], out["run"]["status"]) == (1, "reconciled")
    # Only exported runs take return files.
    draft_run = await draft(stack, "2026-02")
    problem(
        await stack.benefits.post(
            f"/api/v1/payment-runs/{draft_run['id']}/reconciliation",
            content=return_file((good, "paid", "")).encode(),
            headers=headers,
        ),
        409,
        "invalid_transition",
    )


async def test_a_month_returned_after_the_next_run_was_sent(stack: InProcessStack) -> None:
    """January's line comes back after February's was exported: January is owed once more,
    February is not paid again."""
    e = await seed_enrollment(stack, pays_from="2026-01", settled_through="2025-12")
    jan = await pay_run(stack, "2026-01")
    feb = await pay_run(stack, "2026-02")
    [jan_line] = await lines_of(stack, jan["id"])
    await reconcile(
        stack, jan, return_file((rules.line_reference(jan["code"], 1), "failed", "户名不符"))
    )
    assert jan_line.settled_before == "2025-12"
    assert (await enrollment(stack, e.id)).settled_through == "2025-12"
    await all_paid(stack, feb)
    mar = await draft(stack, "2026-03")
    [line] = await lines_of(stack, mar["id"])
    # Due for January to March: 360; the ledger already holds February's 120.
    assert months(line) == ("2026-01", "2026-03", 3, 24000)
    await all_paid(stack, await export(stack, await approve(stack, mar)))
    assert await net(stack, e.id) == 36000


async def test_two_returned_lines_around_a_paid_one(stack: InProcessStack) -> None:
    """January fails, February is sent, March pays January again (net of February); then
    February fails too: April owes February again, and nothing twice."""
    e = await seed_enrollment(stack, pays_from="2026-01", settled_through="2025-12")
    jan = await pay_run(stack, "2026-01")
    feb = await pay_run(stack, "2026-02")
    await reconcile(stack, jan, return_file((f"{jan['code']}-000001", "failed", "冻结")))
    mar = await pay_run(stack, "2026-03")
    [mar_line] = await lines_of(stack, mar["id"])
    assert months(mar_line) == ("2026-01", "2026-03", 3, 24000)
    await reconcile(stack, feb, return_file((f"{feb['code']}-000001", "failed", "冻结")))
    await all_paid(stack, mar)
    apr = await draft(stack, "2026-04")
    [line] = await lines_of(stack, apr["id"])
    assert line.amount_fen == 24000  # February and April
    await all_paid(stack, await export(stack, await approve(stack, apr)))
    assert await net(stack, e.id) == 4 * 12000


async def test_a_returned_line_after_a_death_cancels_its_recovery(stack: InProcessStack) -> None:
    e = await seed_enrollment(stack, pays_from="2026-01", settled_through="2025-12")
    run = await draft(stack, "2026-02")
    await set_enrollment(stack, e.id, status="ended", pays_until="2026-01", ends_after="2026-01")
    run = await export(stack, await approve(stack, run))
    assert await net(stack, e.id) == 12000
    await reconcile(stack, run, return_file((f"{run['code']}-000001", "failed", "账户冻结")))
    kinds = [(x.kind, x.amount_fen) for x in await ledger_of(stack, e.id)]
    assert kinds == [
        ("payment", 24000),
        ("correction", -12000),
        ("reversal", -24000),
        ("correction", 12000),
    ]
    assert await net(stack, e.id) == 0
    undone = (await ledger_of(stack, e.id))[-1]
    assert undone.reason == rules.correction_reversal_reason(
        "农村部分计划生育家庭奖励扶助", "2026-01", "2026-02"
    )
    mar = await draft(stack, "2026-03")
    [line] = await lines_of(stack, mar["id"])
    assert months(line) == ("2026-01", "2026-01", 1, 12000)  # the month of death, once


async def _claim(
    stack: InProcessStack, amount_fen: int, *, account: bool = True, status: str = "approved"
) -> Claim:
    person = await seed_person(stack)
    if account:
        await seed_account(stack, person)
    claim = Claim(
        id=str(uuid.uuid4()),
        claim_no=f"BX{uuid.uuid4().hex[:10].upper()}",
        program=ASSISTED,
        person_id=person,
        couple_key=person,
        region_code=VILLAGE,
        requested_fen=amount_fen,
        approved_fen=amount_fen if status == "approved" else None,
        status=status,
        description="体外受精费用",
        receipts=[{"code": "invoice", "ref": "upload-1"}],
        submitted_by=person,
    )
    async with stack.rt("benefits").db.session() as s:
        s.add(claim)
        await s.commit()
    return claim


async def _stored(stack: InProcessStack, claim_id: str) -> Claim:
    async with stack.rt("benefits").db.session() as s:
        claim = await s.get(Claim, claim_id)
        assert claim is not None
        return claim


async def test_claims_of_a_capped_program_are_paid_by_its_run(stack: InProcessStack) -> None:
    one = await _claim(stack, 1)
    big = await _claim(stack, 4_999_999)
    no_account = await _claim(stack, 5000, account=False)
    await _claim(stack, 7000, status="submitted")
    run = await draft(stack, "2026-03", program=ASSISTED)
    assert (run["line_count"], run["total_fen"], run["held_count"]) == (2, 5_000_000, 1)
    lines = {line.claim_id: line for line in await lines_of(stack, run["id"])}
    assert set(lines) == {one.id, big.id, no_account.id}
    assert (lines[one.id].months, lines[one.id].period_from, lines[one.id].status) == (
        0,
        "2026-03",
        "pending",
    )
    assert lines[no_account.id].status == "held"
    assert (await _stored(stack, one.id)).run_id == run["id"]
    assert (await _stored(stack, no_account.id)).run_id is None  # the next run takes it
    run = await export(stack, await approve(stack, run))
    rows, _ = await bank_file(stack, run)
    assert rows[-1] == ["TOTAL", "2", "", "50000.00"]
    assert sorted(r[3] for r in rows[1:-1]) == ["0.01", "49999.99"]
    async with stack.rt("benefits").db.session() as s:
        [entry] = (await s.scalars(select(LedgerEntry).where(LedgerEntry.claim_id == one.id))).all()
    assert entry.reason == rules.claim_payment_reason("失独家庭辅助生殖费用补助", one.claim_no)
    assert (entry.kind, entry.amount_fen, entry.enrollment_id) == ("payment", 1, None)

    ref = {
        line.claim_id: rules.line_reference(run["code"], line.line_no) for line in lines.values()
    }
    await reconcile(
        stack, run, return_file((ref[one.id], "paid", ""), (ref[big.id], "failed", "账号错误"))
    )
    assert (await _stored(stack, one.id)).status == "paid"
    assert ((await _stored(stack, big.id)).status, (await _stored(stack, big.id)).run_id) == (
        "approved",
        None,
    )
    nxt = await draft(stack, "2026-04", program=ASSISTED)
    again = {line.claim_id: line.amount_fen for line in await lines_of(stack, nxt["id"])}
    assert again == {big.id: 4_999_999, no_account.id: 5000}


async def test_payments_of_a_person_show_every_fen(stack: InProcessStack) -> None:
    """A mother: her own reward, and her child's subsidy paid into her account."""
    mother = await seed_person(stack)
    child = await seed_person(stack)
    async with stack.rt("benefits").db.session() as s:
        s.add(ChildLink(parent_id=mother, child_id=child))
        await s.commit()
    own = await seed_enrollment(stack, pays_from="2025-11", person_id=mother)
    care = await seed_enrollment(
        stack, program=CHILDCARE, pays_from="2025-11", person_id=child, payee_id=mother
    )
    nov = await pay_run(stack, "2025-11")
    await reconcile(stack, nov, return_file((f"{nov['code']}-000001", "failed", "账户冻结")))
    await all_paid(stack, await pay_run(stack, "2025-12"))
    await all_paid(stack, await pay_run(stack, "2025-12", program=CHILDCARE))

    async def read(who: str, headers: dict[str, str], **params: Any) -> Any:
        return await stack.benefits.get(
            f"/api/v1/persons/{who}/payments", params=params, headers=headers
        )

    as_mother = stack.auth("resident", VILLAGE, person_id=mother)
    r = await read(mother, as_mother)
    assert r.status_code == 200, r.text
    page = r.json()
    kinds = [(i["kind"], i["program"], i["amount_fen"]) for i in page["items"]]
    assert kinds == [
        ("payment", CHILDCARE, 60000),
        ("payment", "rural_reward_assistance", 24000),
        ("reversal", "rural_reward_assistance", -12000),
        ("payment", "rural_reward_assistance", 12000),
    ]
    assert page["net_fen"] == 60000 + 24000 == await net(stack, own.id) + await net(stack, care.id)
    for item in page["items"]:
        assert item["reason"].startswith(item["program_name"]) and item["run_code"]
    # Page by page, newest first, the same entries.
    seen: list[int] = []
    cursor = None
    while True:
        params = {"limit": 1, **({"cursor": cursor} if cursor else {})}
        chunk = (await read(mother, as_mother, **params)).json()
        seen += [i["id"] for i in chunk["items"]]
        cursor = chunk["next_cursor"]
        if cursor is None:
            break
    assert seen == [i["id"] for i in page["items"]]
    # The child's entries, for the mother and staff; not for another resident or township.
    child_page = (await read(child, as_mother)).json()
    assert [i["amount_fen"] for i in child_page["items"]] == [60000]
    assert (await read(child, maker(stack))).status_code == 200
    other = stack.auth("resident", VILLAGE, person_id=str(uuid.uuid4()))
    problem(await read(mother, other), 403, "forbidden")
    problem(
        await read(mother, stack.auth("township_officer", "330102002", sub="x")),
        403,
        "out_of_region",
    )
