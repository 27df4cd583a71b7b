"""The certificate workflow over HTTP: catalogue, notice, review levels, issue, revocation."""

from __future__ import annotations

import asyncio
import re
from datetime import date, timedelta
from typing import Any

from services.registry.deadlines import sweep_overdue
from services.registry.domain.applications import LoggedAction, replay
from shared.clock import FixedClock
from tests.support import OTHER_TOWNSHIP, TOWNSHIP, VILLAGE, InProcessStack, published

PROBLEM = "application/problem+json"
TWO_LEVELS = ("village", "township")


def problem(r: Any, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    assert r.json()["code"] == code
    return r.json()  # type: ignore[no-any-return]


async def review(
    stack: InProcessStack,
    app: dict[str, Any],
    decision: str,
    role: str,
    region: str,
    comment: str | None = None,
    **headers: str,
) -> Any:
    body: dict[str, Any] = {"decision": decision, "comment": comment}
    if not headers:
        body["version"] = app["version"]
    return await stack.registry.post(
        f"/api/v1/applications/{app['id']}/review",
        json=body,
        headers={**stack.auth(role, region), **headers},
    )


async def test_the_catalogue_is_public_and_lists_what_is_offered(stack: InProcessStack) -> None:
    r = await stack.registry.get("/api/v1/certificate-types")
    assert r.status_code == 200
    types = {t["code"]: t for t in r.json()}
    # The floating-population certificate is off by default (its regulation was repealed).
    assert set(types) == {"birth_registration", "only_child_honor"}
    assert all(t["fee_fen"] == 0 for t in types.values())
    assert types["only_child_honor"]["levels"] == ["village", "township"]
    assert types["birth_registration"]["levels"] == ["township"]
    optional = [m["code"] for m in types["birth_registration"]["materials"] if not m["required"]]
    assert optional == ["marriage_certificate"]


async def test_one_notice_lists_every_missing_material_then_supplement(
    stack: InProcessStack,
) -> None:
    mother = await stack.register_person()
    agent = stack.auth("village_agent", TOWNSHIP)
    r = await stack.registry.post(
        "/api/v1/applications",
        headers=agent,
        json={
            "type": "only_child_honor",
            "applicant_id": mother["id"],
            "materials": [{"code": "household_register", "ref": "u1"}],
        },
    )
    app = r.json()
    assert app["status"] == "materials_required"
    assert app["submitted_via"] == "agent"
    notices = await published(stack, "registry", "lingju.registry.application.materials_requested")
    assert [n["data"]["missing"] for n in notices] == [
        [
            {"code": "marriage_certificate", "name": "结婚证"},
            {"code": "child_birth_certificate", "name": "子女出生医学证明"},
        ]
    ]

    # A stale If-Match is refused with 412 and changes nothing.
    r = await stack.registry.post(
        f"/api/v1/applications/{app['id']}/materials",
        headers={**agent, "If-Match": '"7"'},
        json={"materials": [{"code": "marriage_certificate", "ref": "u2"}]},
    )
    problem(r, 412, "precondition_failed")

    # Part of it: still waiting, and the next notice lists what is still missing.
    r = await stack.registry.post(
        f"/api/v1/applications/{app['id']}/materials",
        headers={**agent, "If-Match": '"1"'},
        json={"materials": [{"code": "marriage_certificate", "ref": "u2"}]},
    )
    assert r.json()["status"] == "materials_required"
    notices = await published(stack, "registry", "lingju.registry.application.materials_requested")
    assert notices[-1]["data"]["missing"] == [
        {"code": "child_birth_certificate", "name": "子女出生医学证明"}
    ]

    r = await stack.registry.post(
        f"/api/v1/applications/{app['id']}/materials",
        headers=agent,
        json={"materials": [{"code": "child_birth_certificate", "ref": "u3"}], "version": 2},
    )
    body = r.json()
    assert (body["status"], body["level"], body["version"], body["missing_materials"]) == (
        "submitted",
        "village",
        3,
        [],
    )
    # Complete materials start the statutory clock: due in 20 working days from today.
    assert date.fromisoformat(body["due_date"]) > date.today() + timedelta(days=20)

    r = await stack.registry.post(
        f"/api/v1/applications/{app['id']}/materials",
        headers=agent,
        json={"materials": [{"code": "child_birth_certificate", "ref": "u4"}], "version": 3},
    )
    problem(r, 409, "materials_not_expected")


async def test_return_needs_a_reason_and_resumes_at_the_same_level(stack: InProcessStack) -> None:
    app = await stack.submit_application()
    app = (await review(stack, app, "approve", "village_worker", VILLAGE)).json()
    problem(
        await review(stack, app, "return", "township_officer", TOWNSHIP), 422, "comment_required"
    )
    r = await review(stack, app, "return", "township_officer", TOWNSHIP, comment="结婚证不清晰")
    returned = r.json()
    assert (returned["status"], returned["level"]) == ("returned", None)
    r = await stack.registry.post(
        f"/api/v1/applications/{app['id']}/materials",
        headers=stack.auth("village_agent", TOWNSHIP),
        json={
            "materials": [{"code": "marriage_certificate", "ref": "clear"}],
            "version": returned["version"],
        },
    )
    assert (r.json()["status"], r.json()["level"]) == ("in_review", "township")

    detail = await stack.registry.get(
        f"/api/v1/applications/{app['id']}", headers=stack.auth("township_officer", TOWNSHIP)
    )
    assert detail.headers["etag"] == f'"{detail.json()["version"]}"'
    steps = [(h["action"], h["actor_role"], h["to_status"]) for h in detail.json()["history"]]
    assert steps == [
        ("submit", "village_agent", "submitted"),
        ("approve", "village_worker", "in_review"),
        ("return", "township_officer", "returned"),
        ("supplement", "village_agent", "in_review"),
    ]
    assert detail.json()["history"][2]["comment"] == "结婚证不清晰"
    # The stored state is what the log replays to.
    log = [LoggedAction(h["action"], h["to_status"]) for h in detail.json()["history"]]
    status, level_index = replay(log)
    assert (status, TWO_LEVELS[level_index]) == (detail.json()["status"], detail.json()["level"])


async def test_every_decision_is_announced(stack: InProcessStack) -> None:
    app = await stack.submit_application()
    app = (await review(stack, app, "approve", "village_worker", VILLAGE)).json()
    r = await review(
        stack, app, "reject", "township_officer", TOWNSHIP, comment="子女出生于2016年以后"
    )
    assert r.json()["status"] == "rejected"
    decided = [
        e["data"] for e in await published(stack, "registry", "lingju.registry.application.decided")
    ]
    assert [(d["decision"], d["level"], d["status"], d["decided_by_role"]) for d in decided] == [
        ("approve", "village", "in_review", "village_worker"),
        ("reject", "township", "rejected", "township_officer"),
    ]
    assert decided[1]["comment"] == "子女出生于2016年以后"
    assert decided[1]["application_no"] == app["application_no"]


async def test_certificate_numbers_run_per_county_and_year(stack: InProcessStack) -> None:
    first = await stack.issue_certificate()
    second = await stack.issue_certificate()
    year = date.today().year
    assert first["certificate_no"] == f"330102-{year}-000001"
    assert second["certificate_no"] == f"330102-{year}-000002"
    issued = await published(stack, "registry", "lingju.registry.certificate.issued")
    data = issued[0]["data"]
    assert data["holder_ids"] == [first["mother"]["id"], first["father"]["id"]]
    assert data["child_id"] == first["child"]["id"]
    assert data["child_birth_date"] == first["child"]["birth_date"]
    assert data["valid_until"] is None


async def test_twenty_parallel_approvals_give_one_certificate(stack: InProcessStack) -> None:
    app = await stack.submit_application()
    app = (await review(stack, app, "approve", "village_worker", VILLAGE)).json()
    results = await asyncio.gather(
        *(review(stack, app, "approve", "township_officer", TOWNSHIP) for _ in range(20))
    )
    codes = sorted(r.status_code for r in results)
    assert codes == [200] + [409] * 19
    assert await stack.count_rows("registry", "certificates") == 1
    assert len(await published(stack, "registry", "lingju.registry.certificate.issued")) == 1


async def test_revocation(stack: InProcessStack) -> None:
    issued = await stack.issue_certificate()
    no = issued["certificate_no"]
    problem(
        await stack.registry.post(
            f"/api/v1/certificates/{no}/revoke",
            json={"reason": "x"},
            headers=stack.auth("village_worker", VILLAGE),
        ),
        403,
        "forbidden",
    )
    problem(
        await stack.registry.post(
            f"/api/v1/certificates/{no}/revoke",
            json={"reason": "x"},
            headers=stack.auth("township_officer", OTHER_TOWNSHIP),
        ),
        403,
        "out_of_region",
    )
    problem(
        await stack.registry.post(
            f"/api/v1/certificates/{no}/revoke",
            json={},
            headers=stack.auth("township_officer", TOWNSHIP),
        ),
        422,
        "validation_failed",
    )
    officer = stack.auth("township_officer", TOWNSHIP)
    r = await stack.registry.post(
        f"/api/v1/certificates/{no}/revoke", json={"reason": "再生育"}, headers=officer
    )
    assert (r.json()["status"], r.json()["revoke_reason"]) == ("revoked", "再生育")
    again = await stack.registry.post(
        f"/api/v1/certificates/{no}/revoke", json={"reason": "再生育"}, headers=officer
    )
    problem(again, 409, "certificate_revoked")
    revoked = await published(stack, "registry", "lingju.registry.certificate.revoked")
    assert [e["data"]["holder_ids"] for e in revoked] == [
        [issued["mother"]["id"], issued["father"]["id"]]
    ]
    app = await stack.registry.get(f"/api/v1/applications/{issued['id']}", headers=officer)
    assert app.json()["status"] == "revoked"


async def test_overdue_sweep_announces_once_and_queues_show_it(stack: InProcessStack) -> None:
    clock = FixedClock(date(2026, 6, 1))
    stack.rt("registry").clock = clock
    app = await stack.submit_application()
    clock.set(date.fromisoformat(app["due_date"]) + timedelta(days=1))  # the day after it was due
    await stack.submit_application()  # on time
    assert await sweep_overdue(stack.rt("registry")) == 1
    assert await sweep_overdue(stack.rt("registry")) == 0
    overdue = await published(stack, "registry", "lingju.registry.application.overdue")
    assert [(e["data"]["application_id"], e["data"]["level"]) for e in overdue] == [
        (app["id"], "village")
    ]
    officer = stack.auth("township_officer", TOWNSHIP)
    r = await stack.registry.get(
        "/api/v1/applications", params={"overdue": "true"}, headers=officer
    )
    assert [(a["id"], a["overdue"]) for a in r.json()["items"]] == [(app["id"], True)]
    r = await stack.registry.get(
        "/api/v1/applications", params={"overdue": "false"}, headers=officer
    )
    assert len(r.json()["items"]) == 1
    r = await stack.registry.get("/api/v1/applications", params={"limit": 1}, headers=officer)
    page1 = r.json()
    assert page1["items"][0]["id"] == app["id"]  # soonest due first
    r = await stack.registry.get(
        "/api/v1/applications",
        params={"limit": 1, "cursor": page1["next_cursor"]},
        headers=officer,
    )
    assert len(r.json()["items"]) == 1 and r.json()["next_cursor"] is None
    problem(
        await stack.registry.get(
            "/api/v1/applications", params={"region": OTHER_TOWNSHIP}, headers=officer
        ),
        403,
        "out_of_region",
    )
    problem(
        await stack.registry.get(
            "/api/v1/applications", headers=stack.auth("resident", person_id="p")
        ),
        403,
        "forbidden",
    )


async def test_public_progress_and_verification(stack: InProcessStack) -> None:
    issued = await stack.issue_certificate()
    r = await stack.registry.get(
        f"/api/v1/public/applications/{issued['application_no']}/progress",
        params={"phone_last4": "8000"},
    )
    assert r.status_code == 200, r.text
    assert set(r.json()) == {
        "application_no",
        "type",
        "type_name",
        "status",
        "next_step",
        "due_date",
        "overdue",
    }
    assert r.json()["status"] == "issued"
    r = await stack.registry.get(
        f"/api/v1/public/applications/{issued['application_no']}/progress",
        params={"phone_last4": "1234"},
    )
    problem(r, 404, "not_found")

    holder = stack.auth("resident", person_id=issued["mother"]["id"])
    cert = (
        await stack.registry.get(f"/api/v1/certificates/{issued['certificate_no']}", headers=holder)
    ).json()
    assert re.fullmatch(r"[0-9A-F]{16}", cert["verification_code"])
    url = f"/api/v1/public/certificates/{issued['certificate_no']}/verification"
    assert (await stack.registry.get(url, params={"code": cert["verification_code"]})).json()[
        "result"
    ] == "valid"
    forged = "0" * 16 if cert["verification_code"] != "0" * 16 else "1" * 16
    assert (await stack.registry.get(url, params={"code": forged})).json() == {
        "certificate_no": issued["certificate_no"],
        "result": "unknown",
        "type_name": None,
        "issued_on": None,
        "valid_until": None,
    }
    await stack.registry.post(
        f"/api/v1/certificates/{issued['certificate_no']}/revoke",
        json={"reason": "核查不实"},
        headers=stack.auth("township_officer", TOWNSHIP),
    )
    assert (await stack.registry.get(url, params={"code": cert["verification_code"]})).json()[
        "result"
    ] == "revoked"


async def test_public_endpoints_are_rate_limited(stack: InProcessStack) -> None:
    # A number per try: one number would lock out first (tests/test_abuse_limits.py).
    url = "/api/v1/public/applications/SQ{}/progress"
    answers = [
        (await stack.registry.get(url.format(i), params={"phone_last4": "0000"})).status_code
        for i in range(stack.settings.public_rate_per_minute + 1)
    ]
    assert answers[:-1] == [404] * stack.settings.public_rate_per_minute
    last = await stack.registry.get(url.format("X"), params={"phone_last4": "0000"})
    problem(last, 429, "rate_limited")
    assert int(last.headers["retry-after"]) >= 1


async def test_a_resident_applies_alone_for_birth_registration(stack: InProcessStack) -> None:
    """生育登记: one township level; the resident submits from the app without an agent."""
    me = await stack.register_person()
    resident = stack.auth("resident", person_id=me["id"])
    r = await stack.registry.post(
        "/api/v1/applications",
        headers=resident,
        json={
            "type": "birth_registration",
            "applicant_id": me["id"],
            "materials": [
                {"code": "id_card", "ref": "u1"},
                {"code": "household_register", "ref": "u2"},
            ],
        },
    )
    assert r.status_code == 201, r.text
    app = r.json()
    assert (app["status"], app["level"], app["submitted_via"]) == ("submitted", "township", "self")
    # A resident applies only for themself.
    other = await stack.register_person()
    r = await stack.registry.post(
        "/api/v1/applications",
        headers=resident,
        json={"type": "birth_registration", "applicant_id": other["id"]},
    )
    problem(r, 403, "forbidden")
    # The village worker has no level in this type; the township officer issues it.
    problem(
        await review(stack, app, "approve", "village_worker", VILLAGE), 403, "wrong_review_level"
    )
    done = (await review(stack, app, "approve", "township_officer", TOWNSHIP)).json()
    assert done["status"] == "issued"
    seen = await stack.registry.get(f"/api/v1/applications/{app['id']}", headers=resident)
    assert [h["actor_role"] for h in seen.json()["history"]] == ["resident", "township_officer"]


async def test_a_type_the_county_has_switched_off_is_refused(stack: InProcessStack) -> None:
    person = await stack.register_person()
    r = await stack.registry.post(
        "/api/v1/applications",
        headers=stack.auth("village_agent", TOWNSHIP),
        json={"type": "floating_marriage_fertility", "applicant_id": person["id"]},
    )
    problem(r, 422, "unknown_certificate_type")


async def test_access_to_applications_and_certificates(stack: InProcessStack) -> None:
    issued = await stack.issue_certificate()
    app_url = f"/api/v1/applications/{issued['id']}"
    cert_url = f"/api/v1/certificates/{issued['certificate_no']}"
    other_officer = stack.auth("township_officer", OTHER_TOWNSHIP)
    problem(await stack.registry.get(app_url, headers=other_officer), 403, "out_of_region")
    problem(await stack.registry.get(cert_url, headers=other_officer), 403, "out_of_region")
    stranger = stack.auth("resident", person_id=issued["child"]["id"])
    problem(await stack.registry.get(cert_url, headers=stranger), 403, "forbidden")
    problem(await stack.registry.get(cert_url), 401, "unauthenticated")
    father = stack.auth("resident", person_id=issued["father"]["id"])
    assert (await stack.registry.get(cert_url, headers=father)).status_code == 200
    problem(
        await stack.registry.get(
            "/api/v1/certificates/330102-1999-000001",
            headers=stack.auth("township_officer", TOWNSHIP),
        ),
        404,
        "not_found",
    )

    pending = await stack.submit_application()
    url = f"/api/v1/applications/{pending['id']}/materials"
    body = {"materials": [{"code": "id_card", "ref": "u"}], "version": 1}
    problem(
        await stack.registry.post(url, json=body, headers=stack.auth("bureau_system")),
        403,
        "forbidden",
    )
    problem(
        await stack.registry.post(
            url, json=body, headers=stack.auth("village_agent", OTHER_TOWNSHIP)
        ),
        403,
        "out_of_region",
    )
    problem(
        await stack.registry.post(
            url, json={"materials": [], "version": 1}, headers=stack.auth("village_agent", TOWNSHIP)
        ),
        422,
        "validation_failed",
    )
    problem(
        await stack.registry.post(url, json=body, headers=stack.auth("village_agent", TOWNSHIP)),
        409,
        "materials_not_expected",
    )


async def test_collection_is_recorded_once(stack: InProcessStack) -> None:
    issued = await stack.issue_certificate()
    url = f"/api/v1/certificates/{issued['certificate_no']}/collect"
    mother = stack.auth("resident", person_id=issued["mother"]["id"])
    problem(
        await stack.registry.post(url, json={"via": "office"}, headers=mother), 403, "forbidden"
    )
    r = await stack.registry.post(url, json={"via": "download"}, headers=mother)
    assert (r.json()["collected_via"], r.json()["collected_at"] is not None) == ("download", True)
    again = await stack.registry.post(
        url, json={"via": "office"}, headers=stack.auth("township_officer", TOWNSHIP)
    )
    assert again.json()["collected_via"] == "download"  # the first collection is kept
    problem(
        await stack.registry.post(
            url, json={"via": "office"}, headers=stack.auth("township_officer", OTHER_TOWNSHIP)
        ),
        403,
        "out_of_region",
    )
    problem(
        await stack.registry.post(url, json={"via": "post"}, headers=mother),
        422,
        "validation_failed",
    )
    app = await stack.registry.get(f"/api/v1/applications/{issued['id']}", headers=mother)
    assert [h["action"] for h in app.json()["history"]][-1] == "collect"
