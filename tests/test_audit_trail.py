"""The audit trail (shared/audit.py): every staff read or change of a person's record is in a
hash chain an auditor can query, export and verify; tampering of any kind is found."""

from __future__ import annotations

import asyncio
import csv
import io
import itertools
import json
from datetime import date
from typing import Any

from sqlalchemy import text

from tests.support import OTHER_TOWNSHIP, TOWNSHIP, VILLAGE, InProcessStack, make_id_number

COUNTY = VILLAGE[:6]


def auditor(stack: InProcessStack, region: str = COUNTY) -> dict[str, str]:
    return stack.auth("auditor", region, sub="auditor-1")


async def entries(stack: InProcessStack, service: str = "registry", **query: Any) -> list[Any]:
    client = stack.clients[service]
    r = await client.get("/api/v1/audit", params={"limit": 200, **query}, headers=auditor(stack))
    assert r.status_code == 200, r.text
    return r.json()["items"]  # type: ignore[no-any-return]


async def verify(stack: InProcessStack, service: str = "registry") -> dict[str, Any]:
    r = await stack.clients[service].get("/api/v1/audit/verify", headers=auditor(stack))
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


async def sql(stack: InProcessStack, statement: str, service: str = "registry") -> None:
    async with stack.rt(service).db.session() as s, s.begin():
        await s.execute(text(statement))


async def test_staff_reads_and_changes_are_recorded_residents_own_reads_are_not(
    stack: InProcessStack,
) -> None:
    number = make_id_number(date(1990, 3, 1))
    person = await stack.register_person(id_number=number)
    officer = stack.auth("township_officer", TOWNSHIP, sub="officer-7")
    r = await stack.registry.get(f"/api/v1/persons/{person['id']}", headers=officer)
    assert r.status_code == 200
    r = await stack.registry.get("/api/v1/persons", params={"id_number": number}, headers=officer)
    assert r.status_code == 200 and r.json()["items"]
    outsider = stack.auth("township_officer", OTHER_TOWNSHIP, sub="officer-9")
    r = await stack.registry.get(f"/api/v1/persons/{person['id']}", headers=outsider)
    assert r.status_code == 403
    own = stack.auth("resident", person_id=person["id"])
    assert (await stack.registry.get(f"/api/v1/persons/{person['id']}", headers=own)).is_success

    log = await entries(stack)
    routes = [(e["actor"], e["route"], e["status"]) for e in log]
    assert routes == [
        ("village_agent-330102001", "POST /api/v1/persons", 201),
        ("officer-7", "GET /api/v1/persons/{person_id}", 200),
        ("officer-7", "GET /api/v1/persons", 200),
        ("officer-9", "GET /api/v1/persons/{person_id}", 403),  # a refused attempt, too
    ]
    read = log[1]
    assert read["role"] == "township_officer" and read["region"] == TOWNSHIP
    assert json.loads(read["record"]) == {"person_id": person["id"]}
    assert read["request_id"]
    # The search names its parameter, never the ID number it was given.
    assert json.loads(log[2]["record"]) == {"query": ["id_number"]}
    assert all(number not in json.dumps(e) for e in log)
    assert [e["seq"] for e in log] == [1, 2, 3, 4]
    assert log[0]["prev_hash"] == "0" * 64
    assert all(b["prev_hash"] == a["hash"] for a, b in itertools.pairwise(log))
    assert (await verify(stack))["valid"] is True

    # Filters: by actor and by a record's id.
    assert [e["seq"] for e in await entries(stack, actor="officer-7")] == [2, 3]
    # By the person: named in the path (2, 4), or in the answer (1: registered, 3: found).
    assert [e["seq"] for e in await entries(stack, record=person["id"])] == [1, 2, 3, 4]
    assert [e["persons"] for e in log] == [[person["id"]]] * 3 + [[]]  # the refusal told none


async def test_an_application_read_names_the_persons_it_is_about(stack: InProcessStack) -> None:
    app = await stack.submit_application()
    officer = stack.auth("village_worker", VILLAGE, sub="worker-3")
    r = await stack.registry.get(f"/api/v1/applications/{app['id']}", headers=officer)
    assert r.status_code == 200
    (read,) = await entries(stack, actor="worker-3")
    assert json.loads(read["record"]) == {"application_id": app["id"]}
    assert app["mother"]["id"] in read["persons"]
    # So an auditor asking who looked at the mother finds the application read too.
    about_her = await entries(stack, record=app["mother"]["id"])
    assert read["seq"] in [e["seq"] for e in about_her]


async def test_an_auditor_sees_their_region_and_exports_it(stack: InProcessStack) -> None:
    person = await stack.register_person()
    for region, sub in ((TOWNSHIP, "here"), ("330103001", "elsewhere")):
        await stack.registry.get(
            f"/api/v1/persons/{person['id']}",
            headers=stack.auth("township_officer", region, sub=sub),
        )
    mine = await entries(stack)
    assert {e["actor"] for e in mine} == {"village_agent-330102001", "here"}
    r = await stack.registry.get("/api/v1/audit", headers=stack.auth("auditor", "330103", sub="a2"))
    assert [e["actor"] for e in r.json()["items"]] == ["elsewhere"]

    r = await stack.registry.get(
        "/api/v1/audit/export", params={"format": "jsonl"}, headers=auditor(stack)
    )
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in r.text.splitlines()]
    assert [x["seq"] for x in lines] == [e["seq"] for e in mine]
    assert lines[0]["hash"] == mine[0]["hash"]
    r = await stack.registry.get(
        "/api/v1/audit/export", params={"format": "csv"}, headers=auditor(stack)
    )
    rows = list(csv.DictReader(io.StringIO(r.text.lstrip("\ufeff"))))
    assert [int(x["seq"]) for x in rows] == [e["seq"] for e in mine]
    assert rows[-1]["hash"] == mine[-1]["hash"]

    # Nobody else reads the trail.
    for role, region in (("admin", ""), ("county_officer", COUNTY), ("bureau_system", COUNTY)):
        r = await stack.registry.get("/api/v1/audit", headers=stack.auth(role, region))
        assert r.status_code == 403, role


async def test_tampering_is_found_wherever_it_is(stack: InProcessStack) -> None:
    person = await stack.register_person()
    officer = stack.auth("township_officer", TOWNSHIP)
    for _ in range(5):
        await stack.registry.get(f"/api/v1/persons/{person['id']}", headers=officer)
    assert (await verify(stack)) | {"head_hash": ""} == {
        "valid": True,
        "entries": 6,
        "head_seq": 6,
        "head_hash": "",
        "first_broken_seq": None,
        "reason": None,
    }

    # An entry changed: its hash no longer matches.
    await sql(stack, "UPDATE audit_log SET actor = 'someone-else' WHERE seq = 3")
    result = await verify(stack)
    assert (result["valid"], result["first_broken_seq"]) == (False, 3)
    await sql(stack, "UPDATE audit_log SET actor = 'township_officer-330102001' WHERE seq = 3")
    assert (await verify(stack))["valid"] is True

    # An entry removed from the middle.
    await sql(stack, "DELETE FROM audit_log WHERE seq = 4")
    result = await verify(stack)
    assert (result["valid"], result["first_broken_seq"]) == (False, 4)
    assert "missing" in result["reason"]


async def test_cutting_the_tail_is_found(stack: InProcessStack) -> None:
    person = await stack.register_person()
    for _ in range(3):
        await stack.registry.get(
            f"/api/v1/persons/{person['id']}", headers=stack.auth("county_officer", COUNTY)
        )
    await sql(stack, "DELETE FROM audit_log WHERE seq = 4")
    result = await verify(stack)
    assert result["valid"] is False and result["entries"] == 3 and result["head_seq"] == 4
    assert result["first_broken_seq"] == 4


async def test_concurrent_reads_make_one_unbroken_chain(stack: InProcessStack) -> None:
    person = await stack.register_person()
    officer = stack.auth("village_worker", VILLAGE)
    answers = await asyncio.gather(
        *(stack.registry.get(f"/api/v1/persons/{person['id']}", headers=officer) for _ in range(30))
    )
    assert all(a.status_code == 200 for a in answers)
    result = await verify(stack)
    assert result["valid"] is True and result["entries"] == 31


async def test_a_read_that_cannot_be_audited_discloses_nothing(stack: InProcessStack) -> None:
    person = await stack.register_person(name="不可见")
    officer = stack.auth("township_officer", TOWNSHIP)
    await sql(stack, "ALTER TABLE audit_log RENAME TO audit_log_away")
    try:
        r = await stack.registry.get(f"/api/v1/persons/{person['id']}", headers=officer)
        assert r.status_code == 503, r.text
        assert r.json()["code"] == "audit_unavailable" and r.headers["Retry-After"]
        assert "不可见" not in r.text
        # A change has committed before the response starts: it stands, and says so.
        r = await stack.registry.patch(
            f"/api/v1/persons/{person['id']}",
            json={"name": "改名", "version": person["version"]},
            headers=officer,
        )
        assert r.status_code == 200, r.text
    finally:
        await sql(stack, "ALTER TABLE audit_log_away RENAME TO audit_log")


async def test_every_service_keeps_its_own_trail(stack: InProcessStack) -> None:
    for service in ("benefits", "visits", "notify"):
        result = await verify(stack, service)
        assert result["valid"] is True and result["entries"] == 0


async def test_the_command_line_verifies_every_trail(
    stack: InProcessStack, databases: dict[str, str], monkeypatch: Any
) -> None:
    from typer.testing import CliRunner

    from shared.cli import app

    person = await stack.register_person()
    await stack.registry.get(
        f"/api/v1/persons/{person['id']}", headers=stack.auth("county_officer", COUNTY)
    )
    for service, url in databases.items():
        monkeypatch.setenv(f"LINGJU_{service.upper()}_DATABASE_URL", url)
    runner = CliRunner()
    result = await asyncio.to_thread(runner.invoke, app, ["audit-verify"])
    assert result.exit_code == 0, result.output
    assert "registry: intact, 2 entries, head 2 " in result.output
    assert "notify: intact, 0 entries" in result.output

    await sql(stack, "UPDATE audit_log SET status = 200 WHERE seq = 1")
    result = await asyncio.to_thread(runner.invoke, app, ["audit-verify", "registry"])
    assert result.exit_code == 1
    assert "registry: BROKEN at entry 1" in result.output


async def test_an_export_page_names_the_persons_on_it(stack: InProcessStack) -> None:
    people = [await stack.register_person() for _ in range(3)]
    bureau = stack.auth("bureau_system", COUNTY, sub="county-bureau")
    r = await stack.registry.get(
        "/api/v1/exports/persons", params={"format": "jsonl"}, headers=bureau
    )
    assert r.status_code == 200 and len(r.text.splitlines()) == 3
    (export,) = await entries(stack, actor="county-bureau")
    assert export["route"] == "GET /api/v1/exports/persons"
    assert set(export["persons"]) == {p["id"] for p in people}
