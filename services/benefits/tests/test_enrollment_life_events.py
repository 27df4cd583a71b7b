"""Births and deaths found and end enrollments through the real broker: the childcare
subsidy, an only child's death (reward ended, special assistance prepared), recovering what
was paid after a death, and a payee's death."""

from __future__ import annotations

from datetime import date
from typing import Any

from services.benefits.domain.programs import Period
from services.benefits.tests.enrollment_support import (
    ENDED,
    ENROLLMENTS,
    assert_problem,
    born,
    confirmed,
    die,
    enrollments,
    honor_family,
    ledger,
    officer,
    send,
    set_columns,
    wait_for,
)
from shared.clock import FixedClock
from tests.support import InProcessStack, eventually, published


def _statuses(*expected: str) -> Any:
    return lambda items: sorted(e["status"] for e in items) == sorted(expected)


async def test_a_birth_founds_the_childcare_subsidy_paid_to_the_mother(
    stack: InProcessStack,
) -> None:
    mother = await stack.register_person(date(1995, 3, 1), "female")
    father = await stack.register_person(date(1993, 7, 9), "male")
    birth = await born(stack, mother["id"], father["id"], date(2025, 3, 15))
    child_id = birth["child"]["id"]
    [e] = await wait_for(stack, _statuses("pending_review"), person_id=child_id)
    assert (e["program"], e["payee_id"], e["source"], e["source_ref"]) == (
        "childcare_subsidy",
        mother["id"],
        "child_born",
        child_id,
    )
    # From the birth month to the month before the 3rd-birthday month.
    assert (e["pays_from"], e["pays_until"]) == ("2025-03", "2028-02")
    assert e["prepared_by"] == "system" and e["reasons"]
    # The mother sees her child's enrollment; the child's is also listed for her.
    me = stack.auth("resident", person_id=mother["id"])
    mine = (await stack.benefits.get(ENROLLMENTS, headers=me)).json()["items"]
    assert [x["id"] for x in mine] == [e["id"]]
    r = await stack.benefits.get(ENROLLMENTS, params={"person_id": child_id}, headers=me)
    assert [x["id"] for x in r.json()["items"]] == [e["id"]]

    active = await confirmed(stack, e)
    [activated] = await published(stack, "benefits", "lingju.benefits.enrollment.activated")
    assert activated["data"]["payee_id"] == mother["id"]
    assert activated["data"]["monthly_fen"] == 30000  # 3,600 yuan a year

    # The mother dies: the child's subsidy waits for a new payee (nothing paid to the dead).
    await die(stack, mother["id"], date(2026, 9, 3))
    [held] = await wait_for(stack, _statuses("suspended"), person_id=child_id)
    assert held["status_reason"] == "收款人已于 2026-09-03 去世，请指定新的收款人"
    url = f"{ENROLLMENTS}/{active['id']}/resume"
    r = await stack.benefits.post(
        url, json={"version": held["version"]}, headers=officer(stack, "c")
    )
    assert_problem(r, 409, "payee_deceased")
    r = await stack.benefits.post(
        url,
        json={"version": held["version"], "payee_id": father["id"]},
        headers=officer(stack, "c"),
    )
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["payee_id"]) == ("active", father["id"])


async def test_a_birth_seen_twice_founds_one_subsidy(stack: InProcessStack) -> None:
    for service in ("registry", "benefits"):
        stack.rt(service).clock = FixedClock(date(2026, 6, 15))
    mother = await stack.register_person(date(1995, 3, 1), "female")
    birth = await born(stack, mother["id"])  # born on the registry's day
    assert birth["child"]["birth_date"] == "2026-06-15"
    child_id = birth["child"]["id"]
    [e] = await wait_for(stack, _statuses("pending_review"), person_id=child_id)
    assert e["pays_from"] == "2026-06"
    [event] = await published(stack, "registry", "lingju.registry.child.born")
    before = await stack.count_rows("benefits", "event_inbox")
    # The same birth under a new event id (a second report path): the inbox cannot tell.
    await send(stack, "lingju.registry.child.born", event["data"])

    async def applied() -> None:
        assert await stack.count_rows("benefits", "event_inbox") > before

    await eventually(applied)
    assert len(await enrollments(stack, person_id=child_id)) == 1


async def test_an_only_childs_death_ends_the_reward_and_founds_special_assistance(
    stack: InProcessStack,
) -> None:
    family = await honor_family(
        stack,
        mother_birth=date(1981, 6, 15),  # 45 now: 49 in 2030-06
        father_birth=date(1975, 3, 2),  # 51: 49 long ago
        child_birth=date(2010, 1, 10),
        register_family=True,
    )
    mother, father, child = (family[k]["id"] for k in ("mother", "father", "child"))
    [m] = await wait_for(stack, _statuses("pending_review"), person_id=mother)
    await wait_for(stack, _statuses("pending_review"), person_id=father)
    await confirmed(stack, m)  # one active, one still pending: both end
    died_on = date(2026, 10, 15)
    death = await die(stack, child, died_on)
    assert sorted(death["only_child_of"]) == sorted([mother, father])

    async def settled() -> dict[str, list[dict[str, Any]]]:
        out = {p: await enrollments(stack, person_id=p) for p in (mother, father)}
        for items in out.values():
            assert sorted((e["program"], e["status"]) for e in items) == [
                ("only_child_parent_reward", "ended"),
                ("special_assistance", "pending_review"),
            ], items
        return out

    found = await eventually(settled)
    for person, items in found.items():
        by_program = {e["program"]: e for e in items}
        reward = by_program["only_child_parent_reward"]
        assert (reward["ended_reason"], reward["ends_after"], reward["pays_until"]) == (
            "child_died",
            "2026-10",
            "2026-10",
        )
        special = by_program["special_assistance"]
        assert (special["case"], special["source"], special["source_ref"]) == (
            "child_died",
            "death",
            child,
        )
        assert special["payee_id"] == person and special["pays_until"] is None
        assert any("独生子女已去世" in r for r in special["reasons"])
    # The mother of 45 is paid from the month after her 49th birthday; the father from the
    # month after the child's death.
    special_of = {
        p: next(e for e in items if e["program"] == "special_assistance")
        for p, items in found.items()
    }
    assert special_of[mother]["pays_from"] == "2030-07"
    assert special_of[father]["pays_from"] == "2026-11"
    ended = await published(stack, "benefits", ENDED)
    assert sorted((e["data"]["person_id"], e["data"]["reason"]) for e in ended) == sorted(
        [(mother, "child_died"), (father, "child_died")]
    )
    assert await ledger(stack) == []  # nothing was settled: nothing to recover


async def test_a_death_after_its_months_were_paid_is_recorded_for_recovery(
    stack: InProcessStack,
) -> None:
    person = await stack.register_person(date(1962, 4, 10), "female")  # rural, 330102: 120/month

    async def applied() -> dict[str, Any]:
        r = await stack.benefits.post(
            ENROLLMENTS,
            json={"program": "rural_reward_assistance", "person_id": person["id"]},
            headers=officer(stack, "maker-1"),
        )
        assert r.status_code == 201, r.text
        return r.json()  # type: ignore[no-any-return]

    e = await confirmed(stack, await eventually(applied))
    assert e["pays_from"] == "2022-05"
    # A payment run already paid through November when the death (31 August) is recorded.
    await set_columns(stack, e["id"], settled_through="2026-11")
    await die(stack, person["id"], date(2026, 8, 31))
    [ended] = await wait_for(stack, _statuses("ended"), person_id=person["id"])
    assert (ended["ended_reason"], ended["ends_after"], ended["pays_until"]) == (
        "death",
        "2026-08",
        "2026-08",
    )
    [row] = await ledger(stack)
    assert (row.kind, row.period_from, row.period_until) == ("correction", "2026-09", "2026-11")
    assert row.amount_fen == -3 * 12000
    assert (row.enrollment_id, row.person_id, row.payee_id) == (e["id"], person["id"], person["id"])
    assert row.reason == "死亡后多发，待追回"
    assert row.program == "rural_reward_assistance"
    # The same death announced again: no second correction, no second ending.
    [event] = await published(stack, "registry", "lingju.registry.person.died")
    before = await stack.count_rows("benefits", "event_inbox")
    await send(stack, "lingju.registry.person.died", event["data"])

    async def seen() -> None:
        assert await stack.count_rows("benefits", "event_inbox") > before

    await eventually(seen)
    assert len(await ledger(stack)) == 1
    assert len(await published(stack, "benefits", ENDED)) == 1


async def test_a_death_within_the_paid_months_owes_nothing_back(stack: InProcessStack) -> None:
    person = await stack.register_person(date(1962, 4, 10), "female")

    async def applied() -> dict[str, Any]:
        r = await stack.benefits.post(
            ENROLLMENTS,
            json={"program": "rural_reward_assistance", "person_id": person["id"]},
            headers=officer(stack, "maker-1"),
        )
        assert r.status_code == 201, r.text
        return r.json()  # type: ignore[no-any-return]

    e = await confirmed(stack, await eventually(applied))
    await set_columns(stack, e["id"], settled_through="2026-08")
    await die(stack, person["id"], date(2026, 8, 1))
    [ended] = await wait_for(stack, _statuses("ended"), person_id=person["id"])
    assert ended["pays_until"] == "2026-08"
    assert Period.parse(ended["pays_until"]) == Period.parse(ended["settled_through"])
    assert await ledger(stack) == []
