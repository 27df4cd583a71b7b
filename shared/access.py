"""Who may call each route, declared once per service (DESIGN §4).

Every service states, in one table (``POLICY`` in its ``api/access.py``), each route's roles and
how the record it touches is confined:

- ``public``: anyone, no token (the route limits its own rate);
- ``open``: any listed role; the route touches no person's record (catalogues, plans, forms);
- ``region``: one record, whose division code must lie inside the caller's region; a resident
  reaches only their own (or their family's) record;
- ``listing``: a list, confined to the caller's region (a resident: their own records);
- ``system``: service-wide operations of the admin (dead letters, sweeps);
- ``audit``: the audit trail of the caller's region (the auditor).

Routes take the caller through ``policy.caller`` (``Caller`` in each service), which checks the
role against the table; region and ownership are checked by the use case against the record
itself (``Principal.require_region`` and the services' ownership rules). ``bind`` runs when
the app is built: a route missing from the table, a declaration without a route, or a
non-public route that does not take its caller from the policy stops the service from starting.
``tests/access_matrix.py`` drives every route x role x inside/outside against the running app.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.routing import APIRoute

from shared.audit import record_of
from shared.auth import Principal, Role, current_principal
from shared.errors import Problem


class Scope(StrEnum):
    public = "public"
    open = "open"
    region = "region"
    listing = "listing"
    system = "system"
    audit = "audit"


@dataclass(frozen=True)
class Rule:
    roles: frozenset[Role]
    scope: Scope
    # The route reads or changes a person's record: each call by staff or a system is appended
    # to the audit trail (shared/audit.py).
    person_record: bool = False


def rule(scope: Scope, *roles: Role | Iterable[Role], person_record: bool = False) -> Rule:
    """``rule(Scope.region, LOCAL_STAFF, Role.resident, person_record=True)``."""
    flat: set[Role] = set()
    for r in roles:
        flat.update([r] if isinstance(r, Role) else r)
    if (scope is Scope.public) != (not flat):
        raise ValueError("a public route lists no roles; every other route lists some")
    return Rule(frozenset(flat), scope, person_record)


PUBLIC = rule(Scope.public)

# The chassis' own routes, on every service (shared/service.py).
KERNEL_RULES: dict[str, Rule] = {
    "GET /healthz": PUBLIC,
    "GET /readyz": PUBLIC,
    "GET /metrics": PUBLIC,
    "GET /api/v1/admin/dead-letters": rule(Scope.system, Role.admin),
    "POST /api/v1/admin/dead-letters/{dead_letter_id}/replay": rule(Scope.system, Role.admin),
    # Figures of a region, no person in them: officers and the bureau's system.
    "GET /api/v1/reports/indicators": rule(
        Scope.listing,
        Role.township_officer,
        Role.county_officer,
        Role.admin,
        Role.bureau_system,
    ),
    "GET /api/v1/audit": rule(Scope.audit, Role.auditor),
    "GET /api/v1/audit/export": rule(Scope.audit, Role.auditor),
    "GET /api/v1/audit/verify": rule(Scope.audit, Role.auditor, Role.admin),
}


class AccessPolicy:
    """One service's table: ``"METHOD /path/{template}" -> Rule``, the kernel's included."""

    def __init__(self, rules: Mapping[str, Rule]) -> None:
        self.rules: dict[tuple[str, str], Rule] = {}
        for key, value in {**KERNEL_RULES, **rules}.items():
            method, _, path = key.partition(" ")
            self.rules[(method.upper(), path)] = value

        # (id(route object), method) -> its rule, filled by ``bind`` (routes compare by value).
        self._bound: dict[tuple[int, str], tuple[str, Rule]] = {}

        async def caller(
            request: Request, principal: Annotated[Principal, Depends(current_principal)]
        ) -> Principal:
            key, found = self._bound.get(
                (id(request.scope.get("route")), request.method), ("", None)
            )
            if found is None or found.scope is Scope.public:
                # bind() makes this unreachable; refuse rather than guess.
                raise Problem(
                    403, "forbidden", "该接口未声明访问规则", "This route declares no access"
                )
            if principal.role not in found.roles:
                raise Problem(
                    403,
                    "forbidden",
                    f"角色 {principal.role.value} 无权执行此操作",
                    f"Role {principal.role.value} may not do this",
                )
            # For the audit trail (shared/audit.py), which runs around the route.
            request.state.principal = principal
            request.state.access = (
                key,
                found,
                record_of(dict(request.path_params), list(request.query_params.keys())),
            )
            return principal

        self.caller = caller

    def rule_for(self, method: str, path: str) -> Rule | None:
        return self.rules.get((method.upper(), path))

    def bind(self, mounted: Iterable[tuple[str, APIRouter]]) -> None:
        """Match the table to the routes of the routers mounted at their prefixes: every route
        declared, every declaration a route, every guarded route guarded; else refuse to start.
        """
        seen: set[tuple[str, str]] = set()
        problems: list[str] = []
        for prefix, router in mounted:
            for route in router.routes:
                if not isinstance(route, APIRoute):
                    problems.append(f"{prefix}: {route!r} is not an API route")
                    continue
                path = prefix + route.path
                guarded = _depends_on(route.dependant, self.caller)
                for method in sorted(route.methods):
                    seen.add((method, path))
                    found = self.rules.get((method, path))
                    if found is None:
                        problems.append(f"{method} {path}: no access rule declared")
                    elif found.scope is Scope.public and guarded:
                        problems.append(f"{method} {path}: public, yet asks for a caller")
                    elif found.scope is not Scope.public and not guarded:
                        problems.append(f"{method} {path}: does not take Caller from the policy")
                    else:
                        self._bound[(id(route), method)] = (f"{method} {path}", found)
        problems += [
            f"{m} {p}: declared, no such route" for m, p in self.rules if (m, p) not in seen
        ]
        if problems:
            listing = "\n  ".join(problems)
            raise RuntimeError(f"access policy does not match the routes:\n  {listing}")


def _depends_on(dependant: Any, call: Any) -> bool:
    return any(d.call is call or _depends_on(d, call) for d in dependant.dependencies)
