"""Visits' bulk export for the county health bureau (shared/exports.py, docs/exports.md): the
visit records of the caller's region with their task's plan and step, a keyset page at a time.

Visit records are health data (PIPL sensitive personal information). The export carries no
free text at all (the place, the consent and next-step notes, a form's text fields and its
``notes`` may say anything about a person); the structured findings (the form's number,
integer, choice, boolean and date fields) go only to county officers and the admin, who
supervise the services' quality; the township officers and the bureau's system get the
visit's facts (when, which step, consent, next step) without them.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy import select

from services.visits.api.access import Caller
from services.visits.forms import forms
from services.visits.models import VISIT_FINDINGS, Task, VisitRecord
from services.visits.tasks import task_names
from shared.auth import Role
from shared.crypto import FieldCipher
from shared.exports import (
    DEFAULT_LIMIT,
    EXPORT_RESPONSES,
    Cursor,
    Export,
    ExportColumn,
    Format,
    Limit,
    RegionPrefix,
    export_region,
    export_response,
    keyset_page,
)
from shared.pagination import decode_cursor
from shared.service import RuntimeDep

router = APIRouter(prefix="/exports", tags=["exports"])

# The roles that receive the structured findings.
FINDINGS_ROLES = frozenset({Role.county_officer, Role.admin})

# Stable column set: add at the end only (shared/exports.py).
VISIT_COLUMNS = (
    ExportColumn("id", "Visit record id (UUID, from the worker's phone); rows are ordered by it"),
    ExportColumn("task_id", "The task the visit was made on"),
    ExportColumn("plan", "The task's plan code (see GET /api/v1/visit-plans)"),
    ExportColumn("step", "The task's step code within the plan"),
    ExportColumn("service", "The step's service code (its findings form)"),
    ExportColumn("occurrence", "0 for the step's first run; repeats count up"),
    ExportColumn("person_id", "The person visited"),
    ExportColumn("region_code", "12-digit village division code of the task"),
    ExportColumn("performer_role", "Role of the staff member who made the visit"),
    ExportColumn("performed_at", "Made at (UTC)"),
    ExportColumn("consent", "given | refused (知情选择)"),
    ExportColumn("next_step", "extra_visit | referral, if any"),
    ExportColumn("next_step_on", "Date of the next step, if any"),
    ExportColumn("next_task_id", "The task the next step created, if any"),
    ExportColumn(
        "findings",
        "Structured findings (JSON object of the form's non-text fields) for county_officer "
        "and admin; empty for the other roles",
    ),
    ExportColumn("created_at", "Recorded at (UTC)"),
)

VISITS = Export(
    route="/api/v1/exports/visits",
    rows="one visit record on a task of the region, ordered by `id`",
    masking="no free text for any role (place, notes, a form's text fields are left out); "
    "`findings` (structured fields only) for `county_officer` and `admin`, empty otherwise",
    columns=VISIT_COLUMNS,
)
EXPORTS = (VISITS,)


def structured_findings(cipher: FieldCipher, token: str, service: str) -> dict[str, Any] | None:
    """The findings' values of the form's non-text fields (a step without a form: none)."""
    form = forms().get(service)
    if form is None:
        return None
    findings = json.loads(cipher.decrypt(token, context=VISIT_FINDINGS))
    return {
        f.code: findings[f.code]
        for f in form.fields
        if f.type != "text" and findings.get(f.code) is not None
    }


def _visit_row(
    cipher: FieldCipher, visit: VisitRecord, task: Task, with_findings: bool
) -> dict[str, Any]:
    service = task_names(task)[2]
    return {
        "id": visit.id,
        "task_id": visit.task_id,
        "plan": task.plan,
        "step": task.step,
        "service": service,
        "occurrence": task.occurrence,
        "person_id": visit.person_id,
        "region_code": task.region_code,
        "performer_role": visit.performer_role,
        "performed_at": visit.performed_at,
        "consent": visit.consent,
        "next_step": visit.next_step,
        "next_step_on": visit.next_step_on,
        "next_task_id": visit.next_task_id,
        "findings": structured_findings(cipher, visit.findings_enc, service)
        if with_findings
        else None,
        "created_at": visit.created_at,
    }


@router.get(
    "/visits",
    summary="Export the visit records of your region (JSON lines or CSV)",
    response_class=Response,
    responses=EXPORT_RESPONSES,
)
async def export_visits(
    request: Request,
    rt: RuntimeDep,
    principal: Caller,
    format: Format = "jsonl",
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
    region: RegionPrefix = None,
) -> Response:
    prefix = export_region(principal, region)
    q = (
        select(VisitRecord, Task)
        .join(Task, Task.id == VisitRecord.task_id)
        .where(Task.region_code.startswith(prefix))
    )
    after = decode_cursor(cursor, 1)
    if after:
        q = q.where(VisitRecord.id > after[0])
    with_findings = principal.role in FINDINGS_ROLES
    # Rows are read out before the unit of work ends (its rollback expires them).
    async with rt.uow() as uow:
        found = (await uow.session.execute(q.order_by(VisitRecord.id).limit(limit + 1))).all()
        page, next_cursor = keyset_page(found, limit, lambda r: (r.VisitRecord.id,))
        rows = [_visit_row(rt.cipher, visit, task, with_findings) for visit, task in page]
    return export_response(rows, VISIT_COLUMNS, format, next_cursor, request=request)
