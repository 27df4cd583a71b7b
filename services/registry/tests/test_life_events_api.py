"""Births, deaths and the health bureau's signed, idempotent reports, over HTTP."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import date, timedelta
from typing import Any

from services.registry.tests.family_support import (
    COUNTY,
    assert_problem,
    bureau_post_args,
    bureau_report,
    couple,
    newborn,
    officer,
    outbox_events,
    person_row,
    register_family,
)
from shared.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER
from tests.support import OTHER_TOWNSHIP, TOWNSHIP, VILLAGE, InProcessStack, make_id_number

BIRTHS = "/api/v1/births"
HOSPITAL = "/api/v1/integrations/hospital-events"


def death_url(person_id: str) -> str:
    return f"/api/v1/persons/{person_id}/death"


# -- births -----------------------------------------------------------------------------------


async def test_a_birth_creates_the_child_links_the_family_and_announces_both(
    stack: InProcessStack,
) -> None:
    wife, husband = await couple(stack, household_type="urban", residency="floating")
    family = await register_family(stack, wife, husband)
    today = date.today().isoformat()
    r = await stack.registry.post(
        BIRTHS,
        json={"mother_id": wife["id"], "father_id": husband["id"], "child": newborn()},
        headers=officer(stack),
    )
    assert r.status_code == 201, r.text
    birth = r.json()
    child = birth["child"]
    assert child["id_number"] is None  # a newborn has no ID number yet
    assert child["name"] == "李小宝" and child["sex"] == "male" and child["birth_date"] == today
    assert child["region_code"] == VILLAGE
    assert (child["household_type"], child["residency"]) == ("urban", "floating")  # mother's
    assert birth["family_id"] == family["id"]
    assert birth["mother_id"] == wife["id"] and birth["father_id"] == husband["id"]
    assert birth["birth_certificate_no"] == "Q330000001"

    row = await person_row(stack, child["id"])
    assert row.id_number_enc is None and row.id_number_index is None
    assert row.marital_status == "single" and row.phone_enc is None and row.phone_index is None
    r = await stack.registry.get(f"/api/v1/persons/{child['id']}", headers=officer(stack))
    assert r.status_code == 200, r.text
    assert r.json()["id_number"] is None and r.json()["birth_date"] == today

    r = await stack.registry.get(f"/api/v1/families/{family['id']}", headers=officer(stack))
    assert [c["id"] for c in r.json()["children"]] == [child["id"]]
    assert r.json()["children_count"] == 1 and r.json()["version"] == 2

    (registered,) = [
        e
        for e in await outbox_events(stack, "lingju.registry.person.registered")
        if e["subject"] == child["id"]
    ]
    assert registered["data"] == {
        "person_id": child["id"],
        "name": "李小宝",
        "sex": "male",
        "birth_date": today,
        "region_code": VILLAGE,
        "residency": "floating",
        "household_type": "urban",
        "phone_enc": None,
    }
    (born,) = await outbox_events(stack, "lingju.registry.child.born")
    assert born["subject"] == child["id"]
    assert born["data"] == {
        "child_id": child["id"],
        "mother_id": wife["id"],
        "father_id": husband["id"],
        "birth_date": today,
        "sex": "male",
        "region_code": VILLAGE,
        "hospital": "上城区妇幼保健院",
        "birth_certificate_no": "Q330000001",
        "family_id": family["id"],
        "source": "officer",
    }


async def test_a_birth_without_father_joins_the_mothers_family(stack: InProcessStack) -> None:
    wife, husband = await couple(stack)
    family = await register_family(stack, wife, husband)
    r = await stack.registry.post(
        BIRTHS,
        json={"mother_id": wife["id"], "child": newborn(sex="female")},
        headers=stack.auth("village_agent", TOWNSHIP),
    )
    assert r.status_code == 201, r.text
    assert r.json()["family_id"] == family["id"] and r.json()["father_id"] is None
    (born,) = await outbox_events(stack, "lingju.registry.child.born")
    assert born["data"]["father_id"] is None and born["data"]["family_id"] == family["id"]


async def test_a_birth_outside_a_family_links_none(stack: InProcessStack) -> None:
    wife, husband = await couple(stack)
    await register_family(stack, wife, husband)
    single_mother = await stack.register_person(date(1995, 1, 1), "female")
    other_father = await stack.register_person(date(1990, 1, 1), "male")
    r = await stack.registry.post(
        BIRTHS, json={"mother_id": single_mother["id"], "child": newborn()}, headers=officer(stack)
    )
    assert r.status_code == 201 and r.json()["family_id"] is None
    # a father other than the husband: the child is not put into the husband's family
    r = await stack.registry.post(
        BIRTHS,
        json={
            "mother_id": wife["id"],
            "father_id": other_father["id"],
            "child": newborn(birth_certificate_no="Q330000002"),
        },
        headers=officer(stack),
    )
    assert r.status_code == 201 and r.json()["family_id"] is None
    assert await stack.count_rows("registry", "family_children") == 0


async def test_a_newborn_with_an_id_number(stack: InProcessStack) -> None:
    mother = await stack.register_person(date(1993, 2, 2), "female")
    born = date.today() - timedelta(days=3)
    id_number = make_id_number(born, "female")
    r = await stack.registry.post(
        BIRTHS,
        json={
            "mother_id": mother["id"],
            "child": newborn(sex="female", birth_date=born.isoformat(), id_number=id_number),
        },
        headers=officer(stack),
    )
    assert r.status_code == 201, r.text
    masked = r.json()["child"]["id_number"]
    assert masked == id_number[:6] + "********" + id_number[-4:]
    child_id = r.json()["child"]["id"]
    # the ID number is now taken, by the child
    r = await stack.registry.post(
        "/api/v1/persons",
        json={
            "id_number": id_number,
            "name": "重复",
            "region_code": VILLAGE,
            "household_type": "rural",
        },
        headers=officer(stack),
    )
    assert_problem(r, 409, "duplicate_id_number")
    (registered,) = [
        e
        for e in await outbox_events(stack, "lingju.registry.person.registered")
        if e["subject"] == child_id
    ]
    assert registered["data"]["sex"] == "female"
    assert id_number not in json.dumps(registered)


async def test_births_refuse_wrong_roles_and_other_townships(stack: InProcessStack) -> None:
    mother = await stack.register_person(date(1993, 2, 2), "female")
    body = {"mother_id": mother["id"], "child": newborn()}
    for headers in (
        stack.auth("resident", person_id=mother["id"]),
        stack.auth("bureau_system", COUNTY),  # the bureau reports through the signed API
    ):
        assert_problem(
            await stack.registry.post(BIRTHS, json=body, headers=headers), 403, "forbidden"
        )
    r = await stack.registry.post(
        BIRTHS, json=body, headers=stack.auth("township_officer", OTHER_TOWNSHIP)
    )
    assert_problem(r, 403, "out_of_region")
    assert await stack.count_rows("registry", "births") == 0


async def test_births_bad_input_is_422_in_chinese(stack: InProcessStack) -> None:
    mother = await stack.register_person(date(1993, 2, 2), "female")
    man = await stack.register_person(date(1990, 2, 2), "male")
    headers = officer(stack)

    async def post(
        child: dict[str, Any] | None = None, code: str = "validation_failed", **changes: Any
    ) -> dict[str, Any]:
        kid = {k: v for k, v in {**newborn(), **(child or {})}.items() if v is not None}
        body = {"mother_id": mother["id"], "child": kid, **changes}
        r = await stack.registry.post(BIRTHS, json=body, headers=headers)
        return assert_problem(r, 422, code)

    body = await post(child={"name": None})
    assert body["errors"] == [{"field": "child.name", "message": "必填字段缺失"}]
    body = await post(child={"sex": "boy"})
    assert body["errors"] == [{"field": "child.sex", "message": "取值不在允许范围内"}]
    tomorrow = (date.today() + timedelta(days=2)).isoformat()
    body = await post(child={"birth_date": tomorrow})
    assert body["errors"] == [{"field": "child.birth_date", "message": "出生日期不能晚于今天"}]
    body = await post(child={"id_number": "110105198001010012"})
    assert body["errors"] == [{"field": "child.id_number", "message": "身份证号校验码错误"}]
    other_day = make_id_number(date.today() - timedelta(days=40), "male")
    body = await post(child={"id_number": other_day})
    assert body["errors"][0]["field"] == "child.id_number"
    body = await post(mother_id=man["id"])
    assert body["errors"] == [{"field": "mother_id", "message": "母亲应为女性居民"}]
    body = await post(father_id=mother["id"])
    assert body["errors"] == [{"field": "father_id", "message": "父亲应为男性居民"}]
    body = await post(mother_id="nobody", code="unknown_person")
    assert body["errors"] == [{"field": "mother_id", "message": "居民不存在"}]
    assert await stack.count_rows("registry", "births") == 0
    assert await stack.count_rows("registry", "persons") == 2


async def test_a_birth_certificate_registers_one_birth(stack: InProcessStack) -> None:
    mother = await stack.register_person(date(1993, 2, 2), "female")
    body = {"mother_id": mother["id"], "child": newborn()}
    assert (await stack.registry.post(BIRTHS, json=body, headers=officer(stack))).status_code == 201
    r = await stack.registry.post(BIRTHS, json=body, headers=officer(stack))
    assert_problem(r, 409, "duplicate_birth")
    assert await stack.count_rows("registry", "births") == 1
    assert len(await outbox_events(stack, "lingju.registry.child.born")) == 1


async def test_a_birth_with_an_idempotency_key_is_registered_once(stack: InProcessStack) -> None:
    mother = await stack.register_person(date(1993, 2, 2), "female")
    body = {"mother_id": mother["id"], "child": newborn()}
    headers = {**officer(stack), "Idempotency-Key": "birth-retry-1"}
    first = await stack.registry.post(BIRTHS, json=body, headers=headers)
    again = await stack.registry.post(BIRTHS, json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json() and again.headers["idempotent-replayed"] == "true"
    assert await stack.count_rows("registry", "births") == 1


# -- deaths -----------------------------------------------------------------------------------


async def test_a_death_is_recorded_once_and_announced(stack: InProcessStack) -> None:
    person = await stack.register_person(date(1940, 1, 1), "male")
    body = {"date_of_death": "2025-01-15", "cause": "心力衰竭", "reported_by": "家属 张三"}
    r = await stack.registry.post(death_url(person["id"]), json=body, headers=officer(stack))
    assert r.status_code == 201, r.text
    assert r.json() == {
        "person_id": person["id"],
        "date_of_death": "2025-01-15",
        "region_code": VILLAGE,
        "reported_by": "家属 张三",
        "only_child_of": [],
    }
    row = await person_row(stack, person["id"])
    assert row.died_on == date(2025, 1, 15) and row.version == 2

    r = await stack.registry.post(death_url(person["id"]), json=body, headers=officer(stack))
    body_ = assert_problem(r, 409, "already_dead")
    assert "2025-01-15" in body_["detail"]
    assert await stack.count_rows("registry", "deaths") == 1

    (died,) = await outbox_events(stack, "lingju.registry.person.died")
    assert died["subject"] == person["id"]
    assert died["data"] == {
        "person_id": person["id"],
        "date_of_death": "2025-01-15",
        "region_code": VILLAGE,
        "only_child_of": [],
        "source": "officer",
    }
    assert "心力衰竭" not in json.dumps(await outbox_events(stack, "lingju.registry.person.died"))
    async with stack.rt("registry").db.session() as s:
        from services.registry.models import Death

        death = await s.get(Death, person["id"])
    assert death is not None and death.cause_enc and "心力衰竭" not in death.cause_enc


async def test_the_death_of_an_only_child_names_the_parents(stack: InProcessStack) -> None:
    wife, husband = await couple(stack)
    child = await stack.register_person(date(2005, 6, 1), "male", phone=None)
    await register_family(stack, wife, husband, [child], "2003-03-03")
    r = await stack.registry.post(
        death_url(child["id"]),
        json={"date_of_death": "2024-08-01", "reported_by": "父亲"},
        headers=stack.auth("village_worker", VILLAGE),
    )
    assert r.status_code == 201, r.text
    assert r.json()["only_child_of"] == [wife["id"], husband["id"]]
    (died,) = await outbox_events(stack, "lingju.registry.person.died")
    assert died["data"]["only_child_of"] == [wife["id"], husband["id"]]


async def test_a_child_with_a_sibling_is_no_only_child(stack: InProcessStack) -> None:
    wife, husband = await couple(stack)
    child = await stack.register_person(date(2005, 6, 1), "male", phone=None)
    sibling = await stack.register_person(date(2008, 6, 1), "female", phone=None)
    await register_family(stack, wife, husband, [child, sibling], "2003-03-03")
    r = await stack.registry.post(
        death_url(child["id"]),
        json={"date_of_death": "2024-08-01", "reported_by": "父亲"},
        headers=officer(stack),
    )
    assert r.status_code == 201 and r.json()["only_child_of"] == []


async def test_a_spouses_death_widows_the_survivor(stack: InProcessStack) -> None:
    wife, husband = await couple(stack)
    await register_family(stack, wife, husband)
    r = await stack.registry.post(
        death_url(husband["id"]),
        json={"date_of_death": "2024-08-01", "reported_by": "妻子"},
        headers=officer(stack),
    )
    assert r.status_code == 201, r.text
    survivor = await person_row(stack, wife["id"])
    assert survivor.marital_status == "widowed" and survivor.version == 3
    assert (await person_row(stack, husband["id"])).marital_status == "married"


async def test_deaths_refuse_wrong_roles_other_townships_and_bad_input(
    stack: InProcessStack,
) -> None:
    person = await stack.register_person(date(1940, 1, 1), "male")
    url = death_url(person["id"])
    good = {"date_of_death": "2025-01-15", "reported_by": "家属"}
    for headers in (
        stack.auth("resident", person_id=person["id"]),
        stack.auth("bureau_system", COUNTY),
    ):
        assert_problem(await stack.registry.post(url, json=good, headers=headers), 403, "forbidden")
    r = await stack.registry.post(url, json=good, headers=stack.auth("county_officer", "330103"))
    assert_problem(r, 403, "out_of_region")
    r = await stack.registry.post(url, json={"date_of_death": "2025-01-15"}, headers=officer(stack))
    body = assert_problem(r, 422, "validation_failed")
    assert body["errors"] == [{"field": "reported_by", "message": "必填字段缺失"}]
    tomorrow = (date.today() + timedelta(days=2)).isoformat()
    r = await stack.registry.post(
        url, json={**good, "date_of_death": tomorrow}, headers=officer(stack)
    )
    body = assert_problem(r, 422, "validation_failed")
    assert body["errors"] == [{"field": "date_of_death", "message": "死亡日期不能晚于今天"}]
    r = await stack.registry.post(
        url, json={**good, "date_of_death": "1939-12-31"}, headers=officer(stack)
    )
    assert (
        assert_problem(r, 422, "validation_failed")["errors"][0]["message"]
        == "死亡日期早于出生日期"
    )
    r = await stack.registry.post(death_url("nobody"), json=good, headers=officer(stack))
    assert_problem(r, 404, "not_found")
    assert (await person_row(stack, person["id"])).died_on is None
    assert await outbox_events(stack, "lingju.registry.person.died") == []


async def test_a_retried_death_report_with_its_key_answers_the_first_result(
    stack: InProcessStack,
) -> None:
    person = await stack.register_person(date(1940, 1, 1), "male")
    headers = {**officer(stack), "Idempotency-Key": "death-retry-1"}
    body = {"date_of_death": "2025-01-15", "reported_by": "家属"}
    first = await stack.registry.post(death_url(person["id"]), json=body, headers=headers)
    again = await stack.registry.post(death_url(person["id"]), json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert len(await outbox_events(stack, "lingju.registry.person.died")) == 1


async def test_concurrent_reports_of_one_death_record_it_once(stack: InProcessStack) -> None:
    person = await stack.register_person(date(1940, 1, 1), "male")
    body = {"date_of_death": "2025-01-15", "reported_by": "家属"}
    results = await asyncio.gather(
        *(
            stack.registry.post(death_url(person["id"]), json=body, headers=officer(stack))
            for _ in range(5)
        )
    )
    assert sorted(r.status_code for r in results) == [201, 409, 409, 409, 409]
    assert {r.json()["code"] for r in results if r.status_code == 409} == {"already_dead"}
    assert await stack.count_rows("registry", "deaths") == 1
    assert len(await outbox_events(stack, "lingju.registry.person.died")) == 1


# -- the health bureau's reports ----------------------------------------------------------------


def hospital_birth(mother: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {
        "external_ref": "HB-2025-000001",
        "kind": "birth",
        "mother_id": mother["id"],
        "child": newborn(birth_certificate_no="Q330009999"),
        **fields,
    }


async def test_a_hospital_birth_reported_twice_is_one_birth(stack: InProcessStack) -> None:
    wife, husband = await couple(stack)
    family = await register_family(stack, wife, husband)
    report = hospital_birth(wife)
    first = await bureau_report(stack, report)
    assert first.status_code == 201, first.text
    out = first.json()
    assert out["kind"] == "birth" and out["external_ref"] == "HB-2025-000001"
    assert out["family_id"] == family["id"]
    assert out["person_id"] == out["birth"]["child"]["id"]
    assert "idempotent-replayed" not in first.headers

    again = await bureau_report(stack, report)  # signed anew, a second later perhaps
    assert again.status_code == 200, again.text
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == out

    assert await stack.count_rows("registry", "births") == 1
    assert await stack.count_rows("registry", "persons") == 3
    assert await stack.count_rows("registry", "hospital_reports") == 1
    assert await stack.count_rows("registry", "family_children") == 1
    (born,) = await outbox_events(stack, "lingju.registry.child.born")
    assert born["data"]["source"] == "hospital"
    assert born["data"]["child_id"] == out["person_id"]
    assert born["data"]["family_id"] == family["id"]


async def test_twin_reports_at_the_same_moment_make_one_birth(stack: InProcessStack) -> None:
    mother = await stack.register_person(date(1993, 2, 2), "female")
    args = bureau_post_args(stack, hospital_birth(mother))
    results = await asyncio.gather(*(stack.registry.post(HOSPITAL, **args) for _ in range(5)))
    assert sorted(r.status_code for r in results) == [200, 200, 200, 200, 201], [
        r.text for r in results
    ]
    assert len({r.json()["person_id"] for r in results}) == 1
    assert await stack.count_rows("registry", "births") == 1
    assert len(await outbox_events(stack, "lingju.registry.child.born")) == 1


async def test_another_body_under_the_same_reference_is_a_conflict(stack: InProcessStack) -> None:
    mother = await stack.register_person(date(1993, 2, 2), "female")
    assert (await bureau_report(stack, hospital_birth(mother))).status_code == 201
    changed = hospital_birth(mother)
    changed["child"]["name"] = "李大宝"
    r = await bureau_report(stack, changed)
    body = assert_problem(r, 409, "external_ref_conflict")
    assert "HB-2025-000001" in body["detail"]
    # the same meaning with another key order and spacing is the same report
    reordered = json.loads(json.dumps(hospital_birth(mother), sort_keys=True))
    r = await bureau_report(stack, dict(reversed(list(reordered.items()))))
    assert r.status_code == 200
    assert await stack.count_rows("registry", "births") == 1


async def test_a_hospital_death_by_id_number(stack: InProcessStack) -> None:
    id_number = make_id_number(date(1938, 3, 3), "female")
    person = await stack.register_person(date(1938, 3, 3), "female", id_number=id_number)
    report = {
        "external_ref": "HD-2025-000042",
        "kind": "death",
        "id_number": id_number,
        "date_of_death": (date.today() - timedelta(days=1)).isoformat(),
        "cause": "肺炎",
        "reported_by": "上城区人民医院",
    }
    r = await bureau_report(stack, report)
    assert r.status_code == 201, r.text
    assert r.json()["person_id"] == person["id"] and r.json()["death"]["only_child_of"] == []
    again = await bureau_report(stack, report)
    assert again.status_code == 200 and again.headers["idempotent-replayed"] == "true"
    assert await stack.count_rows("registry", "deaths") == 1
    (died,) = await outbox_events(stack, "lingju.registry.person.died")
    assert died["data"]["source"] == "hospital" and died["data"]["person_id"] == person["id"]
    assert id_number not in json.dumps(died)
    # a different reference for a death already recorded
    r = await bureau_report(stack, {**report, "external_ref": "HD-2025-000043"})
    assert_problem(r, 409, "already_dead")
    assert await stack.count_rows("registry", "hospital_reports") == 1


async def test_a_hospital_birth_names_the_mother_by_id_number(stack: InProcessStack) -> None:
    id_number = make_id_number(date(1994, 4, 4), "female")
    mother = await stack.register_person(date(1994, 4, 4), "female", id_number=id_number)
    report = hospital_birth(mother, mother_id=None, mother_id_number=id_number)
    del report["mother_id"]
    r = await bureau_report(stack, report)
    assert r.status_code == 201, r.text
    assert r.json()["birth"]["mother_id"] == mother["id"]
    unknown = make_id_number(date(1994, 4, 4), "female")
    r = await bureau_report(stack, {**report, "external_ref": "HB-x", "mother_id_number": unknown})
    body = assert_problem(r, 422, "unknown_person")
    assert body["errors"] == [{"field": "mother_id_number", "message": "居民未登记"}]
    assert await stack.count_rows("registry", "hospital_reports") == 1


async def test_signatures_bad_missing_or_old_are_refused(stack: InProcessStack) -> None:
    mother = await stack.register_person(date(1993, 2, 2), "female")
    report = hospital_birth(mother)

    r = await bureau_report(stack, report, secret="not-the-bureau-secret")
    body = assert_problem(r, 401, "signature_invalid")
    assert body["title"] == "请求签名无效"

    args = bureau_post_args(stack, report)
    del args["headers"][SIGNATURE_HEADER]
    assert_problem(await stack.registry.post(HOSPITAL, **args), 401, "signature_invalid")

    args = bureau_post_args(stack, report)
    del args["headers"][TIMESTAMP_HEADER]
    assert_problem(await stack.registry.post(HOSPITAL, **args), 401, "signature_invalid")

    args = bureau_post_args(stack, report)  # signed, then the body is altered on the way
    args["content"] = args["content"].replace("李小宝".encode(), "王小宝".encode())
    assert_problem(await stack.registry.post(HOSPITAL, **args), 401, "signature_invalid")

    old = int(time.time()) - stack.settings.bureau_signature_max_age_seconds - 60
    r = await bureau_report(stack, report, timestamp=old)
    body = assert_problem(r, 401, "signature_expired")
    assert body["title"] == "请求签名已过期"

    r = await bureau_report(stack, report, secret="not-the-bureau-secret", timestamp=old)
    assert_problem(r, 401, "signature_invalid")
    assert await stack.count_rows("registry", "hospital_reports") == 0
    assert await stack.count_rows("registry", "births") == 0


async def test_only_the_bureau_of_the_region_may_report(stack: InProcessStack) -> None:
    mother = await stack.register_person(date(1993, 2, 2), "female")
    report = hospital_birth(mother)
    for role, region in (("township_officer", TOWNSHIP), ("admin", "")):
        r = await bureau_report(stack, report, role=role, region=region)
        assert_problem(r, 403, "forbidden")
    r = await bureau_report(stack, report, region="330103", sub="county-bureau")
    assert_problem(r, 403, "out_of_region")
    args = bureau_post_args(stack, report)
    del args["headers"]["Authorization"]
    assert_problem(await stack.registry.post(HOSPITAL, **args), 401, "unauthenticated")
    assert await stack.count_rows("registry", "births") == 0


async def test_hospital_reports_bad_input_is_422_in_chinese(stack: InProcessStack) -> None:
    mother = await stack.register_person(date(1993, 2, 2), "female")
    r = await bureau_report(stack, {**hospital_birth(mother), "kind": "marriage"})
    body = assert_problem(r, 422, "validation_failed")
    assert body["errors"][0]["field"] == "body"
    assert body["errors"][0]["message"] == "字段值无效"

    r = await bureau_report(stack, {**hospital_birth(mother), "mother_id": None})
    body = assert_problem(r, 422, "validation_failed")
    assert body["errors"][0]["message"] == "mother_id 与 mother_id_number 须且只须填写一个"

    no_ref = hospital_birth(mother)
    del no_ref["external_ref"]
    r = await bureau_report(stack, no_ref)
    body = assert_problem(r, 422, "validation_failed")
    assert body["errors"] == [{"field": "birth.external_ref", "message": "必填字段缺失"}]

    r = await bureau_report(
        stack,
        {
            "external_ref": "HD-1",
            "kind": "death",
            "person_id": mother["id"],
            "date_of_death": "2025-01-01",
        },
    )
    body = assert_problem(r, 422, "validation_failed")
    assert body["errors"] == [{"field": "death.reported_by", "message": "必填字段缺失"}]
    assert await stack.count_rows("registry", "hospital_reports") == 0
