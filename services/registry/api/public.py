"""No login: progress by application number and phone ending; certificate verification."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from services.registry.api.schemas import ProgressOut, VerificationOut
from services.registry.usecases import public as usecases
from shared.ratelimit import RateLimiter
from shared.service import RuntimeDep

router = APIRouter(prefix="/public", tags=["public"])


def rate_limited(request: Request) -> None:
    """Guessing application numbers or codes is slowed to a few tries a minute per client."""
    state = request.app.state
    if not hasattr(state, "public_limiter"):
        state.public_limiter = RateLimiter(state.runtime.settings.public_rate_per_minute)
    state.public_limiter.check(request)


Limited = Depends(rate_limited)


@router.get(
    "/applications/{application_no}/progress",
    response_model=ProgressOut,
    dependencies=[Limited],
    summary="Progress of an application (no login)",
)
async def progress(
    application_no: str,
    phone_last4: Annotated[str, Query(pattern=r"^\d{4}$", description="Last 4 digits")],
    rt: RuntimeDep,
) -> ProgressOut:
    async with rt.uow() as uow:
        return await usecases.progress(uow, application_no, phone_last4)


@router.get(
    "/certificates/{certificate_no}/verification",
    response_model=VerificationOut,
    dependencies=[Limited],
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
