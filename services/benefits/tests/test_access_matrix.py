"""Every benefits route x every role x inside / outside the record's region, held to the policy
declared in services/benefits/api/access.py (the harness: tests/access_matrix.py).

The records come from the real flows: registry issues an only-child honor certificate to a
registered family (benefits founds the parents' reward), an officer confirms the mother's, she
gives her account, a run pays her month and is exported; then the child dies (benefits founds
the parents' special assistance, pending) and an agent files her assisted-reproduction claim.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from services.benefits.api.access import POLICY
from services.benefits.tests.enrollment_support import (
    confirmed,
    die,
    honor_family,
    officer,
    wait_for,
)
from shared.auth import Role
from tests.access_matrix import Raw, World, check_matrix
from tests.support import OTHER_TOWNSHIP, TOWNSHIP, VILLAGE, InProcessStack

COUNTY = VILLAGE[:6]
OTHER_COUNTY = "330103"
# Another village of the same township: a village's staff stop at their own village.
NEIGHBOUR_VILLAGE = TOWNSHIP + "002"
REWARD = "only_child_parent_reward"
SPECIAL = "special_assistance"
ASSISTED = "assisted_reproduction_reimbursement"
ACCOUNT = {"account_name": "王芳", "bank_name": "浙江农商银行", "account_no": "6228480012345678901"}


def tokens(
    stack: InProcessStack, resident: str, village: str, township: str, county: str
) -> dict[Role, dict[str, str]]:
    return {
        Role.resident: stack.auth("resident", village, person_id=resident),
        Role.village_agent: stack.auth("village_agent", village),
        Role.village_worker: stack.auth("village_worker", village),
        Role.township_officer: stack.auth("township_officer", township, sub="matrix-checker"),
        Role.county_officer: stack.auth("county_officer", county, sub="matrix-county"),
        Role.bureau_system: stack.auth("bureau_system", county, sub="county-bureau"),
        Role.admin: stack.auth("admin", ""),
        Role.auditor: stack.auth("auditor", county),
    }


def _one(program: str, status: str) -> Any:
    def check(items: list[dict[str, Any]]) -> bool:
        return [e["status"] for e in items if e["program"] == program] == [status]

    return check


async def _ok(r: Any, status: int = 200) -> dict[str, Any]:
    assert r.status_code == status, r.text
    return r.json()  # type: ignore[no-any-return]


async def test_every_route_role_and_region_is_held_to_the_policy(stack: InProcessStack) -> None:
    family = await honor_family(stack, register_family=True)
    mother, child = family["mother"]["id"], family["child"]["id"]
    neighbour = (await stack.register_person(date(1980, 2, 2), "female"))["id"]
    b = stack.benefits

    # The mother's reward, confirmed, paid into her account by an exported run.
    [reward] = await wait_for(
        stack, _one(REWARD, "pending_review"), person_id=mother, program=REWARD
    )
    await confirmed(stack, reward)
    mine = stack.auth("resident", VILLAGE, person_id=mother)
    await _ok(
        await b.put(f"/api/v1/persons/{mother}/payee-account", json=ACCOUNT, headers=mine), 201
    )
    period = f"{stack.rt('benefits').clock.today():%Y-%m}"
    maker, checker = officer(stack, "matrix-maker"), officer(stack, "matrix-checker")
    run_in = {"program": REWARD, "period": period, "region": VILLAGE}
    run = await _ok(await b.post("/api/v1/payment-runs", json=run_in, headers=maker), 201)
    assert run["line_count"] == 1, run
    version = {"version": run["version"]}
    run = await _ok(
        await b.post(f"/api/v1/payment-runs/{run['id']}/approve", json=version, headers=checker)
    )
    version = {"version": run["version"]}
    run = await _ok(
        await b.post(f"/api/v1/payment-runs/{run['id']}/export", json=version, headers=maker)
    )
    assert run["status"] == "exported", run

    # The only child dies: the parents' special assistance waits for an officer.
    await die(stack, child, stack.rt("registry").clock.today())
    found = await wait_for(stack, _one(SPECIAL, "pending_review"), person_id=mother)
    [special] = [e for e in found if e["program"] == SPECIAL]
    claim_in = {
        "program": ASSISTED,
        "person_id": mother,
        "requested_fen": 300000,
        "description": "2026年体外受精费用",
        "receipts": [{"code": "invoice", "ref": "upload-matrix"}],
    }
    agent = stack.auth("village_agent", VILLAGE, sub="matrix-agent")
    claim = await _ok(await b.post("/api/v1/claims", json=claim_in, headers=agent), 201)

    world = World(
        params={
            "enrollment_id": special["id"],
            "run_id": run["id"],
            "person_id": mother,
            "claim_id": claim["id"],
            "dead_letter_id": "00000000-0000-0000-0000-000000000000",
        },
        inside=tokens(stack, mother, VILLAGE, TOWNSHIP, COUNTY),
        outside={
            k: v
            for k, v in tokens(
                stack, neighbour, NEIGHBOUR_VILLAGE, OTHER_TOWNSHIP, OTHER_COUNTY
            ).items()
            if k is not Role.admin
        },
        bodies={
            "POST /api/v1/eligibility/check": {"person_id": mother},
            "POST /api/v1/enrollments": {"program": SPECIAL, "person_id": mother},
            "POST /api/v1/enrollments/{enrollment_id}/confirm": {"version": special["version"]},
            "POST /api/v1/enrollments/{enrollment_id}/reject": {
                "reason": "材料不全",
                "version": special["version"],
            },
            "POST /api/v1/enrollments/{enrollment_id}/suspend": {
                "reason": "外出务工，暂停发放",
                "version": special["version"],
            },
            "POST /api/v1/enrollments/{enrollment_id}/resume": {"version": special["version"]},
            "POST /api/v1/payment-runs": run_in,
            "POST /api/v1/payment-runs/{run_id}/approve": {"version": run["version"]},
            "POST /api/v1/payment-runs/{run_id}/export": {"version": run["version"]},
            "POST /api/v1/payment-runs/{run_id}/reconciliation": Raw(
                f"reference,result,reason\r\n{run['code']}-000001,paid,\r\n".encode(),
                "text/csv",
            ),
            "PUT /api/v1/persons/{person_id}/payee-account": ACCOUNT,
            "POST /api/v1/claims": claim_in,
            "POST /api/v1/claims/{claim_id}/approve": {"version": claim["version"]},
            "POST /api/v1/claims/{claim_id}/reject": {
                "reason": "票据不符",
                "version": claim["version"],
            },
        },
        markers={
            "GET /api/v1/enrollments": [special["id"], reward["id"]],
            "GET /api/v1/claims": [claim["id"]],
            "GET /api/v1/payment-runs": [run["id"]],
        },
        strict_inside=True,
        not_found_ok={
            "POST /api/v1/admin/dead-letters/{dead_letter_id}/replay": "no letter is dead here",
        },
    )
    wrong = await check_matrix(b, POLICY, world)
    assert wrong == [], "\n".join(wrong)
