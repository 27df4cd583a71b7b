"""GET /visit-plans and /visit-plans/{code} over HTTP: any role, unknown plan, no token."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.support import TOWNSHIP, VILLAGE, InProcessStack


def visits(stack: InProcessStack) -> httpx.AsyncClient:
    return stack.visits


def problem(r: Any, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = r.json()
    assert body["code"] == code
    return body


@pytest.mark.parametrize(
    ("role", "region", "person_id"),
    [
        ("resident", VILLAGE, "p-1"),
        ("village_worker", VILLAGE, None),
        ("township_officer", TOWNSHIP, None),
        ("admin", "", None),
    ],
)
async def test_any_role_lists_the_plans(
    stack: InProcessStack, role: str, region: str, person_id: str | None
) -> None:
    r = await visits(stack).get("/api/v1/visit-plans", headers=stack.auth(role, region, person_id))
    assert r.status_code == 200, r.text
    by_code = {p["code"]: p for p in r.json()}
    assert set(by_code) == {
        "postpartum",
        "newborn",
        "iud_followup",
        "procedure_review",
        "newly_married",
        "two_cancer_screening",
    }
    assert all(p["source"] for p in by_code.values())
    postpartum = by_code["postpartum"]
    assert postpartum["trigger"] == {
        "event": "lingju.registry.child.born",
        "anchor": "birth_date",
        "procedures": [],
        "sex": None,
        "ages": None,
    }
    assert [s["code"] for s in postpartum["steps"]] == ["home_visit_1", "home_visit_2", "check_42d"]
    assert by_code["two_cancer_screening"]["trigger"]["ages"] == [35, 64]


async def test_one_plan_with_its_offsets(stack: InProcessStack) -> None:
    r = await visits(stack).get(
        "/api/v1/visit-plans/iud_followup", headers=stack.auth("village_worker", VILLAGE)
    )
    assert r.status_code == 200, r.text
    plan = r.json()
    assert plan["subject"] == "person"
    assert plan["trigger"]["procedures"] == ["iud_insertion"]
    assert [(s["due"], s["overdue"], s["expiry"], s["repeat"]) for s in plan["steps"]] == [
        ("1m", "2m", "3m", None),
        ("3m", "4m", "6m", None),
        ("6m", "7m", "12m", None),
        ("12m", "13m", "24m", "12m"),
    ]
    assert {s["tier"] for s in plan["steps"]} == {"township"}


async def test_unknown_plan_is_a_404_in_chinese(stack: InProcessStack) -> None:
    r = await visits(stack).get(
        "/api/v1/visit-plans/no_such_plan", headers=stack.auth("county_officer", "330102")
    )
    body = problem(r, 404, "not_found")
    assert body["detail"] == "随访计划不存在"
    r = await visits(stack).get(
        "/api/v1/visit-plans/no_such_plan",
        headers={**stack.auth("county_officer", "330102"), "Accept-Language": "en"},
    )
    assert problem(r, 404, "not_found")["detail"] == "Visit plan not found"


async def test_plans_need_a_token(stack: InProcessStack) -> None:
    problem(await visits(stack).get("/api/v1/visit-plans"), 401, "unauthenticated")
    problem(await visits(stack).get("/api/v1/visit-plans/postpartum"), 401, "unauthenticated")
    problem(
        await visits(stack).get(
            "/api/v1/visit-plans", headers={"Authorization": "Bearer not-a-token"}
        ),
        401,
        "token_invalid",
    )
