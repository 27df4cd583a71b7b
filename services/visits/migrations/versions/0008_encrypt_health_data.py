"""encrypt health data: visit records' place, findings and notes; procedures' code and performer

What a worker records is health data (PIPL sensitive personal information). Each plaintext
column is replaced by its ``FieldCipher`` ciphertext (``<column>_enc``, associated data
``visits.<table>.<column>``, see ``ENCRYPTED_COLUMNS`` in models.py). The project is not
deployed yet, but a development database may hold rows: they are encrypted here with the
deployment's data keys (``LINGJU_DATA_KEYS``, read as the services read it) before the plaintext
columns are dropped, and the downgrade decrypts them back.

A refusal's note was also copied into ``tasks.closed_reason`` (in clear); it is cut back to the
bare reason by an UPDATE (a new task version, logged for phones by the 0006 triggers). ``tasks``
and ``person_facts`` are not altered: on SQLite a batch ALTER recreates a table and would drop
those triggers with it. Only ``visit_records`` and ``procedures`` are.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23 04:09:46.613113
"""

import json
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
import sqlmodel
from alembic import op

from shared.config import Settings
from shared.crypto import FieldCipher
from shared.db import UtcDateTime

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (table, plaintext column, ciphertext column, required): the contexts are
# "visits.<table>.<plaintext column>", as in models.py when this revision was written.
_COLUMNS = (
    ("visit_records", "place", "place_enc", True),
    ("visit_records", "consent_note", "consent_note_enc", False),
    ("visit_records", "findings", "findings_enc", True),
    ("visit_records", "next_step_note", "next_step_note_enc", False),
    ("procedures", "procedure", "procedure_enc", True),
    ("procedures", "performer_sub", "performer_sub_enc", True),
)
_PLAIN_TYPES = {
    "place": sqlmodel.sql.sqltypes.AutoString(length=100),
    "consent_note": sqlmodel.sql.sqltypes.AutoString(length=500),
    "findings": sa.JSON(),
    "next_step_note": sqlmodel.sql.sqltypes.AutoString(length=500),
    "procedure": sqlmodel.sql.sqltypes.AutoString(length=64),
    "performer_sub": sqlmodel.sql.sqltypes.AutoString(length=80),
}
_TABLES = ("visit_records", "procedures")
DECLINED = "本人知情选择：拒绝"  # records.DECLINED_REASON when this revision was written


def _columns(table: str) -> list[tuple[str, str, bool]]:
    return [(plain, enc, req) for t, plain, enc, req in _COLUMNS if t == table]


def _cipher() -> FieldCipher:
    settings = Settings()
    return FieldCipher(settings.data_keys, settings.blind_index_key)


def _copy(table: str, *, encrypt: bool) -> None:
    """Row by row (a one-off over a development database's few rows): plaintext -> ciphertext,
    or back."""
    cols = _columns(table)
    t = sa.table(
        table,
        sa.column("id", sa.String()),
        *(sa.column(p, _PLAIN_TYPES[p]) for p, _, _ in cols),
        *(sa.column(e, sa.Text()) for _, e, _ in cols),
    )
    bind = op.get_bind()
    source = [t.c[p if encrypt else e] for p, e, _ in cols]
    rows = bind.execute(sa.select(t.c.id, *source)).all()
    if not rows:
        return
    cipher = _cipher()
    for row in rows:
        values = {}
        for (plain, enc, _), value in zip(cols, row[1:], strict=True):
            context = f"visits.{table}.{plain}"
            if value is None:
                values[enc if encrypt else plain] = None
            elif encrypt:
                text = json.dumps(value, ensure_ascii=False) if plain == "findings" else value
                values[enc] = cipher.encrypt(text, context=context)
            else:
                text = cipher.decrypt(value, context=context)
                values[plain] = json.loads(text) if plain == "findings" else text
        bind.execute(sa.update(t).where(t.c.id == row.id).values(**values))


def _scrub_declined_reasons() -> None:
    tasks = sa.table(
        "tasks",
        sa.column("closed", sa.String()),
        sa.column("closed_reason", sa.String()),
        sa.column("version", sa.Integer()),
        sa.column("updated_at", UtcDateTime()),
    )
    op.get_bind().execute(
        sa.update(tasks)
        .where(tasks.c.closed == "declined", tasks.c.closed_reason.like(f"{DECLINED}（%"))
        .values(
            closed_reason=DECLINED,
            version=tasks.c.version + 1,
            updated_at=datetime.now(UTC),
        )
    )


def upgrade() -> None:
    for table in _TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            for _, enc, _ in _columns(table):
                batch_op.add_column(sa.Column(enc, sa.Text(), nullable=True))
        _copy(table, encrypt=True)
        with op.batch_alter_table(table, schema=None) as batch_op:
            for plain, enc, required in _columns(table):
                if required:
                    batch_op.alter_column(enc, existing_type=sa.Text(), nullable=False)
                batch_op.drop_column(plain)
    _scrub_declined_reasons()


def downgrade() -> None:
    # The refusals' notes cut from tasks.closed_reason stay in the records (decrypted below).
    for table in _TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            for plain, _, _ in _columns(table):
                batch_op.add_column(sa.Column(plain, _PLAIN_TYPES[plain], nullable=True))
        _copy(table, encrypt=False)
        with op.batch_alter_table(table, schema=None) as batch_op:
            for plain, enc, required in _columns(table):
                if required:
                    batch_op.alter_column(plain, existing_type=_PLAIN_TYPES[plain], nullable=False)
                batch_op.drop_column(enc)
