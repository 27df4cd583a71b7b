"""Who may call the notify routes, declared once (DESIGN §4, shared/access.py).

A person's inbox and preferences are their own (keyed by the token's subject: no record of
anyone else is reachable); staff contacts and notifications are confined to the caller's
region in the routes; ``POLICY`` says which check each route makes, and
tests/access_matrix.py holds every route to it.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from shared.access import PUBLIC, AccessPolicy, Scope, rule
from shared.auth import Principal, Role

# Everyone notify writes to: people, not the bureau's system, nor the auditor (who reads the
# audit trail and nothing else).
HUMANS = tuple(r for r in Role if r not in (Role.bureau_system, Role.auditor))
# Who may bind a WeChat account to themselves.
BINDERS = (
    Role.resident,
    Role.village_agent,
    Role.village_worker,
    Role.township_officer,
    Role.county_officer,
)
OFFICERS = (Role.township_officer, Role.county_officer, Role.admin)
KEEPERS = (Role.county_officer, Role.admin)
# The event feed's subscribers: a system manages its own subscriptions (owner = its token's
# sub, checked in the routes), an admin all of them.
FEEDERS = (Role.bureau_system, Role.admin)

POLICY = AccessPolicy(
    {
        "GET /api/v1/inbox": rule(Scope.listing, HUMANS),
        "GET /api/v1/inbox/unread-count": rule(Scope.listing, HUMANS),
        "POST /api/v1/inbox/{message_id}/read": rule(Scope.region, HUMANS),
        "GET /api/v1/notification-categories": rule(Scope.open, HUMANS),
        "GET /api/v1/preferences": rule(Scope.listing, HUMANS),
        "PUT /api/v1/preferences/{category}": rule(Scope.region, HUMANS),
        "PUT /api/v1/me/wechat": rule(Scope.region, BINDERS, person_record=True),
        "DELETE /api/v1/me/wechat": rule(Scope.region, BINDERS, person_record=True),
        "GET /api/v1/notifications": rule(Scope.listing, OFFICERS, person_record=True),
        "GET /api/v1/notifications/{notification_id}": rule(
            Scope.region, OFFICERS, person_record=True
        ),
        # The SMS provider's delivery receipts: no token, a shared secret in the URL.
        "POST /api/v1/receipts/{provider}": PUBLIC,
        "PUT /api/v1/staff-contacts/{sub}": rule(Scope.region, KEEPERS),
        # Whoever may register a staff member's webhook may rotate its signing secret.
        "POST /api/v1/staff-contacts/{sub}/webhook-secret/rotate": rule(Scope.region, KEEPERS),
        "GET /api/v1/staff-contacts": rule(Scope.listing, OFFICERS),
        "GET /api/v1/staff-contacts/{sub}": rule(Scope.region, OFFICERS),
        "GET /api/v1/templates": rule(Scope.open, KEEPERS),
        "GET /api/v1/templates/{code}": rule(Scope.open, KEEPERS),
        "PUT /api/v1/templates/{code}": rule(Scope.system, Role.admin),
        "POST /api/v1/templates/{code}/preview": rule(Scope.open, KEEPERS),
        "POST /api/v1/feed/subscriptions": rule(Scope.open, FEEDERS),
        "GET /api/v1/feed/subscriptions": rule(Scope.listing, FEEDERS),
        "GET /api/v1/feed/subscriptions/{subscription_id}": rule(Scope.region, FEEDERS),
        "PATCH /api/v1/feed/subscriptions/{subscription_id}": rule(Scope.region, FEEDERS),
        "DELETE /api/v1/feed/subscriptions/{subscription_id}": rule(Scope.region, FEEDERS),
        "POST /api/v1/feed/subscriptions/{subscription_id}/secret/rotate": rule(
            Scope.region, FEEDERS
        ),
        "GET /api/v1/feed/subscriptions/{subscription_id}/deliveries": rule(Scope.listing, FEEDERS),
        "POST /api/v1/feed/deliveries/{delivery_id}/retry": rule(Scope.region, FEEDERS),
    }
)

# Every guarded route takes its caller through the policy.
Caller = Annotated[Principal, Depends(POLICY.caller)]
