"""The registry's bulk exports for the county health bureau (shared/exports.py, docs/exports.md):
residents and certificates of the caller's region, a keyset page at a time."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy import select

from services.registry.api.access import Caller
from services.registry.models import ID_CONTEXT, PHONE_CONTEXT, Certificate, Person
from shared.auth import Principal, Role
from shared.crypto import FieldCipher, mask_id_number, mask_phone
from shared.exports import (
    DEFAULT_LIMIT,
    EXPORT_RESPONSES,
    Cursor,
    Export,
    ExportColumn,
    Format,
    Limit,
    RegionPrefix,
    UpdatedSince,
    export_region,
    export_response,
    keyset_page,
)
from shared.pagination import decode_cursor
from shared.service import RuntimeDep

router = APIRouter(prefix="/exports", tags=["exports"])

# Stable column sets: add at the end only (shared/exports.py).
PERSON_COLUMNS = (
    ExportColumn("id", "Person id (UUID); rows are ordered by it"),
    ExportColumn("name", "Name (姓名)"),
    ExportColumn("sex", "female | male"),
    ExportColumn("birth_date", "Date of birth, YYYY-MM-DD"),
    ExportColumn(
        "id_number", "Resident ID number: full for admin, masked for other roles; empty if none"
    ),
    ExportColumn("phone", "Phone, masked (`138****8000`) for every role; empty if none"),
    ExportColumn("region_code", "12-digit village division code"),
    ExportColumn("residency", "registered (户籍) | floating (流动)"),
    ExportColumn("household_type", "rural | urban"),
    ExportColumn("marital_status", "single | married | divorced | widowed | unknown"),
    ExportColumn("died_on", "Date of death, empty while alive"),
    ExportColumn("created_at", "Registered at (UTC, ISO 8601)"),
    ExportColumn("updated_at", "Last changed at (UTC, ISO 8601)"),
    ExportColumn("version", "Record version, raised by every change"),
)

CERTIFICATE_COLUMNS = (
    ExportColumn("id", "Certificate id (UUID); rows are ordered by it"),
    ExportColumn("certificate_no", "Certificate number"),
    ExportColumn("type", "Certificate type code (see GET /api/v1/certificate-types)"),
    ExportColumn("holder_ids", "Person ids of the holders (JSON array)"),
    ExportColumn("child_id", "Person id of the child it concerns, if any"),
    ExportColumn("region_code", "12-digit village division code"),
    ExportColumn("issued_on", "Issue date"),
    ExportColumn("valid_until", "Last valid day, empty if open-ended"),
    ExportColumn("status", "valid | revoked"),
    ExportColumn("revoked_on", "Revocation date, if revoked"),
    ExportColumn("collected_at", "Handed over at (UTC), empty if not yet collected"),
    ExportColumn("collected_via", "office | agent | download"),
    ExportColumn("created_at", "Recorded at (UTC)"),
)

PERSONS = Export(
    route="/api/v1/exports/persons",
    rows="one resident registered in the region, ordered by `id`",
    masking="`id_number` in full for `admin` only, masked for the other roles; `phone` masked "
    "for every role",
    columns=PERSON_COLUMNS,
    updated_since=True,
)
CERTIFICATES = Export(
    route="/api/v1/exports/certificates",
    rows="one certificate issued in the region (valid or revoked), ordered by `id`; the "
    "revocation's free-text reason is left out (minimum necessary)",
    masking="none needed: holders are named by person id only",
    columns=CERTIFICATE_COLUMNS,
)
EXPORTS = (PERSONS, CERTIFICATES)


def _person_row(p: Person, cipher: FieldCipher, principal: Principal) -> dict[str, Any]:
    id_number = None
    if p.id_number_enc:
        full = cipher.decrypt(p.id_number_enc, context=ID_CONTEXT)
        id_number = full if principal.role is Role.admin else mask_id_number(full)
    phone = None
    if p.phone_enc:
        phone = mask_phone(cipher.decrypt(p.phone_enc, context=PHONE_CONTEXT))
    return {
        "id": p.id,
        "name": p.name,
        "sex": p.sex,
        "birth_date": p.birth_date,
        "id_number": id_number,
        "phone": phone,
        "region_code": p.region_code,
        "residency": p.residency,
        "household_type": p.household_type,
        "marital_status": p.marital_status,
        "died_on": p.died_on,
        "created_at": p.created_at,
        "updated_at": p.updated_at,
        "version": p.version,
    }


@router.get(
    "/persons",
    summary="Export the residents of your region (JSON lines or CSV)",
    response_class=Response,
    responses=EXPORT_RESPONSES,
)
async def export_persons(
    request: Request,
    rt: RuntimeDep,
    principal: Caller,
    format: Format = "jsonl",
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
    region: RegionPrefix = None,
    updated_since: UpdatedSince = None,
) -> Response:
    prefix = export_region(principal, region)
    q = select(Person).where(Person.region_code.startswith(prefix))
    if updated_since is not None:
        q = q.where(Person.updated_at >= updated_since)
    after = decode_cursor(cursor, 1)
    if after:
        q = q.where(Person.id > after[0])
    # Rows are read out before the unit of work ends (its rollback expires them).
    async with rt.uow() as uow:
        found = (await uow.session.scalars(q.order_by(Person.id).limit(limit + 1))).all()
        page, next_cursor = keyset_page(found, limit, lambda p: (p.id,))
        rows = [_person_row(p, rt.cipher, principal) for p in page]
    return export_response(rows, PERSON_COLUMNS, format, next_cursor, request=request)


@router.get(
    "/certificates",
    summary="Export the certificates of your region (JSON lines or CSV)",
    response_class=Response,
    responses=EXPORT_RESPONSES,
)
async def export_certificates(
    request: Request,
    rt: RuntimeDep,
    principal: Caller,
    format: Format = "jsonl",
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
    region: RegionPrefix = None,
) -> Response:
    prefix = export_region(principal, region)
    q = select(Certificate).where(Certificate.region_code.startswith(prefix))
    after = decode_cursor(cursor, 1)
    if after:
        q = q.where(Certificate.id > after[0])
    async with rt.uow() as uow:
        found = (await uow.session.scalars(q.order_by(Certificate.id).limit(limit + 1))).all()
        page, next_cursor = keyset_page(found, limit, lambda c: (c.id,))
        rows = [{c.name: getattr(cert, c.name) for c in CERTIFICATE_COLUMNS} for cert in page]
    return export_response(rows, CERTIFICATE_COLUMNS, format, next_cursor, request=request)
