"""Inbound integration of the county health bureau (县卫健局): hospital births and deaths."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from services.registry.api.access import Caller
from services.registry.api.family_schemas import HospitalEventIn, HospitalReportOut
from services.registry.usecases import hospital as usecases
from shared.auth import Principal, current_principal
from shared.errors import PROBLEM_JSON, Problem, ProblemDetails
from shared.service import RuntimeDep
from shared.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, SignatureError, verify

router = APIRouter(prefix="/integrations", tags=["integrations"])


async def signed_body(
    request: Request,
    rt: RuntimeDep,
    caller: Annotated[Principal, Depends(current_principal)],
) -> bytes:
    """The raw body, once its HMAC signature and timestamp are verified (DESIGN §4) with the
    secrets of the calling client (its token's subject) only: one client's secret never
    signs for another."""
    secrets = rt.settings.integration_clients.get(caller.sub)
    if not secrets:
        raise Problem(
            401,
            "integration_client_unknown",
            f"未登记的对接方：{caller.sub}",
            f"No integration client {caller.sub!r} is configured",
            headers={"WWW-Authenticate": 'HMAC realm="lingju"'},
        )
    raw = await request.body()
    try:
        verify(
            secrets,
            request.headers.get(TIMESTAMP_HEADER),
            request.headers.get(SIGNATURE_HEADER),
            raw,
            max_age_seconds=rt.settings.bureau_signature_max_age_seconds,
        )
    except SignatureError as e:
        raise Problem(
            401, e.code, e.zh, e.en, headers={"WWW-Authenticate": 'HMAC realm="lingju"'}
        ) from e
    return raw


_PROBLEM: dict[str, Any] = {
    "content": {PROBLEM_JSON: {"schema": ProblemDetails.model_json_schema()}}
}


@router.post(
    "/hospital-events",
    status_code=201,
    response_model=HospitalReportOut,
    summary="A hospital birth or death from the health bureau (signed, idempotent)",
    description=(
        f"Role `bureau_system`, and signed: `{TIMESTAMP_HEADER}` (unix seconds) and "
        f'`{SIGNATURE_HEADER}: sha256=<hex HMAC-SHA256 of "{{timestamp}}.{{raw body}}">`. '
        "Idempotent by `external_ref`: the same report again answers 200 with the first "
        "result and `Idempotent-Replayed: true`; another body under the same reference is "
        "409 `external_ref_conflict`."
    ),
    responses={
        200: {"model": HospitalReportOut, "description": "The same report again (replayed)"},
        401: {
            **_PROBLEM,
            "description": "signature_invalid, signature_expired, integration_client_unknown, "
            "or no token",
        },
        409: {**_PROBLEM, "description": "external_ref_conflict, already_dead, duplicate_birth"},
    },
)
async def hospital_event(
    body: HospitalEventIn,
    rt: RuntimeDep,
    principal: Caller,
    _signed: Annotated[bytes, Depends(signed_body)],
) -> JSONResponse:
    return await usecases.receive_report(rt.uow(), rt.cipher, body, principal)
