"""Registry use cases: load, apply the domain rules, persist, announce (one unit of work)."""

from __future__ import annotations

import secrets
import tomllib
import uuid
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select, update

from services.registry.api.schemas import (
    ApplicationIn,
    ApplicationOut,
    MissingMaterial,
    PersonIn,
    PersonOut,
    ReviewIn,
)
from services.registry.domain import applications as rules
from services.registry.domain.identity import parse_id_number
from services.registry.domain.workdays import add_working_days
from services.registry.events import CertificateIssued, PersonRegistered
from services.registry.models import Application, ApplicationAction, Certificate, Person
from shared.auth import Principal, Role
from shared.crypto import FieldCipher, mask_id_number
from shared.db import utcnow
from shared.errors import Problem, not_found
from shared.events.outbox import UnitOfWork

CATALOGUE_FILE = Path(__file__).with_name("certificate_types.toml")
_ID_CONTEXT = "registry.persons.id_number"
_SHANGHAI = ZoneInfo("Asia/Shanghai")


@lru_cache(maxsize=1)
def _catalogue_file() -> dict[str, Any]:
    return tomllib.loads(CATALOGUE_FILE.read_text("utf-8"))


@lru_cache(maxsize=1)
def catalogue() -> dict[str, rules.CertificateType]:
    return rules.parse_catalogue(_catalogue_file())


@lru_cache(maxsize=1)
def fallback_holidays() -> frozenset[date]:
    """Holidays for years the official calendar library does not cover yet."""
    return frozenset(date.fromisoformat(d) for d in _catalogue_file().get("fallback_holidays", []))


def today() -> date:
    """Business days are counted in Asia/Shanghai."""
    return utcnow().astimezone(_SHANGHAI).date()


# -- persons ------------------------------------------------------------------------------


def person_out(person: Person, cipher: FieldCipher, principal: Principal) -> PersonOut:
    id_number = cipher.decrypt(person.id_number_enc, context=_ID_CONTEXT)
    sees_full = principal.role is Role.admin or principal.person_id == person.id
    return PersonOut(
        id=person.id,
        id_number=id_number if sees_full else mask_id_number(id_number),
        name=person.name,
        sex=person.sex,  # type: ignore[arg-type]
        birth_date=person.birth_date,
        phone=person.phone,
        region_code=person.region_code,
        residency=person.residency,
        household_type=person.household_type,
        version=person.version,
    )


async def register_person(
    uow: UnitOfWork, cipher: FieldCipher, body: PersonIn, principal: Principal
) -> tuple[int, PersonOut]:
    principal.require_region(body.region_code)
    facts = parse_id_number(body.id_number, today=today())
    index = cipher.blind_index(facts.id_number, context=_ID_CONTEXT)
    exists = await uow.session.scalar(select(Person.id).where(Person.id_number_index == index))
    if exists:
        raise Problem(
            409, "duplicate_id_number", "该身份证号已登记", "This ID number is already registered"
        )
    person = Person(
        id=str(uuid.uuid4()),
        id_number_enc=cipher.encrypt(facts.id_number, context=_ID_CONTEXT),
        id_number_index=index,
        name=body.name,
        sex=facts.sex,
        birth_date=facts.birth_date,
        phone=body.phone,
        region_code=body.region_code,
        residency=body.residency,
        household_type=body.household_type,
        created_by=principal.sub,
    )
    uow.session.add(person)
    uow.publish(
        PersonRegistered(
            person_id=person.id,
            name=person.name,
            sex=facts.sex,
            birth_date=facts.birth_date,
            region_code=person.region_code,
            residency=person.residency,
            household_type=person.household_type,
            phone=person.phone,
        ),
        subject=person.id,
    )
    return 201, person_out(person, cipher, principal)


async def get_person(
    uow: UnitOfWork, cipher: FieldCipher, person_id: str, principal: Principal
) -> PersonOut:
    person = await uow.session.get(Person, person_id)
    if person is None:
        raise not_found("居民", "Person")
    _require_person_access(principal, person)
    return person_out(person, cipher, principal)


def _require_person_access(principal: Principal, person: Person) -> None:
    if principal.role is Role.resident:
        if principal.person_id != person.id:
            raise Problem(
                403, "forbidden", "只能查看本人的记录", "Residents see only their own record"
            )
        return
    principal.require_region(person.region_code)


# -- applications -------------------------------------------------------------------------


def application_out(
    app: Application, ctype: rules.CertificateType, certificate_no: str | None = None
) -> ApplicationOut:
    provided = {m["code"] for m in app.materials}
    return ApplicationOut(
        id=app.id,
        application_no=app.application_no,
        type=app.type,
        applicant_id=app.applicant_id,
        status=app.status,
        level=rules.waiting_level(rules.Status(app.status), app.level_index, ctype.levels),
        due_date=app.due_date,
        version=app.version,
        missing_materials=[
            MissingMaterial(code=m.code, name=m.name) for m in ctype.missing_materials(provided)
        ],
        certificate_no=certificate_no,
    )


async def submit_application(
    uow: UnitOfWork, body: ApplicationIn, principal: Principal
) -> tuple[int, ApplicationOut]:
    ctype = catalogue().get(body.type)
    if ctype is None or not ctype.enabled:
        raise Problem(
            422,
            "unknown_certificate_type",
            f"不受理的证件类型：{body.type}",
            f"Certificate type not offered: {body.type}",
            errors=[{"field": "type", "message": "不受理的证件类型"}],
        )
    applicant = await uow.session.get(Person, body.applicant_id)
    if applicant is None:
        raise Problem(
            422,
            "unknown_person",
            "申请人不存在",
            "Applicant not found",
            errors=[{"field": "applicant_id", "message": "申请人不存在"}],
        )
    _require_person_access(principal, applicant)
    for field, pid in body.subjects.model_dump().items():
        if pid is not None and await uow.session.get(Person, pid) is None:
            raise Problem(
                422,
                "unknown_person",
                f"{field} 对应的居民不存在",
                f"{field}: person not found",
                errors=[{"field": f"subjects.{field}", "message": "居民不存在"}],
            )
    provided = {m.code for m in body.materials}
    missing = ctype.missing_materials(provided)
    status = rules.Status.materials_required if missing else rules.Status.submitted
    submitted = today()
    app = Application(
        id=str(uuid.uuid4()),
        application_no=f"SQ{submitted:%Y%m%d}{secrets.token_hex(4).upper()}",
        type=ctype.code,
        applicant_id=applicant.id,
        subjects=body.subjects.model_dump(exclude_none=True),
        materials=[m.model_dump() for m in body.materials],
        status=status,
        region_code=applicant.region_code,
        due_date=add_working_days(submitted, ctype.time_limit_working_days, fallback_holidays()),
        submitted_by=principal.sub,
        submitted_by_role=principal.role.value,
    )
    uow.session.add(app)
    uow.session.add(
        ApplicationAction(
            application_id=app.id,
            action="submit",
            actor=principal.sub,
            actor_role=principal.role.value,
            to_status=status,
        )
    )
    return 201, application_out(app, ctype)


async def review_application(
    uow: UnitOfWork, application_id: str, body: ReviewIn, principal: Principal
) -> ApplicationOut:
    app = await uow.session.get(Application, application_id)
    if app is None:
        raise not_found("申请", "Application")
    principal.require_region(app.region_code)
    if app.version != body.version:
        raise Problem(409, "version_conflict")
    ctype = catalogue()[app.type]
    try:
        outcome = rules.review(
            rules.Status(app.status),
            app.level_index,
            ctype.levels,
            rules.Decision(body.decision),
            principal.role,
        )
    except rules.ReviewRefused as e:
        status = 403 if e.code == "wrong_review_level" else 409
        raise Problem(status, e.code, e.zh, e.en) from e
    level = ctype.levels[app.level_index]
    # Guarded write: two officers approving at once -> exactly one wins, the other gets 409.
    result = await uow.session.execute(
        update(Application)
        .where(Application.id == app.id, Application.version == body.version)
        .values(
            status=outcome.status.value,
            level_index=outcome.level_index,
            version=Application.version + 1,
            updated_at=utcnow(),
        )
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise Problem(409, "version_conflict")
    uow.session.add(
        ApplicationAction(
            application_id=app.id,
            action=body.decision,
            actor=principal.sub,
            actor_role=principal.role.value,
            level=level,
            from_status=app.status,
            to_status=outcome.status.value,
            comment=body.comment,
        )
    )
    certificate_no = None
    if outcome.issue_certificate:
        certificate_no = await _issue_certificate(uow, app, ctype)
    await uow.session.refresh(app)
    return application_out(app, ctype, certificate_no)


async def _issue_certificate(
    uow: UnitOfWork, app: Application, ctype: rules.CertificateType
) -> str:
    issued_on = today()
    cert = Certificate(
        id=str(uuid.uuid4()),
        certificate_no=f"{ctype.number_prefix}{app.region_code[:6]}{issued_on:%Y}{secrets.token_hex(4).upper()}",
        application_id=app.id,
        type=app.type,
        holder_ids=[
            app.applicant_id,
            *([app.subjects["spouse_id"]] if app.subjects.get("spouse_id") else []),
        ],
        child_id=app.subjects.get("child_id"),
        region_code=app.region_code,
        issued_on=issued_on,
    )
    uow.session.add(cert)
    uow.publish(
        CertificateIssued(
            certificate_id=cert.id,
            certificate_no=cert.certificate_no,
            certificate_type=cert.type,
            application_id=app.id,
            holder_ids=cert.holder_ids,
            child_id=cert.child_id,
            region_code=cert.region_code,
            issued_on=issued_on,
            submitted_by=app.submitted_by,
        ),
        subject=cert.id,
    )
    return cert.certificate_no


async def certificate_no_of(uow: UnitOfWork, application_id: str) -> str | None:
    return await uow.session.scalar(
        select(Certificate.certificate_no).where(Certificate.application_id == application_id)
    )


async def get_application(
    uow: UnitOfWork, application_id: str, principal: Principal
) -> ApplicationOut:
    app = await uow.session.get(Application, application_id)
    if app is None:
        raise not_found("申请", "Application")
    applicant = await uow.session.get(Person, app.applicant_id)
    assert applicant is not None  # foreign key
    _require_person_access(principal, applicant)
    return application_out(app, catalogue()[app.type], await certificate_no_of(uow, app.id))
