"""Visits' bulk export (shared/exports.py): every page of a region, both formats, no free text
for anyone, structured findings only for county officers and the admin, and the refusals."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from services.registry.tests.test_exports import pull_all, read_csv
from services.visits.api.exports import VISIT_COLUMNS
from services.visits.models import Task, VisitRecord
from services.visits.tests.test_tasks import (
    DISTRICT,
    OTHER_VILLAGE,
    add_person,
    api,
    assign,
    birth,
    child_born,
    emit,
    tasks_of,
    today_is,
    worker,
)
from services.visits.tests.test_visits import VISIT_DAY, visit
from tests.support import OTHER_TOWNSHIP, TOWNSHIP, VILLAGE, InProcessStack

VISITS = "/api/v1/exports/visits"
FINDINGS = {
    "temperature": 36.8,
    "bp_systolic": 118,
    "breasts": "normal",
    "blood_pressure": "118/76",  # not a field of the form: a free-text note
    "notes": "恢复良好，母乳喂养",
}
FREE_TEXT = ("家中", "118/76", "恢复良好", "本人表示不需要")


@pytest.fixture(autouse=True)
def _visit_day(stack: InProcessStack) -> None:
    today_is(stack, VISIT_DAY)


async def record(
    stack: InProcessStack, task: Task, headers: dict[str, str], **extra: Any
) -> dict[str, Any]:
    r = await api(stack).post(
        f"/api/v1/tasks/{task.id}/visits", json=visit(task, **extra), headers=headers
    )
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


async def ids_in(stack: InProcessStack, prefix: str) -> set[str]:
    async with stack.rt("visits").db.session() as s:
        found = await s.scalars(
            select(VisitRecord.id)
            .join(Task, Task.id == VisitRecord.task_id)
            .where(Task.region_code.startswith(prefix))
        )
        return set(found.all())


async def seed(stack: InProcessStack) -> dict[str, Any]:
    """Three visits in the village (one refused, with a note) and one in the other township."""
    assert (await assign(stack, VILLAGE, "village", "worker-1")).status_code == 200
    mother, child = await birth(stack)
    home = next(t for t in await tasks_of(stack, mother) if t.step == "home_visit_1")
    first = await record(stack, home, worker(stack), findings=FINDINGS)
    child_tasks = sorted(await tasks_of(stack, child), key=lambda t: (t.due_on, t.step))
    second = await record(stack, child_tasks[0], worker(stack), findings={})
    other_mother, _ = await birth(stack)
    other_home = next(t for t in await tasks_of(stack, other_mother) if t.step == "home_visit_1")
    refused = await record(
        stack,
        other_home,
        worker(stack),
        consent={"given": False, "note": "本人表示不需要上门"},
        findings={},
    )

    far_mother = await add_person(stack, OTHER_VILLAGE)
    far_child = await add_person(stack, OTHER_VILLAGE, sex="male")
    await emit(stack, child_born(far_mother, far_child), subject=far_child)
    far_home = next(t for t in await tasks_of(stack, far_mother) if t.step == "home_visit_1")
    far = await record(stack, far_home, stack.auth("township_officer", OTHER_TOWNSHIP))
    return {"inside": [first, second, refused], "outside": far, "home": home}


async def test_every_page_of_the_region_and_nothing_else(stack: InProcessStack) -> None:
    world = await seed(stack)
    township = stack.auth("township_officer", TOWNSHIP)
    rows, pages = await pull_all(stack.visits, VISITS, township, limit=2)
    ids = [row["id"] for row in rows]
    assert len(ids) == len(set(ids)) == 3 and pages == 2
    assert set(ids) == await ids_in(stack, TOWNSHIP) == {v["id"] for v in world["inside"]}
    assert all(list(row) == [c.name for c in VISIT_COLUMNS] for row in rows)
    first = next(row for row in rows if row["id"] == world["inside"][0]["id"])
    assert (first["plan"], first["step"]) == (world["home"].plan, "home_visit_1")
    assert first["service"] == "postpartum_home_visit" and first["consent"] == "given"

    bureau = stack.auth("bureau_system", DISTRICT, sub="county-bureau")
    rows, _ = await pull_all(stack.visits, VISITS, bureau, limit=3)
    assert {row["id"] for row in rows} == await ids_in(stack, DISTRICT)
    assert len(rows) == 4
    rows, _ = await pull_all(stack.visits, VISITS, bureau, region=OTHER_TOWNSHIP)
    assert [row["id"] for row in rows] == [world["outside"]["id"]]

    table = read_csv(await stack.visits.get(VISITS, params={"format": "csv"}, headers=bureau))
    assert table[0] == [c.name for c in VISIT_COLUMNS]
    assert {row[0] for row in table[1:]} == await ids_in(stack, DISTRICT)


async def test_no_free_text_and_findings_only_for_county_officers_and_admin(
    stack: InProcessStack,
) -> None:
    world = await seed(stack)
    first = world["inside"][0]["id"]
    for role, region in (("county_officer", DISTRICT), ("admin", "")):
        r = await stack.visits.get(VISITS, headers=stack.auth(role, region))
        assert r.status_code == 200, r.text
        assert not any(text in r.text for text in FREE_TEXT), role
        rows, _ = await pull_all(stack.visits, VISITS, stack.auth(role, region))
        findings = next(row["findings"] for row in rows if row["id"] == first)
        assert findings == {"temperature": 36.8, "bp_systolic": 118, "breasts": "normal"}
    for role, region in (("township_officer", TOWNSHIP), ("bureau_system", DISTRICT)):
        for format in ("jsonl", "csv"):
            r = await stack.visits.get(
                VISITS, params={"format": format}, headers=stack.auth(role, region)
            )
            assert r.status_code == 200, r.text
            assert not any(text in r.text for text in FREE_TEXT), role
            assert "temperature" not in r.text and "36.8" not in r.text, role


async def test_refusals(stack: InProcessStack) -> None:
    await seed(stack)
    township = stack.auth("township_officer", TOWNSHIP)
    r = await stack.visits.get(VISITS, params={"region": OTHER_TOWNSHIP}, headers=township)
    assert r.status_code == 403 and r.json()["code"] == "out_of_region", r.text
    for headers in (
        worker(stack),
        stack.auth("resident", person_id="00000000-0000-0000-0000-000000000001"),
        stack.auth("village_agent", VILLAGE),
    ):
        r = await stack.visits.get(VISITS, headers=headers)
        assert r.status_code == 403 and r.json()["code"] == "forbidden", r.text
    r = await stack.visits.get(VISITS, params={"cursor": "WyJhIiwiYiJd"}, headers=township)
    assert r.status_code == 422, r.text
