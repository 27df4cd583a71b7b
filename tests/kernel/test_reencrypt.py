"""Data key rotation (shared/rotation.py, ``lingju reencrypt``) on real service tables: values
written under k1 are rewritten under k2, and read through the APIs before and after k1 is gone."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

from sqlalchemy import text
from typer.testing import CliRunner

from services.benefits.models import LINE_ACCOUNT_NO, PAYEE_ACCOUNT_NO
from services.benefits.tests.test_payment_runs import (
    approve,
    bank_file,
    draft,
    export,
    seed_enrollment,
)
from shared.cli import app
from shared.crypto import FieldCipher
from shared.db import Database
from shared.devstack import NatsServer
from shared.rotation import declared_columns, reencrypt
from tests.support import VILLAGE, InProcessStack, reset_broker, reset_databases

K1 = "k1:" + base64.b64encode(bytes(range(32))).decode()
K2 = "k2:" + base64.b64encode(bytes(range(64, 96))).decode()
ACCOUNT = "6228480012345678901"


async def stored_values(db: Database, service: str) -> list[str]:
    """Every value of every declared column of ``service`` (its database: ``db``)."""
    values: list[str] = []
    async with db.session() as s:
        for col in declared_columns(service):
            rows = await s.execute(
                text(f"SELECT {col.column} FROM {col.table} WHERE {col.column} IS NOT NULL")
            )
            values += [v for (v,) in rows]
    return values


async def read_through_the_apis(
    stack: InProcessStack, run: dict[str, Any], person_id: str
) -> tuple[list[list[str]], dict[str, Any]]:
    rows, _ = await bank_file(stack, run)
    r = await stack.registry.get(
        f"/api/v1/persons/{person_id}", headers=stack.auth("township_officer", VILLAGE[:9])
    )
    assert r.status_code == 200, r.text
    person: dict[str, Any] = r.json()
    return rows, person


async def test_rotation_moves_every_value_to_the_active_key(
    databases: dict[str, str], nats_server: NatsServer, tmp_path: Path
) -> None:
    await reset_databases(databases)
    await reset_broker(nats_server.url)

    stack = InProcessStack(databases, nats_server, tmp_path, data_keys=K1)
    async with stack.running():
        person = await stack.register_person()
        e = await seed_enrollment(
            stack, pays_from="2025-11", settled_through="2025-12", account=False
        )
        r = await stack.benefits.put(
            f"/api/v1/persons/{e.payee_id}/payee-account",
            json={"account_name": "王芳", "bank_name": "浙江农商银行", "account_no": ACCOUNT},
            headers=stack.auth("resident", VILLAGE, person_id=e.payee_id),
        )
        assert r.status_code == 201, r.text
        run = await export(stack, await approve(stack, await draft(stack, "2026-01")))
        before = await read_through_the_apis(stack, run, person["id"])
        assert before[0][1][1] == ACCOUNT
        for service in ("registry", "benefits"):
            values = await stored_values(stack.rt(service).db, service)
            assert values and all(v.startswith("k1.") for v in values)

    stack = InProcessStack(databases, nats_server, tmp_path, data_keys=f"{K2},{K1}")
    async with stack.running():
        for service in ("registry", "benefits"):
            rt = stack.rt(service)
            reports = await reencrypt(rt.db, rt.cipher, declared_columns(service), batch_size=1)
            assert sum(r.rewritten for r in reports) > 0
            assert not any(r.failed for r in reports)
            assert all(v.startswith("k2.") for v in await stored_values(rt.db, service))
        rt = stack.rt("benefits")
        names = [r.name for r in await reencrypt(rt.db, rt.cipher, declared_columns("benefits"))]
        assert names == ["payee_accounts.account_no_enc", "payment_lines.account_no_enc"]
        assert await read_through_the_apis(stack, run, person["id"]) == before
        # Once done, a second run has nothing left to do.
        again = await reencrypt(rt.db, rt.cipher, (PAYEE_ACCOUNT_NO, LINE_ACCOUNT_NO))
        assert [(r.rewritten, r.current) for r in again] == [(0, 1), (0, 1)]

    stack = InProcessStack(databases, nats_server, tmp_path, data_keys=K2)  # k1 retired
    async with stack.running():
        assert await read_through_the_apis(stack, run, person["id"]) == before


def test_the_command_prints_a_summary_and_fails_on_undecryptable_values(
    databases: dict[str, str], monkeypatch: Any
) -> None:
    asyncio.run(reset_databases(databases))

    async def seed() -> None:
        db = Database(databases["benefits"])
        cipher = FieldCipher(K1, base64.b64encode(b"i" * 32).decode())
        try:
            async with db.session() as s, s.begin():
                for person_id, value in (
                    ("p-1", cipher.encrypt(ACCOUNT, context=PAYEE_ACCOUNT_NO.context)),
                    ("p-2", cipher.encrypt(ACCOUNT, context="account_no")),
                    ("p-3", "k9.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
                ):
                    await s.execute(
                        text(
                            "INSERT INTO payee_accounts (person_id, account_name, bank_name,"
                            " account_no_enc, account_no_masked, updated_by, updated_at, version)"
                            " VALUES (:p, '王芳', '农商银行', :v, '****8901', 'test',"
                            " CURRENT_TIMESTAMP, 1)"
                        ),
                        {"p": person_id, "v": value},
                    )
        finally:
            await db.dispose()

    asyncio.run(seed())
    for service, url in databases.items():
        monkeypatch.setenv(f"LINGJU_{service.upper()}_DATABASE_URL", url)
    monkeypatch.setenv("LINGJU_DATA_KEYS", f"{K2},{K1}")
    result = CliRunner().invoke(app, ["reencrypt", "--batch-size", "2"])
    assert result.exit_code == 1, result.output
    out = result.output
    assert (
        "benefits payee_accounts.account_no_enc: rewritten 2, already current 0, "
        "changed meanwhile 0, failed 1" in out
    )
    assert "failed ids: p-3" in out and "AAAAAAAA" not in out
    assert "benefits payment_lines.account_no_enc: rewritten 0" in out

    result = CliRunner().invoke(app, ["reencrypt", "benefits"])  # stop, start again: idempotent
    assert "payee_accounts.account_no_enc: rewritten 0, already current 2" in result.output
    assert result.exit_code == 1
    result = CliRunner().invoke(app, ["reencrypt", "nowhere"])
    assert result.exit_code == 2 and "unknown service" in result.output
