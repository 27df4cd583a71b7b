"""Every registry route refuses the anonymous and the roles it does not serve (problem+json).

Region and ownership checks are tested with each route's own tests; this table makes sure no
route is left open by mistake.
"""

from __future__ import annotations

import pytest

from tests.support import TOWNSHIP, InProcessStack

ANY_ID = "00000000-0000-0000-0000-000000000000"
CERT = "330102-2026-000001"

# (method, path, a role this route refuses)
ROUTES = [
    ("POST", "/api/v1/persons", "resident"),
    ("GET", "/api/v1/persons", "resident"),
    ("GET", f"/api/v1/persons/{ANY_ID}", None),
    ("PATCH", f"/api/v1/persons/{ANY_ID}", "resident"),
    ("POST", f"/api/v1/persons/{ANY_ID}/death", "resident"),
    ("POST", "/api/v1/applications", "bureau_system"),
    ("GET", "/api/v1/applications", "village_agent"),
    ("GET", f"/api/v1/applications/{ANY_ID}", None),
    ("POST", f"/api/v1/applications/{ANY_ID}/materials", "bureau_system"),
    ("POST", f"/api/v1/applications/{ANY_ID}/review", "village_agent"),
    ("GET", f"/api/v1/certificates/{CERT}", None),
    ("POST", f"/api/v1/certificates/{CERT}/revoke", "village_worker"),
    ("POST", f"/api/v1/certificates/{CERT}/collect", "bureau_system"),
    ("POST", "/api/v1/families", "resident"),
    ("GET", "/api/v1/families", "bureau_system"),
    ("GET", f"/api/v1/families/{ANY_ID}", "bureau_system"),
    ("POST", f"/api/v1/families/{ANY_ID}/children", "resident"),
    ("POST", "/api/v1/births", "resident"),
    ("POST", "/api/v1/integrations/hospital-events", "township_officer"),
    ("GET", "/api/v1/admin/dead-letters", "county_officer"),
    ("POST", f"/api/v1/admin/dead-letters/{ANY_ID}/replay", "county_officer"),
]


@pytest.mark.parametrize(("method", "path", "refused"), ROUTES)
async def test_route_refuses_anonymous_and_other_roles(
    stack: InProcessStack, method: str, path: str, refused: str | None
) -> None:
    anonymous = await stack.registry.request(method, path, json={})
    assert anonymous.status_code == 401, anonymous.text
    assert anonymous.headers["content-type"].startswith("application/problem+json")
    if refused is None:
        return  # every role may ask; the record itself decides (tested per route)
    r = await stack.registry.request(method, path, json={}, headers=stack.auth(refused, TOWNSHIP))
    assert r.status_code == 403, r.text
    assert r.json()["code"] == "forbidden"


async def test_the_table_covers_every_route(stack: InProcessStack) -> None:
    spec = (await stack.registry.get("/openapi.json")).json()
    public = {
        "/api/v1/certificate-types",
        "/api/v1/public/applications/{application_no}/progress",
        "/api/v1/public/certificates/{certificate_no}/verification",
    }
    operational = {"/healthz", "/readyz", "/metrics"}
    declared = {
        (method.upper(), path)
        for path, ops in spec["paths"].items()
        for method in ops
        if path not in public | operational
    }

    def template(path: str) -> str:
        return path.replace(ANY_ID, "{id}").replace(CERT, "{no}")

    covered = {(m, template(p)) for m, p, _ in ROUTES}
    normalized = {
        (
            m,
            p.replace("{person_id}", "{id}")
            .replace("{application_id}", "{id}")
            .replace("{family_id}", "{id}")
            .replace("{certificate_no}", "{no}")
            .replace("{dead_letter_id}", "{id}"),
        )
        for m, p in declared
    }
    missing = normalized - covered
    assert missing == set()
