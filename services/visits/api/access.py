"""Who may call the visits routes, declared once (DESIGN §4, shared/access.py).

Region and ownership are checked in the use cases against the record itself (a task's or
appointment's village, a station's township, a resident's own person id); ``POLICY`` says which
check each route makes, and tests/access_matrix.py holds every route to it.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from shared.access import AccessPolicy, Scope, rule
from shared.auth import Principal, Role

# The township's family planning service station (计生服务站) and the county above it.
STATION = (Role.township_officer, Role.county_officer)
STAFF_READ = (Role.village_worker, *STATION, Role.admin)
TASK_READ = (Role.resident, *STAFF_READ)
BOOKERS = (Role.resident, Role.village_agent, Role.village_worker, *STATION)
# Who carries a phone with tasks on it (offline sync).
FIELD = (Role.village_worker, Role.township_officer)
# Everyone visits serves or employs. Not the bureau's system (it calls only its integration,
# report and export routes) nor the auditor (it reads the audit trail, nothing else).
PEOPLE = tuple(r for r in Role if r not in (Role.bureau_system, Role.auditor))
# Who pulls the bulk export: officers, the admin and the health bureau's system.
EXPORTERS = (*STATION, Role.admin, Role.bureau_system)

POLICY = AccessPolicy(
    {
        "GET /api/v1/visit-plans": rule(Scope.open, PEOPLE),
        "GET /api/v1/visit-plans/{code}": rule(Scope.open, PEOPLE),
        "GET /api/v1/visit-forms": rule(Scope.open, PEOPLE),
        "GET /api/v1/visit-forms/{service}": rule(Scope.open, PEOPLE),
        "PUT /api/v1/assignments/{area}/{tier}": rule(Scope.region, STATION),
        "GET /api/v1/assignments": rule(Scope.listing, STAFF_READ),
        "GET /api/v1/tasks": rule(Scope.listing, TASK_READ, person_record=True),
        "GET /api/v1/tasks/{task_id}": rule(Scope.region, TASK_READ, person_record=True),
        "POST /api/v1/tasks/{task_id}/visits": rule(
            Scope.region, Role.village_worker, STATION, person_record=True
        ),
        "GET /api/v1/tasks/{task_id}/visits": rule(Scope.region, TASK_READ, person_record=True),
        "POST /api/v1/procedures": rule(Scope.region, STATION, person_record=True),
        "POST /api/v1/stations": rule(Scope.region, STATION),
        "POST /api/v1/slots": rule(Scope.region, STATION),
        "GET /api/v1/slots": rule(Scope.open, PEOPLE),
        "POST /api/v1/appointments": rule(Scope.region, BOOKERS, person_record=True),
        "GET /api/v1/appointments": rule(Scope.listing, BOOKERS, Role.admin, person_record=True),
        "GET /api/v1/appointments/{appointment_id}": rule(
            Scope.region, BOOKERS, Role.admin, person_record=True
        ),
        "POST /api/v1/appointments/{appointment_id}/cancel": rule(
            Scope.region, BOOKERS, person_record=True
        ),
        "POST /api/v1/appointments/{appointment_id}/reschedule": rule(
            Scope.region, BOOKERS, person_record=True
        ),
        "POST /api/v1/appointments/{appointment_id}/attended": rule(
            Scope.region, STATION, person_record=True
        ),
        "POST /api/v1/appointments/{appointment_id}/no-show": rule(
            Scope.region, STATION, person_record=True
        ),
        "GET /api/v1/sync": rule(Scope.listing, FIELD, person_record=True),
        "POST /api/v1/sync": rule(Scope.listing, FIELD, person_record=True),
        "POST /api/v1/admin/sweeps/tasks": rule(Scope.system, Role.admin),
        "POST /api/v1/admin/sweeps/plans": rule(Scope.system, Role.admin),
        "POST /api/v1/admin/reminders": rule(Scope.system, Role.admin),
        # Bulk export for the county health bureau (shared/exports.py, docs/exports.md).
        "GET /api/v1/exports/visits": rule(Scope.listing, EXPORTERS, person_record=True),
    }
)

# Every guarded route takes its caller through the policy.
Caller = Annotated[Principal, Depends(POLICY.caller)]
