"""Data key rotation: rewrite every declared encrypted column's values with the active key.

Each service declares its encrypted columns (``ENCRYPTED_COLUMNS`` in ``services/<svc>/
models.py``). A value is rewritten when it is not under the active key id (the first of
LINGJU_DATA_KEYS) or is under one of its column's previous contexts: decrypted, encrypted with
the active key and the column's context, written back.

Safe to stop, start again, and run beside the live service: rows are read in batches by
primary key (keyset), each batch in its own short transaction, and a row is written only if it
still holds the value read (compare-and-set), so an account a user changed meanwhile is left as
the user wrote it. A value no configured key opens is counted as failed and reported by row id,
never by value.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import and_, column, func, select, table, update

from shared.crypto import DecryptError, EncryptedColumn, FieldCipher
from shared.db import Database

# Enough to find the rows again, without growing without bound on a badly broken column.
MAX_FAILED_IDS = 1000


@dataclass
class ColumnReport:
    """What one run did to one column."""

    column: EncryptedColumn
    rewritten: int = 0
    current: int = 0  # already under the active key and the column's context
    changed: int = 0  # written by the service between our read and our write: left alone
    failed: int = 0
    failed_ids: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.column.table}.{self.column.column}"


class Progress(Protocol):
    """Told how many rows of a column are to be examined, then of each batch done."""

    def start(self, column: EncryptedColumn, total: int) -> None: ...

    def advance(self, rows: int) -> None: ...


def declared_columns(service: str) -> tuple[EncryptedColumn, ...]:
    """A service's ``ENCRYPTED_COLUMNS`` (none if its models declare no such attribute)."""
    models = importlib.import_module(f"services.{service}.models")
    return tuple(getattr(models, "ENCRYPTED_COLUMNS", ()))


def _candidates(col: EncryptedColumn, cipher: FieldCipher, value: Any) -> Any:
    """The rows that may need rewriting: every value when the column has previous contexts
    (only decrypting tells which context a value is under), else those under another key."""
    present = value.is_not(None)
    if col.previous_contexts:
        return present
    prefix = f"{cipher.active_kid}."
    return and_(present, func.substr(value, 1, len(prefix)) != prefix)


async def reencrypt_column(
    db: Database,
    cipher: FieldCipher,
    col: EncryptedColumn,
    *,
    batch_size: int = 500,
    progress: Progress | None = None,
) -> ColumnReport:
    report = ColumnReport(col)
    t = table(col.table, column(col.key), column(col.column))
    key, value = t.c[col.key], t.c[col.column]
    todo = _candidates(col, cipher, value)
    async with db.session() as s:
        present = await s.scalar(select(func.count()).select_from(t).where(value.is_not(None)))
        total = int(await s.scalar(select(func.count()).select_from(t).where(todo)) or 0)
    # Rows the candidate filter leaves out are under the active key already.
    report.current = int(present or 0) - total
    if progress is not None:
        progress.start(col, total)
    after: Any = None
    while True:
        async with db.session() as s, s.begin():
            q = select(key, value).where(todo)
            if after is not None:
                q = q.where(key > after)
            rows = (await s.execute(q.order_by(key).limit(batch_size))).all()
            for row_id, token in rows:
                await _rewrite(s, cipher, col, report, t, row_id, token)
        if not rows:
            break
        after = rows[-1][0]
        if progress is not None:
            progress.advance(len(rows))
    return report


async def _rewrite(
    s: Any,
    cipher: FieldCipher,
    col: EncryptedColumn,
    report: ColumnReport,
    t: Any,
    row_id: Any,
    token: str,
) -> None:
    try:
        plaintext, context = cipher.decrypt_any(token, contexts=col.contexts)
    except DecryptError:
        report.failed += 1
        if len(report.failed_ids) < MAX_FAILED_IDS:
            report.failed_ids.append(str(row_id))
        return
    if cipher.key_id(token) == cipher.active_kid and context == col.context:
        report.current += 1
        return
    fresh = cipher.encrypt(plaintext, context=col.context)
    key, value = t.c[col.key], t.c[col.column]
    written = await s.execute(
        update(t).where(key == row_id, value == token).values({col.column: fresh})
    )
    if written.rowcount == 1:
        report.rewritten += 1
    else:
        report.changed += 1


async def reencrypt(
    db: Database,
    cipher: FieldCipher,
    columns: Sequence[EncryptedColumn],
    *,
    batch_size: int = 500,
    progress: Progress | None = None,
) -> list[ColumnReport]:
    """Rewrite ``columns`` (one service's, all in ``db``) with the active key, column by
    column. Running it again after it finished rewrites nothing."""
    return [
        await reencrypt_column(db, cipher, col, batch_size=batch_size, progress=progress)
        for col in columns
    ]
