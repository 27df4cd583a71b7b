"""Manual applications: eligibility from benefits' own records, explained refusals, one open
enrollment per program and person, regions and idempotent retries."""

from __future__ import annotations

from datetime import date
from typing import Any

import httpx

from services.benefits.tests.enrollment_support import (
    ENROLLMENTS,
    assert_problem,
    confirmed,
    enrollments,
    honor_family,
    officer,
)
from tests.support import OTHER_TOWNSHIP, VILLAGE, InProcessStack, eventually


async def _known(stack: InProcessStack, birth: date, sex: str = "female", **kw: Any) -> str:
    """A resident registered in registry whose facts benefits has received."""
    person = await stack.register_person(birth, sex, **kw)

    async def arrived() -> None:
        r = await stack.benefits.post(
            "/api/v1/eligibility/check",
            json={"person_id": person["id"]},
            headers=officer(stack, "o"),
        )
        assert r.status_code == 200, r.text

    await eventually(arrived)
    return person["id"]  # type: ignore[no-any-return]


async def _apply(
    stack: InProcessStack, body: dict[str, Any], sub: str = "maker-1", english: bool = False
) -> httpx.Response:
    headers = officer(stack, sub)
    if english:
        headers["Accept-Language"] = "en"
    return await stack.benefits.post(ENROLLMENTS, json=body, headers=headers)


async def test_refused_as_not_eligible_with_the_reasons(stack: InProcessStack) -> None:
    urban = await _known(stack, date(1960, 5, 5), household_type="urban")
    r = await _apply(stack, {"program": "rural_reward_assistance", "person_id": urban})
    body = assert_problem(r, 422, "not_eligible")
    assert body["reasons"] == ["本人不是农业户口，本项目仅适用于农村计划生育家庭。"]
    assert "农业户口" in body["detail"]
    r = await _apply(
        stack,
        {"program": "rural_reward_assistance", "person_id": urban},
        english=True,
    )
    assert r.json()["reasons"][0].startswith("Not a rural household")

    # Not yet 60: refused, and told from when.
    young = await _known(stack, date(1970, 5, 5))
    body = assert_problem(
        await _apply(stack, {"program": "rural_reward_assistance", "person_id": young}),
        422,
        "not_eligible",
    )
    assert any("自 2030-06 起符合" in reason for reason in body["reasons"])
    # Special assistance needs a child who died or is disabled.
    body = assert_problem(
        await _apply(stack, {"program": "special_assistance", "person_id": young}),
        422,
        "not_eligible",
    )
    assert body["reasons"] == ["家庭登记的子女数为 0，本项目仅适用于独生子女家庭。"]
    assert await stack.count_rows("benefits", "enrollments") == 0


async def test_accepted_when_eligible_then_a_second_one_is_refused(stack: InProcessStack) -> None:
    person = await _known(stack, date(1962, 4, 10))
    r = await _apply(
        stack,
        {
            "program": "rural_reward_assistance",
            "person_id": person,
            "evidence": [{"code": "household_register", "ref": "upload-1"}],
            "note": "本人到村便民中心申请",
        },
    )
    assert r.status_code == 201, r.text
    e = r.json()
    assert (e["status"], e["prepared_by"], e["confirmed_by"]) == ("pending_review", "maker-1", None)
    assert (e["source"], e["source_ref"]) == ("application", e["id"])
    assert (e["payee_id"], e["region_code"]) == (person, VILLAGE)
    # Back pay: from the month after the 60th birthday month, open-ended.
    assert (e["pays_from"], e["pays_until"]) == ("2022-05", None)
    assert e["reasons"][-2:] == [
        "申请材料：household_register（upload-1）",
        "经办人说明：本人到村便民中心申请",
    ]
    assert any("年满 60 周岁" in reason for reason in e["reasons"])

    again = await _apply(stack, {"program": "rural_reward_assistance", "person_id": person}, "m2")
    assert_problem(again, 409, "already_enrolled")
    await confirmed(stack, e)
    again = await _apply(stack, {"program": "rural_reward_assistance", "person_id": person}, "m2")
    assert_problem(again, 409, "already_enrolled")
    assert len(await enrollments(stack, person_id=person)) == 1


async def test_after_a_rejection_one_may_apply_again(stack: InProcessStack) -> None:
    person = await _known(stack, date(1962, 4, 10))
    body = {"program": "rural_reward_assistance", "person_id": person}
    first = (await _apply(stack, body)).json()
    r = await stack.benefits.post(
        f"{ENROLLMENTS}/{first['id']}/reject",
        json={"version": first["version"], "reason": "请补充户口簿"},
        headers=officer(stack, "checker-1"),
    )
    assert r.status_code == 200, r.text
    second = await _apply(stack, body)
    assert second.status_code == 201, second.text
    statuses = sorted(e["status"] for e in await enrollments(stack, person_id=person))
    assert statuses == ["ended", "pending_review"]


async def test_the_same_idempotency_key_applies_once(stack: InProcessStack) -> None:
    person = await _known(stack, date(1962, 4, 10))
    body = {"program": "rural_reward_assistance", "person_id": person}
    headers = {**officer(stack, "maker-1"), "Idempotency-Key": "apply-1"}
    first = await stack.benefits.post(ENROLLMENTS, json=body, headers=headers)
    again = await stack.benefits.post(ENROLLMENTS, json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.headers.get("idempotent-replayed") == "true"
    assert again.json()["id"] == first.json()["id"]
    assert await stack.count_rows("benefits", "enrollments") == 1


async def test_special_assistance_for_a_declared_disabled_child(stack: InProcessStack) -> None:
    family = await honor_family(stack, mother_birth=date(1970, 2, 1), child_birth=date(2000, 3, 3))
    mother, child = family["mother"]["id"], family["child"]["id"]
    body: dict[str, Any] = {"program": "special_assistance", "person_id": mother}

    async def refused() -> None:
        # Once the certificate has linked the child: refused because the child is well.
        refusal = assert_problem(await _apply(stack, body), 422, "not_eligible")
        assert "独生子女健在且未伤残，不符合特别扶助条件。" in refusal["reasons"]

    await eventually(refused)
    # The child turned 18 before the certificate: it founded no reward.
    assert await enrollments(stack, person_id=mother) == []
    # A disability no registry event says is declared, with evidence.
    declared = {**body, "disabled_child_ids": [child]}
    assert_problem(await _apply(stack, declared), 422, "validation_failed")
    evidence = [{"code": "disability_certificate", "ref": "upload-9"}]
    r = await _apply(stack, {**declared, "evidence": evidence})
    assert r.status_code == 201, r.text
    e = r.json()
    assert e["case"] == "child_disabled"
    assert e["pays_from"] == "2022-07"  # 49 in 2019-02; the program pays from 2022-07
    assert f"经办人申报伤残子女：{child}" in e["reasons"]
    active = await confirmed(stack, e)
    assert active["status"] == "active"


async def test_application_refusals(stack: InProcessStack) -> None:
    person = await _known(stack, date(1962, 4, 10))
    body = {"program": "rural_reward_assistance", "person_id": person}
    r = await _apply(stack, {**body, "person_id": "nobody"})
    assert_problem(r, 404, "not_found")
    r = await stack.benefits.post(
        ENROLLMENTS, json=body, headers=stack.auth("township_officer", OTHER_TOWNSHIP, sub="o")
    )
    assert_problem(r, 403, "out_of_region")
    r = await stack.benefits.post(
        ENROLLMENTS, json=body, headers=stack.auth("resident", person_id=person)
    )
    assert_problem(r, 403, "forbidden")
    assert_problem(await _apply(stack, {**body, "program": "lottery"}), 422, "validation_failed")
    assert_problem(await _apply(stack, {**body, "payee_id": "nobody"}), 422, "validation_failed")
    assert_problem(await _apply(stack, {**body, "extra": 1}), 422, "validation_failed")
    # A village agent may apply (the maker) for a resident of the village.
    r = await stack.benefits.post(
        ENROLLMENTS, json=body, headers=stack.auth("village_agent", VILLAGE, sub="agent-7")
    )
    assert r.status_code == 201, r.text
    assert r.json()["prepared_by"] == "agent-7"


async def test_childcare_applied_for_by_hand_is_paid_to_the_mother(
    stack: InProcessStack,
) -> None:
    """A child registered as a resident (not through a birth), linked by its family."""
    mother = await _known(stack, date(1994, 2, 2))
    father = await _known(stack, date(1992, 8, 8), "male")
    child = await _known(stack, date(2025, 1, 10), "male", phone=None)
    body = {"program": "childcare_subsidy", "person_id": child}
    # No parent known yet: the payee must be named.
    r = await _apply(stack, body)
    assert_problem(r, 422, "validation_failed")
    assert r.json()["errors"][0]["field"] == "payee_id"
    r = await stack.registry.post(
        "/api/v1/families",
        json={
            "wife_id": mother,
            "husband_id": father,
            "marriage_date": "2020-10-01",
            "children_ids": [child],
        },
        headers=stack.auth("township_officer", "330102001"),
    )
    assert r.status_code == 201, r.text

    async def applied() -> dict[str, Any]:
        r = await _apply(stack, body)
        assert r.status_code == 201, r.text
        return r.json()  # type: ignore[no-any-return]

    e = await eventually(applied)
    assert (e["person_id"], e["payee_id"]) == (child, mother)
    assert (e["pays_from"], e["pays_until"]) == ("2025-01", "2027-12")
    # A grown child is not under 3: refused with the reason.
    family = await honor_family(stack, child_birth=date(2012, 6, 1))
    grown = {"program": "childcare_subsidy", "person_id": family["child"]["id"]}

    async def refused() -> None:
        assert_problem(await _apply(stack, grown), 422, "not_eligible")

    await eventually(refused)
