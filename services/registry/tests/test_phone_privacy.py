"""Phones at rest and in answers: stored only as ciphertext plus a keyed blind index, masked for
staff (138****8000) and whole only for the resident they belong to; every encrypted column of
the registry is declared for key rotation and decrypts under its declared context."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from cryptography.exceptions import InvalidTag
from sqlalchemy import column, select, table, text

from services.registry.models import ENCRYPTED_COLUMNS, ID_CONTEXT, PHONE_CONTEXT, metadata
from services.registry.tests.family_support import person_row
from shared.crypto import EVENT_PHONE_CONTEXT
from tests.support import TOWNSHIP, InProcessStack, make_id_number, published

PHONE = "13800138000"
MASKED = "138****8000"


def opened(stack: InProcessStack, sealed: str | None) -> str | None:
    """A phone as a person event carries it, opened as notify opens it."""
    cipher = stack.rt("registry").cipher
    return cipher.decrypt(sealed, context=EVENT_PHONE_CONTEXT) if sealed else None


async def _get(stack: InProcessStack, person_id: str, headers: dict[str, str]) -> dict[str, Any]:
    r = await stack.registry.get(f"/api/v1/persons/{person_id}", headers=headers)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


async def test_a_phone_is_stored_encrypted_and_shown_whole_only_to_its_resident(
    stack: InProcessStack,
) -> None:
    id_number = make_id_number(date(1980, 4, 5))
    person = await stack.register_person(date(1980, 4, 5), id_number=id_number, phone=PHONE)
    assert person["phone"] == MASKED  # the agent who registered them

    cipher = stack.rt("registry").cipher
    row = await person_row(stack, person["id"])
    assert row.phone_enc and PHONE not in row.phone_enc
    assert cipher.decrypt(row.phone_enc, context=PHONE_CONTEXT) == PHONE
    with pytest.raises(InvalidTag):  # bound to its column: not readable as another one
        cipher.decrypt(row.phone_enc, context=ID_CONTEXT)
    assert row.phone_index == cipher.blind_index(PHONE, context=PHONE_CONTEXT)
    async with stack.rt("registry").db.session() as s:
        cells = (await s.execute(text("SELECT * FROM persons"))).one()
    assert not [c for c in cells if PHONE in str(c)]

    staff = {
        role: stack.auth(role, TOWNSHIP)
        for role in ("village_agent", "village_worker", "township_officer", "county_officer")
    }
    staff["admin"] = stack.auth("admin")
    for role, headers in staff.items():
        seen = await _get(stack, person["id"], headers)
        assert seen["phone"] == MASKED, role
        # ID numbers keep their rule: masked for staff, whole for an admin.
        assert seen["id_number"] == (
            id_number if role == "admin" else id_number[:6] + "*" * 8 + id_number[-4:]
        ), role
    own = await _get(stack, person["id"], stack.auth("resident", person_id=person["id"]))
    assert (own["phone"], own["id_number"]) == (PHONE, id_number)
    r = await stack.registry.get(
        f"/api/v1/persons/{person['id']}", headers=stack.auth("resident", person_id="someone")
    )
    assert r.status_code == 403, r.text

    # Notify texts residents: person.registered carries the phone sealed, never the ID number.
    (registered,) = await published(stack, "registry", "lingju.registry.person.registered")
    assert PHONE not in str(registered)
    assert opened(stack, registered["data"]["phone_enc"]) == PHONE
    assert id_number not in str(registered)

    # Without a phone: nothing stored, null shown.
    child = await stack.register_person(date(2015, 1, 1), "male", phone=None)
    assert child["phone"] is None
    row = await person_row(stack, child["id"])
    assert (row.phone_enc, row.phone_index) == (None, None)


async def test_search_by_phone_goes_through_the_blind_index(stack: InProcessStack) -> None:
    mother = await stack.register_person(date(1980, 4, 5), phone=PHONE)
    await stack.register_person(date(1981, 6, 7), phone="13911112222")
    await stack.register_person(date(2015, 1, 1), phone=None)
    officer = stack.auth("township_officer", TOWNSHIP)

    async def by_phone(phone: str) -> list[str]:
        r = await stack.registry.get("/api/v1/persons", params={"phone": phone}, headers=officer)
        assert r.status_code == 200, r.text
        assert all(p["phone"] is None or "****" in p["phone"] for p in r.json()["items"])
        return [p["id"] for p in r.json()["items"]]

    assert await by_phone(PHONE) == [mother["id"]]
    assert await by_phone("13700000000") == []
    assert await by_phone(PHONE[:7]) == []  # an exact match only: no prefix search on a digest

    # A changed phone moves the index with it.
    url = f"/api/v1/persons/{mother['id']}"
    r = await stack.registry.patch(
        url, json={"phone": "13766667777", "version": 1}, headers=officer
    )
    assert r.status_code == 200, r.text
    assert r.json()["phone"] == "137****7777"
    assert await by_phone(PHONE) == []
    assert await by_phone("13766667777") == [mother["id"]]
    # And a cleared one leaves nothing behind.
    r = await stack.registry.patch(url, json={"phone": None, "version": 2}, headers=officer)
    assert r.status_code == 200, r.text
    assert r.json()["phone"] is None
    row = await person_row(stack, mother["id"])
    assert (row.phone_enc, row.phone_index) == (None, None)
    assert await by_phone("13766667777") == []
    updates = await published(stack, "registry", "lingju.registry.person.updated")
    assert [opened(stack, u["data"]["phone_enc"]) for u in updates] == ["13766667777", None]


async def test_every_encrypted_column_is_declared_and_decrypts_with_its_context(
    stack: InProcessStack,
) -> None:
    # Every column named *_enc is ciphertext: a new one must be declared for key rotation.
    declared = {(c.table, c.column) for c in ENCRYPTED_COLUMNS}
    enc_columns = {
        (t.name, c.name)
        for t in metadata.sorted_tables
        for c in t.columns
        if c.name.endswith("_enc")
    }
    assert enc_columns == declared
    for c in ENCRYPTED_COLUMNS:
        assert c.context == f"registry.{c.table}.{c.column.removesuffix('_enc')}"
        assert metadata.tables[c.table].c[c.key].primary_key

    # A value in each, then each decrypts under its declared context.
    person = await stack.register_person(date(1950, 2, 3), "male", phone=PHONE)
    r = await stack.registry.post(
        f"/api/v1/persons/{person['id']}/death",
        json={"date_of_death": "2026-01-02", "cause": "心力衰竭", "reported_by": "村委会"},
        headers=stack.auth("township_officer", TOWNSHIP),
    )
    assert r.status_code == 201, r.text
    cipher = stack.rt("registry").cipher
    async with stack.rt("registry").db.session() as s:
        for c in ENCRYPTED_COLUMNS:
            t = table(c.table, column(c.key), column(c.column))
            rows = (await s.execute(select(t).where(t.c[c.column].is_not(None)))).all()
            assert rows, c
            for key, value in rows:
                assert cipher.decrypt(value, context=c.context), (c, key)
