"""Health data at rest, on SQLite and PostgreSQL: what a worker records (a visit's place,
findings and notes; a procedure's code and performer) is stored only as ciphertext, and the API,
the sync push's answer and the sync pull give it back intact. Migration 0008 encrypts the rows a
database already held and takes a refusal's note out of the task's reason.

Dates are in 2030 (see test_tasks.py); the business day is set on the visits runtime's clock.
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from services.visits.models import (
    ENCRYPTED_COLUMNS,
    PROCEDURE_CODE,
    PROCEDURE_PERFORMER,
    VISIT_CONSENT_NOTE,
    VISIT_FINDINGS,
    VISIT_NEXT_STEP_NOTE,
    VISIT_PLACE,
    Task,
)
from services.visits.tests.test_appointments import station
from services.visits.tests.test_sync import Phone, phone_view, record, server_view, setup_births
from services.visits.tests.test_tasks import BORN, api, today_is, worker
from services.visits.tests.test_visits import procedure, visit
from shared.crypto import FieldCipher
from shared.db import async_url
from shared.migrations import upgrade
from tests.support import PG_URL, TOWNSHIP, VILLAGE, InProcessStack

VISIT_DAY = BORN + timedelta(days=4)

# What the worker writes: each value distinctive enough that finding it anywhere is a leak.
PLACE = "村东头王家院子（测试地点）"
FINDINGS = {"blood_pressure": "143/97", "notes": "恶露有异味，建议复查（测试发现）"}
NEXT_NOTE = "三日后复测血压（测试下一步）"
PUSHED_FINDINGS = {"blood_pressure": "151/99", "notes": "乳头皲裂，已指导（测试离线发现）"}
REFUSAL = "家中有事，下周再说（测试拒绝原因）"
PERFORMER = "doctor-7"
PLAINTEXT = [
    PLACE,
    *FINDINGS.values(),
    NEXT_NOTE,
    *PUSHED_FINDINGS.values(),
    REFUSAL,
    "iud_insertion",
    PERFORMER,
]


def _cell(value: Any) -> str:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", "replace")
    return str(value)


async def _cells(stack: InProcessStack) -> dict[str, list[dict[str, str]]]:
    """Every row of every table of visits' database, by SQL, as text."""
    db = stack.rt("visits").db
    out: dict[str, list[dict[str, str]]] = {}
    async with db.session() as s:
        if stack.databases["visits"].startswith("sqlite"):
            q = "SELECT name FROM sqlite_master WHERE type = 'table'"
        else:
            q = "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        for table in (await s.execute(text(q))).scalars().all():
            result = await s.execute(text(f'SELECT * FROM "{table}"'))
            keys = list(result.keys())
            out[table] = [{k: _cell(v) for k, v in zip(keys, row, strict=True)} for row in result]
    return out


def _leaks(cells: dict[str, list[dict[str, str]]]) -> list[str]:
    return [
        f"{table}.{column} holds {value!r}"
        for table, rows in cells.items()
        for row in rows
        for column, cell in row.items()
        for value in PLAINTEXT
        # The audit trail names every staff member who acted (its purpose), not what was done.
        if value in cell and (table, column, value) != ("audit_log", "actor", PERFORMER)
    ]


async def _caught_up(phone: Phone) -> None:
    """Pull until the phone holds every task of its worker (on PostgreSQL a pull stops below
    transactions still running anywhere on the server, so one pull may not reach the last)."""
    for _ in range(100):
        await phone.pull()
        if phone_view(phone)[0] == (await server_view(phone.stack))[0]:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the phone did not catch up")


def _file_leaks(url: str) -> list[str]:
    """On SQLite, the database files' raw bytes too (free pages, journal)."""
    if not url.startswith("sqlite"):
        return []
    base = Path(make_url(url).database or "")
    found = []
    for suffix in ("", "-wal", "-journal"):
        path = Path(f"{base}{suffix}")
        data = path.read_bytes() if path.exists() else b""
        # The performer's account is in the audit trail by design (see _leaks).
        found += [
            f"{path.name} holds {v!r}" for v in PLAINTEXT if v != PERFORMER and v.encode() in data
        ]
    return found


async def test_records_and_procedures_are_stored_encrypted_and_read_back_intact(
    stack: InProcessStack,
) -> None:
    today_is(stack, VISIT_DAY)
    a, b, c = await setup_births(stack, 3)
    phone = Phone(stack)
    await _caught_up(phone)
    first = {t["person_id"]: t for t in phone.tasks.values() if t["step"] == "home_visit_1"}

    # Online: a visit with findings, a place and an extra visit with a note.
    async with stack.rt("visits").db.session() as s:
        task_a = await s.get(Task, first[a]["id"])
    assert task_a is not None
    online = visit(
        task_a,
        place=PLACE,
        findings=FINDINGS,
        next_step={
            "kind": "extra_visit",
            "on": (VISIT_DAY + timedelta(days=3)).isoformat(),
            "note": NEXT_NOTE,
        },
    )
    r = await api(stack).post(
        f"/api/v1/tasks/{task_a.id}/visits", json=online, headers=worker(stack)
    )
    assert r.status_code == 201, r.text
    assert r.json()["findings"] == FINDINGS and r.json()["place"] == PLACE

    # Offline: a visit and a refusal pushed in one batch.
    pushed = record(first[b], findings=PUSHED_FINDINGS)
    refused = record(first[c], consent={"given": False, "note": REFUSAL}, findings={})
    out = await phone.push([pushed, refused])
    assert [x["status"] for x in out["results"]] == ["accepted", "accepted"], out
    assert out["results"][0]["visit"]["findings"] == PUSHED_FINDINGS
    assert out["results"][1]["visit"]["consent_note"] == REFUSAL

    # A procedure at the station.
    st = await station(stack)
    doctor = stack.auth("township_officer", TOWNSHIP, sub=PERFORMER)
    proc_body = procedure(a, st["id"], id=str(uuid.uuid4()))
    r = await api(stack).post("/api/v1/procedures", json=proc_body, headers=doctor)
    assert r.status_code == 201, r.text

    # The raw rows: no plaintext anywhere in the database; the ciphertext is what was written.
    cells = await _cells(stack)
    assert not _leaks(cells), "plaintext health data at rest:\n" + "\n".join(_leaks(cells))
    cipher = stack.rt("visits").cipher
    rows = {row["id"]: row for row in cells["visit_records"]}
    assert len(rows) == 3
    row_a = rows[online["id"]]
    assert cipher.decrypt(row_a["place_enc"], context=VISIT_PLACE) == PLACE
    assert json.loads(cipher.decrypt(row_a["findings_enc"], context=VISIT_FINDINGS)) == FINDINGS
    assert cipher.decrypt(row_a["next_step_note_enc"], context=VISIT_NEXT_STEP_NOTE) == NEXT_NOTE
    assert (
        cipher.decrypt(rows[refused["id"]]["consent_note_enc"], context=VISIT_CONSENT_NOTE)
        == REFUSAL
    )
    (proc_row,) = cells["procedures"]
    assert cipher.decrypt(proc_row["procedure_enc"], context=PROCEDURE_CODE) == "iud_insertion"
    assert cipher.decrypt(proc_row["performer_sub_enc"], context=PROCEDURE_PERFORMER) == PERFORMER
    # Every encrypted column is declared for key rotation, and only columns that exist.
    declared = {(e.table, e.column) for e in ENCRYPTED_COLUMNS}
    assert declared == {
        (table, column)
        for table in ("visit_records", "procedures")
        for column in cells[table][0]
        if column.endswith("_enc")
    }
    assert not _file_leaks(stack.databases["visits"])

    # Read back through the API: intact.
    officer = stack.auth("township_officer", TOWNSHIP)
    for task_id, want in (
        (first[a]["id"], (PLACE, FINDINGS, None, NEXT_NOTE)),
        (first[b]["id"], ("家中", PUSHED_FINDINGS, None, None)),
        (first[c]["id"], ("家中", {}, REFUSAL, None)),
    ):
        r = await api(stack).get(f"/api/v1/tasks/{task_id}/visits", headers=officer)
        assert r.status_code == 200, r.text
        (got,) = r.json()
        assert (got["place"], got["findings"], got["consent_note"], got["next_step_note"]) == want
    again = await api(stack).post("/api/v1/procedures", json=proc_body, headers=doctor)
    assert again.status_code == 200, again.text
    assert (again.json()["procedure"], again.json()["performer_sub"]) == (
        "iud_insertion",
        PERFORMER,
    )
    assert again.json()["followup_plan"] == "iud_followup"

    # ... and through the sync pull: each closed task comes with its record, decrypted.
    await _caught_up(phone)
    fresh = Phone(stack)  # a second device of the same worker, from scratch
    await _caught_up(fresh)
    for device in (phone, fresh):
        pulled = {
            i["id"]: i["visits"] for i in map(json.loads, device.received) if i["kind"] == "task"
        }
        assert [v["findings"] for v in pulled[first[a]["id"]]] == [FINDINGS]
        assert [v["next_step_note"] for v in pulled[first[a]["id"]]] == [NEXT_NOTE]
        assert [v["findings"] for v in pulled[first[b]["id"]]] == [PUSHED_FINDINGS]
        assert [v["consent_note"] for v in pulled[first[c]["id"]]] == [REFUSAL]
        assert device.tasks[first[c]["id"]]["closed_reason"] == "本人知情选择：拒绝"
        open_ids = [i for i, t in device.tasks.items() if t["closed"] is None]
        assert open_ids and all(pulled[i] == [] for i in open_ids)


# -- migration 0008 ------------------------------------------------------------------------------

_KEY = "m1:" + base64.b64encode(b"m" * 32).decode()
_INDEX_KEY = base64.b64encode(b"i" * 32).decode()


async def _sql(url: str, *statements: tuple[str, dict[str, Any]]) -> list[list[Any]]:
    engine = create_async_engine(async_url(url))
    try:
        async with engine.begin() as conn:
            out = []
            for q, p in statements:
                result = await conn.execute(text(q), p)
                out.append([tuple(r) for r in result.all()] if result.returns_rows else [])
            return out
    finally:
        await engine.dispose()


def _fresh_database(backend: str, tmp_path: Path) -> tuple[str, list[str]]:
    if backend == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'visits.db'}", []
    from tests.support import create_pg_databases

    name = f"lingju_t_m8_{uuid.uuid4().hex[:8]}_visits"
    return create_pg_databases(PG_URL, {"visits": name})["visits"], [name]


def test_migration_0008_encrypts_existing_rows_and_downgrades_back(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The migration encrypts with the deployment's keys, read as the services read them.
    monkeypatch.setenv("LINGJU_DATA_KEYS", _KEY)
    monkeypatch.setenv("LINGJU_BLIND_INDEX_KEY", _INDEX_KEY)
    cipher = FieldCipher(_KEY, _INDEX_KEY)
    url, created = _fresh_database(backend, tmp_path)
    try:
        upgrade("visits", url, "0007")
        now = datetime(2030, 1, 5, 9, tzinfo=UTC)
        task = {
            "id": "t1", "plan": "postpartum", "step": "home_visit_1", "occurrence": 0,
            "person_id": "p1", "region_code": VILLAGE, "tier": "village", "assignee": "w1",
            "anchor_on": BORN, "due_on": BORN, "overdue_on": BORN + timedelta(days=7),
            "expires_on": BORN + timedelta(days=14), "closed": "declined",
            "closed_reason": f"本人知情选择：拒绝（{REFUSAL}）", "source_ref": "x",
            "version": 2, "created_at": now, "updated_at": now,
        }  # fmt: skip
        asyncio.run(
            _sql(
                url,
                (
                    f"INSERT INTO tasks ({', '.join(task)}) VALUES (:{', :'.join(task)})",
                    task,
                ),
                (
                    "INSERT INTO stations (id, name, region_code, tier, created_by, created_at)"
                    " VALUES ('s1', '卫生院', :r, 'township', 'o1', :now)",
                    {"r": TOWNSHIP, "now": now},
                ),
                (
                    "INSERT INTO visit_records (id, task_id, person_id, performer_sub,"
                    " performer_role, performed_at, place, consent, consent_note, findings,"
                    " next_step, next_step_on, next_step_note, next_task_id, task_version,"
                    " created_at) VALUES ('v1', 't1', 'p1', 'w1', 'village_worker', :now,"
                    " :place, 'refused', :note, :findings, NULL, NULL, NULL, NULL, 1, :now)",
                    {
                        "now": now,
                        "place": PLACE,
                        "note": REFUSAL,
                        "findings": json.dumps(FINDINGS, ensure_ascii=False),
                    },
                ),
                (
                    "INSERT INTO procedures (id, person_id, region_code, procedure,"
                    " performed_on, station_id, performer_sub, performer_role, consent_given,"
                    " created_at) VALUES ('x1', 'p1', :r, 'iud_insertion', :on, 's1', :who,"
                    " 'township_officer', TRUE, :now)",
                    {"r": VILLAGE, "on": BORN, "who": PERFORMER, "now": now},
                ),
            )
        )

        upgrade("visits", url, "0008")
        visit_row, proc_row, task_row = asyncio.run(
            _sql(
                url,
                (
                    "SELECT place_enc, consent_note_enc, findings_enc, next_step_note_enc"
                    " FROM visit_records",
                    {},
                ),
                ("SELECT procedure_enc, performer_sub_enc FROM procedures", {}),
                ("SELECT closed_reason, version FROM tasks", {}),
            )
        )
        (place, note, findings, next_note) = visit_row[0]
        assert cipher.decrypt(place, context=VISIT_PLACE) == PLACE
        assert cipher.decrypt(note, context=VISIT_CONSENT_NOTE) == REFUSAL
        assert json.loads(cipher.decrypt(findings, context=VISIT_FINDINGS)) == FINDINGS
        assert next_note is None
        assert cipher.decrypt(proc_row[0][0], context=PROCEDURE_CODE) == "iud_insertion"
        assert cipher.decrypt(proc_row[0][1], context=PROCEDURE_PERFORMER) == PERFORMER
        assert task_row == [("本人知情选择：拒绝", 3)]  # the note gone, a new version

        # Down again: the plaintext comes back from the ciphertext.
        from alembic import command

        from shared.migrations import alembic_config

        command.downgrade(alembic_config("visits", url), "0007")
        (visit_back,) = asyncio.run(
            _sql(url, ("SELECT place, consent_note, findings FROM visit_records", {}))
        )
        place_back, note_back, findings_back = visit_back[0]
        assert (place_back, note_back) == (PLACE, REFUSAL)
        assert (
            json.loads(findings_back) if isinstance(findings_back, str) else findings_back
        ) == FINDINGS
    finally:
        if created:
            from tests.support import drop_pg_databases

            drop_pg_databases(PG_URL, created)
