from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from services.registry.api.access import PUBLIC_RESPONSES, Public
from services.registry.usecases.common import catalogue

# Open to anyone (政务公开), so rate-limited per client like every public route.
router = APIRouter(
    prefix="/certificate-types",
    tags=["catalogue"],
    dependencies=[Public],
    responses=PUBLIC_RESPONSES,
)


class MaterialOut(BaseModel):
    code: str
    name: str
    required: bool


class CertificateTypeOut(BaseModel):
    code: str
    name: str
    time_limit_working_days: int
    levels: list[str]
    materials: list[MaterialOut]
    fee_fen: int
    validity_years: int | None
    basis: str


@router.get(
    "",
    response_model=list[CertificateTypeOut],
    summary="The certificates this county offers (public, no login: 政务公开)",
)
async def list_certificate_types() -> list[CertificateTypeOut]:
    return [
        CertificateTypeOut(
            code=t.code,
            name=t.name,
            time_limit_working_days=t.time_limit_working_days,
            levels=list(t.levels),
            materials=[
                MaterialOut(code=m.code, name=m.name, required=m.required) for m in t.materials
            ],
            fee_fen=t.fee_fen,
            validity_years=t.validity_years,
            basis=t.basis,
        )
        for t in catalogue().values()
        if t.enabled
    ]
