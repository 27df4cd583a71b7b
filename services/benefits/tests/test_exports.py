"""Benefits' bulk exports (shared/exports.py): every page of a region, both formats, bank
accounts reduced to their last four digits, and the refusals."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from services.benefits.api.exports import ENROLLMENT_COLUMNS, PAYMENT_COLUMNS
from services.benefits.models import Enrollment, PaymentLine
from services.benefits.tests.test_payment_runs import (
    DISTRICT,
    OTHER_VILLAGE,
    account_no_of,
    draft,
    seed_enrollment,
)
from services.registry.tests.test_exports import pull_all, read_csv
from tests.support import OTHER_TOWNSHIP, TOWNSHIP, VILLAGE, InProcessStack

ENROLLMENTS = "/api/v1/exports/enrollments"
PAYMENTS = "/api/v1/exports/payments"


async def ids_in(stack: InProcessStack, table: Any, prefix: str) -> set[Any]:
    async with stack.rt("benefits").db.session() as s:
        found = await s.scalars(select(table.id).where(table.region_code.startswith(prefix)))
        return set(found.all())


async def seed(stack: InProcessStack) -> dict[str, Any]:
    """Four enrollments in the township (one payee without an account, so its line is held)
    and one in the other township; a payment run of the district drafted over HTTP."""
    inside = [await seed_enrollment(stack, pays_from="2025-10") for _ in range(3)]
    inside.append(await seed_enrollment(stack, pays_from="2025-10", account=False))
    outside = await seed_enrollment(stack, pays_from="2025-10", region=OTHER_VILLAGE)
    run = await draft(stack, "2025-11")
    assert run["line_count"] == 4 and run["held_count"] == 1, run
    return {"inside": inside, "outside": outside, "run": run}


async def test_every_page_of_the_region_and_nothing_else(stack: InProcessStack) -> None:
    world = await seed(stack)
    township = stack.auth("township_officer", TOWNSHIP)
    bureau = stack.auth("bureau_system", DISTRICT, sub="county-bureau")

    rows, pages = await pull_all(stack.benefits, ENROLLMENTS, township, limit=3)
    ids = [row["id"] for row in rows]
    assert len(ids) == len(set(ids)) == 4 and pages == 2
    assert set(ids) == await ids_in(stack, Enrollment, TOWNSHIP)
    assert world["outside"].id not in ids
    assert all(list(row) == [c.name for c in ENROLLMENT_COLUMNS] for row in rows)

    rows, pages = await pull_all(stack.benefits, PAYMENTS, township, limit=1)
    assert pages == 4
    assert {row["id"] for row in rows} == await ids_in(stack, PaymentLine, TOWNSHIP)
    assert {row["enrollment_id"] for row in rows} == {e.id for e in world["inside"]}
    assert {row["run_code"] for row in rows} == {world["run"]["code"]}
    assert all(list(row) == [c.name for c in PAYMENT_COLUMNS] for row in rows)

    rows, _ = await pull_all(stack.benefits, PAYMENTS, bureau, limit=2)
    assert {row["id"] for row in rows} == await ids_in(stack, PaymentLine, DISTRICT)
    assert len(rows) == 5
    rows, _ = await pull_all(stack.benefits, ENROLLMENTS, bureau, region=OTHER_TOWNSHIP)
    assert [row["id"] for row in rows] == [world["outside"].id]


async def test_csv_and_accounts_by_their_last_four_digits(stack: InProcessStack) -> None:
    world = await seed(stack)
    for role, region in (("bureau_system", DISTRICT), ("admin", ""), ("county_officer", DISTRICT)):
        rows, _ = await pull_all(stack.benefits, PAYMENTS, stack.auth(role, region))
        by_payee = {row["payee_id"]: row for row in rows}
        for e in world["inside"][:3]:
            full = account_no_of(e.payee_id)
            shown = by_payee[e.payee_id]["account_no"]
            assert shown == "*" * (len(full) - 4) + full[-4:], (role, shown)
        held = by_payee[world["inside"][3].payee_id]
        assert (held["status"], held["account_no"]) == ("held", None)

    r = await stack.benefits.get(
        PAYMENTS, params={"format": "csv"}, headers=stack.auth("county_officer", DISTRICT)
    )
    table = read_csv(r)
    assert table[0] == [c.name for c in PAYMENT_COLUMNS]
    assert len(table) == 6
    text = r.content.decode("utf-8")
    assert not any(account_no_of(e.payee_id) in text for e in world["inside"])

    table = read_csv(
        await stack.benefits.get(ENROLLMENTS, params={"format": "csv"}, headers=stack.auth("admin"))
    )
    assert table[0] == [c.name for c in ENROLLMENT_COLUMNS]
    assert {row[0] for row in table[1:]} == await ids_in(stack, Enrollment, "")


async def test_refusals(stack: InProcessStack) -> None:
    await seed(stack)
    township = stack.auth("township_officer", TOWNSHIP)
    for path in (ENROLLMENTS, PAYMENTS):
        r = await stack.benefits.get(path, params={"region": OTHER_TOWNSHIP}, headers=township)
        assert r.status_code == 403 and r.json()["code"] == "out_of_region", r.text
        for headers in (
            stack.auth("village_worker", VILLAGE),
            stack.auth("resident", person_id="00000000-0000-0000-0000-000000000001"),
            stack.auth("auditor", DISTRICT),
        ):
            r = await stack.benefits.get(path, headers=headers)
            assert r.status_code == 403 and r.json()["code"] == "forbidden", r.text
        for cursor in ("not-a-cursor", "WyJhIiwiYiJd"):
            r = await stack.benefits.get(path, params={"cursor": cursor}, headers=township)
            assert r.status_code == 422, r.text
    # A payment line's key is a number: a well-formed cursor holding anything else is refused.
    r = await stack.benefits.get(PAYMENTS, params={"cursor": "WyJ4Il0"}, headers=township)
    assert r.status_code == 422 and r.json()["code"] == "validation_failed", r.text
