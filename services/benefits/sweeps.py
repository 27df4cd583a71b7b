"""The daily enrollment sweep: what no event announces, only the calendar.

(a) Rural reward-and-assistance at 60: rural, living holders of an unrevoked only-child honor
    certificate whose 60th-birthday month has come, with no enrollment in the program yet,
    get one pending an officer's confirmation (source "age_sweep"). Running it twice founds
    nothing more: the person then has an enrollment in the program.
(b) Age-outs: active enrollments whose window closed before the sweep's period end with
    reason age_out, paid through their last month (``ends_after = pays_until``).

Candidates are selected in SQL; each is decided by the domain rule and written in its own
transaction, so one bad row or a replica sweeping at the same time costs only that row.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING

from sqlalchemy import exists, select
from sqlalchemy.exc import IntegrityError

from services.benefits import enrolling
from services.benefits.domain import enrollments as rules
from services.benefits.domain.programs import Period, Program
from services.benefits.events import programs
from services.benefits.facts import ONLY_CHILD_HONOR
from services.benefits.models import CertificateFacts, ChildLink, Enrollment, PersonFacts

if TYPE_CHECKING:
    from shared.service import Runtime

log = logging.getLogger("lingju.benefits.sweeps")

SWEEP_INTERVAL_SECONDS = 6 * 3600


@dataclass
class SweepResult:
    as_of: date
    period: str
    created: list[str] = field(default_factory=list)  # enrollment ids founded
    aged_out: list[str] = field(default_factory=list)  # enrollment ids ended


async def run_enrollment_sweeps(rt: Runtime) -> None:
    """A worker: sweep once at start, then every six hours (the day turns in Beijing)."""
    while True:
        try:
            result = await rt.inflight.run(sweep_enrollments(rt, rt.clock.today()))
            log.info(
                "enrollment sweep %s: %d founded, %d aged out",
                result.as_of,
                len(result.created),
                len(result.aged_out),
            )
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("enrollment sweep failed; next attempt in %ds", SWEEP_INTERVAL_SECONDS)
        await asyncio.sleep(SWEEP_INTERVAL_SECONDS)


async def sweep_enrollments(rt: Runtime, as_of: date) -> SweepResult:
    result = SweepResult(as_of=as_of, period=str(Period.of(as_of)))
    for program in programs().values():
        if program.eligibility.rule == "rural_reward_assistance":
            result.created += await _rural_reward(rt, program, as_of)
    result.aged_out = await _age_outs(rt, Period.of(as_of))
    return result


async def _rural_reward(rt: Runtime, program: Program, as_of: date) -> list[str]:
    period = Period.of(as_of)
    age = program.eligibility.age or 60
    household = program.eligibility.household_type or "rural"
    # Born before the first day of the month after (period - age years): the age-th birthday
    # month is at or before the period (a 29 February birthday stays in February).
    cutoff = Period(period.year - age, period.month).next()
    holders = (
        select(ChildLink.parent_id)
        .join(CertificateFacts, CertificateFacts.child_id == ChildLink.child_id)
        .where(
            CertificateFacts.certificate_type == ONLY_CHILD_HONOR,
            CertificateFacts.issued_on.is_not(None),  # type: ignore[union-attr]
            CertificateFacts.revoked_on.is_(None),  # type: ignore[union-attr]
        )
    )
    enrolled = exists().where(
        Enrollment.program == program.code, Enrollment.person_id == PersonFacts.person_id
    )
    q = (
        select(PersonFacts.person_id, PersonFacts.birth_date)
        .where(
            PersonFacts.household_type == household,
            PersonFacts.died_on.is_(None),  # type: ignore[union-attr]
            PersonFacts.birth_date < date(cutoff.year, cutoff.month, 1),
            PersonFacts.person_id.in_(holders),  # type: ignore[attr-defined]
            ~enrolled,
        )
        .order_by(PersonFacts.person_id)
    )
    async with rt.db.session() as s:
        candidates = list((await s.execute(q)).all())
    created: list[str] = []
    for person_id, birth_date in candidates:
        if not rules.reached_age(birth_date, age, period):
            continue  # the SQL cut is by month; the rule has the last word
        async with rt.uow() as uow:
            honored = await enrolling.certificate_issue_month(
                uow.session, ONLY_CHILD_HONOR, person_id
            )
            if honored is None:
                continue  # linked to the certificate's child, but not one of its holders
            enrollment = await enrolling.found(
                uow,
                program,
                person_id,
                payee_id=person_id,
                source="age_sweep",
                source_ref=person_id,
                starts_on=as_of,
                # The certificate is the fact that makes the family eligible: nothing is owed
                # for months before it was issued, however long ago the 60th birthday was.
                not_before=honored,
                as_of=period,
            )
            if enrollment is None:
                continue
            try:
                await uow.commit()
            except IntegrityError:
                # A replica's sweep founded it first: the partial unique index said so.
                await uow.rollback()
                continue
            created.append(enrollment.id)
    return created


async def _age_outs(rt: Runtime, period: Period) -> list[str]:
    q = (
        select(Enrollment.id, Enrollment.pays_until)
        .where(
            Enrollment.status == "active",
            Enrollment.pays_until.is_not(None),  # type: ignore[union-attr]
            Enrollment.pays_until < str(period),  # type: ignore[operator]
        )
        .order_by(Enrollment.id)
    )
    async with rt.db.session() as s:
        candidates = list((await s.execute(q)).all())
    ended: list[str] = []
    for enrollment_id, pays_until in candidates:
        last = Period.parse(pays_until)
        if not rules.aged_out(last, period):
            continue
        async with rt.uow() as uow:
            if await enrolling.end(uow, enrollment_id, rules.ending("age_out", last)):
                await uow.commit()
                ended.append(enrollment_id)
    return ended
