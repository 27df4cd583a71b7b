"""The walking skeleton: person -> application -> approval -> enrollment -> inbox message."""

from __future__ import annotations

from tests.support import InProcessStack, eventually


async def test_certificate_enrolls_holders_and_tells_them(stack: InProcessStack) -> None:
    issued = await stack.issue_certificate()
    mother, father = issued["mother"], issued["father"]
    assert issued["certificate_no"]

    async def enrolled() -> None:
        for person in (mother, father):
            items = await stack.enrollments_of(person["id"])
            assert [(e["program"], e["status"]) for e in items] == [
                ("only_child_parent_reward", "active")
            ]

    await eventually(enrolled)

    async def told() -> list[dict]:
        r = await stack.notify.get(
            "/api/v1/inbox", headers=stack.auth("resident", person_id=mother["id"])
        )
        assert r.status_code == 200
        items = r.json()["items"]
        assert len(items) == 1
        return items

    items = await eventually(told)
    assert "独生子女父母奖励费" in items[0]["body"]
    assert items[0]["read"] is False
