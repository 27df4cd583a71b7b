from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel
from sqlalchemy import select

from services.benefits.models import Enrollment
from shared.auth import Principal, Role, require_roles
from shared.errors import Problem
from shared.pagination import MAX_LIMIT, Page, decode_cursor, encode_cursor
from shared.service import RuntimeDep

router = APIRouter(prefix="/enrollments", tags=["enrollments"])


class EnrollmentOut(BaseModel):
    id: str
    program: str
    person_id: str
    status: str
    region_code: str
    starts_on: date
    source: str
    source_ref: str
    ended_reason: str | None = None
    ends_after: str | None = None  # the last period paid, "YYYY-MM"


Reader = Annotated[
    Principal,
    Depends(
        require_roles(
            Role.resident,
            Role.village_worker,
            Role.township_officer,
            Role.county_officer,
            Role.admin,
        )
    ),
]


@router.get("", response_model=Page[EnrollmentOut], summary="Enrollments, by person or region")
async def list_enrollments(
    rt: RuntimeDep,
    principal: Reader,
    person_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
    cursor: str | None = None,
) -> Page[EnrollmentOut]:
    q = select(Enrollment).order_by(Enrollment.id).limit(limit + 1)
    if principal.role is Role.resident:
        if person_id is not None and person_id != principal.person_id:
            raise Problem(403, "forbidden", "只能查看本人的待遇", "Residents see only their own")
        person_id = principal.person_id
    elif principal.role is not Role.admin or principal.region:
        if not principal.region:
            raise Problem(403, "out_of_region", "令牌未指明辖区", "The token names no region")
        q = q.where(Enrollment.region_code.startswith(principal.region))
    if person_id is not None:
        q = q.where(Enrollment.person_id == person_id)
    after = decode_cursor(cursor, 1)
    if after:
        q = q.where(Enrollment.id > after[0])
    async with rt.db.session() as s:
        rows = list((await s.scalars(q)).all())
    items = [EnrollmentOut.model_validate(r, from_attributes=True) for r in rows[:limit]]
    return Page[EnrollmentOut](
        items=items, next_cursor=encode_cursor(items[-1].id) if len(rows) > limit else None
    )
