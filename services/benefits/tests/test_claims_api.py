"""Claims of the capped assisted-reproduction program over HTTP, on SQLite and PostgreSQL.

The couple's facts are seeded straight into benefits' read models (as registry events would
have left them): a bereaved family is one whose only child has died.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import date
from typing import Any

from sqlalchemy import select

from services.benefits.models import ChildLink, Claim, ClaimCap, FamilyFacts, PersonFacts
from tests.support import OTHER_TOWNSHIP, TOWNSHIP, VILLAGE, InProcessStack, published

DECIDED = "lingju.benefits.claim.decided"

PROGRAM = "assisted_reproduction_reimbursement"
CAP = 5_000_000
PROBLEM = "application/problem+json"


def problem(r: Any, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    body = r.json()
    assert body["code"] == code
    assert body["title"] and body["detail"]
    return body  # type: ignore[no-any-return]


async def bereaved_couple(
    stack: InProcessStack, *, child_alive: bool = False, region: str = VILLAGE
) -> dict[str, str]:
    """Wife, husband and their only child (dead unless ``child_alive``), as read models."""
    ids = {k: str(uuid.uuid4()) for k in ("wife", "husband", "child", "family")}
    async with stack.rt("benefits").db.session() as s:
        s.add_all(
            [
                PersonFacts(
                    person_id=ids["wife"],
                    sex="female",
                    birth_date=date(1975, 5, 1),
                    region_code=region,
                    household_type="rural",
                ),
                PersonFacts(
                    person_id=ids["husband"],
                    sex="male",
                    birth_date=date(1973, 3, 2),
                    region_code=region,
                    household_type="rural",
                ),
                PersonFacts(
                    person_id=ids["child"],
                    sex="male",
                    birth_date=date(2000, 6, 1),
                    region_code=region,
                    household_type="rural",
                    died_on=None if child_alive else date(2023, 4, 9),
                ),
                FamilyFacts(
                    family_id=ids["family"],
                    wife_id=ids["wife"],
                    husband_id=ids["husband"],
                    region_code=region,
                    marriage_date=date(1998, 10, 1),
                ),
                ChildLink(parent_id=ids["wife"], child_id=ids["child"], family_id=ids["family"]),
                ChildLink(parent_id=ids["husband"], child_id=ids["child"], family_id=ids["family"]),
            ]
        )
        await s.commit()
    return ids


def claim_body(person_id: str, requested_fen: int, **fields: Any) -> dict[str, Any]:
    return {
        "program": PROGRAM,
        "person_id": person_id,
        "requested_fen": requested_fen,
        "description": "体外受精-胚胎移植费用",
        "receipts": [{"code": "invoice", "ref": f"upload-{uuid.uuid4().hex[:8]}"}],
        **fields,
    }


async def submit(
    stack: InProcessStack,
    person_id: str,
    requested_fen: int,
    headers: dict[str, str] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    r = await stack.benefits.post(
        "/api/v1/claims",
        json=claim_body(person_id, requested_fen, **fields),
        headers=headers or stack.auth("village_agent", TOWNSHIP, sub="agent-a"),
    )
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def officer(stack: InProcessStack, sub: str = "officer-b", region: str = TOWNSHIP) -> Any:
    return stack.auth("township_officer", region, sub=sub)


async def approve(
    stack: InProcessStack,
    claim: dict[str, Any],
    headers: dict[str, str] | None = None,
    **fields: Any,
) -> Any:
    return await stack.benefits.post(
        f"/api/v1/claims/{claim['id']}/approve",
        json={"version": claim["version"], **fields},
        headers=headers or officer(stack),
    )


async def cap_row(stack: InProcessStack, couple_key: str) -> ClaimCap | None:
    async with stack.rt("benefits").db.session() as s:
        return await s.get(ClaimCap, (PROGRAM, couple_key))


async def stored(stack: InProcessStack, claim_id: str) -> Claim:
    async with stack.rt("benefits").db.session() as s:
        claim = await s.get(Claim, claim_id)
        assert claim is not None
        return claim


# -- the happy path -----------------------------------------------------------------------------


async def test_resident_submits_and_a_second_officer_approves(stack: InProcessStack) -> None:
    couple = await bereaved_couple(stack)
    wife = stack.auth("resident", VILLAGE, person_id=couple["wife"])
    claim = await submit(stack, couple["wife"], 3_000_000, headers=wife)
    assert re.fullmatch(r"CL-\d{6}-[0-9A-F]{10}", claim["claim_no"])
    assert claim["status"] == "submitted"
    assert claim["couple_key"] == couple["family"]  # both spouses share one cap
    assert claim["submitted_by"] == couple["wife"]
    assert (claim["cap_fen"], claim["used_fen"], claim["remaining_fen"]) == (CAP, 0, CAP)
    assert claim["receipts"][0]["code"] == "invoice"

    r = await approve(stack, claim)
    assert r.status_code == 200, r.text
    done = r.json()
    assert done["status"] == "approved"
    assert done["approved_fen"] == 3_000_000
    assert done["decided_by"] == "officer-b"
    assert done["decision_comment"] is None  # approved in full: nothing to explain
    assert done["version"] == claim["version"] + 1
    assert (done["used_fen"], done["remaining_fen"]) == (3_000_000, 2_000_000)
    # The decision goes out through the outbox, once (notify tells the claimant).
    (event,) = await published(stack, "benefits", DECIDED)
    decided = event["data"]
    assert (decided["claim_id"], decided["decision"], decided["approved_fen"]) == (
        claim["id"],
        "approved",
        3_000_000,
    )
    assert decided["decision_name"] == "已核准 30,000.00 元"

    got = await stack.benefits.get(f"/api/v1/claims/{claim['id']}", headers=wife)
    assert got.status_code == 200, got.text
    assert got.headers["etag"] == f'"{done["version"]}"'
    assert got.json() == done
    row = await cap_row(stack, couple["family"])
    assert row is not None and (row.cap_fen, row.used_fen) == (CAP, 3_000_000)

    # The husband's claims count against the same cap.
    husband_claim = await submit(stack, couple["husband"], 100_000)
    assert husband_claim["couple_key"] == couple["family"]
    assert husband_claim["remaining_fen"] == 2_000_000


async def test_a_person_without_a_family_is_their_own_couple(stack: InProcessStack) -> None:
    """No registered marriage: the cap is the person's own (couple_key = the person's id)."""
    couple = await bereaved_couple(stack)
    async with stack.rt("benefits").db.session() as s:
        family = await s.get(FamilyFacts, couple["family"])
        await s.delete(family)
        await s.commit()
    claim = await submit(stack, couple["wife"], 1_000)
    assert claim["couple_key"] == couple["wife"]


# -- who may -------------------------------------------------------------------------------------


async def test_maker_checker(stack: InProcessStack) -> None:
    """The officer who submitted a claim cannot approve it; another officer can."""
    couple = await bereaved_couple(stack)
    maker = officer(stack, "officer-a")
    claim = await submit(stack, couple["wife"], 500_000, headers=maker)
    body = problem(await approve(stack, claim, headers=maker), 403, "maker_checker")
    assert body["detail"] == "审核人不能与经办人为同一人"
    r = await approve(stack, claim, headers={**maker, "Accept-Language": "en"})
    assert "approver" in problem(r, 403, "maker_checker")["detail"]
    assert (await stored(stack, claim["id"])).status == "submitted"
    assert await cap_row(stack, couple["family"]) is None  # nothing half-written
    r = await approve(stack, claim, headers=stack.auth("county_officer", "330102", sub="c-1"))
    assert r.status_code == 200, r.text


async def test_regions_and_residents_are_kept_apart(stack: InProcessStack) -> None:
    couple = await bereaved_couple(stack)
    problem(
        await stack.benefits.post(
            "/api/v1/claims",
            json=claim_body(couple["wife"], 1_000),
            headers=stack.auth("village_agent", OTHER_TOWNSHIP),
        ),
        403,
        "out_of_region",
    )
    # A resident claims only for themself (the husband's token cannot claim for the wife).
    problem(
        await stack.benefits.post(
            "/api/v1/claims",
            json=claim_body(couple["wife"], 1_000),
            headers=stack.auth("resident", VILLAGE, person_id=couple["husband"]),
        ),
        403,
        "forbidden",
    )
    problem(
        await stack.benefits.post(
            "/api/v1/claims",
            json=claim_body(str(uuid.uuid4()), 1_000),
            headers=stack.auth("village_agent", TOWNSHIP),
        ),
        404,
        "not_found",
    )
    claim = await submit(stack, couple["wife"], 1_000)
    problem(
        await approve(stack, claim, headers=officer(stack, region=OTHER_TOWNSHIP)),
        403,
        "out_of_region",
    )
    # The village decides no money.
    problem(
        await approve(stack, claim, headers=stack.auth("village_worker", VILLAGE)), 403, "forbidden"
    )
    problem(
        await stack.benefits.get(
            f"/api/v1/claims/{claim['id']}", headers=officer(stack, region=OTHER_TOWNSHIP)
        ),
        403,
        "out_of_region",
    )
    problem(
        await stack.benefits.get(
            f"/api/v1/claims/{claim['id']}",
            headers=stack.auth("resident", VILLAGE, person_id=couple["husband"]),
        ),
        403,
        "forbidden",
    )
    problem(
        await stack.benefits.get("/api/v1/claims/nope", headers=officer(stack)),
        404,
        "not_found",
    )


# -- what may be claimed ------------------------------------------------------------------------


async def test_a_living_only_child_is_not_eligible(stack: InProcessStack) -> None:
    couple = await bereaved_couple(stack, child_alive=True)
    r = await stack.benefits.post(
        "/api/v1/claims",
        json=claim_body(couple["wife"], 1_000),
        headers=stack.auth("village_agent", TOWNSHIP),
    )
    body = problem(r, 422, "not_eligible")
    assert "独生子女健在" in body["detail"]
    assert any("失独" in e["message"] for e in body["errors"])
    r = await stack.benefits.post(
        "/api/v1/claims",
        json=claim_body(couple["wife"], 1_000),
        headers={**stack.auth("village_agent", TOWNSHIP), "Accept-Language": "en"},
    )
    assert "alive" in problem(r, 422, "not_eligible")["detail"]
    assert await stack.count_rows("benefits", "claims") == 0


async def test_only_capped_programs_take_claims(stack: InProcessStack) -> None:
    couple = await bereaved_couple(stack)
    for program in ("special_assistance", "no_such_program"):
        r = await stack.benefits.post(
            "/api/v1/claims",
            json=claim_body(couple["wife"], 1_000, program=program),
            headers=stack.auth("village_agent", TOWNSHIP),
        )
        problem(r, 422, "not_a_claim_program")


async def test_amounts_are_positive_integer_fen_with_receipts(stack: InProcessStack) -> None:
    couple = await bereaved_couple(stack)
    agent = stack.auth("village_agent", TOWNSHIP)
    for bad in (
        {"requested_fen": 0},
        {"requested_fen": -100},
        {"requested_fen": 100.5},
        {"requested_fen": 100.0},
        {"requested_fen": "100"},
        {"receipts": []},
        {"description": ""},
    ):
        r = await stack.benefits.post(
            "/api/v1/claims", json={**claim_body(couple["wife"], 1_000), **bad}, headers=agent
        )
        problem(r, 422, "validation_failed")
    assert await stack.count_rows("benefits", "claims") == 0


# -- the cap ------------------------------------------------------------------------------------


async def test_the_cap_reached_exactly(stack: InProcessStack) -> None:
    """30,000 + 20,000 yuan fill the cap: both in full; a third claim is refused, unchanged."""
    couple = await bereaved_couple(stack)
    first = await submit(stack, couple["wife"], 3_000_000)
    second = await submit(stack, couple["husband"], 2_000_000)
    third = await submit(stack, couple["wife"], 100_000)
    assert (await approve(stack, first)).json()["approved_fen"] == 3_000_000
    r = await approve(stack, second)
    assert r.status_code == 200, r.text
    assert (r.json()["approved_fen"], r.json()["used_fen"], r.json()["remaining_fen"]) == (
        2_000_000,
        CAP,
        0,
    )
    body = problem(await approve(stack, third), 409, "cap_reached")
    assert "50,000.00" in body["detail"] and "已核准 50,000.00" in body["detail"]
    r = await approve(stack, third, headers={**officer(stack), "Accept-Language": "en"})
    assert "cap" in problem(r, 409, "cap_reached")["detail"]
    left = await stored(stack, third["id"])
    assert (left.status, left.version, left.approved_fen) == ("submitted", third["version"], None)
    row = await cap_row(stack, couple["family"])
    assert row is not None and row.used_fen == CAP
    # Nothing can be approved any more: a new claim is refused at submission.
    r = await stack.benefits.post(
        "/api/v1/claims",
        json=claim_body(couple["husband"], 1_000),
        headers=stack.auth("village_agent", TOWNSHIP),
    )
    problem(r, 409, "cap_reached")
    # The one left waiting is rejected with a reason.
    r = await stack.benefits.post(
        f"/api/v1/claims/{third['id']}/reject",
        json={"version": third["version"], "reason": "累计报销已达上限"},
        headers=officer(stack),
    )
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["decision_comment"]) == ("rejected", "累计报销已达上限")
    assert r.json()["remaining_fen"] == 0


async def test_a_claim_over_the_remainder_is_approved_for_the_remainder(
    stack: InProcessStack,
) -> None:
    couple = await bereaved_couple(stack)
    first = await submit(stack, couple["wife"], 4_500_000)
    late = await submit(stack, couple["husband"], 800_000)
    assert (await approve(stack, first)).status_code == 200
    r = await approve(stack, late, comment="票据齐全")
    assert r.status_code == 200, r.text
    done = r.json()
    assert (done["requested_fen"], done["approved_fen"]) == (800_000, 500_000)
    assert "仅核准 5,000.00 元" in done["decision_comment"]
    assert done["decision_comment"].endswith("票据齐全")
    assert (done["used_fen"], done["remaining_fen"]) == (CAP, 0)


async def test_an_officer_reduces_but_never_raises(stack: InProcessStack) -> None:
    couple = await bereaved_couple(stack)
    claim = await submit(stack, couple["wife"], 800_000)
    problem(await approve(stack, claim, approved_fen=900_000), 422, "validation_failed")
    problem(await approve(stack, claim, approved_fen=0), 422, "validation_failed")
    r = await approve(stack, claim, approved_fen=600_000)
    assert r.status_code == 200, r.text
    assert r.json()["approved_fen"] == 600_000
    assert "核减" in r.json()["decision_comment"]
    assert r.json()["used_fen"] == 600_000


async def test_decisions_are_guarded(stack: InProcessStack) -> None:
    couple = await bereaved_couple(stack)
    claim = await submit(stack, couple["wife"], 100_000)
    problem(
        await approve(stack, {**claim, "version": claim["version"] + 5}), 409, "version_conflict"
    )
    r = await stack.benefits.post(
        f"/api/v1/claims/{claim['id']}/approve",
        json={},
        headers={**officer(stack), "If-Match": '"99"'},
    )
    problem(r, 412, "precondition_failed")
    problem(
        await stack.benefits.post(
            f"/api/v1/claims/{claim['id']}/approve", json={}, headers=officer(stack)
        ),
        428,
        "version_required",
    )
    assert (await approve(stack, claim)).status_code == 200
    done = await stored(stack, claim["id"])
    again = {**claim, "version": done.version}
    problem(await approve(stack, again), 409, "invalid_transition")
    r = await stack.benefits.post(
        f"/api/v1/claims/{claim['id']}/reject",
        json={"version": done.version, "reason": "x"},
        headers=officer(stack),
    )
    problem(r, 409, "invalid_transition")
    problem(
        await stack.benefits.post(
            "/api/v1/claims/nope/approve", json={"version": 1}, headers=officer(stack)
        ),
        404,
        "not_found",
    )
    row = await cap_row(stack, couple["family"])
    assert row is not None and row.used_fen == 100_000


async def test_ten_concurrent_approvals_never_pass_the_cap(stack: InProcessStack) -> None:
    """10 claims of 8,000 yuan (80,000 asked against 50,000) approved at once over HTTP."""
    couple = await bereaved_couple(stack)
    claims = [
        await submit(stack, couple["wife" if i % 2 else "husband"], 800_000) for i in range(10)
    ]
    results = await asyncio.gather(*(approve(stack, c) for c in claims))
    ok = [r.json() for r in results if r.status_code == 200]
    refused = [r for r in results if r.status_code != 200]
    for r in refused:
        problem(r, 409, "cap_reached")
    # Six in full, one for the 2,000 yuan left, three refused: whatever the interleaving.
    assert sorted(c["approved_fen"] for c in ok) == [200_000] + [800_000] * 6
    assert len(refused) == 3
    row = await cap_row(stack, couple["family"])
    assert row is not None and row.used_fen == CAP
    async with stack.rt("benefits").db.session() as s:
        rows = list(
            (await s.scalars(select(Claim).where(Claim.couple_key == couple["family"]))).all()
        )
    assert sum(c.approved_fen or 0 for c in rows) == CAP
    assert sorted(c.status for c in rows) == ["approved"] * 7 + ["submitted"] * 3
    assert all(c.approved_fen is None for c in rows if c.status == "submitted")


async def test_one_claim_approved_by_many_at_once_counts_once(stack: InProcessStack) -> None:
    couple = await bereaved_couple(stack)
    claim = await submit(stack, couple["wife"], 700_000)
    results = await asyncio.gather(
        *(approve(stack, claim, headers=officer(stack, f"officer-{i}")) for i in range(6))
    )
    assert sorted(r.status_code for r in results) == [200] + [409] * 5
    assert len(await published(stack, "benefits", DECIDED)) == 1  # one decision announced
    row = await cap_row(stack, couple["family"])
    assert row is not None and row.used_fen == 700_000


# -- idempotency and reading ---------------------------------------------------------------------


async def test_an_idempotency_key_replays_the_same_claim(stack: InProcessStack) -> None:
    couple = await bereaved_couple(stack)
    headers = {**stack.auth("resident", VILLAGE, person_id=couple["wife"]), "Idempotency-Key": "k1"}
    body = claim_body(couple["wife"], 250_000)
    first = await stack.benefits.post("/api/v1/claims", json=body, headers=headers)
    again = await stack.benefits.post("/api/v1/claims", json=body, headers=headers)
    assert first.status_code == again.status_code == 201, again.text
    assert again.json() == first.json()
    assert again.headers.get("idempotent-replayed") == "true"
    assert await stack.count_rows("benefits", "claims") == 1
    other = await stack.benefits.post(
        "/api/v1/claims", json={**body, "requested_fen": 1}, headers=headers
    )
    problem(other, 422, "idempotency_key_reused")


async def test_lists_by_whom_and_what(stack: InProcessStack) -> None:
    couple = await bereaved_couple(stack)
    elsewhere = await bereaved_couple(stack, region="330102002001")
    mine = [await submit(stack, couple["wife"], 1_000 + i) for i in range(3)]
    his = await submit(stack, couple["husband"], 2_000)
    await submit(
        stack, elsewhere["wife"], 3_000, headers=stack.auth("village_agent", OTHER_TOWNSHIP)
    )
    assert (await approve(stack, mine[0])).status_code == 200

    wife = stack.auth("resident", VILLAGE, person_id=couple["wife"])
    r = await stack.benefits.get("/api/v1/claims", headers=wife)
    assert r.status_code == 200, r.text
    assert {c["id"] for c in r.json()["items"]} == {c["id"] for c in mine}
    assert all(c["used_fen"] == 1_000 for c in r.json()["items"])
    problem(
        await stack.benefits.get(
            "/api/v1/claims", params={"person_id": couple["husband"]}, headers=wife
        ),
        403,
        "forbidden",
    )

    staff = officer(stack)
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        r = await stack.benefits.get("/api/v1/claims", params=params, headers=staff)
        assert r.status_code == 200, r.text
        seen += [c["id"] for c in r.json()["items"]]
        cursor = r.json()["next_cursor"]
        if not cursor:
            break
    assert seen == [c["id"] for c in [*mine, his]]  # oldest first, only the township's

    r = await stack.benefits.get(
        "/api/v1/claims", params={"status": "approved", "program": PROGRAM}, headers=staff
    )
    assert [c["id"] for c in r.json()["items"]] == [mine[0]["id"]]
    r = await stack.benefits.get(
        "/api/v1/claims", params={"person_id": couple["husband"]}, headers=staff
    )
    assert [c["id"] for c in r.json()["items"]] == [his["id"]]
    problem(
        await stack.benefits.get("/api/v1/claims", params={"status": "nope"}, headers=staff),
        422,
        "validation_failed",
    )
    county = stack.auth("county_officer", "330102")
    r = await stack.benefits.get("/api/v1/claims", headers=county)
    assert len(r.json()["items"]) == 5
