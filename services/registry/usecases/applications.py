"""Certificate applications (证件申请): submission, materials, review, issue, revocation."""

from __future__ import annotations

import secrets
import uuid
from datetime import date

from sqlalchemy import and_, or_, select, update

from services.registry.api.schemas import (
    ActionOut,
    ApplicationIn,
    ApplicationOut,
    CertificateOut,
    CollectIn,
    MaterialsIn,
    MissingMaterial,
    ReviewIn,
    RevokeIn,
)
from services.registry.domain import applications as rules
from services.registry.domain.workdays import add_working_days
from services.registry.events import (
    ApplicationDecided,
    ApplicationMaterialsRequested,
    CertificateIssued,
    CertificateRevoked,
)
from services.registry.models import (
    Application,
    ApplicationAction,
    Certificate,
    CertificateSequence,
    Person,
)
from services.registry.usecases.common import (
    catalogue,
    fallback_holidays,
    require_person_access,
)
from shared.auth import Principal, Role
from shared.concurrency import Expected, versioned_update
from shared.db import dialect_insert, utcnow
from shared.errors import Problem, not_found
from shared.events.outbox import UnitOfWork
from shared.pagination import Page, cursor_date, decode_cursor, encode_cursor

# Open on the statutory clock: the time limit runs once the materials are complete (受理).
ON_THE_CLOCK = (rules.Status.submitted.value, rules.Status.in_review.value)


def application_out(
    app: Application,
    ctype: rules.CertificateType,
    today: date,
    certificate_no: str | None = None,
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
        overdue=app.status in ON_THE_CLOCK and app.due_date < today,
        submitted_via=app.submitted_via,  # type: ignore[arg-type]
        submitted_by_role=app.submitted_by_role,
        version=app.version,
        missing_materials=[
            MissingMaterial(code=m.code, name=m.name) for m in ctype.missing_materials(provided)
        ],
        certificate_no=certificate_no,
    )


def _due_date(ctype: rules.CertificateType, accepted_on: date) -> date:
    return add_working_days(accepted_on, ctype.time_limit_working_days, fallback_holidays())


def _log(
    uow: UnitOfWork,
    app: Application,
    action: str,
    principal: Principal,
    to_status: str,
    *,
    from_status: str | None = None,
    level: str | None = None,
    comment: str | None = None,
) -> None:
    uow.session.add(
        ApplicationAction(
            application_id=app.id,
            action=action,
            actor=principal.sub,
            actor_role=principal.role.value,
            level=level,
            from_status=from_status,
            to_status=to_status,
            comment=comment,
        )
    )


def _materials_requested(uow: UnitOfWork, app: Application, missing: list[rules.Material]) -> None:
    uow.publish(
        ApplicationMaterialsRequested(
            application_id=app.id,
            application_no=app.application_no,
            certificate_type=app.type,
            certificate_type_name=catalogue()[app.type].name,
            applicant_id=app.applicant_id,
            submitted_by=app.submitted_by,
            missing=[{"code": m.code, "name": m.name} for m in missing],
            region_code=app.region_code,
        ),
        subject=app.id,
    )


async def _guarded_update(
    uow: UnitOfWork, app: Application, expected: Expected, **values: object
) -> None:
    """Write only if nobody moved the application since ``expected``: one of two racers wins."""
    if not await versioned_update(uow.session, Application, app.id, expected=expected, **values):
        raise expected.conflict()  # a racer won: 412 for If-Match, 409 for a body version


async def _load(uow: UnitOfWork, application_id: str) -> Application:
    app = await uow.session.get(Application, application_id)
    if app is None:
        raise not_found("申请", "Application")
    return app


# -- submission and materials -------------------------------------------------------------------


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
    submitted = uow.clock.today()
    app = Application(
        id=str(uuid.uuid4()),
        application_no=f"SQ{submitted:%Y%m%d}{secrets.token_hex(4).upper()}",
        type=ctype.code,
        applicant_id=applicant.id,
        subjects=body.subjects.model_dump(exclude_none=True),
        materials=[m.model_dump() for m in body.materials],
        status=status,
        region_code=applicant.region_code,
        due_date=_due_date(ctype, submitted),
        submitted_by=principal.sub,
        submitted_by_role=principal.role.value,
        submitted_via="self" if principal.role is Role.resident else "agent",
    )
    uow.session.add(app)
    _log(uow, app, "submit", principal, status)
    if missing:
        _materials_requested(uow, app, missing)
    return 201, application_out(app, ctype, submitted)


async def supplement_materials(
    uow: UnitOfWork,
    application_id: str,
    body: MaterialsIn,
    expected: Expected,
    principal: Principal,
) -> ApplicationOut:
    """Add what the notice asked for, or what a return asked to fix; the review resumes."""
    app = await _load(uow, application_id)
    applicant = await uow.session.get(Person, app.applicant_id)
    assert applicant is not None  # foreign key
    require_person_access(principal, applicant)
    if app.version != expected.version:
        raise expected.conflict()
    if app.status not in (rules.Status.materials_required, rules.Status.returned):
        raise Problem(
            409,
            "materials_not_expected",
            f"当前状态（{app.status}）不需要补充材料",
            f"No materials awaited in status {app.status}",
        )
    ctype = catalogue()[app.type]
    merged = {m["code"]: m for m in app.materials} | {
        m.code: m.model_dump() for m in body.materials
    }
    missing = ctype.missing_materials(set(merged))
    values: dict[str, object] = {"materials": list(merged.values())}
    if missing:
        status = rules.Status(app.status)
    elif app.status == rules.Status.materials_required:
        # Complete: the application is accepted (受理) today and the time limit starts now.
        status = rules.Status.submitted
        values["due_date"] = _due_date(ctype, uow.clock.today())
    else:  # returned: back to the level that returned it
        status = rules.Status.submitted if app.level_index == 0 else rules.Status.in_review
    values["status"] = status.value
    await _guarded_update(uow, app, expected, **values)
    _log(uow, app, "supplement", principal, status.value, from_status=app.status)
    await uow.session.refresh(app)
    if missing:
        _materials_requested(uow, app, missing)
    return application_out(app, ctype, uow.clock.today())


# -- review, issue, revocation --------------------------------------------------------------------


async def review_application(
    uow: UnitOfWork,
    application_id: str,
    body: ReviewIn,
    expected: Expected,
    principal: Principal,
) -> ApplicationOut:
    app = await _load(uow, application_id)
    principal.require_region(app.region_code)
    if app.version != expected.version:
        raise expected.conflict()
    if body.decision in ("return", "reject") and not (body.comment or "").strip():
        raise Problem(
            422,
            "comment_required",
            "退回或不予批准时须写明理由",
            "Returning or rejecting needs a comment saying why",
            errors=[{"field": "comment", "message": "请填写理由"}],
        )
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
    await _guarded_update(
        uow, app, expected, status=outcome.status.value, level_index=outcome.level_index
    )
    _log(
        uow,
        app,
        body.decision,
        principal,
        outcome.status.value,
        from_status=app.status,
        level=level,
        comment=body.comment,
    )
    certificate_no = None
    await uow.session.refresh(app)
    if outcome.issue_certificate:
        certificate_no = await _issue_certificate(uow, app, ctype)
    uow.publish(
        ApplicationDecided(
            application_id=app.id,
            application_no=app.application_no,
            certificate_type=app.type,
            certificate_type_name=ctype.name,
            applicant_id=app.applicant_id,
            submitted_by=app.submitted_by,
            decision=body.decision,
            decision_name=rules.DECISIONS_ZH[body.decision],
            level=level,
            status=app.status,
            comment=body.comment,
            decided_by_role=principal.role.value,
            region_code=app.region_code,
        ),
        subject=app.id,
    )
    return application_out(app, ctype, uow.clock.today(), certificate_no)


async def _next_sequence(uow: UnitOfWork, county_code: str, year: int) -> int:
    """Take the next number atomically; a concurrent issuer waits on the row, never shares it."""
    await uow.session.execute(
        dialect_insert(uow.session, CertificateSequence)
        .values(county_code=county_code, year=year, last=0)
        .on_conflict_do_nothing()
    )
    seq = CertificateSequence.__table__
    result = await uow.session.execute(
        update(seq)
        .where(seq.c.county_code == county_code, seq.c.year == year)
        .values(last=seq.c.last + 1)
        .returning(seq.c.last)
    )
    return int(result.scalar_one())


async def _issue_certificate(
    uow: UnitOfWork, app: Application, ctype: rules.CertificateType
) -> str:
    issued_on = uow.clock.today()
    county = app.region_code[:6]
    number = rules.certificate_number(
        county, issued_on.year, await _next_sequence(uow, county, issued_on.year)
    )
    child_id = app.subjects.get("child_id")
    child = await uow.session.get(Person, child_id) if child_id else None
    cert = Certificate(
        id=str(uuid.uuid4()),
        certificate_no=number,
        application_id=app.id,
        type=app.type,
        holder_ids=[
            app.applicant_id,
            *([app.subjects["spouse_id"]] if app.subjects.get("spouse_id") else []),
        ],
        child_id=child_id,
        region_code=app.region_code,
        issued_on=issued_on,
        valid_until=rules.valid_until(issued_on, ctype.validity_years),
    )
    uow.session.add(cert)
    uow.publish(
        CertificateIssued(
            certificate_id=cert.id,
            certificate_no=cert.certificate_no,
            certificate_type=cert.type,
            certificate_type_name=ctype.name,
            application_id=app.id,
            holder_ids=cert.holder_ids,
            child_id=cert.child_id,
            child_birth_date=child.birth_date if child else None,
            region_code=cert.region_code,
            issued_on=issued_on,
            valid_until=cert.valid_until,
            submitted_by=app.submitted_by,
        ),
        subject=cert.id,
    )
    return cert.certificate_no


def certificate_out(cert: Certificate, key: bytes) -> CertificateOut:
    return CertificateOut(
        certificate_no=cert.certificate_no,
        type=cert.type,
        holder_ids=cert.holder_ids,
        child_id=cert.child_id,
        region_code=cert.region_code,
        issued_on=cert.issued_on,
        valid_until=cert.valid_until,
        status=cert.status,
        revoked_on=cert.revoked_on,
        revoke_reason=cert.revoke_reason,
        collected_at=cert.collected_at,
        collected_via=cert.collected_via,
        verification_code=rules.verification_code(key, cert.certificate_no),
    )


async def revoke_certificate(
    uow: UnitOfWork, certificate_no: str, body: RevokeIn, principal: Principal, key: bytes
) -> CertificateOut:
    cert = await _certificate(uow, certificate_no)
    principal.require_region(cert.region_code)
    revoked_on = uow.clock.today()
    # Guarded like every transition: of two revocations one wins.
    result = await uow.session.execute(
        update(Certificate)
        .where(Certificate.id == cert.id, Certificate.status == "valid")
        .values(status="revoked", revoked_on=revoked_on, revoke_reason=body.reason)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise Problem(409, "certificate_revoked")
    app = await _load(uow, cert.application_id)
    await _guarded_update(
        uow, app, Expected(app.version, via_header=False), status=rules.Status.revoked.value
    )
    _log(
        uow,
        app,
        "revoke",
        principal,
        rules.Status.revoked.value,
        from_status=app.status,
        comment=body.reason,
    )
    await uow.session.refresh(cert)
    uow.publish(
        CertificateRevoked(
            certificate_id=cert.id,
            certificate_no=cert.certificate_no,
            certificate_type=cert.type,
            certificate_type_name=catalogue()[cert.type].name,
            holder_ids=cert.holder_ids,
            region_code=cert.region_code,
            revoked_on=revoked_on,
            reason=body.reason,
        ),
        subject=cert.id,
    )
    return certificate_out(cert, key)


async def collect_certificate(
    uow: UnitOfWork, certificate_no: str, body: CollectIn, principal: Principal, key: bytes
) -> CertificateOut:
    """Record that the holder has the certificate (领取); the first collection is kept."""
    cert = await _certificate(uow, certificate_no)
    if principal.role is Role.resident:
        if principal.person_id not in cert.holder_ids or body.via != "download":
            raise Problem(
                403,
                "forbidden",
                "居民本人只能下载自己的证件",
                "A holder may only download their own",
            )
    else:
        principal.require_region(cert.region_code)
    if cert.status != "valid":
        raise Problem(409, "certificate_revoked")
    # Guarded: of two collections recorded at once, the first is kept and logged once.
    result = await uow.session.execute(
        update(Certificate)
        .where(Certificate.id == cert.id, Certificate.collected_at.is_(None))  # type: ignore[union-attr]
        .values(collected_at=utcnow(), collected_via=body.via)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount == 1:  # type: ignore[attr-defined]
        app = await _load(uow, cert.application_id)
        _log(uow, app, "collect", principal, app.status, from_status=app.status, comment=body.via)
    await uow.session.refresh(cert)
    return certificate_out(cert, key)


async def _certificate(uow: UnitOfWork, certificate_no: str) -> Certificate:
    cert = await uow.session.scalar(
        select(Certificate).where(Certificate.certificate_no == certificate_no)
    )
    if cert is None:
        raise not_found("证件", "Certificate")
    return cert


async def get_certificate(
    uow: UnitOfWork, certificate_no: str, principal: Principal, key: bytes
) -> CertificateOut:
    cert = await _certificate(uow, certificate_no)
    if principal.role is Role.resident:
        if principal.person_id not in cert.holder_ids:
            raise Problem(403, "forbidden", "只能查看本人的证件", "Residents see only their own")
    else:
        principal.require_region(cert.region_code)
    return certificate_out(cert, key)


# -- reading ----------------------------------------------------------------------------------


async def certificate_no_of(uow: UnitOfWork, application_id: str) -> str | None:
    return await uow.session.scalar(
        select(Certificate.certificate_no).where(Certificate.application_id == application_id)
    )


async def get_application(
    uow: UnitOfWork, application_id: str, principal: Principal
) -> tuple[ApplicationOut, list[ActionOut]]:
    app = await _load(uow, application_id)
    applicant = await uow.session.get(Person, app.applicant_id)
    assert applicant is not None  # foreign key
    require_person_access(principal, applicant)
    actions = (
        await uow.session.scalars(
            select(ApplicationAction)
            .where(ApplicationAction.application_id == app.id)
            .order_by(ApplicationAction.id)
        )
    ).all()
    history = [ActionOut.model_validate(a, from_attributes=True) for a in actions]
    number = await certificate_no_of(uow, app.id)
    out = application_out(app, catalogue()[app.type], uow.clock.today(), number)
    return out, history


async def list_applications(
    uow: UnitOfWork,
    principal: Principal,
    *,
    status: str | None,
    region: str | None,
    overdue: bool | None,
    type_: str | None,
    limit: int,
    cursor: str | None,
) -> Page[ApplicationOut]:
    """An officer's queue, soonest due first."""
    region = region or principal.region
    principal.require_region(region)
    today = uow.clock.today()
    a = Application
    q = select(a).where(a.region_code.startswith(region))
    if status:
        q = q.where(a.status == status)
    if type_:
        q = q.where(a.type == type_)
    if overdue is True:
        q = q.where(a.status.in_(ON_THE_CLOCK), a.due_date < today)
    elif overdue is False:
        q = q.where(or_(a.status.not_in(ON_THE_CLOCK), a.due_date >= today))
    after = decode_cursor(cursor, 2)
    if after:
        due = cursor_date(after[0])
        q = q.where(or_(a.due_date > due, and_(a.due_date == due, a.id > after[1])))
    rows = list((await uow.session.scalars(q.order_by(a.due_date, a.id).limit(limit + 1))).all())
    page = rows[:limit]
    numbers = dict(
        (
            await uow.session.execute(
                select(Certificate.application_id, Certificate.certificate_no).where(
                    Certificate.application_id.in_([r.id for r in page])  # type: ignore[attr-defined]
                )
            )
        ).all()
    )
    cat = catalogue()
    items = [application_out(r, cat[r.type], today, numbers.get(r.id)) for r in page]
    last = rows[limit - 1] if len(rows) > limit else None
    return Page[ApplicationOut](
        items=items, next_cursor=encode_cursor(last.due_date.isoformat(), last.id) if last else None
    )
