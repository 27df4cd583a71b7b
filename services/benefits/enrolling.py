"""Enrollment use cases, shared by the event handlers, the API and the daily sweep.

- ``found``: prepare an enrollment from an event (certificate, birth, death, age sweep);
- ``apply``: an officer's manual application;
- ``confirm`` / ``reject`` / ``suspend`` / ``resume``: the officer's lifecycle, guarded by
  version (maker-checker on confirm);
- ``end``: every ending, which caps ``pays_until`` and records overpaid months in the ledger;
- ``record_death``: what a death changes.

Every write goes through the caller's UnitOfWork: the change and the events announcing it
commit together. The rules themselves are in ``domain/``.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

# A module reference, not names: events.py imports this module for its handlers, and the
# event classes are only looked up when a use case runs.
from services.benefits import events
from services.benefits.domain import enrollments as rules
from services.benefits.domain.eligibility import Child, Eligibility, Facts, evaluate
from services.benefits.domain.payments import overpaid_fen
from services.benefits.domain.programs import Period, Program, monthly_amount
from services.benefits.facts import load_facts, person_of
from services.benefits.models import (
    OPEN_STATUSES,
    CertificateFacts,
    ChildLink,
    Enrollment,
    LedgerEntry,
    PersonFacts,
)
from shared.auth import Principal, Role, require_checker
from shared.concurrency import Expected, versioned_update
from shared.db import utcnow
from shared.errors import Problem, not_found
from shared.events.outbox import UnitOfWork

log = logging.getLogger("lingju.benefits.enrolling")

SYSTEM = "system"  # the maker of enrollments founded on events; never an officer's sub


def _str(period: Period | None) -> str | None:
    return None if period is None else str(period)


def _period(text: str | None) -> Period | None:
    return None if text is None else Period.parse(text)


# -- reading ------------------------------------------------------------------------------------


async def open_enrollments(session: AsyncSession, *where: Any) -> list[Enrollment]:
    rows = await session.scalars(
        select(Enrollment)
        .where(Enrollment.status.in_(OPEN_STATUSES), *where)  # type: ignore[attr-defined]
        .order_by(Enrollment.id)
    )
    return list(rows.all())


async def _open_one(session: AsyncSession, program: str, person_id: str) -> Enrollment | None:
    found = await open_enrollments(
        session, Enrollment.program == program, Enrollment.person_id == person_id
    )
    return found[0] if found else None


async def _reload(session: AsyncSession, enrollment_id: str) -> Enrollment | None:
    # A guarded UPDATE bypasses the identity map: read the row as the database has it now.
    return await session.get(Enrollment, enrollment_id, populate_existing=True)


async def link_child(
    uow: UnitOfWork, parent_id: str, child_id: str, family_id: str | None = None
) -> None:
    """Record a parent and child once (several events say the same thing)."""
    link = await uow.session.get(ChildLink, (parent_id, child_id))
    if link is None:
        uow.session.add(ChildLink(parent_id=parent_id, child_id=child_id, family_id=family_id))
        await uow.flush()  # so the next lookup of this pair finds it
    elif link.family_id is None and family_id is not None:
        link.family_id = family_id


async def children_ids(session: AsyncSession, parent_id: str) -> list[str]:
    rows = await session.scalars(select(ChildLink.child_id).where(ChildLink.parent_id == parent_id))
    return list(rows.all())


async def facts_for(
    session: AsyncSession,
    program: Program,
    person_id: str,
    disabled_child_ids: frozenset[str] = frozenset(),
) -> Facts | None:
    """The facts ``program``'s rule takes for ``person_id``, or None if benefits has no copy.

    The childcare subsidy is per child: its beneficiary is the child, so the rule sees the
    child alone (its own region and, if it died, its death), not the parent's family.
    """
    if program.eligibility.rule == "childcare_subsidy":
        row = await session.get(PersonFacts, person_id)
        if row is None:
            return None
        child = Child(birth_date=row.birth_date, alive=row.died_on is None, died_on=row.died_on)
        return Facts(person=person_of(row), children=(child,))
    return await load_facts(session, person_id, disabled_child_ids=disabled_child_ids)


async def founding_issue_month(
    session: AsyncSession, program: Program, person_id: str
) -> Period | None:
    """For a program founded by a certificate: the issue month of the person's earliest
    unrevoked founding certificate (nothing is owed before it), else None."""
    kind = program.founded_by_certificate
    return None if kind is None else await certificate_issue_month(session, kind, person_id)


async def certificate_issue_month(
    session: AsyncSession, certificate_type: str, person_id: str
) -> Period | None:
    """The issue month of the earliest unrevoked certificate of this type the person holds
    for one of their children, or None."""
    kids = await children_ids(session, person_id)
    if not kids:
        return None
    certs = await session.scalars(
        select(CertificateFacts).where(
            CertificateFacts.certificate_type == certificate_type,
            CertificateFacts.child_id.in_(kids),  # type: ignore[union-attr]
            CertificateFacts.issued_on.is_not(None),  # type: ignore[union-attr]
            CertificateFacts.revoked_on.is_(None),  # type: ignore[union-attr]
        )
    )
    issued = [c.issued_on for c in certs.all() if person_id in c.holder_ids and c.issued_on]
    return Period.of(min(issued)) if issued else None


# -- creating -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Founding:
    """Where an enrollment comes from and who prepared it."""

    source: str  # certificate | child_born | death | age_sweep | application
    source_ref: str
    starts_on: date
    prepared_by: str = SYSTEM


def _create(
    uow: UnitOfWork,
    program: Program,
    person: PersonFacts,
    payee_id: str,
    e: Eligibility,
    window: tuple[Period, Period | None],
    founding: Founding,
    reasons: list[str],
    enrollment_id: str | None = None,
) -> Enrollment:
    enrollment = Enrollment(
        id=enrollment_id or str(uuid.uuid4()),
        program=program.code,
        person_id=person.person_id,
        payee_id=payee_id,
        case=e.case,
        status="pending_review",
        region_code=person.region_code,
        source=founding.source,
        source_ref=founding.source_ref,
        starts_on=founding.starts_on,
        pays_from=str(window[0]),
        pays_until=_str(window[1]),
        reasons=reasons,
        prepared_by=founding.prepared_by,
    )
    uow.session.add(enrollment)
    uow.publish(
        events.EnrollmentCreated(
            enrollment_id=enrollment.id,
            program=program.code,
            program_name=program.name,
            person_id=enrollment.person_id,
            payee_id=enrollment.payee_id,
            status=enrollment.status,
            region_code=enrollment.region_code,
            starts_on=enrollment.starts_on,
            pays_from=enrollment.pays_from,
            pays_until=enrollment.pays_until,
            source=enrollment.source,
            source_ref=enrollment.source_ref,
        ),
        subject=enrollment.id,
    )
    return enrollment


async def found(
    uow: UnitOfWork,
    program: Program,
    person_id: str,
    *,
    payee_id: str,
    source: str,
    source_ref: str,
    starts_on: date,
    not_before: Period | None = None,
    as_of: Period | None = None,
) -> Enrollment | None:
    """Prepare the person's enrollment founded on an event, pending an officer's
    confirmation, for the months the eligibility rule gives (from ``not_before`` on).

    Returns None, and logs why, when nothing is founded: already founded by this event's
    subject (a redelivery under a new id), the person has died, the rule gives no months, or
    the person already has an open enrollment in the program.
    """
    session = uow.session
    done = await session.scalar(
        select(Enrollment.id).where(
            Enrollment.program == program.code,
            Enrollment.person_id == person_id,
            Enrollment.source_ref == source_ref,
        )
    )
    if done:
        return None
    person = await session.get(PersonFacts, person_id)
    if person is None:
        log.info("no enrollment in %s for %s: person not known", program.code, person_id)
        return None
    if person.died_on is not None:
        # The death arrived first: nobody is enrolled after death.
        log.info("no enrollment in %s for %s: died %s", program.code, person_id, person.died_on)
        return None
    facts = await facts_for(session, program, person_id)
    assert facts is not None
    e = evaluate(program, facts, as_of or Period.of(uow.clock.today()))
    window = rules.pays_window(e, not_before)
    if window is None:
        log.info(
            "no enrollment in %s for %s: not eligible (%s)",
            program.code,
            person_id,
            " ".join(e.reasons_zh),
        )
        return None
    existing = await _open_one(session, program.code, person_id)
    if existing is not None:
        log.info(
            "no enrollment in %s for %s: enrollment %s is open",
            program.code,
            person_id,
            existing.id,
        )
        return None
    founding = Founding(source, source_ref, starts_on)
    return _create(uow, program, person, payee_id, e, window, founding, list(e.reasons_zh))


# -- ending ---------------------------------------------------------------------------------------


def _announce_ended(uow: UnitOfWork, row: Enrollment, ending: rules.Ending) -> None:
    uow.publish(
        events.EnrollmentEnded(
            enrollment_id=row.id,
            program=row.program,
            program_name=program_of(row.program).name,
            person_id=row.person_id,
            payee_id=row.payee_id,
            reason=ending.reason,
            reason_name=rules.ENDED_ZH.get(ending.reason, ending.reason),
            ends_after=str(ending.ends_after),
            region_code=row.region_code,
        ),
        subject=row.id,
    )


async def end(uow: UnitOfWork, enrollment_id: str, ending: rules.Ending) -> bool:
    """End one open enrollment and announce it; False if it is already ended.

    ``pays_until`` becomes ``min(pays_until, ends_after)``. Months already sent to the bank
    after ``ends_after`` (a death recorded after that month was paid) are written to the
    ledger as a negative correction, to be recovered. The UPDATE is guarded by the version
    and the ``settled_through`` the correction was computed from: a concurrent change (a
    payment run settling a month, another ending) makes us read again and recompute.
    """
    session = uow.session
    for _ in range(5):
        row = await _reload(session, enrollment_id)
        if row is None or row.status not in OPEN_STATUSES:
            return False
        pays_until = rules.capped_until(_period(row.pays_until), ending.ends_after)
        written = await versioned_update(
            session,
            Enrollment,
            row.id,
            Enrollment.status == row.status,
            Enrollment.version == row.version,
            Enrollment.settled_through.is_not_distinct_from(row.settled_through),  # type: ignore[union-attr]
            status="ended",
            ended_reason=ending.reason,
            ends_after=str(ending.ends_after),
            pays_until=str(pays_until),
        )
        if written:
            break
    else:
        raise RuntimeError(f"enrollment {enrollment_id} kept changing while being ended")
    overpaid = rules.overpaid_months(
        ending.ends_after, _period(row.settled_through), Period.parse(row.pays_from)
    )
    if overpaid is not None:
        first, last = overpaid
        program = events.programs()[row.program]
        # What the runs sent for first..last, month by month at the amount then in force.
        fen = overpaid_fen(program, row.region_code, row.case, first.previous(), last)
        session.add(
            LedgerEntry(
                person_id=row.person_id,
                payee_id=row.payee_id,
                program=row.program,
                enrollment_id=row.id,
                kind="correction",
                period_from=str(first),
                period_until=str(last),
                amount_fen=-fen,
                reason=rules.OVERPAID_ZH.get(ending.reason, "多发，待追回"),
            )
        )
    _announce_ended(uow, row, ending)
    return True


async def hold_for_new_payee(uow: UnitOfWork, enrollment_id: str, died_on: date) -> None:
    """The payee (not the beneficiary) died: an active enrollment is suspended until an
    officer resumes it with a new payee; a pending one keeps waiting, with the reason shown
    (confirming it is refused until a new payee is named, see ``confirm``)."""
    session = uow.session
    reason = f"收款人已于 {died_on.isoformat()} 去世，请指定新的收款人"
    row = await _reload(session, enrollment_id)
    if row is None or row.status not in OPEN_STATUSES or row.status_reason == reason:
        return  # ended meanwhile, or this death was already seen (a second report path)
    status = "suspended" if row.status == "active" else row.status
    written = await versioned_update(
        session,
        Enrollment,
        row.id,
        Enrollment.version == row.version,
        status=status,
        status_reason=reason,
    )
    if not written:
        raise RuntimeError(f"enrollment {enrollment_id} changed while its payee's death was seen")
    if row.status == "active":
        uow.publish(
            events.EnrollmentSuspended(
                enrollment_id=row.id,
                program=row.program,
                program_name=program_of(row.program).name,
                person_id=row.person_id,
                payee_id=row.payee_id,
                reason=reason,
                region_code=row.region_code,
            ),
            subject=row.id,
        )


async def record_death(
    uow: UnitOfWork, person_id: str, died_on: date, only_child_of: list[str]
) -> None:
    """What a death changes (the facts of the deceased and the parents must be known)."""
    session = uow.session
    facts = await session.get(PersonFacts, person_id)
    assert facts is not None
    if facts.died_on is None:
        facts.died_on = died_on
    for enrollment in await open_enrollments(session, Enrollment.person_id == person_id):
        await end(uow, enrollment.id, rules.ending("death", died_on))
    paid_for_others = await open_enrollments(
        session, Enrollment.payee_id == person_id, Enrollment.person_id != person_id
    )
    for enrollment in paid_for_others:
        await hold_for_new_payee(uow, enrollment.id, died_on)
    # The parents' reward founded on the deceased child's certificate: paid through that month.
    certificates = await session.scalars(
        select(CertificateFacts.certificate_id).where(CertificateFacts.child_id == person_id)
    )
    cert_ids = list(certificates.all())
    if cert_ids:
        founded = await open_enrollments(
            session,
            Enrollment.source == "certificate",
            Enrollment.source_ref.in_(cert_ids),  # type: ignore[attr-defined]
        )
        for enrollment in founded:
            await end(uow, enrollment.id, rules.ending("child_died", died_on))
    # Special assistance for the parents whose only child this was (失独家庭).
    for parent_id in only_child_of:
        await link_child(uow, parent_id, person_id)
    await uow.flush()
    assistance = [
        p for p in events.programs().values() if p.eligibility.rule == "special_assistance"
    ]
    for program in assistance:
        for parent_id in only_child_of:
            await found(
                uow,
                program,
                parent_id,
                payee_id=parent_id,
                source="death",
                source_ref=person_id,
                starts_on=died_on,
            )


# -- the officers' use cases --------------------------------------------------------------------


class NotEligible(Problem):
    """422 not_eligible, with the rule's reasons in zh-CN (and English) as ``reasons``."""

    def __init__(self, e: Eligibility) -> None:
        super().__init__(
            422,
            "not_eligible",
            "不符合条件：" + "".join(e.reasons_zh),
            "Not eligible: " + " ".join(e.reasons_en),
        )
        self.reasons_zh = list(e.reasons_zh)
        self.reasons_en = list(e.reasons_en)

    def body(self, english: bool, instance: str | None = None) -> dict[str, Any]:
        body = super().body(english, instance)
        body["reasons"] = self.reasons_en if english else self.reasons_zh
        return body


def _invalid(field: str, zh: str, en: str) -> Problem:
    return Problem(422, "validation_failed", zh, en, errors=[{"field": field, "message": zh}])


def program_of(code: str) -> Program:
    program = events.programs().get(code)
    if program is None:
        raise _invalid("program", f"未知的待遇项目 {code!r}", f"Unknown program {code!r}")
    return program


async def _living_person(session: AsyncSession, person_id: str, field: str) -> PersonFacts:
    row = await session.get(PersonFacts, person_id)
    if row is None:
        raise _invalid(field, "居民不存在", "Person not found")
    if row.died_on is not None:
        raise _invalid(field, "该居民已去世", "This person has died")
    return row


async def _default_payee(session: AsyncSession, program: Program, person: PersonFacts) -> str:
    """Who is paid when the application names nobody: the person, or for a per-child program
    the child's mother (else the other parent) as benefits knows them."""
    if program.eligibility.rule != "childcare_subsidy":
        return person.person_id
    parents = await session.scalars(
        select(PersonFacts)
        .join(ChildLink, ChildLink.parent_id == PersonFacts.person_id)
        .where(ChildLink.child_id == person.person_id, PersonFacts.died_on.is_(None))  # type: ignore[union-attr]
        .order_by(PersonFacts.sex, PersonFacts.person_id)  # "female" sorts before "male"
    )
    first = parents.first()
    if first is None:
        raise _invalid(
            "payee_id",
            "未找到子女的在世父母，请指定收款人",
            "No living parent of the child is known: name the payee",
        )
    return first.person_id


@dataclass(frozen=True)
class Application:
    program: str
    person_id: str
    payee_id: str | None = None
    disabled_child_ids: tuple[str, ...] = ()
    evidence: tuple[tuple[str, str], ...] = ()  # (code, ref)
    note: str | None = None


async def apply(uow: UnitOfWork, body: Application, principal: Principal) -> Enrollment:
    """An officer's manual application, pending a second officer's confirmation.

    Accepted only when the person is entitled for the current period (months since the
    window opened are back pay once confirmed). What no registry event says (a child's
    disability) the officer declares, with evidence.
    """
    session = uow.session
    program = program_of(body.program)
    person = await session.get(PersonFacts, body.person_id)
    if person is None:
        raise not_found("居民", "Person")
    principal.require_region(person.region_code)
    if body.disabled_child_ids and not body.evidence:
        raise _invalid(
            "evidence",
            "申报子女伤残须附证明材料（如残疾人证）",
            "Declaring a disabled child needs evidence (e.g. the disability certificate)",
        )
    payee_id = body.payee_id or await _default_payee(session, program, person)
    await _living_person(session, payee_id, "payee_id")
    facts = await facts_for(session, program, person.person_id, frozenset(body.disabled_child_ids))
    assert facts is not None
    today = uow.clock.today()
    e = evaluate(program, facts, Period.of(today))
    window = rules.pays_window(e, await founding_issue_month(session, program, person.person_id))
    if not e.eligible or window is None:
        raise NotEligible(e)
    existing = await _open_one(session, program.code, person.person_id)
    if existing is not None:
        raise _already_enrolled(existing)
    reasons = list(e.reasons_zh)
    reasons += [f"申请材料：{code}（{ref}）" for code, ref in body.evidence]
    if body.disabled_child_ids:
        reasons.append(f"经办人申报伤残子女：{'、'.join(body.disabled_child_ids)}")
    if body.note:
        reasons.append(f"经办人说明：{body.note}")
    enrollment_id = str(uuid.uuid4())
    # Each application is its own founding: after a rejection, a new one may be made.
    founding = Founding("application", enrollment_id, today, principal.sub)
    enrollment = _create(
        uow, program, person, payee_id, e, window, founding, reasons, enrollment_id
    )
    try:
        await uow.flush()
    except IntegrityError as err:
        # Another application or an event founded one at the same moment (partial unique index).
        raise _already_enrolled(None) from err
    return enrollment


def _already_enrolled(existing: Enrollment | None) -> Problem:
    which = f"（{existing.id}，{existing.status}）" if existing else ""
    return Problem(
        409,
        "already_enrolled",
        f"该居民已有未终止的同类待遇资格{which}",
        "The person already has an open enrollment in this program",
    )


async def _load_for_officer(
    session: AsyncSession, enrollment_id: str, principal: Principal
) -> Enrollment:
    row = await session.get(Enrollment, enrollment_id)
    if row is None:
        raise not_found("待遇资格", "Enrollment")
    principal.require_region(row.region_code)
    return row


def _transition(row: Enrollment, action: str, expected: Expected) -> str:
    try:
        target = rules.next_status(action, row.status)
    except rules.InvalidTransition as e:
        raise Problem(
            409,
            "invalid_transition",
            f"待遇资格当前状态为 {row.status}，不能执行此操作",
            str(e),
        ) from e
    if row.version != expected.version:
        raise expected.conflict()
    return target


async def _write(uow: UnitOfWork, row: Enrollment, expected: Expected, **values: Any) -> Enrollment:
    written = await versioned_update(
        uow.session,
        Enrollment,
        row.id,
        Enrollment.status == row.status,
        expected=expected,
        **values,
    )
    if not written:
        raise expected.conflict()  # another officer got there first
    fresh = await _reload(uow.session, row.id)
    assert fresh is not None
    return fresh


async def confirm(
    uow: UnitOfWork, enrollment_id: str, expected: Expected, principal: Principal
) -> Enrollment:
    """The checker confirms: the enrollment is active and paid from ``pays_from`` on."""
    row = await _load_for_officer(uow.session, enrollment_id, principal)
    require_checker(
        principal,
        row.prepared_by,
        "审核人不能与经办人为同一人",
        "The officer who prepared an enrollment cannot confirm it",
    )
    target = _transition(row, "confirm", expected)
    payee = await uow.session.get(PersonFacts, row.payee_id)
    if payee is not None and payee.died_on is not None:
        raise Problem(
            409,
            "payee_deceased",
            "收款人已去世：请驳回后重新申请并指定新的收款人",
            "The payee has died: reject and apply again naming a new payee",
        )
    fresh = await _write(
        uow, row, expected, status=target, confirmed_by=principal.sub, confirmed_at=utcnow()
    )
    program = events.programs()[fresh.program]
    uow.publish(
        events.EnrollmentActivated(
            enrollment_id=fresh.id,
            program=fresh.program,
            program_name=program.name,
            person_id=fresh.person_id,
            payee_id=fresh.payee_id,
            region_code=fresh.region_code,
            pays_from=fresh.pays_from,
            pays_until=fresh.pays_until,
            monthly_fen=monthly_amount(
                program, fresh.region_code, Period.of(uow.clock.today()), fresh.case
            ),
        ),
        subject=fresh.id,
    )
    return fresh


async def reject(
    uow: UnitOfWork, enrollment_id: str, expected: Expected, reason: str, principal: Principal
) -> Enrollment:
    """A pending enrollment is refused: it ends with nothing owed (reason "rejected")."""
    row = await _load_for_officer(uow.session, enrollment_id, principal)
    target = _transition(row, "reject", expected)
    ending = rules.rejection(Period.parse(row.pays_from))
    fresh = await _write(
        uow,
        row,
        expected,
        status=target,
        status_reason=reason,
        ended_reason=ending.reason,
        ends_after=str(ending.ends_after),
        pays_until=str(rules.capped_until(_period(row.pays_until), ending.ends_after)),
    )
    _announce_ended(uow, fresh, ending)
    return fresh


async def suspend(
    uow: UnitOfWork, enrollment_id: str, expected: Expected, reason: str, principal: Principal
) -> Enrollment:
    """Payments stop (nothing is settled while suspended) until the enrollment is resumed."""
    row = await _load_for_officer(uow.session, enrollment_id, principal)
    target = _transition(row, "suspend", expected)
    fresh = await _write(uow, row, expected, status=target, status_reason=reason)
    uow.publish(
        events.EnrollmentSuspended(
            enrollment_id=fresh.id,
            program=fresh.program,
            program_name=program_of(fresh.program).name,
            person_id=fresh.person_id,
            payee_id=fresh.payee_id,
            reason=reason,
            region_code=fresh.region_code,
        ),
        subject=fresh.id,
    )
    return fresh


async def resume(
    uow: UnitOfWork,
    enrollment_id: str,
    expected: Expected,
    principal: Principal,
    payee_id: str | None = None,
) -> Enrollment:
    """A suspended enrollment is active again, optionally paid to a new payee (required when
    the payee has died).

    Back pay: ``settled_through`` did not move while the enrollment was suspended, so the
    program's next payment run pays every month owed since then along with the current one.
    """
    session = uow.session
    row = await _load_for_officer(session, enrollment_id, principal)
    target = _transition(row, "resume", expected)
    new_payee = payee_id or row.payee_id
    payee = await session.get(PersonFacts, new_payee)
    if payee is not None and payee.died_on is not None:
        if payee_id is None:
            raise Problem(
                409,
                "payee_deceased",
                "收款人已去世：恢复时请指定新的收款人（payee_id）",
                "The payee has died: name a new payee (payee_id) to resume",
            )
        raise _invalid("payee_id", "该居民已去世", "This person has died")
    if payee_id is not None and payee is None:
        raise _invalid("payee_id", "居民不存在", "Person not found")
    fresh = await _write(uow, row, expected, status=target, status_reason=None, payee_id=new_payee)
    uow.publish(
        events.EnrollmentResumed(
            enrollment_id=fresh.id,
            program=fresh.program,
            program_name=program_of(fresh.program).name,
            person_id=fresh.person_id,
            payee_id=fresh.payee_id,
            region_code=fresh.region_code,
        ),
        subject=fresh.id,
    )
    return fresh


# -- who sees what ------------------------------------------------------------------------------


async def visible_to_resident(session: AsyncSession, principal: Principal) -> Any:
    """The condition on enrollments a resident may see: their own, their children's (as
    benefits knows the family), and those paid to them."""
    me = principal.person_id or ""
    kids = await children_ids(session, me)
    return or_(
        Enrollment.person_id.in_([me, *kids]),  # type: ignore[attr-defined]
        Enrollment.payee_id == me,
    )


async def get_for(session: AsyncSession, enrollment_id: str, principal: Principal) -> Enrollment:
    row = await session.get(Enrollment, enrollment_id)
    if row is None:
        raise not_found("待遇资格", "Enrollment")
    if principal.role is Role.resident:
        me = principal.person_id
        if me is None or (
            me not in (row.person_id, row.payee_id)
            and row.person_id not in await children_ids(session, me)
        ):
            # Not found rather than forbidden: a resident learns nothing of others' records.
            raise not_found("待遇资格", "Enrollment")
        return row
    principal.require_region(row.region_code)
    return row
