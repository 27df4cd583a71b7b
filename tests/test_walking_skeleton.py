"""The walking skeleton: person -> application -> approval -> enrollment, confirmed by a
second officer -> inbox message."""

from __future__ import annotations

from typing import Any

from tests.support import TOWNSHIP, InProcessStack, eventually


async def test_certificate_enrolls_holders_and_tells_them(stack: InProcessStack) -> None:
    issued = await stack.issue_certificate()
    mother, father = issued["mother"], issued["father"]
    assert issued["certificate_no"]

    async def prepared() -> list[dict[str, Any]]:
        found = []
        for person in (mother, father):
            items = await stack.enrollments_of(person["id"])
            assert [(e["program"], e["status"]) for e in items] == [
                ("only_child_parent_reward", "pending_review")
            ]
            found += items
        return found

    # Maker-checker: the system prepared them; an officer confirms each.
    for e in await eventually(prepared):
        r = await stack.benefits.post(
            f"/api/v1/enrollments/{e['id']}/confirm",
            json={"version": e["version"]},
            headers=stack.auth("township_officer", TOWNSHIP, sub="checker-1"),
        )
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "active"

    async def told() -> list[dict[str, Any]]:
        r = await stack.notify.get(
            "/api/v1/inbox", headers=stack.auth("resident", person_id=mother["id"])
        )
        assert r.status_code == 200
        items = r.json()["items"]
        assert sorted(m["title"] for m in items) == ["待遇资格已确认", "证件已办好"]
        return items  # type: ignore[no-any-return]

    items = {m["title"]: m for m in await eventually(told)}
    assert "独生子女父母奖励费" in items["待遇资格已确认"]["body"]
    assert "独生子女父母光荣证" in items["证件已办好"]["body"]
    assert not any(m["read"] for m in items.values())
