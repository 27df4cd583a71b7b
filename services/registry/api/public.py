"""No login: progress by application number and phone ending; certificate verification.

Every route here is rate-limited per client (``access.Public``, on the router); the progress
query also locks an application number after too many wrong phone endings (``usecases.public``).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Query

from services.registry.api.access import PUBLIC_RESPONSES, Public
from services.registry.api.schemas import ProgressOut, VerificationOut
from services.registry.usecases import public as usecases
from shared.service import RuntimeDep

router = APIRouter(
    prefix="/public", tags=["public"], dependencies=[Public], responses=PUBLIC_RESPONSES
)


@router.get(
    "/applications/{application_no}/progress",
    response_model=ProgressOut,
    summary="Progress of an application (no login)",
)
async def progress(
    application_no: str,
    phone_last4: Annotated[str, Query(pattern=r"^\d{4}$", description="Last 4 digits")],
    rt: RuntimeDep,
) -> ProgressOut:
    lockout = usecases.Lockout(
        rt.settings.progress_lockout_failures,
        timedelta(seconds=rt.settings.progress_lockout_window_seconds),
    )
    async with rt.uow() as uow:
        return await usecases.progress(uow, rt.cipher, application_no, phone_last4, lockout)


@router.get(
    "/certificates/{certificate_no}/verification",
    response_model=VerificationOut,
    summary="Is this certificate genuine and valid? (no login)",
)
async def verify(
    certificate_no: str,
    code: Annotated[str, Query(min_length=16, max_length=16, description="Printed code")],
    rt: RuntimeDep,
) -> VerificationOut:
    async with rt.uow() as uow:
        return await usecases.verify_certificate(
            uow, rt.settings.certificate_signing_key.encode(), certificate_no, code
        )
