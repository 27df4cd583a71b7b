"""Who may call the registry's routes, declared once (DESIGN §4, shared/access.py).

Region and ownership are checked in the use cases (``Principal.require_region``,
``require_person_access``) against the record itself; ``POLICY`` says which check each route
makes, and tests/access_matrix.py holds every route to it.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Header, Request

from shared.access import PUBLIC, AccessPolicy, Scope, rule
from shared.auth import Principal, Role
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

RESIDENT_OR_STAFF = (Role.resident, *LOCAL_STAFF)
REVOKERS = (Role.township_officer, Role.county_officer, Role.admin)
# Who pulls the bulk exports: officers, the admin and the health bureau's system.
EXPORTERS = (Role.township_officer, Role.county_officer, Role.admin, Role.bureau_system)

# "METHOD /path": who, and how the record is confined (shared.access.Scope).
POLICY = AccessPolicy(
    {
        "GET /api/v1/certificate-types": PUBLIC,
        "GET /api/v1/public/applications/{application_no}/progress": PUBLIC,
        "GET /api/v1/public/certificates/{certificate_no}/verification": PUBLIC,
        # Register residents: local staff, and the health bureau's system for hospital births.
        "POST /api/v1/persons": rule(
            Scope.region, LOCAL_STAFF, Role.bureau_system, person_record=True
        ),
        "GET /api/v1/persons": rule(Scope.listing, LOCAL_STAFF, person_record=True),
        "GET /api/v1/persons/{person_id}": rule(
            Scope.region, RESIDENT_OR_STAFF, person_record=True
        ),
        "PATCH /api/v1/persons/{person_id}": rule(
            Scope.region, LOCAL_STAFF, Role.bureau_system, person_record=True
        ),
        "POST /api/v1/persons/{person_id}/death": rule(
            Scope.region, LOCAL_STAFF, person_record=True
        ),
        # Apply for a certificate: local staff and the residents themselves.
        "POST /api/v1/applications": rule(Scope.region, RESIDENT_OR_STAFF, person_record=True),
        "GET /api/v1/applications": rule(Scope.listing, REVIEWERS, person_record=True),
        "GET /api/v1/applications/{application_id}": rule(
            Scope.region, RESIDENT_OR_STAFF, person_record=True
        ),
        "POST /api/v1/applications/{application_id}/materials": rule(
            Scope.region, RESIDENT_OR_STAFF, person_record=True
        ),
        "POST /api/v1/applications/{application_id}/review": rule(
            Scope.region, REVIEWERS, person_record=True
        ),
        "GET /api/v1/certificates/{certificate_no}": rule(
            Scope.region, RESIDENT_OR_STAFF, person_record=True
        ),
        "POST /api/v1/certificates/{certificate_no}/revoke": rule(
            Scope.region, REVOKERS, person_record=True
        ),
        "POST /api/v1/certificates/{certificate_no}/collect": rule(
            Scope.region, RESIDENT_OR_STAFF, person_record=True
        ),
        "POST /api/v1/families": rule(Scope.region, LOCAL_STAFF, person_record=True),
        "GET /api/v1/families": rule(Scope.region, RESIDENT_OR_STAFF, person_record=True),
        "GET /api/v1/families/{family_id}": rule(
            Scope.region, RESIDENT_OR_STAFF, person_record=True
        ),
        "POST /api/v1/families/{family_id}/children": rule(
            Scope.region, LOCAL_STAFF, person_record=True
        ),
        "POST /api/v1/births": rule(Scope.region, LOCAL_STAFF, person_record=True),
        # Every service's figures for a region and month, fanned in with the caller's token.
        "GET /api/v1/reports/monthly": rule(
            Scope.listing,
            Role.township_officer,
            Role.county_officer,
            Role.admin,
            Role.bureau_system,
        ),
        "POST /api/v1/integrations/hospital-events": rule(
            Scope.region, Role.bureau_system, person_record=True
        ),
        # Bulk exports for the county health bureau (shared/exports.py, docs/exports.md).
        "GET /api/v1/exports/persons": rule(Scope.listing, EXPORTERS, person_record=True),
        "GET /api/v1/exports/certificates": rule(Scope.listing, EXPORTERS, person_record=True),
    }
)

# Every guarded route takes its caller through the policy.
Caller = Annotated[Principal, Depends(POLICY.caller)]

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
