"""Who may call each visits route, declared once here and checked against the running app: every
route of the OpenAPI document × every role. A route missing from the table fails the test, so a
new route cannot ship without saying who may call it. (Region and ownership checks need real
records; each route's own tests make them: out_of_region and residents' own records.)"""

from __future__ import annotations

import uuid

from tests.support import TOWNSHIP, VILLAGE, InProcessStack

ROLES = (
    "resident",
    "village_agent",
    "village_worker",
    "township_officer",
    "county_officer",
    "bureau_system",
    "admin",
)
ANY = frozenset(ROLES)
STAFF_READ = frozenset({"village_worker", "township_officer", "county_officer", "admin"})
TASK_READ = STAFF_READ | {"resident"}
STATION = frozenset({"township_officer", "county_officer"})
BOOKER = frozenset({"resident", "village_agent", "village_worker"}) | STATION
FIELD = frozenset({"village_worker", "township_officer"})
ADMIN = frozenset({"admin"})

ALLOWED: dict[tuple[str, str], frozenset[str]] = {
    ("GET", "/api/v1/visit-plans"): ANY,
    ("GET", "/api/v1/visit-plans/{code}"): ANY,
    ("GET", "/api/v1/visit-forms"): ANY,
    ("GET", "/api/v1/visit-forms/{service}"): ANY,
    ("PUT", "/api/v1/assignments/{area}/{tier}"): STATION,
    ("GET", "/api/v1/assignments"): STAFF_READ,
    ("GET", "/api/v1/tasks"): TASK_READ,
    ("GET", "/api/v1/tasks/{task_id}"): TASK_READ,
    ("POST", "/api/v1/tasks/{task_id}/visits"): STATION | {"village_worker"},
    ("GET", "/api/v1/tasks/{task_id}/visits"): TASK_READ,
    ("POST", "/api/v1/procedures"): STATION,
    ("POST", "/api/v1/stations"): STATION,
    ("POST", "/api/v1/slots"): STATION,
    ("GET", "/api/v1/slots"): ANY,
    ("POST", "/api/v1/appointments"): BOOKER,
    ("GET", "/api/v1/appointments"): BOOKER | ADMIN,
    ("GET", "/api/v1/appointments/{appointment_id}"): BOOKER | ADMIN,
    ("POST", "/api/v1/appointments/{appointment_id}/cancel"): BOOKER,
    ("POST", "/api/v1/appointments/{appointment_id}/reschedule"): BOOKER,
    ("POST", "/api/v1/appointments/{appointment_id}/attended"): STATION,
    ("POST", "/api/v1/appointments/{appointment_id}/no-show"): STATION,
    ("GET", "/api/v1/sync"): FIELD,
    ("POST", "/api/v1/sync"): FIELD,
    ("POST", "/api/v1/admin/sweeps/tasks"): ADMIN,
    ("POST", "/api/v1/admin/sweeps/plans"): ADMIN,
    ("POST", "/api/v1/admin/reminders"): ADMIN,
    # The kernel's, on every service.
    ("GET", "/api/v1/admin/dead-letters"): ADMIN,
    ("POST", "/api/v1/admin/dead-letters/{dead_letter_id}/replay"): ADMIN,
}

REGION = {
    "resident": VILLAGE,
    "village_agent": VILLAGE,
    "village_worker": VILLAGE,
    "township_officer": TOWNSHIP,
    "county_officer": VILLAGE[:6],
    "bureau_system": "",
    "admin": "",
}


async def test_every_route_declares_its_roles_and_each_role_is_held_to_it(
    stack: InProcessStack,
) -> None:
    spec = (await stack.visits.get("/openapi.json")).json()
    routes = {
        (method.upper(), path)
        for path, ops in spec["paths"].items()
        if path.startswith("/api/")
        for method in ops
    }
    assert routes == set(ALLOWED), (
        f"undeclared: {sorted(routes - set(ALLOWED))}; gone: {sorted(set(ALLOWED) - routes)}"
    )
    wrong: list[str] = []
    for (method, path), allowed in sorted(ALLOWED.items()):
        url = path
        for name in ("code", "service", "task_id", "appointment_id", "dead_letter_id", "area"):
            url = url.replace("{" + name + "}", str(uuid.uuid4()) if name != "area" else VILLAGE)
        url = url.replace("{tier}", "village")
        for role in ROLES:
            headers = stack.auth(role, REGION[role], person_id=str(uuid.uuid4()))
            body = {} if method in ("POST", "PUT") else None
            r = await stack.visits.request(method, url, json=body, headers=headers)
            refused = r.status_code == 403 and r.json().get("code") == "forbidden"
            if role in allowed and refused and "角色" in r.json().get("detail", ""):
                wrong.append(f"{method} {path}: {role} refused ({r.text})")
            if role not in allowed and not refused:
                wrong.append(f"{method} {path}: {role} let through ({r.status_code})")
        anonymous = await stack.visits.request(method, url, json=body)
        if anonymous.status_code != 401:
            wrong.append(f"{method} {path}: no token answered {anonymous.status_code}")
    assert wrong == []
