"""GET /programs and POST /eligibility/check over HTTP: allowed, unauthenticated, bad input."""

from __future__ import annotations

from typing import Any

from tests.support import OTHER_TOWNSHIP, TOWNSHIP, VILLAGE, InProcessStack, eventually


def problem(r: Any, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == code


FACTS: dict[str, Any] = {
    "person": {
        "sex": "female",
        "birth_date": "1966-01-31",
        "household_type": "rural",
        "region_code": VILLAGE,
    },
    "children": [{"birth_date": "1992-05-01", "alive": False, "died_on": "2020-02-02"}],
    "as_of": "2026-02",
}


async def test_programs_show_the_amount_for_the_callers_region(stack: InProcessStack) -> None:
    r = await stack.benefits.get(
        "/api/v1/programs?period=2026-01", headers=stack.auth("resident", VILLAGE, "p-1")
    )
    assert r.status_code == 200, r.text
    by_code = {p["code"]: p for p in r.json()}
    rural = by_code["rural_reward_assistance"]
    assert rural["current"][0]["monthly_fen"] == 12000  # the district's override
    assert [a["region"] for a in rural["amounts"]] == ["", "330102"]
    assert all(a["source"] for a in rural["amounts"])
    assert by_code["childcare_subsidy"]["current"][0]["monthly_fen"] == 30000
    assert {c["case"] for c in by_code["special_assistance"]["current"]} == {
        "child_died",
        "child_disabled",
    }
    assert by_code["assisted_reproduction_reimbursement"]["cap_fen"] == 5_000_000

    national = await stack.benefits.get(
        "/api/v1/programs?period=2026-01", headers=stack.auth("admin")
    )
    rural = {p["code"]: p for p in national.json()}["rural_reward_assistance"]
    assert rural["current"][0]["monthly_fen"] == 8000


async def test_programs_need_a_token_and_a_valid_period(stack: InProcessStack) -> None:
    problem(await stack.benefits.get("/api/v1/programs"), 401, "unauthenticated")
    problem(
        await stack.benefits.get(
            "/api/v1/programs?period=2026-13", headers=stack.auth("county_officer", "330102")
        ),
        422,
        "validation_failed",
    )
    assert (
        await stack.benefits.get("/api/v1/programs", headers=stack.auth("county_officer", "330102"))
    ).status_code == 200


async def test_eligibility_check_explains_every_program(stack: InProcessStack) -> None:
    r = await stack.benefits.post(
        "/api/v1/eligibility/check",
        json=FACTS,
        headers=stack.auth("township_officer", TOWNSHIP),
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["as_of"] == "2026-02"
    results = {x["program"]: x for x in body["results"]}
    assert len(results) == 5
    rural = results["rural_reward_assistance"]
    assert rural["eligible"] and rural["from_period"] == "2026-02"
    assert rural["amount_per_month_fen"] == 12000
    special = results["special_assistance"]
    assert special["eligible"] and special["case"] == "child_died"
    assert special["amount_per_month_fen"] == 59000
    reward = results["only_child_parent_reward"]
    assert not reward["eligible"] and reward["amount_per_month_fen"] == 0
    assert reward["reasons_zh"] and reward["reasons_en"]


async def test_eligibility_check_refusals(stack: InProcessStack) -> None:
    url = "/api/v1/eligibility/check"
    officer = stack.auth("township_officer", TOWNSHIP)
    problem(await stack.benefits.post(url, json=FACTS), 401, "unauthenticated")
    problem(
        await stack.benefits.post(url, json=FACTS, headers=stack.auth("resident", VILLAGE, "p")),
        403,
        "forbidden",
    )
    problem(
        await stack.benefits.post(
            url, json=FACTS, headers=stack.auth("township_officer", OTHER_TOWNSHIP)
        ),
        403,
        "out_of_region",
    )
    problem(await stack.benefits.post(url, json={}, headers=officer), 422, "validation_failed")
    bad_date = {**FACTS, "person": {**FACTS["person"], "birth_date": "1966-02-30"}}
    problem(
        await stack.benefits.post(url, json=bad_date, headers=officer), 422, "validation_failed"
    )
    alive_but_dead = {
        **FACTS,
        "children": [{"birth_date": "1992-05-01", "alive": True, "died_on": "2020-02-02"}],
    }
    r = await stack.benefits.post(
        url, json=alive_but_dead, headers={**officer, "Accept-Language": "en"}
    )
    problem(r, 422, "validation_failed")
    assert "cannot be alive" in r.json()["detail"]
    problem(
        await stack.benefits.post(url, json={**FACTS, "as_of": "2026-2"}, headers=officer),
        422,
        "validation_failed",
    )
    problem(
        await stack.benefits.post(
            url, content=b"not json", headers={**officer, "Content-Type": "application/json"}
        ),
        422,
        "body_not_json",
    )


async def test_eligibility_check_of_a_known_resident_from_the_records(
    stack: InProcessStack,
) -> None:
    """With ``person_id`` the facts come from benefits' read models (registry's events)."""
    cert = await stack.issue_certificate()  # mother 1975, father 1973, child born 2012-06
    url = "/api/v1/eligibility/check"
    officer = stack.auth("township_officer", TOWNSHIP)
    body = {"person_id": cert["mother"]["id"], "as_of": "2026-11"}

    async def checked() -> dict[str, Any]:
        r = await stack.benefits.post(url, json=body, headers=officer)
        assert r.status_code == 200, r.text
        results = {x["program"]: x for x in r.json()["results"]}
        # Once the certificate has arrived: the reward is explained from the records.
        assert results["only_child_parent_reward"]["eligible"], results
        return results

    results = await eventually(checked)
    reward = results["only_child_parent_reward"]
    assert (reward["from_period"], reward["until_period"]) == ("2012-06", "2030-05")
    assert reward["amount_per_month_fen"] == 1000
    assert not results["rural_reward_assistance"]["eligible"]  # 51: from 2035-06
    assert results["rural_reward_assistance"]["from_period"] == "2035-06"
    special = results["special_assistance"]
    assert (
        not special["eligible"]
        and "独生子女健在且未伤残，不符合特别扶助条件。" in (special["reasons_zh"])
    )
    # A disability the officer declares changes the answer (child_disabled, from 49).
    r = await stack.benefits.post(
        url, json={**body, "disabled_child_ids": [cert["child"]["id"]]}, headers=officer
    )
    special = {x["program"]: x for x in r.json()["results"]}["special_assistance"]
    assert (special["case"], special["from_period"]) == ("child_disabled", "2024-06")
    assert special["amount_per_month_fen"] == 46000

    problem(
        await stack.benefits.post(url, json={"person_id": "nobody"}, headers=officer),
        404,
        "not_found",
    )
    problem(
        await stack.benefits.post(
            url, json=body, headers=stack.auth("township_officer", OTHER_TOWNSHIP)
        ),
        403,
        "out_of_region",
    )
    problem(
        await stack.benefits.post(url, json={**FACTS, "person_id": "x"}, headers=officer),
        422,
        "validation_failed",
    )
    problem(
        await stack.benefits.post(
            url, json={**body, "holds_only_child_honor": True}, headers=officer
        ),
        422,
        "validation_failed",
    )
