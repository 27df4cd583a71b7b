"""Claims of capped reimbursement programs (报销申请): submit, approve under the couple's cap,
reject, read.

The cap is per couple and program (``ClaimCap``): both spouses' claims count against one sum.
It holds under concurrent approvals on SQLite and PostgreSQL because the only write that moves
money under it is one conditional UPDATE (``used_fen + x <= cap_fen``): the database, not this
process, decides which of two racing approvals fits.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.benefits.domain.claims import approvable, remaining
from services.benefits.domain.eligibility import Eligibility, evaluate
from services.benefits.domain.programs import Period, Program
from services.benefits.events import ClaimDecided, programs
from services.benefits.facts import load_facts
from services.benefits.models import Claim, ClaimCap, FamilyFacts, PersonFacts
from shared import money
from shared.auth import Principal, Role, require_checker
from shared.concurrency import Expected, versioned_update
from shared.db import dialect_insert, utcnow
from shared.errors import Problem, not_found
from shared.events.outbox import UnitOfWork
from shared.pagination import Page, after_time_cursor, encode_cursor

ClaimStatus = Literal["submitted", "approved", "rejected", "paid"]
SUBMITTED: ClaimStatus = "submitted"
APPROVED: ClaimStatus = "approved"
REJECTED: ClaimStatus = "rejected"

# Each failed attempt means another approval of the same couple committed in between; more
# than a handful in a row is not a real workload, so the caller is told to retry instead.
CAP_ATTEMPTS = 8

# Money in: integer fen only. strict: a JSON 800000.0 or "800000" is refused, never coerced.
Fen = Annotated[int, Field(strict=True, gt=0, le=10**12, examples=[3000000])]


def yuan(fen: int) -> str:
    """Amounts in messages an officer reads out: "50,000.00"."""
    return money.yuan(fen, grouped=True)


# -- shapes -------------------------------------------------------------------------------------


class ReceiptIn(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True, extra="forbid")

    code: str = Field(min_length=1, max_length=40, examples=["invoice"])
    ref: str = Field(min_length=1, max_length=200, examples=["upload-7f3a"])


class ClaimIn(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True, extra="forbid")

    program: str = Field(
        min_length=1, max_length=40, examples=["assisted_reproduction_reimbursement"]
    )
    person_id: str = Field(min_length=1, max_length=36)
    requested_fen: Fen
    description: str = Field(min_length=1, max_length=500, examples=["2025年12月体外受精费用"])
    receipts: list[ReceiptIn] = Field(min_length=1, max_length=50)


class ApproveIn(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True, extra="forbid")

    version: int | None = Field(
        default=None, ge=1, description="The version you read (or send If-Match); stale: 409"
    )
    approved_fen: Fen | None = Field(
        default=None, description="An officer's reduced amount; at most requested_fen"
    )
    comment: str | None = Field(default=None, max_length=300)


class RejectIn(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True, extra="forbid")

    version: int | None = Field(default=None, ge=1)
    reason: str = Field(min_length=1, max_length=500)


class ReceiptOut(BaseModel):
    code: str
    ref: str


class ClaimOut(BaseModel):
    id: str
    claim_no: str
    program: str
    person_id: str
    couple_key: str = Field(description="The couple's family id (or the person's id): one cap")
    region_code: str
    requested_fen: int
    approved_fen: int | None = None
    status: ClaimStatus
    description: str
    receipts: list[ReceiptOut]
    submitted_by: str
    decided_by: str | None = None
    decided_at: datetime | None = None
    decision_comment: str | None = None
    run_id: str | None = None
    created_at: datetime
    version: int
    cap_fen: int | None = Field(description="The couple's cumulative cap in this program")
    used_fen: int = Field(description="Approved so far for the couple in this program")
    remaining_fen: int | None = Field(description="cap_fen - used_fen, never negative")


def claim_out(claim: Claim, cap_fen: int | None, used_fen: int) -> ClaimOut:
    return ClaimOut(
        id=claim.id,
        claim_no=claim.claim_no,
        program=claim.program,
        person_id=claim.person_id,
        couple_key=claim.couple_key,
        region_code=claim.region_code,
        requested_fen=claim.requested_fen,
        approved_fen=claim.approved_fen,
        status=claim.status,  # type: ignore[arg-type]
        description=claim.description,
        receipts=[ReceiptOut(**r) for r in claim.receipts],
        submitted_by=claim.submitted_by,
        decided_by=claim.decided_by,
        decided_at=claim.decided_at,
        decision_comment=claim.decision_comment,
        run_id=claim.run_id,
        created_at=claim.created_at,
        version=claim.version,
        cap_fen=cap_fen,
        used_fen=used_fen,
        remaining_fen=None if cap_fen is None else remaining(cap_fen, used_fen),
    )


# -- reading the facts --------------------------------------------------------------------------


def claim_program(code: str) -> Program:
    """The program, if it takes claims (it has a cap); otherwise 422 not_a_claim_program."""
    program = programs().get(code)
    if program is None or program.cap_fen is None:
        raise Problem(
            422,
            "not_a_claim_program",
            f"项目 {code} 不受理报销申请（仅有累计上限的报销类项目受理）",
            f"Program {code} takes no claims (only capped reimbursement programs do)",
            errors=[{"field": "program", "message": "该项目不受理报销申请"}],
        )
    return program


async def require_eligible(
    session: AsyncSession, program: Program, person_id: str, period: Period
) -> Eligibility:
    """Decide for ``period`` from benefits' own read models (never by asking the registry)."""
    facts = await load_facts(session, person_id)
    if facts is None:
        raise not_found("居民", "Person")
    result = evaluate(program, facts, period)
    if not result.eligible:
        raise Problem(
            422,
            "not_eligible",
            "不符合申请条件：" + "；".join(result.reasons_zh),
            "Not eligible: " + " ".join(result.reasons_en),
            errors=[{"field": "person_id", "message": r} for r in result.reasons_zh],
        )
    return result


async def couple_key_of(session: AsyncSession, person_id: str) -> str:
    """The family id where the person is wife or husband (so both spouses share one cap), else
    the person's own id. A remarried person's latest marriage is the couple that claims now."""
    family_id = await session.scalar(
        select(FamilyFacts.family_id)
        .where(or_(FamilyFacts.wife_id == person_id, FamilyFacts.husband_id == person_id))
        .order_by(FamilyFacts.marriage_date.desc(), FamilyFacts.family_id)  # type: ignore[attr-defined]
        .limit(1)
    )
    return family_id or person_id


_CAPS = ClaimCap.__table__


async def cap_state(
    session: AsyncSession, keys: set[tuple[str, str]]
) -> dict[tuple[str, str], tuple[int, int]]:
    """(program, couple_key) -> (cap_fen, used_fen), read fresh (not from the identity map)."""
    if not keys:
        return {}
    rows = await session.execute(
        select(_CAPS.c.program, _CAPS.c.couple_key, _CAPS.c.cap_fen, _CAPS.c.used_fen).where(
            _CAPS.c.couple_key.in_(sorted({k for _, k in keys}))
        )
    )
    # The query matches couple keys only; a key is per program, so keep the asked pairs.
    found = {(r.program, r.couple_key): (r.cap_fen, r.used_fen) for r in rows}
    return {k: v for k, v in found.items() if k in keys}


def _shown_cap(
    claim: Claim, caps: dict[tuple[str, str], tuple[int, int]]
) -> tuple[int | None, int]:
    """The couple's counter; before the first approval there is none yet: the program's cap."""
    found = caps.get((claim.program, claim.couple_key))
    if found is not None:
        return found
    program = programs().get(claim.program)
    return (program.cap_fen if program is not None else None), 0


async def _out(session: AsyncSession, claim: Claim) -> ClaimOut:
    caps = await cap_state(session, {(claim.program, claim.couple_key)})
    return claim_out(claim, *_shown_cap(claim, caps))


def cap_reached(cap_fen: int, used_fen: int) -> Problem:
    return Problem(
        409,
        "cap_reached",
        f"该夫妻本项目累计报销上限为 {yuan(cap_fen)} 元，已核准 {yuan(used_fen)} 元，已无剩余额度",
        f"The couple's cumulative cap is {yuan(cap_fen)} yuan and {yuan(used_fen)} yuan are "
        "already approved: nothing remains",
    )


# -- submit -------------------------------------------------------------------------------------


async def submit_claim(
    uow: UnitOfWork, body: ClaimIn, principal: Principal
) -> tuple[int, ClaimOut]:
    s = uow.session
    program = claim_program(body.program)
    if principal.role is Role.resident and body.person_id != principal.person_id:
        # Checked before looking the person up: a resident learns nothing of other persons.
        raise Problem(
            403,
            "forbidden",
            "居民只能为本人申请报销",
            "Residents claim only for themselves",
        )
    person = await s.get(PersonFacts, body.person_id)
    if person is None:
        raise not_found("居民", "Person")
    if principal.role is not Role.resident:
        principal.require_region(person.region_code)
    period = Period.of(uow.clock.today())
    await require_eligible(s, program, person.person_id, period)
    couple_key = await couple_key_of(s, person.person_id)
    assert program.cap_fen is not None  # claim_program guarantees it
    cap_fen, used_fen = (await cap_state(s, {(program.code, couple_key)})).get(
        (program.code, couple_key), (program.cap_fen, 0)
    )
    if remaining(cap_fen, used_fen) == 0:
        # A claim that can never be approved is refused at the door, not left in a queue.
        raise cap_reached(cap_fen, used_fen)
    claim = Claim(
        id=str(uuid.uuid4()),
        claim_no=f"CL-{period.year:04d}{period.month:02d}-{secrets.token_hex(5).upper()}",
        program=program.code,
        person_id=person.person_id,
        couple_key=couple_key,
        region_code=person.region_code,
        requested_fen=body.requested_fen,
        status=SUBMITTED,
        description=body.description,
        receipts=[r.model_dump() for r in body.receipts],
        submitted_by=principal.sub,
    )
    s.add(claim)
    await s.flush()
    return 201, claim_out(claim, cap_fen, used_fen)


# -- approve and reject -------------------------------------------------------------------------


async def _load(session: AsyncSession, claim_id: str) -> Claim:
    claim = await session.get(Claim, claim_id)
    if claim is None:
        raise not_found("报销申请", "Claim")
    return claim


def _require_submitted(claim: Claim, expected: Expected) -> None:
    if claim.status != SUBMITTED:
        raise Problem(
            409,
            "invalid_transition",
            f"报销申请当前状态为 {claim.status}，只能审核待审核（submitted）的申请",
            f"The claim is {claim.status}; only submitted claims can be decided",
        )
    if claim.version != expected.version:
        raise expected.conflict()


async def _guard(session: AsyncSession, claim: Claim, expected: Expected, **values: Any) -> None:
    """Move the claim only if nobody decided it since ``expected``: of two racers one wins."""
    if not await versioned_update(
        session, Claim, claim.id, Claim.status == SUBMITTED, expected=expected, **values
    ):
        raise expected.conflict()


@dataclass(frozen=True)
class Reserved:
    amount_fen: int
    cap_fen: int
    used_before_fen: int  # the couple's used sum just before this approval
    limited_by: str


async def _ensure_cap_row(session: AsyncSession, program: Program, couple_key: str) -> None:
    """Create the couple's counter if missing. Two first approvals may race: ON CONFLICT DO
    NOTHING lets the loser go on with the winner's row (PostgreSQL makes it wait for the
    winner's commit; SQLite has one writer at a time)."""
    await session.execute(
        dialect_insert(session, ClaimCap)
        .values(program=program.code, couple_key=couple_key, cap_fen=program.cap_fen, used_fen=0)
        .on_conflict_do_nothing()
    )


async def reserve_under_cap(
    session: AsyncSession,
    program: Program,
    couple_key: str,
    requested_fen: int,
    reduced_fen: int | None,
) -> Reserved:
    """Add x to the couple's used sum, x = min(requested, reduced, remaining), in ONE
    conditional UPDATE, so no interleaving of approvals can push used_fen over cap_fen.

    x comes from a fresh read of the counter. If another approval committed in between, the
    condition may no longer hold (0 rows): read again and retry. Where it still holds with a
    stale read, x is still the rule's answer, because used_fen only grows: a stale remaining
    is at least the true one, so x = requested (fits) or x = remaining (the UPDATE then
    succeeds only if the true remaining is the same).
    """
    await _ensure_cap_row(session, program, couple_key)
    where = (_CAPS.c.program == program.code, _CAPS.c.couple_key == couple_key)
    for _ in range(CAP_ATTEMPTS):
        cap_fen, used_fen = (
            await session.execute(select(_CAPS.c.cap_fen, _CAPS.c.used_fen).where(*where))
        ).one()
        rule = approvable(cap_fen, used_fen, requested_fen, reduced_fen)
        if rule.amount_fen == 0:
            raise cap_reached(cap_fen, used_fen)
        x = rule.amount_fen
        written = (
            await session.execute(
                update(_CAPS)
                .where(*where, _CAPS.c.used_fen + x <= _CAPS.c.cap_fen)
                .values(used_fen=_CAPS.c.used_fen + x)
                .returning(_CAPS.c.cap_fen, _CAPS.c.used_fen)
            )
        ).first()
        if written is not None:
            return Reserved(x, written.cap_fen, written.used_fen - x, rule.limited_by)
    raise Problem(
        409,
        "cap_contended",
        "该夫妻的其他报销正在同时审核，请稍后重试",
        "Other claims of this couple are being approved at the same time; retry",
        headers={"Retry-After": "1"},
    )


def _decision_comment(claim: Claim, r: Reserved, comment: str | None) -> str | None:
    """Say why less than asked was approved; the officer's own words follow."""
    said: list[str] = []
    asked = yuan(claim.requested_fen)
    if r.limited_by == "cap":
        said.append(
            f"每对夫妻累计报销上限 {yuan(r.cap_fen)} 元，此前已核准 {yuan(r.used_before_fen)} 元，"
            f"剩余 {yuan(r.cap_fen - r.used_before_fen)} 元：申请 {asked} 元，"
            f"仅核准 {yuan(r.amount_fen)} 元。"
        )
    elif r.limited_by == "reduced":
        said.append(f"经审核核减：申请 {asked} 元，核准 {yuan(r.amount_fen)} 元。")
    if comment:
        said.append(comment)
    return "".join(said) or None


async def approve_claim(
    uow: UnitOfWork,
    claim_id: str,
    body: ApproveIn,
    expected: Expected,
    principal: Principal,
) -> ClaimOut:
    s = uow.session
    claim = await _load(s, claim_id)
    principal.require_region(claim.region_code)
    require_checker(
        principal,
        claim.submitted_by,
        "审核人不能与经办人为同一人",
        "The approver cannot be the one who submitted the claim",
    )
    _require_submitted(claim, expected)
    if body.approved_fen is not None and body.approved_fen > claim.requested_fen:
        raise Problem(
            422,
            "validation_failed",
            "核准金额不能超过申请金额",
            "approved_fen cannot exceed requested_fen",
            errors=[{"field": "approved_fen", "message": "核准金额不能超过申请金额"}],
        )
    program = claim_program(claim.program)
    # The facts may have changed since submission (a death, a child registered): decide on
    # today's facts, not on those the claim was filed under.
    await require_eligible(s, program, claim.person_id, Period.of(uow.clock.today()))
    # The claim first: a second approval of the same claim stops here, before the cap row.
    await _guard(s, claim, expected, status=APPROVED, decided_by=principal.sub, decided_at=utcnow())
    reserved = await reserve_under_cap(
        s, program, claim.couple_key, claim.requested_fen, body.approved_fen
    )
    await s.execute(
        update(Claim)
        .where(Claim.id == claim.id)  # type: ignore[arg-type]
        .values(
            approved_fen=reserved.amount_fen,
            decision_comment=_decision_comment(claim, reserved, body.comment),
        )
        .execution_options(synchronize_session=False)
    )
    await s.refresh(claim)
    _announce(uow, program, claim)
    return claim_out(claim, reserved.cap_fen, reserved.used_before_fen + reserved.amount_fen)


async def reject_claim(
    uow: UnitOfWork,
    claim_id: str,
    body: RejectIn,
    expected: Expected,
    principal: Principal,
) -> ClaimOut:
    s = uow.session
    claim = await _load(s, claim_id)
    principal.require_region(claim.region_code)
    _require_submitted(claim, expected)
    await _guard(
        s,
        claim,
        expected,
        status=REJECTED,
        decided_by=principal.sub,
        decided_at=utcnow(),
        decision_comment=body.reason,
    )
    await s.refresh(claim)
    _announce(uow, claim_program(claim.program), claim)
    return await _out(s, claim)


def _announce(uow: UnitOfWork, program: Program, claim: Claim) -> None:
    """The decision goes out with it, in the same transaction (notify tells the claimant)."""
    uow.publish(
        ClaimDecided(
            claim_id=claim.id,
            claim_no=claim.claim_no,
            program=claim.program,
            program_name=program.name,
            person_id=claim.person_id,
            decision=claim.status,
            decision_name=(
                f"已核准 {yuan(claim.approved_fen)} 元"
                if claim.approved_fen is not None
                else "未予核准"
            ),
            requested_fen=claim.requested_fen,
            approved_fen=claim.approved_fen,
            comment=claim.decision_comment,
            region_code=claim.region_code,
        ),
        subject=claim.id,
    )


# -- read ---------------------------------------------------------------------------------------


def _own_only() -> Problem:
    return Problem(
        403, "forbidden", "居民只能查看本人的报销申请", "Residents see only their own claims"
    )


def _require_reader(principal: Principal, claim: Claim) -> None:
    if principal.role is Role.resident:
        if claim.person_id != principal.person_id:
            raise _own_only()
        return
    principal.require_region(claim.region_code)


async def get_claim(session: AsyncSession, claim_id: str, principal: Principal) -> ClaimOut:
    claim = await _load(session, claim_id)
    _require_reader(principal, claim)
    return await _out(session, claim)


async def list_claims(
    session: AsyncSession,
    principal: Principal,
    *,
    person_id: str | None,
    status: str | None,
    program: str | None,
    limit: int,
    cursor: str | None,
) -> Page[ClaimOut]:
    """Oldest first (the order officers work through them); residents see their own only."""
    q = select(Claim)
    if principal.role is Role.resident:
        if not principal.person_id or (person_id is not None and person_id != principal.person_id):
            raise _own_only()
        person_id = principal.person_id
    elif scope := principal.region_scope():
        q = q.where(Claim.region_code.startswith(scope))  # type: ignore[attr-defined]
    if person_id is not None:
        q = q.where(Claim.person_id == person_id)
    if status is not None:
        q = q.where(Claim.status == status)
    if program is not None:
        q = q.where(Claim.program == program)
    after = after_time_cursor(cursor, Claim.created_at, Claim.id)
    if after is not None:
        q = q.where(after)
    q = q.order_by(Claim.created_at, Claim.id).limit(limit + 1)  # type: ignore[arg-type]
    rows = list((await session.scalars(q)).all())
    page = rows[:limit]
    caps = await cap_state(session, {(c.program, c.couple_key) for c in page})
    items = [claim_out(c, *_shown_cap(c, caps)) for c in page]
    last = page[-1] if len(rows) > limit else None
    return Page[ClaimOut](
        items=items,
        next_cursor=encode_cursor(last.created_at.isoformat(), last.id) if last else None,
    )
