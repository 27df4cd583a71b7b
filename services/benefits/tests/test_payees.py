"""Payee accounts over HTTP on SQLite and PostgreSQL: who may set and read one, the number
encrypted at rest and masked in answers, replacements guarded by version."""

from __future__ import annotations

from typing import Any

from services.benefits.models import ChildLink, PayeeAccount
from services.benefits.payments import ACCOUNT_CONTEXT
from services.benefits.tests.test_payment_runs import OTHER_VILLAGE, problem, seed_person
from tests.support import OTHER_TOWNSHIP, TOWNSHIP, VILLAGE, InProcessStack

NO = "6228480012345678901"
BODY = {"account_name": "王芳", "bank_name": "浙江农商银行", "account_no": NO}


def url(person_id: str) -> str:
    return f"/api/v1/persons/{person_id}/payee-account"


async def put(stack: InProcessStack, person_id: str, headers: dict[str, str], **body: Any) -> Any:
    return await stack.benefits.put(url(person_id), json={**BODY, **body}, headers=headers)


async def test_a_resident_sets_their_account_and_sees_it_masked(stack: InProcessStack) -> None:
    me = await seed_person(stack)
    mine = stack.auth("resident", VILLAGE, person_id=me)
    r = await put(stack, me, mine)
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["account_no_masked"] == "*" * 15 + "8901"
    assert NO not in r.text and r.headers["etag"] == '"1"'
    assert (out["account_name"], out["bank_name"], out["version"]) == ("王芳", "浙江农商银行", 1)
    got = await stack.benefits.get(url(me), headers=mine)
    assert got.status_code == 200 and got.json() == out
    # Encrypted at rest, bound to its column.
    rt = stack.rt("benefits")
    async with rt.db.session() as s:
        stored = await s.get(PayeeAccount, me)
    assert stored is not None and NO not in stored.account_no_enc
    assert rt.cipher.decrypt(stored.account_no_enc, context=ACCOUNT_CONTEXT) == NO


async def test_replacing_an_account_names_the_version_read(stack: InProcessStack) -> None:
    me = await seed_person(stack)
    mine = stack.auth("resident", VILLAGE, person_id=me)
    assert (await put(stack, me, mine)).status_code == 201
    problem(await put(stack, me, mine, account_no="6222000011112222"), 428, "version_required")
    problem(await put(stack, me, mine, version=5), 409, "version_conflict")
    problem(
        await stack.benefits.put(url(me), json=BODY, headers={**mine, "If-Match": '"5"'}),
        412,
        "precondition_failed",
    )
    r = await put(stack, me, mine, account_no="6222000011112222", version=1)
    assert r.status_code == 200, r.text
    assert (r.json()["account_no_masked"][-4:], r.json()["version"]) == ("2222", 2)
    r = await stack.benefits.put(url(me), json=BODY, headers={**mine, "If-Match": '"2"'})
    assert (r.status_code, r.json()["version"]) == (200, 3)
    # A version for an account that is not there: stale.
    other = await seed_person(stack)
    problem(
        await put(stack, other, stack.auth("resident", VILLAGE, person_id=other), version=1),
        409,
        "version_conflict",
    )


async def test_who_may_set_and_read_an_account(stack: InProcessStack) -> None:
    parent = await seed_person(stack)
    child = await seed_person(stack)
    stranger = await seed_person(stack)
    elsewhere = await seed_person(stack, region=OTHER_VILLAGE)
    async with stack.rt("benefits").db.session() as s:
        s.add(ChildLink(parent_id=parent, child_id=child))
        await s.commit()
    as_parent = stack.auth("resident", VILLAGE, person_id=parent)
    # A parent for their child; nobody for a stranger.
    assert (await put(stack, child, as_parent)).status_code == 201
    assert (await stack.benefits.get(url(child), headers=as_parent)).status_code == 200
    problem(await put(stack, stranger, as_parent), 403, "forbidden")
    problem(await stack.benefits.get(url(stranger), headers=as_parent), 403, "forbidden")
    problem(
        await stack.benefits.get(url(parent), headers=stack.auth("resident", VILLAGE)),
        403,
        "forbidden",
    )
    # Staff in the person's region.
    staff = (
        ("village_worker", VILLAGE),
        ("township_officer", TOWNSHIP),
        ("county_officer", "330102"),
    )
    for version, (role, region) in enumerate(staff):
        headers = stack.auth(role, region, sub=f"{role}-1")
        r = await put(stack, stranger, headers, **({"version": version} if version else {}))
        assert (r.status_code, r.json()["updated_by"]) == (200 if version else 201, f"{role}-1")
        got = await stack.benefits.get(url(stranger), headers=headers)
        assert got.json()["account_no_masked"].endswith("8901")
    problem(
        await put(stack, elsewhere, stack.auth("township_officer", TOWNSHIP)),
        403,
        "out_of_region",
    )
    problem(
        await stack.benefits.get(url(elsewhere), headers=stack.auth("village_worker", VILLAGE)),
        403,
        "out_of_region",
    )
    assert (
        await put(stack, elsewhere, stack.auth("township_officer", OTHER_TOWNSHIP))
    ).status_code == 201
    # Not agents, not the bureau; unknown persons and missing accounts are 404.
    for role in ("village_agent", "bureau_system", "admin"):
        problem(await put(stack, stranger, stack.auth(role, TOWNSHIP)), 403, "forbidden")
    officer = stack.auth("township_officer", TOWNSHIP)
    problem(await put(stack, "nobody", officer), 404, "unknown_person")
    problem(await stack.benefits.get(url(parent), headers=as_parent), 404, "not_found")
    problem(await stack.benefits.get(url(parent)), 401, "unauthenticated")


async def test_account_fields_are_validated(stack: InProcessStack) -> None:
    me = await seed_person(stack)
    mine = stack.auth("resident", VILLAGE, person_id=me)
    for bad in (
        {"account_no": "12345678901"},  # 11 digits
        {"account_no": "1" * 31},
        {"account_no": "6228 4800 1234 5678"},
        {"account_no": "62284800123456789X"},
        {"account_name": ""},
        {"account_name": "=HYPERLINK(1)"},
        {"account_name": "王\n芳"},
        {"bank_name": "x" * 61},
        {"extra": 1},
    ):
        body = problem(await put(stack, me, mine, **bad), 422, "validation_failed")
        assert body["errors"], body
    assert (await put(stack, me, mine, account_no="1" * 12)).status_code == 201
    assert (await put(stack, me, mine, account_no="9" * 30, version=1)).json()[
        "account_no_masked"
    ] == "*" * 26 + "9999"
