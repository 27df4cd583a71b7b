"""Who may call the benefits routes, declared once (DESIGN §4, shared/access.py).

Region and ownership are checked in the use cases against the record itself (an enrollment's,
claim's or run's division code; a resident's own person id); ``POLICY`` says which check each
route makes, and tests/access_matrix.py holds every route to it.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from shared.access import AccessPolicy, Scope, rule
from shared.auth import Principal, Role

FIELD_STAFF = (Role.village_agent, Role.village_worker)
OFFICERS = (Role.township_officer, Role.county_officer)
STAFF = (*FIELD_STAFF, *OFFICERS)
# Apply, claim and read: residents for themselves, staff for their region, the admin reads.
READERS = (Role.resident, *STAFF, Role.admin)
# A payee's bank account: the resident, the village worker who helps them, officers.
ACCOUNT_KEEPERS = (Role.resident, Role.village_worker, *OFFICERS)
# Who pulls the bulk exports: officers, the admin and the health bureau's system.
EXPORTERS = (*OFFICERS, Role.admin, Role.bureau_system)

POLICY = AccessPolicy(
    {
        # The catalogue is for the people who apply and decide; the bureau's system reaches
        # only its integration, report and export routes, the auditor only the audit trail.
        "GET /api/v1/programs": rule(Scope.open, READERS),
        # Checked against the region of the person named (or of the facts stated).
        "POST /api/v1/eligibility/check": rule(Scope.region, STAFF, Role.admin, person_record=True),
        "POST /api/v1/enrollments": rule(Scope.region, STAFF, person_record=True),
        "GET /api/v1/enrollments": rule(Scope.listing, READERS, person_record=True),
        "GET /api/v1/enrollments/{enrollment_id}": rule(Scope.region, READERS, person_record=True),
        "POST /api/v1/enrollments/{enrollment_id}/confirm": rule(
            Scope.region, OFFICERS, person_record=True
        ),
        "POST /api/v1/enrollments/{enrollment_id}/reject": rule(
            Scope.region, OFFICERS, person_record=True
        ),
        "POST /api/v1/enrollments/{enrollment_id}/suspend": rule(
            Scope.region, OFFICERS, person_record=True
        ),
        "POST /api/v1/enrollments/{enrollment_id}/resume": rule(
            Scope.region, OFFICERS, person_record=True
        ),
        "POST /api/v1/admin/sweeps/enrollments": rule(Scope.system, Role.admin),
        "POST /api/v1/payment-runs": rule(Scope.region, OFFICERS),
        "GET /api/v1/payment-runs": rule(Scope.listing, OFFICERS, Role.admin),
        "GET /api/v1/payment-runs/{run_id}": rule(Scope.region, OFFICERS, Role.admin),
        "GET /api/v1/payment-runs/{run_id}/lines": rule(
            Scope.region, OFFICERS, Role.admin, person_record=True
        ),
        "POST /api/v1/payment-runs/{run_id}/approve": rule(Scope.region, OFFICERS),
        "POST /api/v1/payment-runs/{run_id}/export": rule(Scope.region, OFFICERS),
        "GET /api/v1/payment-runs/{run_id}/disbursement-file": rule(
            Scope.region, OFFICERS, person_record=True
        ),
        "POST /api/v1/payment-runs/{run_id}/reconciliation": rule(Scope.region, OFFICERS),
        "PUT /api/v1/persons/{person_id}/payee-account": rule(
            Scope.region, ACCOUNT_KEEPERS, person_record=True
        ),
        "GET /api/v1/persons/{person_id}/payee-account": rule(
            Scope.region, ACCOUNT_KEEPERS, person_record=True
        ),
        "GET /api/v1/persons/{person_id}/payments": rule(
            Scope.region, ACCOUNT_KEEPERS, person_record=True
        ),
        "POST /api/v1/claims": rule(Scope.region, Role.resident, STAFF, person_record=True),
        "GET /api/v1/claims": rule(Scope.listing, READERS, person_record=True),
        "GET /api/v1/claims/{claim_id}": rule(Scope.region, READERS, person_record=True),
        "POST /api/v1/claims/{claim_id}/approve": rule(Scope.region, OFFICERS, person_record=True),
        "POST /api/v1/claims/{claim_id}/reject": rule(Scope.region, OFFICERS, person_record=True),
        # Bulk exports for the county health bureau (shared/exports.py, docs/exports.md).
        "GET /api/v1/exports/enrollments": rule(Scope.listing, EXPORTERS, person_record=True),
        "GET /api/v1/exports/payments": rule(Scope.listing, EXPORTERS, person_record=True),
    }
)

# Every guarded route takes its caller through the policy.
Caller = Annotated[Principal, Depends(POLICY.caller)]
