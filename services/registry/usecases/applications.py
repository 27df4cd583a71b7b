"""Certificate applications (证件申请): submission, review, issue."""

from __future__ import annotations

import secrets
import uuid

from sqlalchemy import select, update

from services.registry.api.schemas import (
    ApplicationIn,
    ApplicationOut,
    MissingMaterial,
    ReviewIn,
)
from services.registry.domain import applications as rules
from services.registry.domain.workdays import add_working_days
from services.registry.events import CertificateIssued
from services.registry.models import Application, ApplicationAction, Certificate, Person
from services.registry.usecases.common import (
    catalogue,
    fallback_holidays,
    require_person_access,
    today,
)
from shared.auth import Principal
from shared.db import utcnow
from shared.errors import Problem, not_found
from shared.events.outbox import UnitOfWork


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
    require_person_access(principal, applicant)
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
    require_person_access(principal, applicant)
    return application_out(app, catalogue()[app.type], await certificate_no_of(uow, app.id))
