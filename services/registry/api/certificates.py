from __future__ import annotations

from fastapi import APIRouter

from services.registry.api.access import Caller
from services.registry.api.schemas import CertificateOut, CollectIn, RevokeIn
from services.registry.usecases import applications as usecases
from shared.service import RuntimeDep

router = APIRouter(prefix="/certificates", tags=["certificates"])


@router.get("/{certificate_no}", response_model=CertificateOut, summary="One certificate")
async def get_certificate(
    certificate_no: str,
    rt: RuntimeDep,
    principal: Caller,
) -> CertificateOut:
    async with rt.uow() as uow:
        return await usecases.get_certificate(
            uow, certificate_no, principal, rt.settings.certificate_signing_key.encode()
        )


@router.post(
    "/{certificate_no}/revoke",
    response_model=CertificateOut,
    summary="Revoke a certificate, with the reason; its enrollments end from the next period",
)
async def revoke_certificate(
    certificate_no: str, body: RevokeIn, rt: RuntimeDep, principal: Caller
) -> CertificateOut:
    async with rt.uow() as uow:
        out = await usecases.revoke_certificate(
            uow, certificate_no, body, principal, rt.settings.certificate_signing_key.encode()
        )
        await uow.commit()
        return out


@router.post(
    "/{certificate_no}/collect",
    response_model=CertificateOut,
    summary="Record that the holder has the certificate (office, agent or download)",
)
async def collect_certificate(
    certificate_no: str, body: CollectIn, rt: RuntimeDep, principal: Caller
) -> CertificateOut:
    async with rt.uow() as uow:
        out = await usecases.collect_certificate(
            uow, certificate_no, body, principal, rt.settings.certificate_signing_key.encode()
        )
        await uow.commit()
        return out
