"""Drive every route x every role x inside / outside the record's region against a running app,
and hold each answer to the service's declared access policy (shared/access.py).

A service's matrix test seeds a ``World``: records inside one region (a village of one
township), the path parameters and bodies that reach them, and for each role a token inside
(the record's village, township or county; for a resident, the record's own person) and one
outside (another township or county; another resident). Then ``check_matrix``:

1. the app's OpenAPI paths and the policy's declarations are the same set;
2. without a token, every guarded route answers 401 and every public one does not;
3. every role the rule does not list is refused 403 ``forbidden``;
4. for ``region`` routes, every listed role holding an outside token is refused (403 or 404)
   and, for ``listing`` routes, sees none of the world's records;
5. every listed role holding an inside token gets past authorization (no 401, no refusal), and
   for ``listing`` routes sees the world's records; with ``strict_inside``, it also finds the
   record (no 404), unless the route is in ``not_found_ok``.

Outside calls run before inside ones, so the outside calls meet the records as seeded; an
outside call must change nothing, and the inside calls come after it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from shared.access import AccessPolicy, Rule, Scope
from shared.auth import Role

Headers = dict[str, str]
# Refusals that mean "not yours / not your region" (not "no such thing" or "bad input").
REFUSALS = {"forbidden", "out_of_region"}


@dataclass
class World:
    """What one service's matrix test seeded, and how to reach it."""

    params: Mapping[str, str]  # path parameter -> a value naming a record inside
    inside: Mapping[Role, Headers]
    outside: Mapping[Role, Headers]  # no entry: the role has no outside (an admin of all)
    # "METHOD /path" -> the JSON body (or a function of the caller's role giving it).
    bodies: Mapping[str, Any] = field(default_factory=dict)
    queries: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    # Strings (record ids) that an inside listing shows and an outside one must not; or, where
    # each role's inside caller lists records of their own (an inbox), those strings by role.
    markers: Mapping[str, list[str] | Mapping[Role, list[str]]] = field(default_factory=dict)
    # "METHOD /path" -> why the outside check cannot apply to it (kept short and true).
    no_outside: Mapping[str, str] = field(default_factory=dict)
    # "METHOD /path" -> tokens inside for that route, where they differ (a route whose record
    # belongs to another resident of the same village).
    inside_for: Mapping[str, Mapping[Role, Headers]] = field(default_factory=dict)
    # "METHOD /path" -> path parameters by role, where each role's inside record differs (a
    # message of the caller's own inbox); the outside call of that role names the same record.
    params_for: Mapping[str, Mapping[Role, Mapping[str, str]]] = field(default_factory=dict)
    # "METHOD /path" -> the headers that sign a raw body (integration routes).
    signers: Mapping[str, Callable[[bytes], Headers]] = field(default_factory=dict)
    # Inside calls must find their record: a 404 inside means the world's parameters name
    # nothing, and every outside "refusal" of that route proved nothing.
    strict_inside: bool = False
    # "METHOD /path" -> why an inside 404 is right there (kept short and true).
    not_found_ok: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Raw:
    """A body sent as it is, not as JSON (a bank's CSV file)."""

    content: bytes
    content_type: str


def _url(path: str, params: Mapping[str, str]) -> str:
    for name, value in params.items():
        path = path.replace("{" + name + "}", value)
    assert "{" not in path, f"no value for a parameter of {path}"
    return path


def _markers(world: World, key: str, role: Role) -> list[str]:
    found = world.markers.get(key, [])
    return list(found) if isinstance(found, list) else list(found.get(role, []))


def _params(world: World, key: str, role: Role | None) -> Mapping[str, str]:
    own = world.params_for.get(key, {}).get(role) if role is not None else None
    return {**world.params, **own} if own else world.params


def _body(world: World, key: str, role: Role) -> Any:
    body = world.bodies.get(key)
    return body(role) if callable(body) else body


def _refusal(r: httpx.Response) -> bool:
    if r.status_code == 404:
        return True
    if r.status_code != 403:
        return False
    return r.json().get("code") in REFUSALS


def _role_refusal(r: httpx.Response) -> bool:
    return (
        r.status_code == 403
        and r.json().get("code") == "forbidden"
        and "角色" in r.json().get("detail", "")
    )


async def openapi_routes(client: httpx.AsyncClient) -> set[tuple[str, str]]:
    spec = (await client.get("/openapi.json")).json()
    return {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops}


async def check_matrix(
    client: httpx.AsyncClient,
    policy: AccessPolicy,
    world: World,
    *,
    before_inside: Callable[[str], Any] | None = None,
) -> list[str]:
    """Every disagreement between the app and its policy, as readable lines (empty: none)."""
    wrong: list[str] = []
    routes = await openapi_routes(client)
    declared = set(policy.rules)
    wrong += [f"{m} {p}: in the app, not in the policy" for m, p in sorted(routes - declared)]
    wrong += [f"{m} {p}: in the policy, not in the app" for m, p in sorted(declared - routes)]

    async def call(method: str, path: str, role: Role | None, headers: Headers) -> httpx.Response:
        key = f"{method} {path}"
        body = _body(world, key, role) if role else _body(world, key, Role.admin)
        if isinstance(body, Raw):
            raw, content_type = body.content, body.content_type
        else:
            raw, content_type = json.dumps(body, ensure_ascii=False).encode(), "application/json"
        if key in world.signers:
            headers = {**headers, **world.signers[key](raw)}
        return await client.request(
            method,
            _url(path, _params(world, key, role)),
            content=raw if method in ("POST", "PUT", "PATCH") else None,
            params=world.queries.get(key),
            headers={**headers, "content-type": content_type},
        )

    items = sorted(policy.rules.items(), key=lambda kv: (kv[0][1], kv[0][0]))
    for (method, path), rule in items:
        key = f"{method} {path}"
        anonymous = await call(method, path, None, {})
        if rule.scope is Scope.public:
            if anonymous.status_code == 401:
                wrong.append(f"{key}: public, yet 401 without a token")
            continue
        if anonymous.status_code != 401:
            wrong.append(f"{key}: {anonymous.status_code} without a token")
        for role in Role:
            if role in rule.roles:
                continue
            r = await call(method, path, role, world.inside[role])
            if not _role_refusal(r):
                wrong.append(f"{key}: role {role.value} not refused ({r.status_code})")
        wrong += await _outside(call, world, method, path, rule)

    for (method, path), rule in items:
        if rule.scope is Scope.public:
            continue
        key = f"{method} {path}"
        if before_inside is not None:
            await before_inside(key)
        for role in sorted(rule.roles):
            headers = {**world.inside, **world.inside_for.get(key, {})}[role]
            r = await call(method, path, role, headers)
            if r.status_code == 401 or (_refusal(r) and r.status_code == 403):
                wrong.append(f"{key}: {role.value} inside refused ({r.status_code} {r.text})")
            elif world.strict_inside and r.status_code == 404 and key not in world.not_found_ok:
                wrong.append(f"{key}: {role.value} inside finds nothing ({r.text})")
            elif rule.scope is Scope.listing and key in world.markers and r.is_success:
                missing = [m for m in _markers(world, key, role) if m not in r.text]
                if missing:
                    wrong.append(f"{key}: {role.value} inside does not see {missing}")
    return wrong


async def _outside(
    call: Callable[..., Any], world: World, method: str, path: str, rule: Rule
) -> list[str]:
    key = f"{method} {path}"
    if rule.scope not in (Scope.region, Scope.listing) or key in world.no_outside:
        return []
    wrong: list[str] = []
    for role in sorted(rule.roles):
        headers = world.outside.get(role)
        if headers is None:
            continue
        r = await call(method, path, role, headers)
        if rule.scope is Scope.region and not _refusal(r):
            wrong.append(f"{key}: {role.value} outside not refused ({r.status_code} {r.text})")
        if rule.scope is Scope.listing and not _refusal(r):
            seen = [m for m in _markers(world, key, role) if m in r.text]
            if r.status_code >= 500 or seen:
                wrong.append(f"{key}: {role.value} outside sees {seen} ({r.status_code})")
    return wrong
