"""A month of benefits end to end, through the real broker and every service involved:
certificate issued (registry) -> enrollments prepared and confirmed by a second officer
(benefits) -> payee accounts -> payment run drafted, approved, exported and reconciled ->
the payee sees every fen and is told (notify); then a death ends what it paid."""

from __future__ import annotations

from datetime import date
from typing import Any

from services.benefits.domain.programs import Period
from shared.clock import FixedClock
from tests.support import TOWNSHIP, InProcessStack, eventually

COUNTY = "330102"
PROGRAM = "only_child_parent_reward"


async def _ok(r: Any, status: int = 200) -> dict[str, Any]:
    assert r.status_code == status, r.text
    return r.json()  # type: ignore[no-any-return]


async def _prepared(stack: InProcessStack, person_ids: list[str]) -> list[dict[str, Any]]:
    async def ready() -> list[dict[str, Any]]:
        found = []
        for person_id in person_ids:
            items = await stack.enrollments_of(person_id)
            assert [(e["program"], e["status"]) for e in items] == [(PROGRAM, "pending_review")]
            found += items
        return found

    return await eventually(ready)


async def _run_month(stack: InProcessStack, period: str) -> tuple[dict[str, Any], str]:
    """Draft (township), approve and export (county): the run and its bank file."""
    maker = stack.auth("township_officer", TOWNSHIP)
    checker = stack.auth("county_officer", COUNTY)
    body = {"program": PROGRAM, "period": period, "region": TOWNSHIP}
    run = await _ok(
        await stack.benefits.post("/api/v1/payment-runs", json=body, headers=maker), 201
    )
    url = f"/api/v1/payment-runs/{run['id']}"
    run = await _ok(
        await stack.benefits.post(f"{url}/approve", json={"version": 1}, headers=checker)
    )
    run = await _ok(
        await stack.benefits.post(f"{url}/export", json={"version": 2}, headers=checker)
    )
    r = await stack.benefits.get(f"{url}/disbursement-file", headers=checker)
    assert r.status_code == 200, r.text
    return run, r.text


def _rows(bank_file: str) -> tuple[list[list[str]], list[str]]:
    lines = [line.split(",") for line in bank_file.strip().splitlines()]
    assert lines[0] == ["reference", "account_no", "account_name", "amount"]
    return lines[1:-1], lines[-1]


async def test_a_month_paid_and_told_then_nothing_after_death(stack: InProcessStack) -> None:
    today = date(2026, 6, 15)  # the business day of registry and benefits
    for service in ("registry", "benefits"):
        stack.rt(service).clock = FixedClock(today)
    issued = await stack.issue_certificate()
    mother, father = issued["mother"]["id"], issued["father"]["id"]
    for e in await _prepared(stack, [mother, father]):
        await _ok(
            await stack.benefits.post(
                f"/api/v1/enrollments/{e['id']}/confirm",
                json={"version": e["version"]},
                headers=stack.auth("township_officer", TOWNSHIP, sub="checker-1"),
            )
        )
    for person_id, account in ((mother, "6228480012345678901"), (father, "6228480098765432109")):
        await _ok(
            await stack.benefits.put(
                f"/api/v1/persons/{person_id}/payee-account",
                json={"account_name": "测试居民", "bank_name": "农商银行", "account_no": account},
                headers=stack.auth("township_officer", TOWNSHIP),
            ),
            201,  # a new account
        )

    month = Period.of(today)
    run, bank_file = await _run_month(stack, str(month))
    rows, total = _rows(bank_file)
    # 10 yuan a month each, from the certificate's month: two lines, 20.00 in all.
    assert sorted(r[1:] for r in rows) == [
        ["6228480012345678901", "测试居民", "10.00"],
        ["6228480098765432109", "测试居民", "10.00"],
    ]
    assert total == ["TOTAL", "2", "", "20.00"]
    assert (run["line_count"], run["total_fen"]) == (2, 2000)

    returned = "reference,result,reason\r\n" + "".join(f"{r[0]},paid,\r\n" for r in rows)
    result = await _ok(
        await stack.benefits.post(
            f"/api/v1/payment-runs/{run['id']}/reconciliation",
            content=returned.encode(),
            headers={**stack.auth("county_officer", COUNTY), "Content-Type": "text/csv"},
        )
    )
    assert result["run"]["status"] == "reconciled" and result["run"]["paid_fen"] == 2000

    me = stack.auth("resident", person_id=mother)
    paid = await _ok(await stack.benefits.get(f"/api/v1/persons/{mother}/payments", headers=me))
    assert paid["net_fen"] == 1000
    assert [(p["kind"], p["period_from"], p["amount_fen"]) for p in paid["items"]] == [
        ("payment", str(month), 1000)
    ]

    async def told() -> None:
        inbox = await _ok(await stack.notify.get("/api/v1/inbox", headers=me))
        titles = sorted(m["title"] for m in inbox["items"])
        assert titles == ["待遇已发放", "待遇资格已确认", "证件已办好"], titles
        [paid_msg] = [m for m in inbox["items"] if m["title"] == "待遇已发放"]
        assert "10.00 元" in paid_msg["body"]

    await eventually(told)

    # The father dies today: his enrollment ends with this month, already paid, and owes
    # nothing after it (no correction either: nothing after the month was sent).
    await _ok(
        await stack.registry.post(
            f"/api/v1/persons/{father}/death",
            json={"date_of_death": today.isoformat(), "reported_by": "家属"},
            headers=stack.auth("township_officer", TOWNSHIP),
        ),
        201,
    )

    async def ended() -> None:
        [e] = await stack.enrollments_of(father)
        assert (e["status"], e["ended_reason"]) == ("ended", "death"), e
        assert e["pays_until"] == e["ends_after"] == e["settled_through"] == str(month)

    await eventually(ended)
    father_paid = await _ok(
        await stack.benefits.get(
            f"/api/v1/persons/{father}/payments", headers=stack.auth("county_officer", COUNTY)
        )
    )
    assert [(p["kind"], p["amount_fen"]) for p in father_paid["items"]] == [("payment", 1000)]
