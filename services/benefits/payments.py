"""Payment runs (发放批次), the bank files, the append-only ledger, and payee accounts.

A run pays one program for one period ("YYYY-MM") in one region (a division-code prefix):

    draft --approve (a second officer)--> approved --export--> exported --return file--> reconciled

**Set-based.** The work is SQL over sets, never a Python loop over ORM rows, so a run of a
million enrollments costs a few statements (``bench/payment_run.py`` measures it):

1. the frozen rate table (``run_rates``): for each distinct (region_code, case) of the eligible
   enrollments and each month from the earliest owed one to the run's period, the amount in
   force (``monthly_amount``) is computed in Python (regions x months, a small table) and
   bulk-inserted;
2. one ``INSERT INTO payment_lines ... SELECT`` joins the eligible enrollments to those rates
   for the months they owe (after ``settled_through``, from ``pays_from``, up to the last
   payable month and the run's period), groups by enrollment (first and last month, months,
   sum), subtracts what the ledger already holds for months after ``settled_through`` (a
   line of an earlier month that failed and came back while a later run paid a later month),
   numbers the lines with ROW_NUMBER() and snapshots the payee's account (no account: the line
   is ``held``, not sent, and its months stay owed);
3. claims of a capped program join the run as lines of their approved amount;
4. export writes the ledger ``payment`` rows, marks the lines, advances ``settled_through`` and
   writes ``correction`` rows, each one statement; reconciliation applies the bank's results
   per chunk of lines, with the same statements for reversals and rollbacks.

The lines are the snapshot: approval and export never recompute them. The SQL is portable
(SQLite and PostgreSQL): ``||``, CASE, COALESCE, window ROW_NUMBER(), correlated subqueries.

**Last payable month.** An enrollment pays up to ``pays_until``, and never after ``ends_after``
(its ending: the month of death, say) when that is earlier: a death recorded before the draft
is never paid after its month, whatever wrote which column.

**Ledger.** Append-only (the database refuses UPDATE and DELETE). Export writes ``payment``
rows; a line the bank returns gets a ``reversal`` row (minus the line) and, if corrections had
been written against its months, a positive ``correction`` cancelling them; a line paid for
months after an ending recorded while its run awaited approval gets a negative ``correction``
at export. So an enrollment's net ledger is what was due for its settled months, and the next
run's "due minus held" pays exactly the difference (the tests follow failures, re-queues and
deaths through several runs to the fen).
"""

from __future__ import annotations

import logging
import uuid
import zlib
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import and_, bindparam, func, insert, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from services.benefits.domain import payments as rules
from services.benefits.domain.programs import Period, Program, monthly_amount
from services.benefits.events import PaymentDisbursed, PaymentFailed, programs
from services.benefits.models import (
    LINE_ACCOUNT_NO,
    PAYEE_ACCOUNT_NO,
    ChildLink,
    LedgerEntry,
    PayeeAccount,
    PaymentLine,
    PaymentRun,
    PersonFacts,
    RunRate,
)
from shared.auth import Principal, Role, require_checker
from shared.concurrency import Expected, versioned_update
from shared.crypto import FieldCipher
from shared.db import Database, UtcDateTime, utcnow
from shared.errors import LocalizedValueError, Problem, not_found
from shared.events.outbox import UnitOfWork
from shared.pagination import Page, decode_cursor, encode_cursor

log = logging.getLogger("lingju.benefits.payments")

# FieldCipher associated data of a payee account's number (lines: models.LINE_ACCOUNT_NO).
ACCOUNT_CONTEXT = PAYEE_ACCOUNT_NO.context
OPEN_RUN = ("draft", "approved")
SENT = ("exported", "paid", "failed")  # lines that went to the bank
CHUNK = 2000  # ids per IN (...) list: far under SQLite's and asyncpg's parameter limits
# Year 0000 is no calendar month (Period refuses it): leading digit 1-9.
PERIOD_PATTERN = r"^[1-9]\d{3}-(0[1-9]|1[0-2])$"
REGION_PATTERN = r"^\d{2,12}$"

# -- shapes -------------------------------------------------------------------------------------


class PaymentRunIn(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True, extra="forbid")

    program: str = Field(min_length=1, max_length=40, examples=["rural_reward_assistance"])
    period: str = Field(pattern=PERIOD_PATTERN, examples=["2026-01"])
    region: str = Field(
        pattern=REGION_PATTERN,
        examples=["330102"],
        description="Division-code prefix the run covers (2-12 digits)",
    )


class VersionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int | None = Field(
        default=None, ge=1, description="The version you read (or send If-Match); stale: 409"
    )


RunStatus = Literal["draft", "approved", "exported", "reconciled"]
LineStatus = Literal["pending", "held", "exported", "paid", "failed"]


class PaymentRunOut(BaseModel):
    id: str
    code: str = Field(description="Bank-facing batch reference, e.g. PR-RRA-2026-01-330102")
    program: str
    program_name: str
    period: str
    region: str
    status: RunStatus
    line_count: int = Field(description="Lines in the disbursement file")
    total_fen: int = Field(description="Their sum: the file's control total")
    held_count: int = Field(description="Lines held back: no account on file")
    paid_count: int
    paid_fen: int
    failed_count: int
    failed_fen: int
    prepared_by: str
    approved_by: str | None = None
    approved_at: datetime | None = None
    exported_by: str | None = None
    exported_at: datetime | None = None
    reconciled_at: datetime | None = None
    created_at: datetime
    version: int


class PaymentLineOut(BaseModel):
    id: int
    line_no: int
    reference: str = Field(description="The line's reference in the bank files")
    enrollment_id: str | None
    claim_id: str | None
    person_id: str
    payee_id: str
    region_code: str
    period_from: str
    period_until: str
    months: int
    amount_fen: int
    status: LineStatus
    account_name: str | None
    account_no_masked: str | None = Field(description="Last four digits only")
    failure_reason: str | None


class ReconciliationOut(BaseModel):
    run: PaymentRunOut
    applied_paid: int = Field(description="Lines marked paid by this file")
    applied_failed: int = Field(description="Lines marked failed by this file")
    unchanged: int = Field(description="Lines the file repeats with the result they have")


def _no_control_chars(value: str) -> str:
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise LocalizedValueError("不能包含控制字符", "must not contain control characters")
    return value


class PayeeAccountIn(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True, extra="forbid")

    account_name: str = Field(min_length=1, max_length=60, examples=["张三"])
    bank_name: str = Field(min_length=1, max_length=60, examples=["浙江农商银行"])
    account_no: str = Field(pattern=r"^\d{12,30}$", examples=["6228480012345678901"])
    version: int | None = Field(
        default=None, ge=1, description="Required to replace an account on file (or If-Match)"
    )

    @field_validator("account_name")
    @classmethod
    def _name_is_plain_text(cls, value: str) -> str:
        # The name goes into the bank's CSV, which officers open in spreadsheets: a leading
        # = + - @ would be run as a formula there. No person's name starts with one.
        if value[0] in "=+-@":
            raise LocalizedValueError(
                "户名不能以 = + - @ 开头", "account_name must not start with = + - @"
            )
        return _no_control_chars(value)

    @field_validator("bank_name")
    @classmethod
    def _bank_is_plain_text(cls, value: str) -> str:
        return _no_control_chars(value)


class PayeeAccountOut(BaseModel):
    person_id: str
    account_name: str
    bank_name: str
    account_no_masked: str = Field(description="Last four digits only")
    updated_by: str
    updated_at: datetime
    version: int


class LedgerEntryOut(BaseModel):
    id: int
    kind: Literal["payment", "reversal", "correction"]
    program: str
    program_name: str
    person_id: str = Field(description="The beneficiary")
    payee_id: str = Field(description="Whose account was paid")
    enrollment_id: str | None
    claim_id: str | None
    run_id: str | None
    run_code: str | None
    period_from: str
    period_until: str
    amount_fen: int = Field(description="Signed: reversals and recoveries are negative")
    reason: str
    created_at: datetime


class PaymentsPage(Page[LedgerEntryOut]):
    net_fen: int = Field(description="Sum of every entry of the person, as beneficiary or payee")


# -- helpers ------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _abbreviations() -> dict[str, str]:
    return rules.program_abbreviations(programs())


def _program(code: str) -> Program:
    program = programs().get(code)
    if program is None:
        raise Problem(
            422,
            "validation_failed",
            f"没有代码为 {code} 的待遇项目",
            f"No program {code}",
            errors=[{"field": "program", "message": "待遇项目不存在"}],
        )
    return program


def _program_name(code: str) -> str:
    program = programs().get(code)
    return program.name if program else code


def run_out(run: PaymentRun) -> PaymentRunOut:
    return PaymentRunOut(
        id=run.id,
        code=run.code,
        program=run.program,
        program_name=_program_name(run.program),
        period=run.period,
        region=run.region,
        status=run.status,  # type: ignore[arg-type]
        line_count=run.line_count,
        total_fen=run.total_fen,
        held_count=run.held_count,
        paid_count=run.paid_count,
        paid_fen=run.paid_fen,
        failed_count=run.failed_count,
        failed_fen=run.failed_fen,
        prepared_by=run.prepared_by,
        approved_by=run.approved_by,
        approved_at=run.approved_at,
        exported_by=run.exported_by,
        exported_at=run.exported_at,
        reconciled_at=run.reconciled_at,
        created_at=run.created_at,
        version=run.version,
    )


def _chunks(items: Sequence[Any], size: int = CHUNK) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _in(name: str, values: Sequence[Any]) -> tuple[str, dict[str, Any]]:
    """An IN list of bound parameters for text() statements: ``(:name_0, :name_1, ...)``."""
    keys = [f"{name}_{i}" for i in range(len(values))]
    return "(" + ", ".join(f":{k}" for k in keys) + ")", dict(zip(keys, values, strict=True))


def _now(sql: str) -> Any:
    """text() with a typed ``:now`` (UTC timestamps are stored as the ORM stores them)."""
    return text(sql).bindparams(bindparam("now", type_=UtcDateTime()))


def _months_sql(first: str, last: str) -> str:
    """SQL of ``rules.months_text``: "2014-01" or "2013-12至2014-02"."""
    return f"CASE WHEN {first} = {last} THEN {first} ELSE {first} || '至' || {last} END"


# The last month an enrollment pays: pays_until, and never after its ending (ends_after).
LAST_MONTH = (
    "CASE WHEN e.ends_after IS NOT NULL AND (e.pays_until IS NULL OR e.ends_after < e.pays_until)"
    " THEN e.ends_after ELSE COALESCE(e.pays_until, '9999-12') END"
)
# Confirmed by an officer (maker-checker), and active, or ended with months still unsettled.
ELIGIBLE = (
    "e.program = :program AND e.region_code LIKE :region_like"
    " AND e.confirmed_by IS NOT NULL AND e.status IN ('active', 'ended')"
)


async def _load_run(session: AsyncSession, run_id: str, *, lock: bool = False) -> PaymentRun:
    """The run; with ``lock``, held against other writers until the transaction ends."""
    q = select(PaymentRun).where(PaymentRun.id == run_id)
    if lock:
        if session.bind.dialect.name == "postgresql":
            q = q.with_for_update()
        else:
            await _sqlite_write_lock(session)
    run = (await session.scalars(q)).first()
    if run is None:
        raise not_found("发放批次", "Payment run")
    return run


def _wrong_status(run: PaymentRun, allowed: str) -> Problem:
    return Problem(
        409,
        "invalid_transition",
        f"发放批次 {run.code} 当前状态为 {run.status}，此操作需要 {allowed}",
        f"Run {run.code} is {run.status}; this needs {allowed}",
    )


async def _serialize_runs(session: AsyncSession, program: str) -> None:
    """Make concurrent creations of the same program's runs take turns, so the checks below
    (same run exists? another open run overlaps?) see each other's results."""
    if session.bind.dialect.name == "postgresql":
        key = zlib.crc32(f"payment_runs:{program}".encode())
        await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
    else:
        await _sqlite_write_lock(session)


async def _sqlite_write_lock(session: AsyncSession) -> None:
    """SQLite: a write, even one matching nothing, takes the database's write lock now, before
    the reads that decide what to write (pysqlite otherwise reads outside any transaction, and
    another writer could commit in between)."""
    await session.execute(text("UPDATE payment_runs SET version = version WHERE 1 = 0"))


# -- create: the draft ---------------------------------------------------------------------------


async def create_run(
    uow: UnitOfWork, body: PaymentRunIn, principal: Principal
) -> tuple[int, PaymentRunOut]:
    """A draft run with its lines (201), or the run already made for the same program, period
    and region (200): never a second set of lines."""
    program = _program(body.program)
    period = Period.parse(body.period)
    if period > Period.of(uow.clock.today()):
        raise Problem(
            422,
            "period_in_future",
            f"{period} 尚未到来，不能发放",
            f"{period} has not begun; it cannot be paid",
            errors=[{"field": "period", "message": "不能晚于当前月份"}],
        )
    if not program.pays_in(period):
        raise Problem(
            422,
            "not_pay_month",
            f"{program.name}每年 {program.pay_month} 月发放，不能为 {period} 建立发放批次",
            f"{program.code} is paid yearly in month {program.pay_month}, not for {period}",
            errors=[{"field": "period", "message": f"只能在 {program.pay_month} 月发放"}],
        )
    principal.require_region(body.region)
    s = uow.session
    await _serialize_runs(s, program.code)
    same = PaymentRun.program == program.code, PaymentRun.period == str(period)
    existing = (
        await s.scalars(select(PaymentRun).where(*same, PaymentRun.region == body.region))
    ).first()
    if existing is not None:
        return 200, run_out(existing)
    # Two open runs over the same enrollments would pay them twice before either is exported.
    clash = (
        await s.scalars(
            select(PaymentRun).where(
                PaymentRun.program == program.code,
                PaymentRun.status.in_(OPEN_RUN),  # type: ignore[attr-defined]
                or_(
                    PaymentRun.region.in_(rules.region_prefixes(body.region)),  # type: ignore[attr-defined]
                    PaymentRun.region.startswith(body.region),  # type: ignore[attr-defined]
                ),
            )
        )
    ).first()
    if clash is not None:
        raise Problem(
            409,
            "run_open",
            f"{program.name}已有未导出的发放批次 {clash.code}（{clash.status}），请先审批导出",
            f"Run {clash.code} of {program.code} is still {clash.status}; export it first",
        )
    run = PaymentRun(
        id=str(uuid.uuid4()),
        code=rules.run_code(_abbreviations()[program.code], period, body.region),
        program=program.code,
        period=str(period),
        region=body.region,
        status="draft",
        prepared_by=principal.sub,
    )
    s.add(run)
    await s.flush()
    await draft_lines(s, run, program)
    return 201, run_out(run)


async def draft_lines(session: AsyncSession, run: PaymentRun, program: Program) -> None:
    """Compute the run's lines and totals, set-based (see the module docstring)."""
    params = {
        "run_id": run.id,
        "program": program.code,
        "region_like": run.region + "%",
        "period": run.period,
    }
    await _insert_rates(session, run, program, params)
    await session.execute(text(_LINES_SQL.format(scan=_scan_hint(session))), params)
    if program.cap_fen is not None:
        await _insert_claim_lines(session, params)
    totals = (
        await session.execute(
            text(
                "SELECT COALESCE(SUM(CASE WHEN status = 'pending' THEN 1 ELSE 0 END), 0),"
                " COALESCE(SUM(CASE WHEN status = 'pending' THEN amount_fen ELSE 0 END), 0),"
                " COALESCE(SUM(CASE WHEN status = 'held' THEN 1 ELSE 0 END), 0)"
                " FROM payment_lines WHERE run_id = :run_id"
            ),
            {"run_id": run.id},
        )
    ).one()
    run.line_count, run.total_fen, run.held_count = (int(v) for v in totals)
    await session.flush()


async def _insert_rates(
    session: AsyncSession, run: PaymentRun, program: Program, params: dict[str, Any]
) -> None:
    """The run's frozen rate table: regions x months, each at the amount in force then."""
    groups = await session.execute(
        text(
            'SELECT e.region_code, e."case",'
            " MIN(CASE WHEN e.settled_through IS NULL OR e.settled_through < e.pays_from"
            " THEN e.pays_from END),"
            " MIN(CASE WHEN e.settled_through >= e.pays_from THEN e.settled_through END)"
            f" FROM enrollments e{_scan_hint(session)} WHERE {ELIGIBLE} AND e.pays_from <= :period"
            " AND (e.settled_through IS NULL OR e.settled_through < :period)"
            ' GROUP BY e.region_code, e."case"'
        ),
        params,
    )
    last = Period.parse(run.period)
    rates: list[dict[str, Any]] = []
    for region_code, case, unsettled_from, settled_min in groups:
        starts: list[Period] = []
        try:
            if unsettled_from:
                starts.append(Period.parse(unsettled_from))
            if settled_min:
                starts.append(Period.parse(settled_min).next())
        except ValueError:
            log.error("enrollments of %s in %s have malformed periods", program.code, region_code)
            continue
        for period in rules.periods(min(starts), last) if starts else []:
            fen = monthly_amount(program, region_code, period, case)
            if fen:
                rates.append(
                    {
                        "run_id": run.id,
                        "region_code": region_code,
                        "case": case,
                        "period": str(period),
                        "monthly_fen": fen,
                    }
                )
    for chunk in _chunks(rates, 5000):
        await session.execute(insert(RunRate), list(chunk))


def _scan_hint(session: AsyncSession) -> str:
    """SQLite: read enrollments by a table scan. Without statistics its planner walks
    ix_enrollments_run (program, status) for a run, fetching a million rows in index order one
    by one, several times slower than reading the table; PostgreSQL chooses well by itself."""
    return " NOT INDEXED" if session.bind.dialect.name == "sqlite" else ""


# One statement: the eligible enrollments joined to the run's rates for the months they owe,
# grouped per enrollment (first and last month, months, sum), minus what the ledger already
# holds for those months, numbered, with the payee's account snapshot (none: held).
#
# Shaped for speed on both engines (bench/payment_run.py): the ledger offset is a correlated
# subquery on ix_ledger_enrollment_period rather than a joined aggregate (an index probe per
# enrollment that, in steady state, finds nothing after settled_through, instead of reading
# the program's whole ledger); amount > 0 is a HAVING and the line numbers are a window over
# the grouped rows, so nothing wide (account tokens) is buffered or sorted a second time;
# grouping by the primary key alone lets both engines carry the enrollment's other columns
# (functional dependency) without sorting on them.
_HELD_FEN = """COALESCE((SELECT SUM(l.amount_fen) FROM ledger_entries l
        WHERE l.enrollment_id = e.id AND l.period_from > COALESCE(e.settled_through, '')), 0)"""
_LINES_SQL = f"""
INSERT INTO payment_lines (run_id, line_no, enrollment_id, claim_id, person_id, payee_id,
    program, region_code, period_from, period_until, months, amount_fen, settled_before,
    account_no_enc, account_name, status)
SELECT CAST(:run_id AS VARCHAR(36)), d.line_no, d.enrollment_id, NULL, d.person_id, d.payee_id,
    CAST(:program AS VARCHAR(40)), d.region_code, d.period_from, d.period_until, d.months,
    d.amount_fen, d.settled_through, pa.account_no_enc, pa.account_name,
    CASE WHEN pa.person_id IS NULL THEN 'held' ELSE 'pending' END
FROM (
    SELECT e.id AS enrollment_id, e.person_id, e.payee_id, e.region_code, e.settled_through,
        MIN(r.period) AS period_from, MAX(r.period) AS period_until, COUNT(*) AS months,
        SUM(r.monthly_fen) - {_HELD_FEN} AS amount_fen,
        ROW_NUMBER() OVER (ORDER BY e.id) AS line_no
    FROM enrollments e{{scan}}
    JOIN run_rates r ON r.run_id = :run_id AND r.region_code = e.region_code
        AND r."case" = e."case"
        AND r.period > COALESCE(e.settled_through, '') AND r.period >= e.pays_from
        AND r.period <= {LAST_MONTH} AND r.period <= :period
    WHERE {ELIGIBLE}
    GROUP BY e.id
    HAVING SUM(r.monthly_fen) - {_HELD_FEN} > 0
) d
LEFT JOIN payee_accounts pa ON pa.person_id = d.payee_id
"""


async def _insert_claim_lines(session: AsyncSession, params: dict[str, Any]) -> None:
    """Approved, unpaid claims of a capped program join the run at their approved amount.

    The claims are marked first (run_id), then the lines are read from the marks: a claim
    approved between the two statements is in both or in neither. A claim whose claimant has no
    account is listed as held and left unmarked, so the next run takes it again.
    """
    claims = "program = :program AND status = 'approved' AND region_code LIKE :region_like"
    await session.execute(
        text(
            "UPDATE claims SET run_id = :run_id, version = version + 1"
            f" WHERE {claims} AND run_id IS NULL AND approved_fen > 0"
            " AND EXISTS (SELECT 1 FROM payee_accounts pa WHERE pa.person_id = claims.person_id)"
        ),
        params,
    )
    offset = (
        await session.execute(
            text("SELECT COALESCE(MAX(line_no), 0) FROM payment_lines WHERE run_id = :run_id"),
            params,
        )
    ).scalar_one()
    await session.execute(
        text(
            "INSERT INTO payment_lines (run_id, line_no, enrollment_id, claim_id, person_id,"
            " payee_id, program, region_code, period_from, period_until, months, amount_fen,"
            " settled_before, account_no_enc, account_name, status)"
            " SELECT CAST(:run_id AS VARCHAR(36)),"
            " :offset + ROW_NUMBER() OVER (ORDER BY c.region_code, c.id), NULL, c.id,"
            " c.person_id, c.person_id, CAST(:program AS VARCHAR(40)), c.region_code,"
            " CAST(:period AS VARCHAR(7)), CAST(:period AS VARCHAR(7)), 0,"
            " c.approved_fen, NULL, pa.account_no_enc, pa.account_name,"
            " CASE WHEN pa.person_id IS NULL THEN 'held' ELSE 'pending' END"
            " FROM claims c LEFT JOIN payee_accounts pa ON pa.person_id = c.person_id"
            " WHERE c.run_id = :run_id OR (c.run_id IS NULL AND c.approved_fen > 0"
            " AND c.program = :program AND c.status = 'approved'"
            " AND c.region_code LIKE :region_like AND pa.person_id IS NULL)"
        ),
        {**params, "offset": int(offset)},
    )


# -- approve and export --------------------------------------------------------------------------


async def approve_run(
    uow: UnitOfWork, run_id: str, expected: Expected, principal: Principal
) -> PaymentRunOut:
    """Maker-checker: the officer who prepared the run never approves it."""
    s = uow.session
    run = await _load_run(s, run_id)
    principal.require_region(run.region)
    require_checker(
        principal,
        run.prepared_by,
        "发放批次须由编制人以外的另一名干部审批",
        "A run is approved by an officer other than the one who prepared it",
    )
    if run.status != "draft":
        raise _wrong_status(run, "draft")
    written = await versioned_update(
        s,
        PaymentRun,
        run.id,
        PaymentRun.status == "draft",
        expected=expected,
        status="approved",
        approved_by=principal.sub,
        approved_at=utcnow(),
    )
    if not written:
        raise expected.conflict()
    await s.refresh(run)
    return run_out(run)


async def export_run(
    uow: UnitOfWork, run_id: str, expected: Expected, principal: Principal
) -> PaymentRunOut:
    """Send the approved snapshot: ledger payments, lines exported, months settled."""
    s = uow.session
    run = await _load_run(s, run_id)
    principal.require_region(run.region)
    if run.status != "approved":
        raise _wrong_status(run, "approved")
    now = utcnow()
    nothing_to_send = run.line_count == 0
    written = await versioned_update(
        s,
        PaymentRun,
        run.id,
        PaymentRun.status == "approved",
        expected=expected,
        # A run with no line has nothing to reconcile.
        status="reconciled" if nothing_to_send else "exported",
        exported_by=principal.sub,
        exported_at=now,
        reconciled_at=now if nothing_to_send else None,
    )
    if not written:
        raise expected.conflict()
    p = {"run_id": run.id, "name": _program_name(run.program), "now": now}
    await s.execute(
        text(
            "UPDATE payment_lines SET status = 'exported'"
            " WHERE run_id = :run_id AND status = 'pending'"
        ),
        p,
    )
    await s.execute(_now(_PAYMENT_LEDGER_SQL), p)
    # Advance only where nothing moved since the draft: if a failed line of an earlier run
    # rolled settled_through back meanwhile, those months are owed again and this line's months
    # stay inside the next run's window, where the ledger offset counts them as paid.
    await s.execute(
        text(
            "UPDATE enrollments SET settled_through = (SELECT pl.period_until FROM payment_lines pl"
            " WHERE pl.run_id = :run_id AND pl.enrollment_id = enrollments.id"
            " AND pl.status = 'exported')"
            " WHERE id IN (SELECT pl.enrollment_id FROM payment_lines pl WHERE pl.run_id = :run_id"
            " AND pl.status = 'exported' AND pl.enrollment_id IS NOT NULL"
            " AND COALESCE(pl.settled_before, '') = COALESCE(enrollments.settled_through, ''))"
        ),
        p,
    )
    await s.execute(_now(_CORRECTION_SQL), p)
    await s.refresh(run)
    return run_out(run)


_PAYMENT_LEDGER_SQL = f"""
INSERT INTO ledger_entries (person_id, payee_id, program, enrollment_id, claim_id, run_id,
    line_id, kind, period_from, period_until, amount_fen, reason, created_at)
SELECT pl.person_id, pl.payee_id, pl.program, pl.enrollment_id, pl.claim_id, pl.run_id, pl.id,
    'payment', pl.period_from, pl.period_until, pl.amount_fen,
    SUBSTR(CASE WHEN pl.claim_id IS NULL
        THEN CAST(:name AS VARCHAR(100)) || '：'
            || {_months_sql("pl.period_from", "pl.period_until")}
            || '，共' || CAST(pl.months AS VARCHAR(10)) || '个月'
        ELSE CAST(:name AS VARCHAR(100)) || '：报销申请 ' || COALESCE(c.claim_no, pl.claim_id)
    END, 1, 300),
    :now
FROM payment_lines pl LEFT JOIN claims c ON c.id = pl.claim_id
WHERE pl.run_id = :run_id AND pl.status = 'exported'
"""

# A line sent as approved for months after its enrollment's last payable month (an ending
# recorded while the run awaited approval): minus this run's own rates for those months.
_CORRECTION_SQL = f"""
INSERT INTO ledger_entries (person_id, payee_id, program, enrollment_id, claim_id, run_id,
    line_id, kind, period_from, period_until, amount_fen, reason, created_at)
SELECT pl.person_id, pl.payee_id, pl.program, pl.enrollment_id, NULL, pl.run_id, pl.id,
    'correction', MIN(r.period), MAX(r.period), -SUM(r.monthly_fen),
    SUBSTR(CAST(:name AS VARCHAR(100)) || '：' || {_months_sql("MIN(r.period)", "MAX(r.period)")}
        || ' 停发后随批次发出，待追回', 1, 300),
    :now
FROM payment_lines pl
JOIN enrollments e ON e.id = pl.enrollment_id
JOIN run_rates r ON r.run_id = pl.run_id AND r.region_code = pl.region_code
    AND r."case" = e."case" AND r.period >= pl.period_from AND r.period <= pl.period_until
    AND r.period > COALESCE(pl.settled_before, '') AND r.period >= e.pays_from
    AND r.period > {LAST_MONTH}
WHERE pl.run_id = :run_id AND pl.status = 'exported'
GROUP BY pl.id, pl.person_id, pl.payee_id, pl.program, pl.enrollment_id, pl.run_id
"""


# -- the disbursement file ------------------------------------------------------------------------


def line_account_no(cipher: FieldCipher, token: str) -> str:
    """A line's account number: under the line's own context, or (until the key rotation
    rewrites it) the payee account's it was copied from, or the legacy one."""
    return cipher.decrypt_any(token, contexts=LINE_ACCOUNT_NO.contexts)[0]


async def disbursement_run(session: AsyncSession, run_id: str, principal: Principal) -> PaymentRun:
    run = await _load_run(session, run_id)
    principal.require_region(run.region)
    if run.status not in ("exported", "reconciled"):
        raise _wrong_status(run, "exported")
    return run


async def disbursement_file(
    db: Database, cipher: FieldCipher, run: PaymentRun, batch: int = 5000
) -> AsyncIterator[str]:
    """The bank CSV as text chunks, lines read in batches by line number, each in its own short
    session (a run's sent lines never change after export; format: domain/payments.py)."""
    yield rules.disbursement_header()
    after = 0
    while True:
        async with db.session() as s:
            rows = (
                await s.execute(
                    select(
                        PaymentLine.line_no,
                        PaymentLine.account_no_enc,
                        PaymentLine.account_name,
                        PaymentLine.amount_fen,
                    )
                    .where(
                        PaymentLine.run_id == run.id,
                        PaymentLine.status.in_(SENT),  # type: ignore[attr-defined]
                        PaymentLine.line_no > after,
                    )
                    .order_by(PaymentLine.line_no)
                    .limit(batch)
                )
            ).all()
        if not rows:
            break
        after = rows[-1].line_no
        yield rules.disbursement_lines(
            rules.DisbursementRow(
                reference=rules.line_reference(run.code, r.line_no),
                account_no=line_account_no(cipher, r.account_no_enc or ""),
                account_name=r.account_name or "",
                amount_fen=r.amount_fen,
            )
            for r in rows
        )
    yield rules.control_row(run.line_count, run.total_fen)


# -- reconciliation -------------------------------------------------------------------------------


@dataclass
class _Sent:
    id: int
    status: str


async def reconcile(
    uow: UnitOfWork, run_id: str, body: str, principal: Principal
) -> ReconciliationOut:
    """Apply the bank's return file: all of it, or nothing (unknown references: 422, a result
    contradicting one already recorded: 409)."""
    try:
        rows = rules.parse_return_file(body)
    except rules.ReturnFileError as e:
        raise Problem(
            422,
            "return_file_invalid",
            "回盘文件格式有误：" + "；".join(f"第 {p.line} 行 {p.zh}" for p in e.problems[:50]),
            "Malformed return file: "
            + "; ".join(f"line {p.line}: {p.en}" for p in e.problems[:50]),
            errors=[{"field": f"line {p.line}", "message": p.zh} for p in e.problems[:200]],
        ) from e
    s = uow.session
    run = await _load_run(s, run_id, lock=True)  # one reconciliation of a run at a time
    principal.require_region(run.region)
    if run.status not in ("exported", "reconciled"):
        raise _wrong_status(run, "exported")

    wanted: dict[int, rules.ReturnRow] = {}
    unknown: list[str] = []
    for row in rows:
        line_no = rules.parse_line_reference(row.reference, run.code)
        if line_no is None:
            unknown.append(row.reference)
        else:
            wanted[line_no] = row
    sent: dict[int, _Sent] = {}
    numbers = sorted(wanted)
    for chunk in _chunks(numbers):
        found = await s.execute(
            select(PaymentLine.line_no, PaymentLine.id, PaymentLine.status).where(
                PaymentLine.run_id == run.id,
                PaymentLine.line_no.in_(chunk),  # type: ignore[attr-defined]
                PaymentLine.status.in_(SENT),  # type: ignore[attr-defined]
            )
        )
        sent.update({r.line_no: _Sent(r.id, r.status) for r in found})
    unknown += [wanted[n].reference for n in numbers if n not in sent]
    if unknown:
        shown = ", ".join(unknown[:50]) + (
            f" …（共 {len(unknown)} 个）" if len(unknown) > 50 else ""
        )
        raise Problem(
            422,
            "unknown_references",
            f"回盘文件中有本批次未发出的编号：{shown}，未做任何处理",
            f"References not sent in run {run.code}: {shown}; nothing applied",
            errors=[{"field": "reference", "message": r} for r in unknown[:200]],
        )
    conflicts = [
        f"{wanted[n].reference}（已为 {sent[n].status}）"
        for n in numbers
        if sent[n].status != "exported" and sent[n].status != wanted[n].result
    ]
    if conflicts:
        raise Problem(
            409,
            "reconciliation_conflict",
            "回盘结果与已登记的结果矛盾：" + "，".join(conflicts[:50]) + "，未做任何处理",
            "Results contradict those recorded: " + ", ".join(conflicts[:50]),
        )
    to_pay = [
        sent[n].id for n in numbers if sent[n].status == "exported" and wanted[n].result == "paid"
    ]
    to_fail = [
        (sent[n].id, wanted[n].reason or rules.NO_REASON)
        for n in numbers
        if sent[n].status == "exported" and wanted[n].result == "failed"
    ]
    unchanged = len(numbers) - len(to_pay) - len(to_fail)
    if to_pay or to_fail:
        now = utcnow()
        name = _program_name(run.program)
        for chunk in _chunks(to_pay):
            await _apply_paid(uow, run, list(chunk))
        for chunk in _chunks(to_fail):
            await _apply_failed(uow, run, list(chunk), name, now)
        await _close_if_done(s, run, now)
        await s.refresh(run)
    return ReconciliationOut(
        run=run_out(run), applied_paid=len(to_pay), applied_failed=len(to_fail), unchanged=unchanged
    )


async def _lines(session: AsyncSession, ids: Sequence[int]) -> list[PaymentLine]:
    return list(
        (await session.scalars(select(PaymentLine).where(PaymentLine.id.in_(ids)))).all()  # type: ignore[union-attr]
    )


def _exactly(result: Any, expected: int, what: str) -> None:
    # The run row is locked, so nobody else moved these lines: a difference is a bug.
    if result.rowcount != expected:
        raise RuntimeError(f"{what}: {result.rowcount} rows changed, expected {expected}")


async def _apply_paid(uow: UnitOfWork, run: PaymentRun, ids: list[int]) -> None:
    s = uow.session
    in_ids, p = _in("id", ids)
    _exactly(
        await s.execute(
            text(
                "UPDATE payment_lines SET status = 'paid'"
                f" WHERE id IN {in_ids} AND status = 'exported'"
            ),
            p,
        ),
        len(ids),
        "paid lines",
    )
    # A claim the bank paid is settled (submitted -> approved -> paid).
    await s.execute(
        text(
            "UPDATE claims SET status = 'paid', version = version + 1 WHERE status = 'approved'"
            f" AND id IN (SELECT claim_id FROM payment_lines WHERE id IN {in_ids})"
        ),
        p,
    )
    for line in await _lines(s, ids):
        uow.publish(
            PaymentDisbursed(
                line_id=line.id or 0,
                run_id=run.id,
                run_code=run.code,
                program=run.program,
                program_name=_program_name(run.program),
                person_id=line.person_id,
                payee_id=line.payee_id,
                enrollment_id=line.enrollment_id,
                claim_id=line.claim_id,
                period_from=line.period_from,
                period_until=line.period_until,
                amount_fen=line.amount_fen,
                region_code=line.region_code,
            ),
            subject=rules.line_reference(run.code, line.line_no),
        )


async def _apply_failed(
    uow: UnitOfWork, run: PaymentRun, failed: list[tuple[int, str]], name: str, now: datetime
) -> None:
    s = uow.session
    ids = [i for i, _ in failed]
    result = await s.execute(
        text(
            "UPDATE payment_lines SET status = 'failed', failure_reason = :reason"
            " WHERE id = :id AND status = 'exported'"
        ),
        [{"id": i, "reason": reason} for i, reason in failed],
    )
    if result.rowcount not in (-1, len(ids)):  # some drivers report no executemany count
        raise RuntimeError(f"failed lines: {result.rowcount} rows changed, expected {len(ids)}")
    in_ids, p = _in("id", ids)
    p = {**p, "name": name, "now": now}
    # The money came back: minus the line, and the corrections written against its months no
    # longer stand (nothing of it reached the payee).
    await s.execute(
        _now(
            "INSERT INTO ledger_entries (person_id, payee_id, program, enrollment_id, claim_id,"
            " run_id, line_id, kind, period_from, period_until, amount_fen, reason, created_at)"
            " SELECT pl.person_id, pl.payee_id, pl.program, pl.enrollment_id, pl.claim_id,"
            " pl.run_id, pl.id, 'reversal', pl.period_from, pl.period_until, -pl.amount_fen,"
            " SUBSTR(CAST(:name AS VARCHAR(100)) || '：'"
            f" || {_months_sql('pl.period_from', 'pl.period_until')}"
            " || ' 银行退回（' || COALESCE(pl.failure_reason, '') || '），下次发放补发', 1, 300),"
            f" :now FROM payment_lines pl WHERE pl.id IN {in_ids}"
        ),
        p,
    )
    await s.execute(
        _now(
            "INSERT INTO ledger_entries (person_id, payee_id, program, enrollment_id, claim_id,"
            " run_id, line_id, kind, period_from, period_until, amount_fen, reason, created_at)"
            " SELECT pl.person_id, pl.payee_id, pl.program, pl.enrollment_id, NULL, pl.run_id,"
            " pl.id, 'correction', pl.period_from, pl.period_until, -SUM(c.amount_fen),"
            " SUBSTR(CAST(:name AS VARCHAR(100)) || '：'"
            f" || {_months_sql('pl.period_from', 'pl.period_until')}"
            " || ' 银行退回，撤销待追回', 1, 300), :now"
            " FROM payment_lines pl JOIN ledger_entries c ON c.enrollment_id = pl.enrollment_id"
            " AND c.kind = 'correction' AND c.amount_fen < 0"
            " AND c.period_from >= pl.period_from AND c.period_until <= pl.period_until"
            f" WHERE pl.id IN {in_ids}"
            " GROUP BY pl.id, pl.person_id, pl.payee_id, pl.program, pl.enrollment_id,"
            " pl.run_id, pl.period_from, pl.period_until"
        ),
        p,
    )
    # The months are owed again: settled_through goes back to before the line ...
    await s.execute(
        text(
            "UPDATE enrollments SET settled_through = (SELECT pl.settled_before"
            f" FROM payment_lines pl WHERE pl.id IN {in_ids}"
            " AND pl.enrollment_id = enrollments.id)"
            f" WHERE id IN (SELECT pl.enrollment_id FROM payment_lines pl WHERE pl.id IN {in_ids}"
            " AND pl.enrollment_id IS NOT NULL"
            " AND COALESCE(enrollments.settled_through, '') >= pl.period_from)"
        ),
        p,
    )
    # ... and further back before any line still standing that spans the new settled_through
    # (one paid by a later run, starting earlier because an even earlier line had failed), so
    # the next run's ledger offset sees that line whole and nothing is paid twice.
    spanning = (
        "FROM payment_lines o WHERE o.enrollment_id = enrollments.id"
        " AND o.status IN ('exported', 'paid')"
        " AND COALESCE(o.settled_before, '') < COALESCE(enrollments.settled_through, '')"
        " AND o.period_until > COALESCE(enrollments.settled_through, '')"
    )
    await s.execute(
        text(
            f"UPDATE enrollments SET settled_through = (SELECT NULLIF(MIN(COALESCE("
            f"o.settled_before, '')), '') {spanning})"
            f" WHERE id IN (SELECT pl.enrollment_id FROM payment_lines pl WHERE pl.id IN {in_ids})"
            f" AND EXISTS (SELECT 1 {spanning})"
        ),
        p,
    )
    # A returned claim is paid by the program's next run.
    await s.execute(
        text(
            "UPDATE claims SET run_id = NULL, version = version + 1 WHERE run_id = :run_id"
            f" AND id IN (SELECT claim_id FROM payment_lines WHERE id IN {in_ids})"
        ),
        {**p, "run_id": run.id},
    )
    for line in await _lines(s, ids):
        uow.publish(
            PaymentFailed(
                line_id=line.id or 0,
                run_id=run.id,
                run_code=run.code,
                program=run.program,
                program_name=name,
                person_id=line.person_id,
                payee_id=line.payee_id,
                period_from=line.period_from,
                period_until=line.period_until,
                amount_fen=line.amount_fen,
                reason=line.failure_reason or rules.NO_REASON,
                region_code=line.region_code,
            ),
            subject=rules.line_reference(run.code, line.line_no),
        )


async def _close_if_done(session: AsyncSession, run: PaymentRun, now: datetime) -> None:
    counts = (
        await session.execute(
            text(
                "SELECT COALESCE(SUM(CASE WHEN status = 'paid' THEN 1 ELSE 0 END), 0),"
                " COALESCE(SUM(CASE WHEN status = 'paid' THEN amount_fen ELSE 0 END), 0),"
                " COALESCE(SUM(CASE WHEN status = 'failed' THEN 1 ELSE 0 END), 0),"
                " COALESCE(SUM(CASE WHEN status = 'failed' THEN amount_fen ELSE 0 END), 0),"
                " COALESCE(SUM(CASE WHEN status = 'exported' THEN 1 ELSE 0 END), 0)"
                " FROM payment_lines WHERE run_id = :run_id"
            ),
            {"run_id": run.id},
        )
    ).one()
    paid_count, paid_fen, failed_count, failed_fen, waiting = (int(v) for v in counts)
    values: dict[str, Any] = {
        "paid_count": paid_count,
        "paid_fen": paid_fen,
        "failed_count": failed_count,
        "failed_fen": failed_fen,
    }
    if waiting == 0 and run.status == "exported":
        values.update(status="reconciled", reconciled_at=now)
    await versioned_update(session, PaymentRun, run.id, **values)


# -- reading runs ---------------------------------------------------------------------------------


def _reader_scope(principal: Principal) -> Any:
    """Runs inside the caller's region (a national admin's token names none: every run)."""
    scope = principal.region_scope()
    return PaymentRun.region.startswith(scope) if scope else True  # type: ignore[attr-defined]


async def list_runs(
    session: AsyncSession,
    principal: Principal,
    *,
    program: str | None,
    period: str | None,
    status: str | None,
    limit: int,
    cursor: str | None,
) -> Page[PaymentRunOut]:
    """Newest period first, then by code."""
    q = select(PaymentRun).where(_reader_scope(principal))
    if program is not None:
        q = q.where(PaymentRun.program == program)
    if period is not None:
        q = q.where(PaymentRun.period == period)
    if status is not None:
        q = q.where(PaymentRun.status == status)
    after = decode_cursor(cursor, 2)
    if after:
        q = q.where(
            or_(
                PaymentRun.period < after[0],
                and_(PaymentRun.period == after[0], PaymentRun.code > after[1]),
            )
        )
    q = q.order_by(PaymentRun.period.desc(), PaymentRun.code).limit(limit + 1)  # type: ignore[attr-defined]
    rows = list((await session.scalars(q)).all())
    items = [run_out(r) for r in rows[:limit]]
    last = items[-1] if len(rows) > limit else None
    return Page[PaymentRunOut](
        items=items, next_cursor=encode_cursor(last.period, last.code) if last else None
    )


async def get_run(session: AsyncSession, run_id: str, principal: Principal) -> PaymentRunOut:
    run = await _load_run(session, run_id)
    principal.require_region(run.region)
    return run_out(run)


async def list_lines(
    session: AsyncSession,
    cipher: FieldCipher,
    run_id: str,
    principal: Principal,
    *,
    status: str | None,
    limit: int,
    cursor: str | None,
) -> Page[PaymentLineOut]:
    run = await _load_run(session, run_id)
    principal.require_region(run.region)
    q = select(PaymentLine).where(PaymentLine.run_id == run.id)
    if status is not None:
        q = q.where(PaymentLine.status == status)
    after = decode_cursor(cursor, 1)
    if after:
        if not after[0].isdigit():
            raise Problem(422, "validation_failed", "分页游标无效", "Invalid cursor")
        q = q.where(PaymentLine.line_no > int(after[0]))
    rows = list((await session.scalars(q.order_by(PaymentLine.line_no).limit(limit + 1))).all())
    items = [
        PaymentLineOut(
            id=r.id or 0,
            line_no=r.line_no,
            reference=rules.line_reference(run.code, r.line_no),
            enrollment_id=r.enrollment_id,
            claim_id=r.claim_id,
            person_id=r.person_id,
            payee_id=r.payee_id,
            region_code=r.region_code,
            period_from=r.period_from,
            period_until=r.period_until,
            months=r.months,
            amount_fen=r.amount_fen,
            status=r.status,  # type: ignore[arg-type]
            account_name=r.account_name,
            account_no_masked=rules.mask_account_no(line_account_no(cipher, r.account_no_enc))
            if r.account_no_enc
            else None,
            failure_reason=r.failure_reason,
        )
        for r in rows[:limit]
    ]
    last = items[-1] if len(rows) > limit else None
    return Page[PaymentLineOut](
        items=items, next_cursor=encode_cursor(last.line_no) if last else None
    )


# -- persons: payee accounts and payments ---------------------------------------------------------


async def require_person_access(
    session: AsyncSession, principal: Principal, person_id: str
) -> None:
    """A resident for themself or their child; staff for a person of their region."""
    if principal.role is Role.resident:
        if principal.person_id is None:
            raise Problem(403, "forbidden", "令牌未指明居民身份", "The token names no person")
        if person_id == principal.person_id:
            return
        link = await session.get(ChildLink, (principal.person_id, person_id))
        if link is None:
            raise Problem(
                403,
                "forbidden",
                "居民只能查看和填写本人及子女的信息",
                "Residents act only for themselves and their children",
            )
        return
    facts = await session.get(PersonFacts, person_id)
    if facts is None:
        raise Problem(404, "unknown_person", "居民不存在", "Person not found")
    principal.require_region(facts.region_code)


def account_out(account: PayeeAccount) -> PayeeAccountOut:
    return PayeeAccountOut(
        person_id=account.person_id,
        account_name=account.account_name,
        bank_name=account.bank_name,
        account_no_masked=account.account_no_masked,
        updated_by=account.updated_by,
        updated_at=account.updated_at,
        version=account.version,
    )


async def get_payee_account(
    session: AsyncSession, person_id: str, principal: Principal
) -> PayeeAccountOut:
    await require_person_access(session, principal, person_id)
    account = await session.get(PayeeAccount, person_id)
    if account is None:
        raise not_found("代发账户", "Payee account")
    return account_out(account)


async def put_payee_account(
    uow: UnitOfWork,
    cipher: FieldCipher,
    person_id: str,
    body: PayeeAccountIn,
    expected: Expected | None,
    principal: Principal,
) -> tuple[int, PayeeAccountOut]:
    """Create the account (201), or replace it naming the version read (200; stale: 409/412).

    Lines already drafted keep the account they snapshot; the next run uses this one.
    """
    s = uow.session
    await require_person_access(s, principal, person_id)
    values = {
        "account_name": body.account_name,
        "bank_name": body.bank_name,
        "account_no_enc": cipher.encrypt(body.account_no, context=ACCOUNT_CONTEXT),
        "account_no_masked": rules.mask_account_no(body.account_no),
        "updated_by": principal.sub,
        "updated_at": utcnow(),
    }
    account = await s.get(PayeeAccount, person_id)
    if account is None:
        if expected is not None:
            raise expected.conflict()  # the caller read an account that is no longer there
        account = PayeeAccount(person_id=person_id, **values)
        s.add(account)
        await s.flush()
        return 201, account_out(account)
    if expected is None:
        raise Problem(
            428,
            "version_required",
            "该居民已有代发账户，修改时请提供所读取的版本（If-Match 或 version）",
            "An account is on file: send the version you read (If-Match or version)",
        )
    result = await s.execute(
        PayeeAccount.__table__.update()  # type: ignore[attr-defined]
        .where(
            PayeeAccount.person_id == person_id,
            PayeeAccount.version == expected.version,
        )
        .values(version=PayeeAccount.version + 1, **values)
    )
    if result.rowcount != 1:
        raise expected.conflict()
    await s.refresh(account)
    return 200, account_out(account)


async def person_payments(
    session: AsyncSession,
    person_id: str,
    principal: Principal,
    *,
    limit: int,
    cursor: str | None,
) -> PaymentsPage:
    """Every ledger entry of the person as beneficiary or payee, newest first, and the net."""
    await require_person_access(session, principal, person_id)
    mine = or_(LedgerEntry.person_id == person_id, LedgerEntry.payee_id == person_id)
    q = (
        select(LedgerEntry, PaymentRun.code)
        .outerjoin(PaymentRun, PaymentRun.id == LedgerEntry.run_id)
        .where(mine)
    )
    after = decode_cursor(cursor, 1)
    if after:
        if not after[0].isdigit():
            raise Problem(422, "validation_failed", "分页游标无效", "Invalid cursor")
        q = q.where(LedgerEntry.id < int(after[0]))  # type: ignore[operator]
    rows = (await session.execute(q.order_by(LedgerEntry.id.desc()).limit(limit + 1))).all()  # type: ignore[union-attr]
    net = (
        await session.execute(
            select(func.coalesce(func.sum(LedgerEntry.amount_fen), 0)).where(mine)
        )
    ).scalar_one()
    items = [
        LedgerEntryOut(
            id=e.id or 0,
            kind=e.kind,  # type: ignore[arg-type]
            program=e.program,
            program_name=_program_name(e.program),
            person_id=e.person_id,
            payee_id=e.payee_id,
            enrollment_id=e.enrollment_id,
            claim_id=e.claim_id,
            run_id=e.run_id,
            run_code=code,
            period_from=e.period_from,
            period_until=e.period_until,
            amount_fen=e.amount_fen,
            reason=e.reason,
            created_at=e.created_at,
        )
        for e, code in rows[:limit]
    ]
    last = items[-1] if len(rows) > limit else None
    return PaymentsPage(
        items=items, next_cursor=encode_cursor(last.id) if last else None, net_fen=int(net)
    )
