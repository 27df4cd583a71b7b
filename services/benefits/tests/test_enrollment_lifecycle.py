"""Maker-checker through the real broker: a certificate founds pending enrollments, a second
officer confirms them; reject, suspend, resume; versions, regions, who sees what."""

from __future__ import annotations

import asyncio
from datetime import date
from typing import Any

from services.benefits.tests.enrollment_support import (
    ACTIVATED,
    CREATED,
    ENDED,
    ENROLLMENTS,
    assert_problem,
    confirm,
    confirmed,
    enrollments,
    officer,
    wait_for,
)
from shared.clock import FixedClock
from tests.support import (
    OTHER_TOWNSHIP,
    TOWNSHIP,
    VILLAGE,
    InProcessStack,
    eventually,
    published,
)


def _pending(items: list[dict[str, Any]]) -> bool:
    return [e["status"] for e in items] == ["pending_review"]


async def _issued(stack: InProcessStack) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    cert = await stack.issue_certificate()
    found = [
        (await wait_for(stack, _pending, person_id=cert[who]["id"]))[0]
        for who in ("mother", "father")
    ]
    return cert, found


async def test_a_certificate_founds_pending_enrollments_a_second_officer_confirms(
    stack: InProcessStack,
) -> None:
    for service in ("registry", "benefits"):
        stack.rt(service).clock = FixedClock(date(2026, 6, 15))
    cert, found = await _issued(stack)  # issued on 2026-06-15
    month = "2026-06"
    for e, who in zip(found, ("mother", "father"), strict=True):
        assert e["program"] == "only_child_parent_reward"
        assert e["program_name"] == "独生子女父母奖励费"
        assert e["payee_id"] == e["person_id"] == cert[who]["id"]
        assert (e["source"], e["prepared_by"], e["confirmed_by"]) == ("certificate", "system", None)
        # From the issue month (nothing before the certificate) to the month before the only
        # child (born 2012-06) turns 18.
        assert (e["pays_from"], e["pays_until"], e["settled_through"]) == (month, "2030-05", None)
        assert any("独生子女父母光荣证" in r for r in e["reasons"])
    created = await published(stack, "benefits", CREATED)
    assert sorted(c["data"]["enrollment_id"] for c in created) == sorted(e["id"] for e in found)
    assert {c["data"]["status"] for c in created} == {"pending_review"}
    assert {c["data"]["pays_from"] for c in created} == {month}
    assert await published(stack, "benefits", ACTIVATED) == []

    for e in found:
        out = await confirmed(stack, e)
        assert out["status"] == "active" and out["confirmed_by"] == "checker-1"
        assert out["confirmed_at"] and out["version"] == e["version"] + 1
    activated = await published(stack, "benefits", ACTIVATED)
    assert sorted(a["data"]["enrollment_id"] for a in activated) == sorted(e["id"] for e in found)
    for a in activated:
        assert a["subject"] == a["data"]["enrollment_id"]
        assert a["data"]["payee_id"] == a["data"]["person_id"]
        assert a["data"]["monthly_fen"] == 1000
        assert (a["data"]["pays_from"], a["data"]["pays_until"]) == (month, "2030-05")

    # Confirming again: not pending any more, and no second activation.
    again = await confirm(stack, {**found[0], "version": found[0]["version"] + 1}, sub="checker-2")
    assert_problem(again, 409, "invalid_transition")
    assert len(await published(stack, "benefits", ACTIVATED)) == 2


async def test_the_officer_who_prepared_it_cannot_confirm_it(stack: InProcessStack) -> None:
    person = await stack.register_person(date(1962, 4, 10), "female")
    maker = officer(stack, "maker-1")

    async def apply() -> dict[str, Any]:
        r = await stack.benefits.post(
            ENROLLMENTS,
            json={"program": "rural_reward_assistance", "person_id": person["id"]},
            headers=maker,
        )
        assert r.status_code == 201, r.text
        return r.json()  # type: ignore[no-any-return]

    e = await eventually(apply)  # 404 until benefits has the person's facts
    assert (e["status"], e["prepared_by"]) == ("pending_review", "maker-1")
    assert e["source"] == "application"
    r = await confirm(stack, e, sub="maker-1")
    body = assert_problem(r, 403, "maker_checker")
    assert body["detail"] == "审核人不能与经办人为同一人"
    [still] = await enrollments(stack, person_id=person["id"])
    assert (still["status"], still["version"], still["confirmed_by"]) == ("pending_review", 1, None)
    assert await published(stack, "benefits", ACTIVATED) == []

    # Out of region: refused whoever it is; then a stale version; then the right one.
    assert_problem(
        await confirm(stack, e, sub="checker-x", region=OTHER_TOWNSHIP), 403, "out_of_region"
    )
    stale = await confirm(stack, {**e, "version": 7}, sub="checker-1")
    assert_problem(stale, 409, "version_conflict")
    r = await stack.benefits.post(
        f"{ENROLLMENTS}/{e['id']}/confirm",
        json={},
        headers={**officer(stack, "checker-1"), "If-Match": '"7"'},
    )
    assert_problem(r, 412, "precondition_failed")
    r = await stack.benefits.post(
        f"{ENROLLMENTS}/{e['id']}/confirm", json={}, headers=officer(stack, "checker-1")
    )
    assert_problem(r, 428, "version_required")
    # A village worker may prepare but not confirm.
    r = await stack.benefits.post(
        f"{ENROLLMENTS}/{e['id']}/confirm",
        json={"version": 1},
        headers=stack.auth("village_worker", VILLAGE, sub="worker-1"),
    )
    assert_problem(r, 403, "forbidden")
    r = await stack.benefits.post(
        f"{ENROLLMENTS}/{e['id']}/confirm",
        json={},
        headers={**officer(stack, "checker-1"), "If-Match": '"1"'},
    )
    assert r.status_code == 200, r.text
    assert r.headers["etag"] == '"2"'
    assert (r.json()["status"], r.json()["confirmed_by"]) == ("active", "checker-1")
    [activated] = await published(stack, "benefits", ACTIVATED)
    assert activated["data"]["monthly_fen"] == 12000  # the district's rate, 120 yuan


async def test_reject_suspend_resume(stack: InProcessStack) -> None:
    _, (mother, father) = await _issued(stack)
    url = f"{ENROLLMENTS}/{father['id']}"
    r = await stack.benefits.post(
        f"{url}/reject",
        json={"version": father["version"], "reason": "材料不实"},
        headers=officer(stack, "checker-1"),
    )
    assert r.status_code == 200, r.text
    rejected = r.json()
    assert (rejected["status"], rejected["ended_reason"], rejected["status_reason"]) == (
        "ended",
        "rejected",
        "材料不实",
    )
    # Nothing is owed for a rejected enrollment: its window closes before it opens.
    assert rejected["pays_until"] < rejected["pays_from"]
    assert rejected["ends_after"] == rejected["pays_until"]
    [ended] = await published(stack, "benefits", ENDED)
    assert (ended["data"]["reason"], ended["data"]["enrollment_id"]) == ("rejected", father["id"])
    assert_problem(
        await stack.benefits.post(
            f"{url}/reject",
            json={"version": rejected["version"], "reason": "再次"},
            headers=officer(stack, "checker-1"),
        ),
        409,
        "invalid_transition",
    )

    url = f"{ENROLLMENTS}/{mother['id']}"
    # Only an active enrollment can be suspended.
    assert_problem(
        await stack.benefits.post(
            f"{url}/suspend",
            json={"version": mother["version"], "reason": "核查"},
            headers=officer(stack, "checker-1"),
        ),
        409,
        "invalid_transition",
    )
    active = await confirmed(stack, mother)
    assert_problem(
        await stack.benefits.post(
            f"{url}/suspend",
            json={"version": active["version"], "reason": ""},
            headers=officer(stack, "checker-1"),
        ),
        422,
        "validation_failed",
    )
    r = await stack.benefits.post(
        f"{url}/suspend",
        json={"version": active["version"], "reason": "长期外出，待核实"},
        headers=officer(stack, "checker-2"),
    )
    assert r.status_code == 200, r.text
    suspended = r.json()
    assert (suspended["status"], suspended["status_reason"]) == ("suspended", "长期外出，待核实")
    r = await stack.benefits.post(
        f"{url}/resume", json={"version": suspended["version"]}, headers=officer(stack, "c-3")
    )
    assert r.status_code == 200, r.text
    resumed = r.json()
    assert (resumed["status"], resumed["status_reason"]) == ("active", None)
    assert resumed["version"] == suspended["version"] + 1
    [paused] = await published(stack, "benefits", "lingju.benefits.enrollment.suspended")
    assert paused["data"]["reason"] == "长期外出，待核实"
    [again] = await published(stack, "benefits", "lingju.benefits.enrollment.resumed")
    assert again["data"]["enrollment_id"] == mother["id"]


async def test_reading_enrollments(stack: InProcessStack) -> None:
    cert, (mother, father) = await _issued(stack)
    await confirmed(stack, mother)
    r = await stack.benefits.get(
        f"{ENROLLMENTS}/{mother['id']}", headers=stack.auth("township_officer", TOWNSHIP)
    )
    assert r.status_code == 200, r.text
    assert r.headers["etag"] == '"2"'
    detail = r.json()
    for field in (
        "reasons",
        "pays_from",
        "pays_until",
        "settled_through",
        "prepared_by",
        "confirmed_by",
        "confirmed_at",
        "payee_id",
        "case",
        "status_reason",
        "version",
    ):
        assert field in detail
    assert detail["confirmed_by"] == "checker-1"

    by_status = await enrollments(stack, status="active")
    assert [e["id"] for e in by_status] == [mother["id"]]
    assert [e["id"] for e in await enrollments(stack, status="pending_review")] == [father["id"]]
    assert len(await enrollments(stack, program="only_child_parent_reward")) == 2
    assert await enrollments(stack, program="childcare_subsidy") == []
    r = await stack.benefits.get(
        ENROLLMENTS, params={"status": "bogus"}, headers=stack.auth("county_officer", "330102")
    )
    assert_problem(r, 422, "validation_failed")
    first = await stack.benefits.get(
        ENROLLMENTS, params={"limit": 1}, headers=stack.auth("county_officer", "330102")
    )
    second = await stack.benefits.get(
        ENROLLMENTS,
        params={"limit": 1, "cursor": first.json()["next_cursor"]},
        headers=stack.auth("county_officer", "330102"),
    )
    ids = [first.json()["items"][0]["id"], second.json()["items"][0]["id"]]
    assert sorted(ids) == sorted([mother["id"], father["id"]])
    assert second.json()["next_cursor"] is None

    # Out of region: neither listed nor readable.
    other = stack.auth("township_officer", OTHER_TOWNSHIP)
    assert (await stack.benefits.get(ENROLLMENTS, headers=other)).json()["items"] == []
    r = await stack.benefits.get(f"{ENROLLMENTS}/{mother['id']}", headers=other)
    assert_problem(r, 403, "out_of_region")
    r = await stack.benefits.get(
        f"{ENROLLMENTS}/nope", headers=stack.auth("county_officer", "330102")
    )
    assert_problem(r, 404, "not_found")

    # A resident sees their own, not their spouse's.
    me = stack.auth("resident", person_id=cert["mother"]["id"])
    mine = (await stack.benefits.get(ENROLLMENTS, headers=me)).json()["items"]
    assert [e["id"] for e in mine] == [mother["id"]]
    r = await stack.benefits.get(f"{ENROLLMENTS}/{mother['id']}", headers=me)
    assert r.status_code == 200
    r = await stack.benefits.get(f"{ENROLLMENTS}/{father['id']}", headers=me)
    assert_problem(r, 404, "not_found")
    r = await stack.benefits.get(ENROLLMENTS, params={"person_id": father["person_id"]}, headers=me)
    assert r.json()["items"] == []


async def test_two_officers_confirming_at_once_activate_it_once(stack: InProcessStack) -> None:
    _, (mother, _) = await _issued(stack)
    results = await asyncio.gather(
        confirm(stack, mother, sub="checker-1"), confirm(stack, mother, sub="checker-2")
    )
    assert sorted(r.status_code for r in results) == [200, 409]
    loser = next(r for r in results if r.status_code == 409)
    assert loser.json()["code"] in ("version_conflict", "invalid_transition")
    [activated] = await published(stack, "benefits", ACTIVATED)
    assert activated["data"]["enrollment_id"] == mother["id"]
    [row] = await enrollments(stack, person_id=mother["person_id"])
    assert (row["status"], row["version"]) == ("active", 2)
