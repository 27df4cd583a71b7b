"""The registry's bulk exports (shared/exports.py): every page of a region, both formats, the
masking per role, and the refusals."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select

from services.registry.api.exports import CERTIFICATE_COLUMNS, PERSON_COLUMNS
from services.registry.models import Certificate, Person
from tests.support import OTHER_TOWNSHIP, TOWNSHIP, VILLAGE, InProcessStack, make_id_number

COUNTY = VILLAGE[:6]
OTHER_VILLAGE = OTHER_TOWNSHIP + "001"
PERSONS = "/api/v1/exports/persons"
CERTIFICATES = "/api/v1/exports/certificates"


async def pull_all(
    client: httpx.AsyncClient, path: str, headers: dict[str, str], **params: Any
) -> tuple[list[dict[str, Any]], int]:
    """Every row of an export, following the next-page links; and how many pages it took."""
    rows: list[dict[str, Any]] = []
    url: str | None = client.base_url.join(path).copy_merge_params(params).__str__()
    pages = 0
    while url is not None:
        r = await client.get(url, headers=headers)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "application/x-ndjson"
        rows += [json.loads(line) for line in r.text.splitlines()]
        pages += 1
        url = None
        if "x-next-cursor" in r.headers:
            link = r.links["next"]["url"]
            assert f"cursor={r.headers['x-next-cursor']}" in link
            url = link
        else:
            assert "link" not in r.headers
    return rows, pages


def read_csv(r: httpx.Response) -> list[list[str]]:
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "text/csv; charset=utf-8"
    assert r.content.startswith("\ufeff".encode())
    return list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"), newline="")))


async def ids_in(stack: InProcessStack, table: Any, prefix: str) -> set[str]:
    async with stack.rt("registry").db.session() as s:
        found = await s.scalars(select(table.id).where(table.region_code.startswith(prefix)))
        return set(found.all())


async def seed(stack: InProcessStack) -> dict[str, Any]:
    issued = await stack.issue_certificate()
    for _ in range(3):
        await stack.register_person()
    r = await stack.registry.post(
        "/api/v1/persons",
        json={
            "id_number": make_id_number(date(1992, 4, 4)),
            "name": "邻乡居民",
            "region_code": OTHER_VILLAGE,
            "household_type": "rural",
        },
        headers=stack.auth("township_officer", OTHER_TOWNSHIP),
    )
    assert r.status_code == 201, r.text
    return {**issued, "stranger": r.json()}


async def test_every_page_of_the_region_and_nothing_else(stack: InProcessStack) -> None:
    world = await seed(stack)
    bureau = stack.auth("bureau_system", COUNTY, sub="county-bureau")
    township = stack.auth("township_officer", TOWNSHIP)

    rows, pages = await pull_all(stack.registry, PERSONS, township, limit=2)
    ids = [row["id"] for row in rows]
    assert len(ids) == len(set(ids)) == 6 and pages == 3
    assert set(ids) == await ids_in(stack, Person, TOWNSHIP)
    assert world["stranger"]["id"] not in ids
    assert all(list(row) == [c.name for c in PERSON_COLUMNS] for row in rows)

    # The county's bureau sees both townships; narrowed by region=, only the one asked for.
    rows, _ = await pull_all(stack.registry, PERSONS, bureau, limit=4)
    assert {row["id"] for row in rows} == await ids_in(stack, Person, COUNTY)
    assert len(rows) == 7
    rows, _ = await pull_all(stack.registry, PERSONS, bureau, region=OTHER_TOWNSHIP)
    assert [row["id"] for row in rows] == [world["stranger"]["id"]]

    rows, pages = await pull_all(stack.registry, CERTIFICATES, bureau, limit=1)
    assert [row["certificate_no"] for row in rows] == [world["certificate_no"]]
    assert {row["id"] for row in rows} == await ids_in(stack, Certificate, COUNTY)
    assert rows[0]["holder_ids"] == [world["mother"]["id"], world["father"]["id"]]
    assert pages == 1


async def test_updated_since_keeps_the_rows_changed_since(stack: InProcessStack) -> None:
    await seed(stack)
    admin = stack.auth("admin")
    before = datetime.now(UTC) - timedelta(minutes=5)
    rows, _ = await pull_all(stack.registry, PERSONS, admin, updated_since=before.isoformat())
    assert len(rows) == 7
    later = datetime.now(UTC) + timedelta(minutes=5)
    rows, pages = await pull_all(stack.registry, PERSONS, admin, updated_since=later.isoformat())
    assert rows == [] and pages == 1


async def test_csv_has_the_column_set_as_its_header(stack: InProcessStack) -> None:
    world = await seed(stack)
    county = stack.auth("county_officer", COUNTY)
    table = read_csv(await stack.registry.get(PERSONS, params={"format": "csv"}, headers=county))
    assert table[0] == [c.name for c in PERSON_COLUMNS]
    assert {row[0] for row in table[1:]} == await ids_in(stack, Person, COUNTY)

    r = await stack.registry.get(CERTIFICATES, params={"format": "csv", "limit": 1}, headers=county)
    table = read_csv(r)
    assert table[0] == [c.name for c in CERTIFICATE_COLUMNS]
    assert table[1][1] == world["certificate_no"]
    assert json.loads(table[1][3]) == [world["mother"]["id"], world["father"]["id"]]
    assert "x-next-cursor" not in r.headers


async def test_id_numbers_are_masked_but_for_the_admin_and_phones_for_all(
    stack: InProcessStack,
) -> None:
    full = make_id_number(date(1992, 4, 4))
    masked = full[:6] + "*" * 8 + full[-4:]
    person = await stack.register_person(id_number=full, phone="13912345678")

    def of(rows: list[dict[str, Any]]) -> dict[str, Any]:
        return next(row for row in rows if row["id"] == person["id"])

    bureau, _ = await pull_all(
        stack.registry, PERSONS, stack.auth("bureau_system", COUNTY, sub="county-bureau")
    )
    assert of(bureau)["id_number"] == masked
    assert of(bureau)["phone"] == "139****5678"
    township, _ = await pull_all(stack.registry, PERSONS, stack.auth("township_officer", TOWNSHIP))
    assert of(township)["id_number"] == masked
    admin, _ = await pull_all(stack.registry, PERSONS, stack.auth("admin"))
    assert of(admin)["id_number"] == full
    assert of(admin)["phone"] == "139****5678"

    table = read_csv(
        await stack.registry.get(
            PERSONS, params={"format": "csv"}, headers=stack.auth("county_officer", COUNTY)
        )
    )
    assert full not in "".join(",".join(row) for row in table)
    assert "13912345678" not in "".join(",".join(row) for row in table)


async def test_refusals(stack: InProcessStack) -> None:
    await seed(stack)
    township = stack.auth("township_officer", TOWNSHIP)
    for path in (PERSONS, CERTIFICATES):
        r = await stack.registry.get(path, params={"region": OTHER_TOWNSHIP}, headers=township)
        assert r.status_code == 403 and r.json()["code"] == "out_of_region", r.text
        r = await stack.registry.get(path, params={"region": "33"}, headers=township)
        assert r.status_code == 403 and r.json()["code"] == "out_of_region", r.text
        for role, region in (("village_worker", VILLAGE), ("village_agent", VILLAGE)):
            r = await stack.registry.get(path, headers=stack.auth(role, region))
            assert r.status_code == 403 and r.json()["code"] == "forbidden", r.text
        r = await stack.registry.get(
            path, headers=stack.auth("resident", person_id="00000000-0000-0000-0000-000000000001")
        )
        assert r.status_code == 403 and r.json()["code"] == "forbidden", r.text
        for cursor in ("not-a-cursor", "WyJhIiwiYiJd", "%%%"):
            r = await stack.registry.get(path, params={"cursor": cursor}, headers=township)
            assert r.status_code == 422, r.text
            assert r.headers["content-type"].startswith("application/problem+json")
        r = await stack.registry.get(path, params={"limit": 10001}, headers=township)
        assert r.status_code == 422, r.text
        r = await stack.registry.get(path, params={"format": "xml"}, headers=township)
        assert r.status_code == 422, r.text
