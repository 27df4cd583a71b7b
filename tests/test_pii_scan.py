"""No plaintext ID number anywhere a full flow leaves traces (issue 7): the family is
registered (one registration sent twice under an Idempotency-Key, one refused as a duplicate),
applies and is issued a certificate; benefits prepares enrollments that an officer confirms, and
notify tells the parents; a birth is recorded (the newborn with an ID number) and visits plans
its follow-ups; officers search by ID number and residents read their own record. Then every log
record emitted meanwhile, every database of the four services (each cell by SQL, and on SQLite
the files' raw bytes too) and the development message file are scanned for the 18-character
numbers used: none may appear."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

import tests.support as support
from shared.clock import FixedClock
from shared.config import SERVICES
from shared.db import Database
from tests.support import TOWNSHIP, VILLAGE, InProcessStack, eventually

TODAY = date(2026, 6, 15)  # the business day of every service
BORN = date(2026, 6, 10)
PROGRAM = "only_child_parent_reward"

# LogRecord attributes every record has; anything else came in through ``extra=``.
_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("x", 0, "x", 0, "x", None, None))) | {
    "message",
    "asctime",
}


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def all_logs() -> Iterator[_Collect]:
    """Every record reaching the root logger, at DEBUG, from before the stack starts (listed
    before ``stack`` so its startup is captured too)."""
    handler = _Collect()
    root = logging.getLogger()
    lingju = logging.getLogger("lingju")
    saved = root.level, lingju.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    lingju.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(saved[0])
        lingju.setLevel(saved[1])


@pytest.fixture
def id_numbers(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every ID number the flow helpers make, in the order made."""
    made: list[str] = []
    original = support.make_id_number

    def recording(birth: date, sex: str = "female") -> str:
        number = original(birth, sex)
        made.append(number)
        return number

    monkeypatch.setattr(support, "make_id_number", recording)
    return made


def _lines_of(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


async def _ok(r: httpx.Response, status: int = 200) -> Any:
    assert r.status_code == status, r.text
    return r.json()


# -- the flow ------------------------------------------------------------------------------------


async def _full_flow(stack: InProcessStack, numbers: list[str]) -> list[str]:
    """Runs the flow; the ids of the persons registered, in the order of ``numbers``."""
    for service in SERVICES:
        stack.rt(service).clock = FixedClock(TODAY)
    officer = stack.auth("township_officer", TOWNSHIP, sub="officer-1")
    agent = stack.auth("village_agent", TOWNSHIP)

    # The family applies; village and township approve; the certificate is issued.
    issued = await stack.issue_certificate()
    mother, father = issued["mother"]["id"], issued["father"]["id"]

    # A phone retries a registration under one Idempotency-Key (the stored response is kept),
    # and an agent registers a number already on file (the 409 path).
    grandma = {
        "id_number": support.make_id_number(date(1950, 2, 3), "female"),
        "name": "测试奶奶",
        "phone": "13900139000",
        "region_code": VILLAGE,
        "household_type": "rural",
    }
    keyed = {**agent, "Idempotency-Key": "pii-scan-grandma"}
    first = await _ok(
        await stack.registry.post("/api/v1/persons", json=grandma, headers=keyed), 201
    )
    again = await _ok(
        await stack.registry.post("/api/v1/persons", json=grandma, headers=keyed), 201
    )
    assert again["id"] == first["id"]
    r = await stack.registry.post(
        "/api/v1/persons", json={**grandma, "id_number": numbers[0]}, headers=agent
    )
    assert r.status_code == 409, r.text

    # Benefits prepares both parents' enrollments; a second officer confirms each.
    async def prepared() -> list[dict[str, Any]]:
        found = []
        for person in (mother, father):
            items = await stack.enrollments_of(person)
            assert [(e["program"], e["status"]) for e in items] == [(PROGRAM, "pending_review")]
            found += items
        return found

    for e in await eventually(prepared):
        confirmed = await _ok(
            await stack.benefits.post(
                f"/api/v1/enrollments/{e['id']}/confirm",
                json={"version": e["version"]},
                headers=stack.auth("township_officer", TOWNSHIP, sub="checker-1"),
            )
        )
        assert confirmed["status"] == "active"

    # A birth, the newborn with an ID number of its own; visits plans the follow-ups.
    for area, tier, sub in ((VILLAGE, "village", "worker-1"), (TOWNSHIP, "township", "station-1")):
        await _ok(
            await stack.visits.put(
                f"/api/v1/assignments/{area}/{tier}",
                json={"assignee_sub": sub, "assignee_name": "王芳"},
                headers=officer,
            )
        )
    young_mother = await stack.register_person(date(1996, 3, 1), "female")
    birth = await _ok(
        await stack.registry.post(
            "/api/v1/births",
            json={
                "mother_id": young_mother["id"],
                "child": {
                    "name": "李小宝",
                    "sex": "male",
                    "birth_date": BORN.isoformat(),
                    "hospital": "上城区妇幼保健院",
                    "birth_certificate_no": "Q330012345",
                    "id_number": support.make_id_number(BORN, "male"),
                },
            },
            headers=officer,
        ),
        201,
    )
    child = birth["child"]["id"]
    worker = stack.auth("village_worker", VILLAGE, sub="worker-1")

    async def planned() -> None:
        page = await _ok(await stack.visits.get("/api/v1/sync", headers=worker))
        steps = {(i["task"]["person_id"], i["task"]["step"]) for i in page["items"] if i["task"]}
        assert (child, "home_visit") in steps, steps
        assert (young_mother["id"], "home_visit_1") in steps, steps

    await eventually(planned)

    # Notify tells the parents.
    async def told() -> None:
        me = stack.auth("resident", person_id=mother)
        inbox = await _ok(await stack.notify.get("/api/v1/inbox", headers=me))
        titles = {m["title"] for m in inbox["items"]}
        assert {"待遇资格已确认", "证件已办好"} <= titles, titles

    await eventually(told)

    # ... and the SMS copies reach the development message file.
    message_file = stack.settings.notify_file_provider_path
    assert message_file is not None

    async def sent() -> None:
        lines = _lines_of(Path(message_file))
        assert len(lines) >= 4, lines  # two titles, two parents

    await eventually(sent)

    # Officers search by ID number and read records (masked); residents read their own (full).
    person_ids = [mother, father, issued["child"]["id"], first["id"], young_mother["id"], child]
    for number, person_id in zip(numbers, person_ids, strict=True):
        found = await _ok(
            await stack.registry.get(
                "/api/v1/persons", params={"id_number": number}, headers=officer
            )
        )
        assert [p["id"] for p in found["items"]] == [person_id]
        assert found["items"][0]["id_number"] != number  # masked for an officer
        one = await _ok(await stack.registry.get(f"/api/v1/persons/{person_id}", headers=officer))
        assert one["id_number"] != number
        own = await _ok(
            await stack.registry.get(
                f"/api/v1/persons/{person_id}",
                headers=stack.auth("resident", person_id=person_id),
            )
        )
        assert own["id_number"] == number  # the resident sees their own in full
    return person_ids


# -- the scan ------------------------------------------------------------------------------------


def _hits(haystack: str, numbers: list[str]) -> list[str]:
    upper = haystack.upper()  # a trailing check character X may be written either way
    return [n for n in numbers if n.upper() in upper]


def _is_test_client_request(record: logging.LogRecord) -> bool:
    """httpx's "HTTP Request: GET http://registry/...?id_number=..." lines from this test's own
    client: the caller's log, not a service's (in production the caller is the app or browser).
    Any other httpx record, such as a service's own outbound call, is scanned."""
    args = record.args if isinstance(record.args, tuple) else ()
    return (
        record.name == "httpx"
        and len(args) >= 2
        and isinstance(args[1], httpx.URL)
        and args[1].host in SERVICES
    )


def _scan_logs(records: list[logging.LogRecord], numbers: list[str]) -> list[str]:
    formatter = logging.Formatter()
    found = []
    for record in records:
        if _is_test_client_request(record):
            continue
        try:
            message = record.getMessage()
        except Exception as e:  # a bad format string is itself worth seeing, not a crash
            message = f"<unformattable: {e}>"
        parts = [message, str(record.msg), repr(record.args)]
        if record.exc_info:
            parts.append(formatter.formatException(record.exc_info))
        if record.exc_text:
            parts.append(record.exc_text)
        if record.stack_info:
            parts.append(record.stack_info)
        parts += [f"{k}={v!r}" for k, v in vars(record).items() if k not in _STANDARD_ATTRS]
        for n in _hits("\n".join(parts), numbers):
            found.append(
                f"log: logger {record.name!r} ({record.pathname}:{record.lineno}) "
                f"{record.levelname} {message[:300]!r} contains {n}"
            )
    return found


def _as_text(value: Any) -> str:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("latin-1")
    return str(value)


async def _scan_database(service: str, url: str, numbers: list[str]) -> list[str]:
    """Every cell of every table (the service's metadata and anything else in the database)."""
    db = Database(url)
    found = []
    try:
        async with db.session() as s:
            if url.startswith("sqlite"):
                names = (
                    await s.execute(
                        text("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
                    )
                ).scalars()
                tables = [f'"{n}"' for n in names]
            else:
                rows = await s.execute(
                    text(
                        "SELECT table_schema, table_name FROM information_schema.tables"
                        " WHERE table_type = 'BASE TABLE'"
                        " AND table_schema NOT IN ('pg_catalog', 'information_schema')"
                        " ORDER BY 1, 2"
                    )
                )
                tables = [f'"{schema}"."{name}"' for schema, name in rows]
            assert tables, f"{service}: no tables found"
            for table in tables:
                result = await s.execute(text(f"SELECT * FROM {table}"))
                columns = list(result.keys())
                for row in result:
                    for column, value in zip(columns, row, strict=True):
                        for n in _hits(_as_text(value), numbers):
                            found.append(f"db: {service}.{table}.{column} contains {n}")
    finally:
        await db.dispose()
    return found


def _scan_files(paths: dict[str, Path], numbers: list[str]) -> list[str]:
    found = []
    for label, path in paths.items():
        if not path.exists():
            continue
        data = path.read_bytes().upper()
        for n in numbers:
            at = data.find(n.upper().encode())
            if at >= 0:
                found.append(f"file: {label} ({path}) contains {n} at byte {at}")
    return found


def _sqlite_files(databases: dict[str, str]) -> dict[str, Path]:
    paths = {}
    for service, url in databases.items():
        if url.startswith("sqlite"):
            base = Path(make_url(url).database or "")
            for suffix in ("", "-wal", "-journal"):
                paths[f"{service} database file{suffix}"] = Path(f"{base}{suffix}")
    return paths


def _broker_files(stack: InProcessStack) -> dict[str, Path]:
    """Every file of the JetStream store: the streams keep every event the flow published."""
    root = stack.nats.store_dir
    return {f"NATS store {p.relative_to(root)}": p for p in root.rglob("*") if p.is_file()}


# The phones the flow gives its residents (support.register_person's default, and grandma's).
PHONES = ["13800138000", "13900139000"]


async def test_no_plaintext_id_number_in_logs_databases_or_messages(
    all_logs: _Collect, id_numbers: list[str], stack: InProcessStack, backend: str
) -> None:
    logging.getLogger().setLevel(logging.DEBUG)  # in case the apps' logging setup lowered it
    person_ids = await _full_flow(stack, id_numbers)
    numbers = list(id_numbers)
    assert len(numbers) == 6 and all(len(n) == 18 for n in numbers), numbers

    hits = _scan_logs(all_logs.records, numbers)
    for service, url in stack.databases.items():
        hits += await _scan_database(service, url, numbers)
    files = _sqlite_files(stack.databases)
    broker = _broker_files(stack)
    assert any(p.stat().st_size for p in broker.values()), "no stream data found to scan"
    hits += _scan_files({**files, **broker}, numbers)
    message_file = Path(stack.settings.notify_file_provider_path or "")
    hits += _scan_files({"notify message file": message_file}, numbers)

    # Phones too, everywhere but the message file (the SMS provider's stand-in must have them):
    # registry, notify and the events that carry them to notify keep them sealed.
    assert PHONES[0] in await asyncio.to_thread(message_file.read_text)  # they were texted
    hits += _scan_logs(all_logs.records, PHONES)
    for service, url in stack.databases.items():
        hits += await _scan_database(service, url, PHONES)
    hits += _scan_files({**files, **broker}, PHONES)

    # The scan can see: a value known to be stored in plaintext (a person's id) is found.
    control = [person_ids[0]]
    assert all_logs.records, "no log record captured"
    assert await _scan_database("registry", stack.databases["registry"], control)
    assert _scan_files(broker, control), "the stream files were not read"
    if backend == "sqlite":
        registry_files = {k: v for k, v in files.items() if k.startswith("registry")}
        assert _scan_files(registry_files, control)

    assert not hits, "plaintext ID numbers or phones found:\n" + "\n".join(hits)
