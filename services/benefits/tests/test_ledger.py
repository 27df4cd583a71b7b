"""The ledger is append-only in the database itself, on SQLite and PostgreSQL: UPDATE and
DELETE are refused by triggers (migration 0005), whoever sends them; a correction is a row."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import delete, select, text, update
from sqlalchemy.exc import DBAPIError

from services.benefits.models import LedgerEntry
from tests.support import InProcessStack


async def _entry(stack: InProcessStack) -> int:
    async with stack.rt("benefits").db.session() as s:
        entry = LedgerEntry(
            person_id="p-1",
            payee_id="p-1",
            program="rural_reward_assistance",
            enrollment_id="e-1",
            kind="payment",
            period_from="2026-01",
            period_until="2026-01",
            amount_fen=12000,
            reason="农村部分计划生育家庭奖励扶助：2026-01，共1个月",
        )
        s.add(entry)
        await s.commit()
        assert entry.id is not None
        return entry.id


@pytest.mark.parametrize(
    "statement",
    [
        lambda i: update(LedgerEntry).where(LedgerEntry.id == i).values(amount_fen=1),
        lambda i: update(LedgerEntry).values(reason="改"),
        lambda i: delete(LedgerEntry).where(LedgerEntry.id == i),
        lambda i: delete(LedgerEntry),
        lambda i: text(f"UPDATE ledger_entries SET kind = 'reversal' WHERE id = {i}"),
        lambda i: text("DELETE FROM ledger_entries"),
    ],
    ids=["update-row", "update-all", "delete-row", "delete-all", "raw-update", "raw-delete"],
)
async def test_the_ledger_refuses_update_and_delete(
    stack: InProcessStack, statement: Callable[[int], Any]
) -> None:
    entry_id = await _entry(stack)
    async with stack.rt("benefits").db.session() as s:
        with pytest.raises(DBAPIError, match="append-only"):
            await s.execute(statement(entry_id))
            await s.commit()
    async with stack.rt("benefits").db.session() as s:
        stored = (await s.scalars(select(LedgerEntry))).all()
    assert [(e.id, e.kind, e.amount_fen) for e in stored] == [(entry_id, "payment", 12000)]


async def test_a_correction_is_a_new_row(stack: InProcessStack) -> None:
    entry_id = await _entry(stack)
    async with stack.rt("benefits").db.session() as s:
        s.add(
            LedgerEntry(
                person_id="p-1",
                payee_id="p-1",
                program="rural_reward_assistance",
                enrollment_id="e-1",
                kind="correction",
                period_from="2026-01",
                period_until="2026-01",
                amount_fen=-12000,
                reason="更正",
            )
        )
        await s.commit()
        rows = (await s.scalars(select(LedgerEntry).order_by(LedgerEntry.id))).all()
    assert [(e.id, e.amount_fen) for e in rows] == [(entry_id, 12000), (entry_id + 1, -12000)]
    assert sum(e.amount_fen for e in rows) == 0
