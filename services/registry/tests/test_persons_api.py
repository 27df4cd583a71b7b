"""Residents over HTTP: changes announced, officers' search inside their region."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

from shared.crypto import EVENT_PHONE_CONTEXT
from tests.support import OTHER_TOWNSHIP, TOWNSHIP, InProcessStack, make_id_number, published


def problem(r: Any, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == code


async def test_change_is_guarded_and_announced(stack: InProcessStack) -> None:
    person = await stack.register_person()
    officer = stack.auth("township_officer", TOWNSHIP)
    url = f"/api/v1/persons/{person['id']}"
    got = await stack.registry.get(url, headers=officer)
    assert got.headers["etag"] == '"1"'
    assert got.json()["marital_status"] == "unknown"

    r = await stack.registry.patch(
        url,
        json={"phone": "13912345678", "marital_status": "married"},
        headers={**officer, "If-Match": got.headers["etag"]},
    )
    assert r.status_code == 200, r.text
    # The officer sees the new phone masked; the event carries it sealed, for notify's SMS.
    assert (r.json()["phone"], r.json()["version"], r.headers["etag"]) == ("139****5678", 2, '"2"')
    updated = await published(stack, "registry", "lingju.registry.person.updated")
    assert [e["data"]["changed"] for e in updated] == [["marital_status", "phone"]]
    sealed = updated[0]["data"]["phone_enc"]
    assert "13912345678" not in json.dumps(updated[0])
    assert stack.rt("registry").cipher.decrypt(sealed, context=EVENT_PHONE_CONTEXT) == "13912345678"
    assert "id_number" not in updated[0]["data"]

    stale = await stack.registry.patch(
        url, json={"name": "改名"}, headers={**officer, "If-Match": '"1"'}
    )
    problem(stale, 412, "precondition_failed")
    problem(
        await stack.registry.patch(url, json={"name": "改名"}, headers=officer),
        428,
        "version_required",
    )
    # Sex and birth date follow the ID number: they are not fields one can send.
    problem(
        await stack.registry.patch(url, json={"sex": "male", "version": 2}, headers=officer),
        422,
        "validation_failed",
    )
    # Moving someone to another township needs authority over both.
    moved = await stack.registry.patch(
        url, json={"region_code": OTHER_TOWNSHIP + "001", "version": 2}, headers=officer
    )
    problem(moved, 403, "out_of_region")
    # Sending what is already there changes nothing and announces nothing.
    same = await stack.registry.patch(
        url, json={"phone": "13912345678", "version": 2}, headers=officer
    )
    assert same.json()["version"] == 2
    assert len(await published(stack, "registry", "lingju.registry.person.updated")) == 1


async def test_search_inside_the_region(stack: InProcessStack) -> None:
    birth = date(1981, 2, 3)
    id_number = make_id_number(birth)
    target = await stack.register_person(birth, name="欧阳春花", id_number=id_number)
    await stack.register_person(name="李四")
    officer = stack.auth("township_officer", TOWNSHIP)

    async def search(**params: str) -> list[str]:
        r = await stack.registry.get("/api/v1/persons", params=params, headers=officer)
        assert r.status_code == 200, r.text
        return [p["id"] for p in r.json()["items"]]

    assert await search(id_number=id_number) == [target["id"]]
    assert await search(name="春花") == [target["id"]]
    assert len(await search()) == 2
    page = (
        await stack.registry.get("/api/v1/persons", params={"limit": 1}, headers=officer)
    ).json()
    rest = (
        await stack.registry.get(
            "/api/v1/persons", params={"limit": 1, "cursor": page["next_cursor"]}, headers=officer
        )
    ).json()
    assert {page["items"][0]["id"], rest["items"][0]["id"]} == {
        target["id"],
        (await search(name="李四"))[0],
    }
    assert rest["next_cursor"] is None
    # The ID number is masked in results, and a malformed one is a 422, not a silent miss.
    r = await stack.registry.get(
        "/api/v1/persons", params={"id_number": id_number}, headers=officer
    )
    assert "*" in r.json()["items"][0]["id_number"]
    bad = await stack.registry.get(
        "/api/v1/persons", params={"id_number": id_number[:-1] + "9"}, headers=officer
    )
    if id_number[-1] != "9":
        problem(bad, 422, "validation_failed")
    # Outside the caller's region, or as a resident: refused.
    problem(
        await stack.registry.get(
            "/api/v1/persons", params={"region": OTHER_TOWNSHIP}, headers=officer
        ),
        403,
        "out_of_region",
    )
    problem(
        await stack.registry.get("/api/v1/persons", headers=stack.auth("resident", person_id="x")),
        403,
        "forbidden",
    )
    other = stack.auth("township_officer", OTHER_TOWNSHIP)
    r = await stack.registry.get("/api/v1/persons", params={"name": "春花"}, headers=other)
    assert r.json()["items"] == []


async def test_marriage_and_widowhood_are_announced_as_person_updates(
    stack: InProcessStack,
) -> None:
    """Other services keep copies of a person: every change reaches them, whoever made it."""
    wife = await stack.register_person(date(1990, 1, 1), "female")
    husband = await stack.register_person(date(1989, 1, 1), "male")
    officer = stack.auth("township_officer", TOWNSHIP)
    r = await stack.registry.post(
        "/api/v1/families",
        headers=officer,
        json={"wife_id": wife["id"], "husband_id": husband["id"], "marriage_date": "2015-05-20"},
    )
    assert r.status_code == 201, r.text
    updates = await published(stack, "registry", "lingju.registry.person.updated")
    assert sorted((e["data"]["person_id"], e["data"]["marital_status"]) for e in updates) == sorted(
        [(wife["id"], "married"), (husband["id"], "married")]
    )
    r = await stack.registry.post(
        f"/api/v1/persons/{husband['id']}/death",
        headers=officer,
        json={"date_of_death": "2026-01-02", "reported_by": "村委会"},
    )
    assert r.status_code == 201, r.text
    updates = await published(stack, "registry", "lingju.registry.person.updated")
    assert (updates[-1]["data"]["person_id"], updates[-1]["data"]["marital_status"]) == (
        wife["id"],
        "widowed",
    )
