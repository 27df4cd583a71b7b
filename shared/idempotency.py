"""``Idempotency-Key`` on creating POSTs: the same key returns the first response, one effect.

The key, a hash of the request and the response are stored in the same transaction as the
effect, so a retry after a lost response (a phone on a bad network) finds the stored answer.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from shared.auth import Principal
from shared.db import utcnow
from shared.errors import Problem
from shared.events.outbox import UnitOfWork
from shared.tables import KernelTables

Action = Callable[[UnitOfWork], Awaitable[tuple[int, Any]]]


async def run_idempotent(
    request: Request,
    principal: Principal,
    uow: UnitOfWork,
    tables: KernelTables,
    action: Action,
) -> JSONResponse:
    key = request.headers.get("idempotency-key")
    if key is None:
        async with uow:
            status, body = await action(uow)
            await uow.commit()
        return JSONResponse(jsonable_encoder(body), status_code=status)
    if not 1 <= len(key) <= 200:
        raise Problem(
            422,
            "validation_failed",
            "Idempotency-Key 长度应为 1–200",
            "Idempotency-Key must be 1-200 chars",
        )
    raw = await request.body()
    digest = hashlib.sha256(
        request.method.encode() + b" " + request.url.path.encode() + b"\n" + raw
    ).hexdigest()
    table = tables.idempotency
    async with uow:
        stored = await _lookup(uow, table, principal.sub, key)
        if stored is not None:
            return _replay(stored, digest)
        try:
            status, body = await action(uow)
            payload = jsonable_encoder(body)
            await uow.session.execute(
                insert(table).values(
                    principal=principal.sub,
                    key=key,
                    request_hash=digest,
                    status_code=status,
                    response_body=json.dumps(payload, ensure_ascii=False),
                    created_at=utcnow(),
                )
            )
            await uow.commit()
        except (IntegrityError, Problem):
            # A concurrent retry with the same key may have committed first (its effect then
            # looks like a conflict to us): answer what it answered.
            await uow.rollback()
            stored = await _lookup(uow, table, principal.sub, key)
            if stored is None:
                raise
            return _replay(stored, digest)
    return JSONResponse(payload, status_code=status)


async def _lookup(uow: UnitOfWork, table: Any, principal: str, key: str) -> Any:
    result = await uow.session.execute(
        select(table.c.request_hash, table.c.status_code, table.c.response_body).where(
            table.c.principal == principal, table.c.key == key
        )
    )
    return result.first()


def _replay(stored: Any, digest: str) -> JSONResponse:
    if stored.request_hash != digest:
        raise Problem(422, "idempotency_key_reused")
    return JSONResponse(
        json.loads(stored.response_body),
        status_code=stored.status_code,
        headers={"Idempotent-Replayed": "true"},
    )
