"""Every registry route x every role x inside / outside the record's region, held to the policy
declared in services/registry/api/access.py (the harness: tests/access_matrix.py)."""

from __future__ import annotations

from datetime import date
from typing import Any

from services.registry.api.access import POLICY
from services.registry.tests.family_support import register_family
from shared.auth import Role
from shared.config import DEV_BUREAU_HMAC_SECRET
from shared.signing import signed_headers
from tests.access_matrix import World, check_matrix
from tests.support import OTHER_TOWNSHIP, TOWNSHIP, VILLAGE, InProcessStack, make_id_number

COUNTY = VILLAGE[:6]
OTHER_COUNTY = "330103"
OTHER_VILLAGE = OTHER_TOWNSHIP + "001"
# A client the development settings know (shared.config.DEV_INTEGRATION_SUBJECTS).
BUREAU = "county-bureau"


def tokens(stack: InProcessStack, resident: str, village: str, township: str, county: str):
    return {
        Role.resident: stack.auth("resident", person_id=resident),
        Role.village_agent: stack.auth("village_agent", village),
        Role.village_worker: stack.auth("village_worker", village),
        Role.township_officer: stack.auth("township_officer", township),
        Role.county_officer: stack.auth("county_officer", county),
        Role.bureau_system: stack.auth("bureau_system", county, sub=BUREAU),
        Role.admin: stack.auth("admin", ""),
        Role.auditor: stack.auth("auditor", county),
    }


def new_person(_: Role) -> dict[str, Any]:
    return {
        "id_number": make_id_number(date(1992, 4, 4)),
        "name": "新居民",
        "region_code": VILLAGE,
        "household_type": "rural",
    }


async def test_every_route_role_and_region_is_held_to_the_policy(stack: InProcessStack) -> None:
    issued = await stack.issue_certificate()
    mother, father, child = issued["mother"], issued["father"], issued["child"]
    family = await register_family(stack, mother, father, [child])
    pending = await stack.submit_application()
    r = await stack.registry.post(
        "/api/v1/persons",
        json={**new_person(Role.admin), "region_code": OTHER_VILLAGE},
        headers=stack.auth("admin"),
    )
    assert r.status_code == 201, r.text
    stranger = r.json()

    world = World(
        params={
            "person_id": mother["id"],
            "application_id": pending["id"],
            "application_no": pending["application_no"],
            "certificate_no": issued["certificate_no"],
            "family_id": family["id"],
            "dead_letter_id": "00000000-0000-0000-0000-000000000000",
        },
        inside=tokens(stack, mother["id"], VILLAGE, TOWNSHIP, COUNTY),
        outside={
            k: v
            for k, v in tokens(
                stack, stranger["id"], OTHER_VILLAGE, OTHER_TOWNSHIP, OTHER_COUNTY
            ).items()
            if k is not Role.admin
        },
        inside_for={
            key: {Role.resident: stack.auth("resident", person_id=pending["mother"]["id"])}
            for key in (
                "POST /api/v1/applications",
                "GET /api/v1/applications/{application_id}",
                "POST /api/v1/applications/{application_id}/materials",
            )
        },
        bodies={
            "POST /api/v1/persons": new_person,
            "PATCH /api/v1/persons/{person_id}": {"name": "王芳芳", "version": mother["version"]},
            "POST /api/v1/persons/{person_id}/death": {
                "date_of_death": date.today().isoformat(),
                "reported_by": "家属",
            },
            "POST /api/v1/applications": {
                "type": "only_child_honor",
                "applicant_id": pending["mother"]["id"],
                "subjects": {"spouse_id": pending["father"]["id"], "child_id": child["id"]},
            },
            "POST /api/v1/applications/{application_id}/materials": {
                "materials": [{"code": "household_register", "ref": "upload-again"}],
                "version": pending["version"],
            },
            "POST /api/v1/applications/{application_id}/review": {
                "decision": "return",
                "version": pending["version"],
            },
            "POST /api/v1/certificates/{certificate_no}/revoke": {"reason": "测试撤销"},
            "POST /api/v1/certificates/{certificate_no}/collect": lambda role: {
                "via": "download" if role is Role.resident else "office"
            },
            "POST /api/v1/families": {
                "wife_id": pending["mother"]["id"],
                "husband_id": pending["father"]["id"],
                "marriage_date": "2010-01-01",
            },
            "POST /api/v1/families/{family_id}/children": {"child_id": pending["child"]["id"]},
            "POST /api/v1/births": {
                "mother_id": mother["id"],
                "child": {
                    "name": "李小宝",
                    "sex": "male",
                    "birth_date": date.today().isoformat(),
                    "hospital": "上城区妇幼保健院",
                    "birth_certificate_no": "Q330000099",
                },
            },
            "POST /api/v1/integrations/hospital-events": {
                "external_ref": "HB-MATRIX-1",
                "kind": "birth",
                "mother_id": mother["id"],
                "child": {
                    "name": "李二宝",
                    "sex": "female",
                    "birth_date": date.today().isoformat(),
                    "hospital": "上城区妇幼保健院",
                    "birth_certificate_no": "Q330000100",
                },
            },
        },
        queries={
            "GET /api/v1/families": {"person_id": mother["id"]},
            "GET /api/v1/persons": {"name": mother["name"]},
        },
        markers={
            "GET /api/v1/persons": [mother["id"]],
            "GET /api/v1/applications": [pending["id"]],
        },
        signers={
            "POST /api/v1/integrations/hospital-events": lambda raw: signed_headers(
                DEV_BUREAU_HMAC_SECRET, raw
            )
        },
    )
    wrong = await check_matrix(stack.registry, POLICY, world)
    assert wrong == [], "\n".join(wrong)
