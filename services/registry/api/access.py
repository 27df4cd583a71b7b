"""Who may call the registry's routes, declared once (DESIGN §4).

Region and ownership are checked in the use cases (``Principal.require_region``,
``require_person_access``) against the record itself.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Header, Request

from shared.auth import Principal, Role, current_principal, require_roles
from shared.errors import PROBLEM_JSON, ProblemDetails
from shared.ratelimit import RateLimiter

# The people responsible for a village or township (代办员, 村计生专干, 乡镇/县计生办).
LOCAL_STAFF = (
    Role.village_agent,
    Role.village_worker,
    Role.township_officer,
    Role.county_officer,
    Role.admin,
)
REVIEWERS = (Role.village_worker, Role.township_officer, Role.county_officer, Role.admin)

Caller = Annotated[Principal, Depends(current_principal)]
# Record families, births and deaths; search residents.
Staff = Annotated[Principal, Depends(require_roles(*LOCAL_STAFF))]
# Register residents: local staff, and the health bureau's system for hospital births.
Registrar = Annotated[Principal, Depends(require_roles(*LOCAL_STAFF, Role.bureau_system))]
# Apply for a certificate, or read a family: local staff and the residents themselves.
StaffOrResident = Annotated[Principal, Depends(require_roles(Role.resident, *LOCAL_STAFF))]
Reviewer = Annotated[Principal, Depends(require_roles(*REVIEWERS))]
Revoker = Annotated[
    Principal, Depends(require_roles(Role.township_officer, Role.county_officer, Role.admin))
]
Bureau = Annotated[Principal, Depends(require_roles(Role.bureau_system))]

IfMatch = Annotated[str | None, Header(description='The version you read, e.g. "3" (ETag)')]


def _public_rate_limit(request: Request) -> None:
    """Anyone, no login: one per-client limiter for every public route of the app (guessing
    application numbers, phone endings or codes is slowed to a few tries a minute)."""
    state = request.app.state
    if not hasattr(state, "public_limiter"):
        state.public_limiter = RateLimiter(state.runtime.settings.public_rate_per_minute)
    state.public_limiter.check(request)


# The dependency of every route open to anyone (public.py's router, the catalogue), and the
# answer it adds to their OpenAPI.
Public = Depends(_public_rate_limit)
PUBLIC_RESPONSES: dict[int | str, dict[str, Any]] = {
    429: {
        "description": "rate_limited (this client), or locked_out (this application number); "
        "retry after Retry-After seconds",
        "content": {PROBLEM_JSON: {"schema": ProblemDetails.model_json_schema()}},
    }
}
