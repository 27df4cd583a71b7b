"""Families over HTTP: registering a couple, linking children, reading the structure."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta

from services.registry.tests.family_support import (
    assert_problem,
    couple,
    officer,
    outbox_events,
    person_row,
    register_family,
)
from tests.support import OTHER_TOWNSHIP, TOWNSHIP, VILLAGE, InProcessStack

URL = "/api/v1/families"


# -- POST /families ---------------------------------------------------------------------------


async def test_officer_registers_a_family_with_a_child(stack: InProcessStack) -> None:
    wife, husband = await couple(stack)
    child = await stack.register_person(date(2016, 4, 2), "female", name="李小红", phone=None)
    r = await stack.registry.post(
        URL,
        json={
            "wife_id": wife["id"],
            "husband_id": husband["id"],
            "marriage_date": "2014-05-20",
            "children_ids": [child["id"]],
        },
        headers=officer(stack),
    )
    assert r.status_code == 201, r.text
    family = r.json()
    assert family["wife_id"] == wife["id"] and family["husband_id"] == husband["id"]
    assert family["marriage_date"] == "2014-05-20"
    assert family["region_code"] == VILLAGE
    assert family["status"] == "current" and family["version"] == 1
    assert family["wife"]["name"] == "王芳" and family["husband"]["sex"] == "male"
    assert family["children"] == [
        {
            "id": child["id"],
            "name": "李小红",
            "sex": "female",
            "birth_date": "2016-04-02",
            "alive": True,
            "died_on": None,
        }
    ]
    assert (family["children_count"], family["living_children_count"]) == (1, 1)
    assert (family["sons"], family["daughters"]) == (0, 1)
    assert "id_number" not in str(family)

    for spouse in (wife, husband):
        row = await person_row(stack, spouse["id"])
        assert row.marital_status == "married"
        assert row.version == 2

    (event,) = await outbox_events(stack, "lingju.registry.family.registered")
    assert event["subject"] == family["id"]
    assert event["source"] == "/lingju/registry"
    assert event["dataschema"] == "urn:lingju:schema:lingju.registry.family.registered:v1"
    assert event["data"] == {
        "family_id": family["id"],
        "wife_id": wife["id"],
        "husband_id": husband["id"],
        "marriage_date": "2014-05-20",
        "region_code": VILLAGE,
        "children_ids": [child["id"]],
    }


async def test_a_village_agent_may_register_a_family(stack: InProcessStack) -> None:
    wife, husband = await couple(stack)
    r = await stack.registry.post(
        URL,
        json={"wife_id": wife["id"], "husband_id": husband["id"], "marriage_date": "2020-10-01"},
        headers=stack.auth("village_agent", TOWNSHIP),
    )
    assert r.status_code == 201, r.text
    assert r.json()["children"] == [] and r.json()["children_count"] == 0


async def test_wrong_roles_are_refused(stack: InProcessStack) -> None:
    wife, husband = await couple(stack)
    body = {"wife_id": wife["id"], "husband_id": husband["id"], "marriage_date": "2020-10-01"}
    for headers in (
        stack.auth("resident", person_id=wife["id"]),
        stack.auth("bureau_system", "330102"),
    ):
        r = await stack.registry.post(URL, json=body, headers=headers)
        assert_problem(r, 403, "forbidden")
    assert_problem(await stack.registry.post(URL, json=body), 401, "unauthenticated")
    assert await stack.count_rows("registry", "families") == 0


async def test_an_officer_of_another_township_is_refused(stack: InProcessStack) -> None:
    wife, husband = await couple(stack)
    r = await stack.registry.post(
        URL,
        json={"wife_id": wife["id"], "husband_id": husband["id"], "marriage_date": "2020-10-01"},
        headers=stack.auth("township_officer", OTHER_TOWNSHIP),
    )
    assert_problem(r, 403, "out_of_region")
    assert await stack.count_rows("registry", "families") == 0


async def test_bad_input_is_422_in_chinese(stack: InProcessStack) -> None:
    wife, husband = await couple(stack)
    headers = officer(stack)

    r = await stack.registry.post(
        URL, json={"wife_id": wife["id"], "husband_id": husband["id"]}, headers=headers
    )
    body = assert_problem(r, 422, "validation_failed")
    assert body["errors"] == [{"field": "marriage_date", "message": "必填字段缺失"}]

    r = await stack.registry.post(
        URL,
        json={"wife_id": wife["id"], "husband_id": husband["id"], "marriage_date": "20.5.2014"},
        headers=headers,
    )
    body = assert_problem(r, 422, "validation_failed")
    assert body["errors"][0]["field"] == "marriage_date"
    assert body["errors"][0]["message"] == "应为日期（YYYY-MM-DD）"

    # wife and husband swapped: the recorded sexes do not fit
    r = await stack.registry.post(
        URL,
        json={"wife_id": husband["id"], "husband_id": wife["id"], "marriage_date": "2014-05-20"},
        headers=headers,
    )
    body = assert_problem(r, 422, "validation_failed")
    assert body["errors"] == [{"field": "wife_id", "message": "妻子应为女性居民"}]
    assert body["detail"] == "妻子应为女性居民"

    tomorrow = (date.today() + timedelta(days=2)).isoformat()
    r = await stack.registry.post(
        URL,
        json={"wife_id": wife["id"], "husband_id": husband["id"], "marriage_date": tomorrow},
        headers=headers,
    )
    body = assert_problem(r, 422, "validation_failed")
    assert body["errors"] == [{"field": "marriage_date", "message": "结婚日期不能晚于今天"}]

    r = await stack.registry.post(
        URL,
        json={"wife_id": wife["id"], "husband_id": "nobody", "marriage_date": "2014-05-20"},
        headers=headers,
    )
    body = assert_problem(r, 422, "unknown_person")
    assert body["errors"] == [{"field": "husband_id", "message": "居民不存在"}]

    r = await stack.registry.post(
        URL,
        json={
            "wife_id": wife["id"],
            "husband_id": husband["id"],
            "marriage_date": "2014-05-20",
            "children_ids": [wife["id"]],
        },
        headers=headers,
    )
    body = assert_problem(r, 422, "validation_failed")
    assert body["errors"] == [{"field": "children_ids.0", "message": "子女不能是夫妻本人"}]
    assert await stack.count_rows("registry", "families") == 0


async def test_english_problem_on_request(stack: InProcessStack) -> None:
    wife, husband = await couple(stack)
    r = await stack.registry.post(
        URL,
        json={"wife_id": husband["id"], "husband_id": wife["id"], "marriage_date": "2014-05-20"},
        headers={**officer(stack), "Accept-Language": "en"},
    )
    body = assert_problem(r, 422, "validation_failed")
    assert body["detail"] == "The wife must be a woman"


async def test_a_couple_has_one_current_family(stack: InProcessStack) -> None:
    wife, husband = await couple(stack)
    await register_family(stack, wife, husband)
    r = await stack.registry.post(
        URL,
        json={"wife_id": wife["id"], "husband_id": husband["id"], "marriage_date": "2015-01-01"},
        headers=officer(stack),
    )
    body = assert_problem(r, 409, "family_exists")
    assert body["title"] == "这对夫妻已登记为家庭"
    assert await stack.count_rows("registry", "families") == 1
    assert len(await outbox_events(stack, "lingju.registry.family.registered")) == 1


async def test_concurrent_registrations_of_a_couple_make_one_family(
    stack: InProcessStack,
) -> None:
    wife, husband = await couple(stack)
    body = {"wife_id": wife["id"], "husband_id": husband["id"], "marriage_date": "2014-05-20"}
    results = await asyncio.gather(
        *(stack.registry.post(URL, json=body, headers=officer(stack)) for _ in range(5))
    )
    assert sorted(r.status_code for r in results) == [201, 409, 409, 409, 409]
    assert {r.json()["code"] for r in results if r.status_code == 409} == {"family_exists"}
    assert await stack.count_rows("registry", "families") == 1
    assert (await person_row(stack, wife["id"])).version == 2


async def test_idempotency_key_registers_once(stack: InProcessStack) -> None:
    wife, husband = await couple(stack)
    body = {"wife_id": wife["id"], "husband_id": husband["id"], "marriage_date": "2014-05-20"}
    headers = {**officer(stack), "Idempotency-Key": "family-retry-1"}
    first = await stack.registry.post(URL, json=body, headers=headers)
    again = await stack.registry.post(URL, json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert await stack.count_rows("registry", "families") == 1
    assert (await person_row(stack, wife["id"])).version == 2


# -- GET /families/{id} and ?person_id= -----------------------------------------------------------


async def test_structure_shows_children_their_sexes_and_who_is_alive(stack: InProcessStack) -> None:
    wife, husband = await couple(stack)
    son = await stack.register_person(date(2012, 1, 5), "male", phone=None)
    daughter = await stack.register_person(date(2015, 9, 9), "female", phone=None)
    family = await register_family(stack, wife, husband, [daughter, son], "2010-10-10")
    r = await stack.registry.post(
        f"/api/v1/persons/{son['id']}/death",
        json={"date_of_death": "2020-02-02", "reported_by": "家属"},
        headers=officer(stack),
    )
    assert r.status_code == 201, r.text

    r = await stack.registry.get(f"{URL}/{family['id']}", headers=officer(stack))
    assert r.status_code == 200, r.text
    got = r.json()
    assert [(c["id"], c["sex"], c["alive"]) for c in got["children"]] == [
        (son["id"], "male", False),
        (daughter["id"], "female", True),
    ]
    assert got["children"][0]["died_on"] == "2020-02-02"
    assert got["children"][0]["birth_date"] == "2012-01-05"
    assert (got["children_count"], got["living_children_count"]) == (2, 1)
    assert (got["sons"], got["daughters"]) == (1, 1)


async def test_who_may_read_a_family(stack: InProcessStack) -> None:
    wife, husband = await couple(stack)
    child = await stack.register_person(date(2016, 4, 2), "female", phone=None)
    stranger = await stack.register_person()
    family = await register_family(stack, wife, husband, [child])
    url = f"{URL}/{family['id']}"
    for headers in (
        officer(stack),
        stack.auth("county_officer", "330102"),
        stack.auth("village_worker", VILLAGE),
        stack.auth("resident", person_id=wife["id"]),
        stack.auth("resident", person_id=husband["id"]),
        stack.auth("resident", person_id=child["id"]),
        stack.auth("admin"),
    ):
        r = await stack.registry.get(url, headers=headers)
        assert r.status_code == 200, r.text
        assert r.json()["id"] == family["id"]
    r = await stack.registry.get(url, headers=stack.auth("resident", person_id=stranger["id"]))
    assert_problem(r, 403, "forbidden")
    r = await stack.registry.get(url, headers=stack.auth("township_officer", OTHER_TOWNSHIP))
    assert_problem(r, 403, "out_of_region")
    r = await stack.registry.get(url, headers=stack.auth("bureau_system", "330102"))
    assert_problem(r, 403, "forbidden")
    r = await stack.registry.get(f"{URL}/no-such-family", headers=officer(stack))
    assert_problem(r, 404, "not_found")


async def test_families_of_a_person_as_spouse_or_child_paginated(stack: InProcessStack) -> None:
    wife, husband = await couple(stack)
    child = await stack.register_person(date(2016, 4, 2), "female", phone=None)
    first = await register_family(stack, wife, husband, [child], "2014-05-20")
    second_husband = await stack.register_person(date(1985, 1, 1), "male")
    second = await register_family(stack, wife, second_husband, [], "2021-01-01")

    r = await stack.registry.get(
        URL, params={"person_id": wife["id"], "limit": 1}, headers=officer(stack)
    )
    assert r.status_code == 200, r.text
    page = r.json()
    assert [f["id"] for f in page["items"]] == [first["id"]]
    assert page["next_cursor"]
    r = await stack.registry.get(
        URL,
        params={"person_id": wife["id"], "limit": 1, "cursor": page["next_cursor"]},
        headers=officer(stack),
    )
    assert [f["id"] for f in r.json()["items"]] == [second["id"]]
    assert r.json()["next_cursor"] is None

    r = await stack.registry.get(
        URL,
        params={"person_id": child["id"]},
        headers=stack.auth("resident", person_id=child["id"]),
    )
    assert r.status_code == 200, r.text
    assert [f["id"] for f in r.json()["items"]] == [first["id"]]
    assert r.json()["items"][0]["children_count"] == 1

    r = await stack.registry.get(URL, params={"person_id": husband["id"]}, headers=officer(stack))
    assert [f["id"] for f in r.json()["items"]] == [first["id"]]


async def test_families_of_a_person_refusals_and_bad_input(stack: InProcessStack) -> None:
    wife, husband = await couple(stack)
    await register_family(stack, wife, husband)
    r = await stack.registry.get(URL, headers=officer(stack))
    body = assert_problem(r, 422, "validation_failed")
    assert body["errors"] == [{"field": "person_id", "message": "必填字段缺失"}]
    r = await stack.registry.get(
        URL, params={"person_id": wife["id"], "cursor": "garbage!"}, headers=officer(stack)
    )
    assert_problem(r, 422, "validation_failed")
    r = await stack.registry.get(
        URL,
        params={"person_id": wife["id"]},
        headers=stack.auth("township_officer", OTHER_TOWNSHIP),
    )
    assert_problem(r, 403, "out_of_region")
    r = await stack.registry.get(
        URL,
        params={"person_id": wife["id"]},
        headers=stack.auth("resident", person_id=husband["id"]),
    )
    assert_problem(r, 403, "forbidden")
    r = await stack.registry.get(
        URL, params={"person_id": wife["id"]}, headers=stack.auth("bureau_system", "330102")
    )
    assert_problem(r, 403, "forbidden")
    r = await stack.registry.get(URL, params={"person_id": "nobody"}, headers=officer(stack))
    assert_problem(r, 404, "not_found")


# -- POST /families/{id}/children ----------------------------------------------------------------


async def test_linking_a_child(stack: InProcessStack) -> None:
    wife, husband = await couple(stack)
    family = await register_family(stack, wife, husband)
    child = await stack.register_person(date(2018, 2, 3), "male", phone=None)
    url = f"{URL}/{family['id']}/children"

    r = await stack.registry.post(url, json={"child_id": child["id"]}, headers=officer(stack))
    assert r.status_code == 201, r.text
    assert [c["id"] for c in r.json()["children"]] == [child["id"]]
    assert r.json()["children_count"] == 1 and r.json()["sons"] == 1
    assert r.json()["version"] == 2

    r = await stack.registry.post(url, json={"child_id": child["id"]}, headers=officer(stack))
    assert_problem(r, 409, "child_already_linked")
    assert await stack.count_rows("registry", "family_children") == 1
    # Announced once (the refused second link publishes nothing).
    (linked,) = await outbox_events(stack, "lingju.registry.family.child_linked")
    assert linked["data"] == {
        "family_id": family["id"],
        "child_id": child["id"],
        "wife_id": wife["id"],
        "husband_id": husband["id"],
        "region_code": family["region_code"],
    }


async def test_linking_a_child_refusals_and_bad_input(stack: InProcessStack) -> None:
    wife, husband = await couple(stack)
    family = await register_family(stack, wife, husband)
    child = await stack.register_person(date(2018, 2, 3), "male", phone=None)
    older = await stack.register_person(date(1960, 2, 3), "male")
    url = f"{URL}/{family['id']}/children"
    body = {"child_id": child["id"]}

    for headers in (
        stack.auth("resident", person_id=wife["id"]),
        stack.auth("bureau_system", "330102"),
    ):
        assert_problem(await stack.registry.post(url, json=body, headers=headers), 403, "forbidden")
    r = await stack.registry.post(
        url, json=body, headers=stack.auth("village_agent", OTHER_TOWNSHIP)
    )
    assert_problem(r, 403, "out_of_region")
    r = await stack.registry.post(url, json={}, headers=officer(stack))
    body_ = assert_problem(r, 422, "validation_failed")
    assert body_["errors"] == [{"field": "child_id", "message": "必填字段缺失"}]
    r = await stack.registry.post(url, json={"child_id": older["id"]}, headers=officer(stack))
    body_ = assert_problem(r, 422, "validation_failed")
    assert body_["errors"] == [
        {"field": "child_id", "message": "子女的出生日期应晚于父母的出生日期"}
    ]
    r = await stack.registry.post(url, json={"child_id": "nobody"}, headers=officer(stack))
    assert_problem(r, 422, "unknown_person")
    r = await stack.registry.post(
        f"{URL}/no-such-family/children", json=body, headers=officer(stack)
    )
    assert_problem(r, 404, "not_found")
    assert await stack.count_rows("registry", "family_children") == 0


async def test_linking_with_an_idempotency_key_links_once(stack: InProcessStack) -> None:
    wife, husband = await couple(stack)
    family = await register_family(stack, wife, husband)
    child = await stack.register_person(date(2018, 2, 3), "male", phone=None)
    headers = {**stack.auth("village_agent", TOWNSHIP), "Idempotency-Key": "link-1"}
    url = f"{URL}/{family['id']}/children"
    first = await stack.registry.post(url, json={"child_id": child["id"]}, headers=headers)
    again = await stack.registry.post(url, json={"child_id": child["id"]}, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert await stack.count_rows("registry", "family_children") == 1
