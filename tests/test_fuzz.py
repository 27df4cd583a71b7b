"""Schemathesis over every operation of the four services' OpenAPI: no 5xx, nothing undocumented.

Each service's schema is the one it serves (``/openapi.json``); every operation gets a bounded
number of generated requests (deterministic, so CI sees the same ones every run), sent through
the in-process ASGI app with a valid token so they get past auth into validation and the use
cases. Every response must be documented (status code, content type, body schema) and none
may be a 5xx.

Schemathesis' own ASGI transport drives the app from a second event loop in a worker thread;
the apps' database pools and broker connections belong to the test's loop, so the generated
cases are sent from here instead: Hypothesis runs in a worker thread and hands each request to
the test's loop.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from shared.config import SERVICES
from tests.support import TOWNSHIP, InProcessStack

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]

# Examples per operation and identity (112 operations): about 1.5 minutes per database backend
# for the four services on a 2-core machine; derandomized, so every run sends the same cases.
MAX_EXAMPLES = {"admin": 40, "township_officer": 15, "resident": 10}
NEGATIVE_EXAMPLES = 15  # invalid input, as the admin: must be a documented 4xx, never a 5xx


def _identities(stack: InProcessStack) -> dict[str, dict[str, str]]:
    return {
        "admin": stack.auth("admin"),
        "township_officer": stack.auth("township_officer", TOWNSHIP, sub="fuzz-officer"),
        "resident": stack.auth("resident", person_id="fuzz-resident"),
    }


def _httpx_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Schemathesis serialises for ``requests``; httpx takes raw bytes as ``content``."""
    kwargs = {k: v for k, v in kwargs.items() if k not in ("timeout", "verify", "auth")}
    data = kwargs.pop("data", None)
    if isinstance(data, bytes | str):
        kwargs["content"] = data
    elif data is not None:
        kwargs["data"] = data
    if not kwargs.get("cookies"):
        kwargs.pop("cookies", None)
    return kwargs


def _describe(e: BaseException) -> str:
    """An error with its notes, and every member of a group (Hypothesis' distinct failures)."""
    text = "\n".join([str(e), *getattr(e, "__notes__", [])])
    if isinstance(e, BaseExceptionGroup):
        text += "".join(f"\n- {_describe(sub)}" for sub in e.exceptions)
    return text


def _fuzz_operations(
    schema: Any,
    send: Any,
    headers: dict[str, str],
    examples: int,
    mode: GenerationMode,
) -> list[str]:
    """Run every operation's cases (in a worker thread); the report of each one that failed."""
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @settings(
            max_examples=examples,
            derandomize=True,
            deadline=None,
            database=None,
            phases=[Phase.explicit, Phase.generate, Phase.shrink],
            suppress_health_check=list(HealthCheck),
            print_blob=True,
        )
        @given(case=operation.as_strategy(generation_mode=mode, headers=headers))
        def run(case: Any) -> None:
            kwargs = case.as_transport_kwargs(base_url="http://fuzz")
            try:
                response = send(_httpx_kwargs(kwargs))
            except Exception as e:  # the app raised (a 500): say which request did it
                e.add_note(case.as_curl_command(headers=kwargs.get("headers")))
                raise
            case.validate_response(response, checks=CHECKS, headers=kwargs.get("headers"))

        try:
            run()
        except Unsatisfiable:
            continue  # nothing to make invalid: no parameters and no body
        except (Exception, BaseExceptionGroup) as e:
            failures.append(f"{operation.label} ({mode.value}):\n{_describe(e)}")
    return failures


@pytest.mark.parametrize("service", SERVICES)
async def test_fuzz_service(stack: InProcessStack, service: str) -> None:
    loop = asyncio.get_running_loop()
    client = stack.clients[service]
    raw = (await client.get("/openapi.json")).json()
    schema = schemathesis.openapi.from_dict(raw)

    def send(kwargs: dict[str, Any]) -> httpx.Response:
        request = client.request(**kwargs)
        return asyncio.run_coroutine_threadsafe(request, loop).result(timeout=60)

    identities = _identities(stack)
    started = time.monotonic()
    failures: list[str] = []
    for who, examples in MAX_EXAMPLES.items():
        failures += await asyncio.to_thread(
            _fuzz_operations, schema, send, identities[who], examples, GenerationMode.POSITIVE
        )
    failures += await asyncio.to_thread(
        _fuzz_operations,
        schema,
        send,
        identities["admin"],
        NEGATIVE_EXAMPLES,
        GenerationMode.NEGATIVE,
    )
    elapsed = time.monotonic() - started
    assert not failures, f"{len(failures)} failing operations in {elapsed:.0f}s:\n\n" + "\n\n".join(
        failures
    )


# -- what it found, kept as regression seeds ------------------------------------------------------

NOT_UTF8 = b"\xff\xfe{"  # sent as application/json: FastAPI answered an undocumented 400

# Benefits' changes are for the county's officers (an admin is refused them).
COUNTY = ("county_officer", "330102")

SEEDS: list[tuple[str, str, str, dict[str, Any], int | set[int], str]] = [
    # Year 0000 passed the period pattern and Period() raised: 500.
    (
        "benefits",
        "GET",
        "/api/v1/programs",
        {"query": {"period": "0000-01"}},
        422,
        "validation_failed",
    ),
    (
        "benefits",
        "POST",
        "/api/v1/payment-runs",
        {"body": {"program": "rural_reward_assistance", "period": "0000-01"}, "as": COUNTY},
        422,
        "validation_failed",
    ),
    # Days far from now overflowed the sweeps' calendar arithmetic: 500.
    (
        "benefits",
        "POST",
        "/api/v1/admin/sweeps/enrollments",
        {"query": {"as_of": "0001-01-01"}},
        422,
        "validation_failed",
    ),
    (
        "visits",
        "POST",
        "/api/v1/admin/sweeps/plans",
        {"query": {"as_of": "9999-12-31"}},
        422,
        "validation_failed",
    ),
    # A NUL character reached PostgreSQL, which refused it: 500. (SQLite stores it.)
    (
        "visits",
        "POST",
        "/api/v1/slots",
        {
            "body": {
                "station_id": "\x00",
                "service": "pre_pregnancy_check",
                "starts_at": "2026-03-01T08:00:00+08:00",
                "ends_at": "2026-03-01T11:30:00+08:00",
                "capacity": 10,
            },
            "as": ("township_officer", TOWNSHIP),
        },
        {404, 422},
        "",
    ),
    (
        "notify",
        "GET",
        "/api/v1/notifications",
        {"query": {"event_id": "\x00"}},
        {200, 422},
        "",
    ),
    # A change without If-Match or a body version answers 428, which no route declared.
    (
        "registry",
        "PATCH",
        "/api/v1/persons/{person_id}",
        {"path_parameters": {"person_id": "0"}, "body": {}},
        428,
        "version_required",
    ),
    (
        "benefits",
        "POST",
        "/api/v1/enrollments/{enrollment_id}/confirm",
        {"path_parameters": {"enrollment_id": "0"}, "body": {}, "as": COUNTY},
        428,
        "version_required",
    ),
    # A JSON body that is not UTF-8: 400 (undocumented, code validation_failed) before.
    (
        "visits",
        "POST",
        "/api/v1/appointments/{appointment_id}/cancel",
        {"path_parameters": {"appointment_id": "0"}, "body": NOT_UTF8},
        422,
        "body_not_json",
    ),
    (
        "notify",
        "PUT",
        "/api/v1/preferences/{category}",
        {"path_parameters": {"category": "x"}, "body": NOT_UTF8},
        422,
        "body_not_json",
    ),
    (
        "benefits",
        "POST",
        "/api/v1/eligibility/check",
        {"body": NOT_UTF8, "as": COUNTY},
        422,
        "body_not_json",
    ),
]


@pytest.mark.parametrize(
    ("service", "method", "path", "data", "status", "code"),
    SEEDS,
    ids=[f"{s[0]}-{s[1]}-{s[2]}-{s[4]}" for s in SEEDS],
)
async def test_fuzz_seed(
    stack: InProcessStack,
    service: str,
    method: str,
    path: str,
    data: dict[str, Any],
    status: int | set[int],
    code: str,
) -> None:
    client = stack.clients[service]
    schema = schemathesis.openapi.from_dict((await client.get("/openapi.json")).json())
    operation = schema[path][method]
    role, region = data.get("as", ("admin", ""))
    fields = {k: v for k, v in data.items() if k != "as"}
    media = {"media_type": "application/json"} if "body" in fields else {}
    case = operation.Case(headers=stack.auth(role, region), **media, **fields)
    kwargs = case.as_transport_kwargs(base_url="http://fuzz")
    response = await client.request(**_httpx_kwargs(kwargs))
    assert response.status_code in (status if isinstance(status, set) else {status}), response.text
    if code:
        assert response.json()["code"] == code
    case.validate_response(response, checks=CHECKS, headers=kwargs.get("headers"))


async def test_public_rate_limit_is_documented(stack: InProcessStack) -> None:
    """The public routes' 429 (rate_limited) was undeclared: it is part of their contract."""
    client = stack.registry
    schema = schemathesis.openapi.from_dict((await client.get("/openapi.json")).json())
    operation = schema["/api/v1/public/applications/{application_no}/progress"]["GET"]
    case = operation.Case(path_parameters={"application_no": "0"}, query={"phone_last4": "0000"})
    kwargs = case.as_transport_kwargs(base_url="http://fuzz")
    for _ in range(stack.settings.public_rate_per_minute + 1):
        response = await client.request(**_httpx_kwargs(kwargs))
        case.validate_response(response, checks=CHECKS, headers=kwargs.get("headers"))
    assert response.status_code == 429, response.text
