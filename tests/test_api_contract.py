"""The HTTP contract mobile and integration clients rely on: auth, errors, idempotency, guards."""

from __future__ import annotations

import asyncio
import time
from datetime import date

import jwt

from tests.support import OTHER_TOWNSHIP, TOWNSHIP, VILLAGE, InProcessStack, make_id_number

PROBLEM = "application/problem+json"


def person_body(**fields: object) -> dict[str, object]:
    return {
        "id_number": make_id_number(date(1980, 1, 1)),
        "name": "赵敏",
        "phone": "13900139000",
        "region_code": VILLAGE,
        "household_type": "rural",
        **fields,
    }


def assert_problem(r, status: int, code: str) -> dict:  # type: ignore[no-untyped-def]
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    body = r.json()
    assert body["code"] == code
    assert body["status"] == status
    assert body["title"] and body["detail"] and body["type"]
    return body  # type: ignore[no-any-return]


# -- auth -----------------------------------------------------------------------------------


async def test_no_token_is_401(stack: InProcessStack) -> None:
    r = await stack.registry.post("/api/v1/persons", json=person_body())
    assert_problem(r, 401, "unauthenticated")
    assert r.headers["www-authenticate"].startswith("Bearer")


async def test_expired_or_forged_token_is_401(stack: InProcessStack) -> None:
    expired = jwt.encode(
        {"sub": "x", "role": "admin", "region": "", "exp": int(time.time()) - 3600},
        stack.settings.jwt_secret,
        algorithm="HS256",
    )
    forged = jwt.encode(
        {"sub": "x", "role": "admin", "region": "", "exp": int(time.time()) + 3600},
        "not-the-secret-but-long-enough-for-hs256",
        algorithm="HS256",
    )
    for token in (expired, forged, "garbage"):
        r = await stack.registry.post(
            "/api/v1/persons", json=person_body(), headers={"Authorization": f"Bearer {token}"}
        )
        assert_problem(r, 401, "token_invalid")


async def test_wrong_role_is_403(stack: InProcessStack) -> None:
    r = await stack.registry.post(
        "/api/v1/persons", json=person_body(), headers=stack.auth("resident", person_id="p1")
    )
    body = assert_problem(r, 403, "forbidden")
    assert "resident" in body["detail"]
    # Staff have inboxes of their own, but only an admin edits what everyone is sent.
    r = await stack.notify.put(
        "/api/v1/templates/payment_disbursed",
        json={"title": "t", "app_body": "b", "sms_body": "【零距】s", "version": 1},
        headers=stack.auth("township_officer", TOWNSHIP),
    )
    assert_problem(r, 403, "forbidden")


async def test_officer_of_another_township_is_refused(stack: InProcessStack) -> None:
    r = await stack.registry.post(
        "/api/v1/persons", json=person_body(), headers=stack.auth("village_agent", OTHER_TOWNSHIP)
    )
    assert_problem(r, 403, "out_of_region")

    app = await stack.submit_application()
    r = await stack.registry.post(
        f"/api/v1/applications/{app['id']}/review",
        json={"decision": "approve", "version": 1},
        headers=stack.auth("village_worker", OTHER_TOWNSHIP + "001"),
    )
    assert_problem(r, 403, "out_of_region")
    r = await stack.registry.get(
        f"/api/v1/persons/{app['mother']['id']}",
        headers=stack.auth("township_officer", OTHER_TOWNSHIP),
    )
    assert_problem(r, 403, "out_of_region")


async def test_resident_sees_own_record_unmasked_and_no_one_elses(stack: InProcessStack) -> None:
    me = await stack.register_person()
    other = await stack.register_person()
    r = await stack.registry.get(
        f"/api/v1/persons/{me['id']}", headers=stack.auth("resident", person_id=me["id"])
    )
    assert r.status_code == 200
    assert "*" not in r.json()["id_number"] and len(r.json()["id_number"]) == 18
    assert "*" in me["id_number"]  # the agent who registered her sees it masked
    r = await stack.registry.get(
        f"/api/v1/persons/{other['id']}", headers=stack.auth("resident", person_id=me["id"])
    )
    assert_problem(r, 403, "forbidden")


# -- bad input ------------------------------------------------------------------------------


async def test_bad_input_is_422_problem_in_chinese(stack: InProcessStack) -> None:
    agent = stack.auth("village_agent", TOWNSHIP)
    bad_checksum = make_id_number(date(1980, 1, 1))[:-1] + "0"
    if bad_checksum == make_id_number(date(1980, 1, 1)):
        bad_checksum = bad_checksum[:-1] + "1"
    r = await stack.registry.post(
        "/api/v1/persons", json=person_body(id_number="110105198001010012"), headers=agent
    )
    body = assert_problem(r, 422, "validation_failed")
    assert body["errors"] == [{"field": "id_number", "message": "身份证号校验码错误"}]

    missing = person_body()
    del missing["name"]
    r = await stack.registry.post("/api/v1/persons", json=missing, headers=agent)
    body = assert_problem(r, 422, "validation_failed")
    assert body["errors"] == [{"field": "name", "message": "必填字段缺失"}]

    r = await stack.registry.post(
        "/api/v1/persons",
        content=b"{not json",
        headers={**agent, "content-type": "application/json"},
    )
    assert_problem(r, 422, "body_not_json")

    r = await stack.registry.post("/api/v1/persons", json=person_body(phone="12345"), headers=agent)
    body = assert_problem(r, 422, "validation_failed")
    assert body["errors"][0]["field"] == "phone"


async def test_english_on_request(stack: InProcessStack) -> None:
    r = await stack.registry.post(
        "/api/v1/persons",
        json=person_body(id_number="110105198001010012"),
        headers={**stack.auth("village_agent", TOWNSHIP), "Accept-Language": "en-US,en"},
    )
    body = assert_problem(r, 422, "validation_failed")
    assert body["title"] == "Invalid request"
    assert body["errors"][0]["message"] == "ID number checksum is wrong"


async def test_unknown_route_and_method(stack: InProcessStack) -> None:
    assert_problem(await stack.registry.get("/api/v1/nothing-here"), 404, "route_not_found")
    assert_problem(await stack.registry.delete("/healthz"), 405, "method_not_allowed")


async def test_duplicate_id_number_is_409_and_writes_nothing(stack: InProcessStack) -> None:
    agent = stack.auth("village_agent", TOWNSHIP)
    body = person_body()
    assert (
        await stack.registry.post("/api/v1/persons", json=body, headers=agent)
    ).status_code == 201
    r = await stack.registry.post("/api/v1/persons", json=body, headers=agent)
    assert_problem(r, 409, "duplicate_id_number")
    assert await stack.count_rows("registry", "persons") == 1
    assert await stack.count_rows("registry", "outbox") == 1


async def test_application_refuses_unknown_type_and_person(stack: InProcessStack) -> None:
    agent = stack.auth("village_agent", TOWNSHIP)
    person = await stack.register_person()
    r = await stack.registry.post(
        "/api/v1/applications",
        json={"type": "no_such_type", "applicant_id": person["id"]},
        headers=agent,
    )
    assert_problem(r, 422, "unknown_certificate_type")
    r = await stack.registry.post(
        "/api/v1/applications",
        json={"type": "only_child_honor", "applicant_id": "nobody"},
        headers=agent,
    )
    assert_problem(r, 422, "unknown_person")


async def test_missing_materials_are_listed_all_at_once(stack: InProcessStack) -> None:
    person = await stack.register_person()
    r = await stack.registry.post(
        "/api/v1/applications",
        json={
            "type": "only_child_honor",
            "applicant_id": person["id"],
            "materials": [{"code": "household_register", "ref": "u1"}],
        },
        headers=stack.auth("village_agent", TOWNSHIP),
    )
    assert r.status_code == 201
    body = r.json()
    assert body["status"] == "materials_required"
    assert [m["code"] for m in body["missing_materials"]] == [
        "marriage_certificate",
        "child_birth_certificate",
    ]
    assert date.fromisoformat(body["due_date"]) > date.today()


# -- idempotency and guarded transitions ------------------------------------------------------


async def test_idempotency_key_returns_first_response_once(stack: InProcessStack) -> None:
    headers = {**stack.auth("village_agent", TOWNSHIP), "Idempotency-Key": "phone-retry-1"}
    body = person_body()
    first = await stack.registry.post("/api/v1/persons", json=body, headers=headers)
    again = await stack.registry.post("/api/v1/persons", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert again.headers.get("idempotent-replayed") == "true"
    assert await stack.count_rows("registry", "persons") == 1
    assert await stack.count_rows("registry", "outbox") == 1

    other = await stack.registry.post("/api/v1/persons", json=person_body(), headers=headers)
    assert_problem(other, 422, "idempotency_key_reused")


async def test_concurrent_retries_with_one_key_make_one_person(stack: InProcessStack) -> None:
    headers = {**stack.auth("village_agent", TOWNSHIP), "Idempotency-Key": "burst-1"}
    body = person_body()
    responses = await asyncio.gather(
        *(stack.registry.post("/api/v1/persons", json=body, headers=headers) for _ in range(5))
    )
    assert {r.status_code for r in responses} == {201}
    assert len({r.json()["id"] for r in responses}) == 1
    assert await stack.count_rows("registry", "persons") == 1


async def test_two_officers_approving_at_once_give_one_certificate(stack: InProcessStack) -> None:
    app = await stack.submit_application()
    r = await stack.registry.post(
        f"/api/v1/applications/{app['id']}/review",
        json={"decision": "approve", "version": 1},
        headers=stack.auth("village_worker", VILLAGE),
    )
    version = r.json()["version"]
    officer = stack.auth("township_officer", TOWNSHIP)
    results = await asyncio.gather(
        *(
            stack.registry.post(
                f"/api/v1/applications/{app['id']}/review",
                json={"decision": "approve", "version": version},
                headers=officer,
            )
            for _ in range(2)
        )
    )
    assert sorted(r.status_code for r in results) == [200, 409]
    loser = next(r for r in results if r.status_code == 409)
    assert_problem(loser, 409, "version_conflict")
    assert await stack.count_rows("registry", "certificates") == 1


async def test_review_refuses_wrong_level_and_finished_applications(stack: InProcessStack) -> None:
    app = await stack.submit_application()
    r = await stack.registry.post(
        f"/api/v1/applications/{app['id']}/review",
        json={"decision": "approve", "version": 1},
        headers=stack.auth("township_officer", TOWNSHIP),
    )
    assert_problem(r, 403, "wrong_review_level")
    r = await stack.registry.post(
        f"/api/v1/applications/{app['id']}/review",
        json={"decision": "reject", "comment": "材料不实", "version": 1},
        headers=stack.auth("village_worker", VILLAGE),
    )
    assert r.json()["status"] == "rejected"
    r = await stack.registry.post(
        f"/api/v1/applications/{app['id']}/review",
        json={"decision": "approve", "version": 2},
        headers=stack.auth("village_worker", VILLAGE),
    )
    assert_problem(r, 409, "invalid_transition")


# -- operability ------------------------------------------------------------------------------


async def test_health_readiness_metrics_and_openapi(stack: InProcessStack) -> None:
    for name, client in stack.clients.items():
        assert (await client.get("/healthz")).json() == {"status": "ok", "service": name}
        ready = await client.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"] == {"database": "ok", "nats": "ok", "streams": "ok"}
        spec = (await client.get("/openapi.json")).json()
        assert "/api/v1/admin/dead-letters" in spec["paths"]
    await stack.register_person()
    metrics = (await stack.registry.get("/metrics")).text
    assert (
        "lingju_http_requests_total{"
        'method="POST",route="/api/v1/persons",service="registry",status="201"} 1.0' in metrics
    )
    assert "lingju_outbox_backlog" in metrics
