"""Births and deaths the county health bureau reports (县卫健局), idempotent by its reference.

The first report of an ``external_ref`` claims it (a row in ``hospital_reports``, unique) in
the transaction that records the birth or death; the same report again answers the stored
result, and a different body under the same reference is refused. Two identical reports at
the same moment: the second waits on the unique reference, then answers the first's result.
"""

from __future__ import annotations

import json

from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from services.registry.api.family_schemas import (
    BirthIn,
    DeathIn,
    HospitalBirthIn,
    HospitalDeathIn,
    HospitalReportOut,
)
from services.registry.models import ID_CONTEXT, HospitalReport, Person
from services.registry.usecases.life_events import record_death, register_birth
from shared.auth import Principal
from shared.crypto import FieldCipher
from shared.errors import Problem
from shared.events.outbox import UnitOfWork

BODY_CONTEXT = "registry.hospital_reports.body"


def request_digest(cipher: FieldCipher, body: HospitalBirthIn | HospitalDeathIn) -> str:
    """Keyed digest of the report's meaning (field order and spacing do not matter)."""
    canonical = json.dumps(
        body.model_dump(mode="json"), sort_keys=True, ensure_ascii=False, separators=(",", ":")
    )
    return cipher.blind_index(canonical, context=BODY_CONTEXT)


async def _person_by(
    uow: UnitOfWork, cipher: FieldCipher, person_id: str | None, id_number: str | None, field: str
) -> str | None:
    """A registry person id, from the id itself or looked up by ID number (blind index)."""
    if id_number is None:
        return person_id
    index = cipher.blind_index(id_number, context=ID_CONTEXT)
    found = await uow.session.scalar(select(Person.id).where(Person.id_number_index == index))
    if found is None:
        raise Problem(
            422,
            "unknown_person",
            f"{field} 对应的居民未登记",
            f"{field}: no person with this ID number",
            errors=[{"field": field, "message": "居民未登记"}],
        )
    return found


async def _apply(
    uow: UnitOfWork,
    cipher: FieldCipher,
    body: HospitalBirthIn | HospitalDeathIn,
    principal: Principal,
) -> HospitalReportOut:
    if isinstance(body, HospitalBirthIn):
        mother_id = await _person_by(
            uow, cipher, body.mother_id, body.mother_id_number, "mother_id_number"
        )
        assert mother_id is not None  # one of the two is required
        birth = BirthIn(
            mother_id=mother_id,
            father_id=await _person_by(
                uow, cipher, body.father_id, body.father_id_number, "father_id_number"
            ),
            child=body.child,
        )
        _, born = await register_birth(uow, cipher, birth, principal, source="hospital")
        return HospitalReportOut(
            external_ref=body.external_ref,
            kind="birth",
            person_id=born.child.id,
            family_id=born.family_id,
            birth=born,
        )
    person_id = await _person_by(uow, cipher, body.person_id, body.id_number, "id_number")
    assert person_id is not None  # one of the two is required
    person = await uow.session.get(Person, person_id)
    if person is None:
        raise Problem(
            422,
            "unknown_person",
            "person_id 对应的居民不存在",
            "person_id: person not found",
            errors=[{"field": "person_id", "message": "居民不存在"}],
        )
    death = DeathIn(
        date_of_death=body.date_of_death, cause=body.cause, reported_by=body.reported_by
    )
    _, died = await record_death(uow, cipher, person, death, principal, source="hospital")
    return HospitalReportOut(
        external_ref=body.external_ref, kind="death", person_id=person.id, death=died
    )


async def receive_report(
    uow: UnitOfWork,
    cipher: FieldCipher,
    body: HospitalBirthIn | HospitalDeathIn,
    principal: Principal,
) -> JSONResponse:
    digest = request_digest(cipher, body)
    async with uow:
        stored = await _stored(uow, body.external_ref)
        if stored is not None:
            return _replay(stored, digest)
        try:
            report = HospitalReport(
                external_ref=body.external_ref,
                kind=body.kind,
                request_hash=digest,
                received_by=principal.sub,
            )
            uow.session.add(report)
            await uow.flush()  # claim the reference first: a concurrent twin waits here
            out = await _apply(uow, cipher, body, principal)
            payload = jsonable_encoder(out)
            report.person_id = out.person_id
            report.family_id = out.family_id
            report.status_code = 201
            report.response = payload
            await uow.commit()
        except (IntegrityError, Problem):
            # A twin of this report may have committed first: answer what it answered.
            await uow.rollback()
            stored = await _stored(uow, body.external_ref)
            if stored is None:
                raise
            return _replay(stored, digest)
    return JSONResponse(payload, status_code=201)


async def _stored(uow: UnitOfWork, external_ref: str) -> HospitalReport | None:
    return await uow.session.scalar(
        select(HospitalReport)
        .where(HospitalReport.external_ref == external_ref)
        .execution_options(populate_existing=True)
    )


def _replay(stored: HospitalReport, digest: str) -> JSONResponse:
    if stored.request_hash != digest:
        raise Problem(
            409,
            "external_ref_conflict",
            f"外部编号 {stored.external_ref} 已用于内容不同的报告",
            f"External reference {stored.external_ref} was used for a different report",
        )
    return JSONResponse(stored.response, status_code=200, headers={"Idempotent-Replayed": "true"})
