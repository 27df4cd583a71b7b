"""Abuse limits: public routes rate-limited per client, progress lockout per application number
(in registry's database), request body size limits on every service (413 problem+json)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from services.registry.app import create_app as create_registry
from shared.clock import SHANGHAI, FixedClock
from shared.errors import TITLES
from tests.support import TOWNSHIP, InProcessStack

PROBLEM = "application/problem+json"
CATALOGUE = "/api/v1/certificate-types"
PROGRESS = "/api/v1/public/applications/{}/progress"
VERIFY = "/api/v1/public/certificates/{}/verification"
MIB = 1 << 20

# A POST of each service (the 413 comes at the first read of the body: before auth and
# validation, which FastAPI resolves after reading it).
POSTS = {
    "registry": "/api/v1/persons",
    "benefits": "/api/v1/enrollments",
    "visits": "/api/v1/appointments",
    "notify": "/api/v1/templates/any/preview",
}


def problem(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """A problem+json answer with the stable shape and the code's own title (in its language)."""
    english = r.request.headers.get("accept-language") == "en"
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = r.json()
    assert body["code"] == code
    assert body["type"] == f"urn:lingju:problem:{code}"
    assert body["status"] == status
    assert body["title"] == TITLES[code][1 if english else 0]
    assert body["instance"] == r.request.url.path
    assert body["detail"]
    return body


def at(minute: int = 0, second: int = 0) -> datetime:
    return datetime(2026, 3, 2, 10, 0, tzinfo=SHANGHAI) + timedelta(minutes=minute, seconds=second)


async def chunks(total: int, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    """A body sent chunked: no Content-Length, so only counting can refuse it."""
    sent = 0
    while sent < total:
        n = min(size, total - sent)
        sent += n
        yield b" " * n


# -- rate limits --------------------------------------------------------------------------------


async def test_the_catalogue_is_rate_limited_per_client(stack: InProcessStack) -> None:
    rate = stack.settings.public_rate_per_minute
    answers = [(await stack.registry.get(CATALOGUE)).status_code for _ in range(rate)]
    assert answers == [200] * rate
    r = await stack.registry.get(CATALOGUE)
    body = problem(r, 429, "rate_limited")
    assert body["detail"] == "请求过于频繁，请稍后再试"
    assert int(r.headers["retry-after"]) >= 1
    english = await stack.registry.get(CATALOGUE, headers={"Accept-Language": "en"})
    assert problem(english, 429, "rate_limited")["title"] == "Too many requests"

    # Another client has its own bucket.
    other = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=stack.apps["registry"], client=("10.0.0.2", 4000)),
        base_url="http://registry",
    )
    async with other:
        assert (await other.get(CATALOGUE)).status_code == 200


async def test_every_public_route_shares_the_one_limiter(stack: InProcessStack) -> None:
    for _ in range(stack.settings.public_rate_per_minute):
        assert (await stack.registry.get(CATALOGUE)).status_code == 200
    for r in (
        await stack.registry.get(CATALOGUE),
        await stack.registry.get(PROGRESS.format("SQ1"), params={"phone_last4": "0000"}),
        await stack.registry.get(VERIFY.format("330102-2026-000001"), params={"code": "0" * 16}),
    ):
        problem(r, 429, "rate_limited")
        assert int(r.headers["retry-after"]) >= 1


# -- progress lockout ---------------------------------------------------------------------------


async def test_wrong_digits_lock_the_number_even_for_the_right_ones(
    stack: InProcessStack,
) -> None:
    stack.rt("registry").clock = clock = FixedClock(at())
    app = await stack.submit_application()
    url = PROGRESS.format(app["application_no"])
    right = app["mother"]["phone"][-4:]
    wrong = "0000" if right != "0000" else "1111"
    limit = stack.settings.progress_lockout_failures
    window = stack.settings.progress_lockout_window_seconds
    assert (limit, window) == (5, 900)  # the defaults

    assert (await stack.registry.get(url, params={"phone_last4": right})).status_code == 200
    for i in range(limit):
        clock.set(at(minute=i))  # one a minute: the first leaves the window first
        problem(await stack.registry.get(url, params={"phone_last4": wrong}), 404, "not_found")

    r = await stack.registry.get(url, params={"phone_last4": right})
    body = problem(r, 429, "locked_out")
    assert body["detail"].startswith("该申请编号的手机尾号错误次数过多")
    # The first failure (minute 0) leaves the 15-minute window at minute 15; it is minute 4.
    assert r.headers["retry-after"] == str(11 * 60)
    english = await stack.registry.get(
        url, params={"phone_last4": right}, headers={"Accept-Language": "en"}
    )
    assert problem(english, 429, "locked_out")["detail"].startswith("Too many wrong phone endings")

    clock.set(at(minute=14, second=59))
    r = await stack.registry.get(url, params={"phone_last4": right})
    problem(r, 429, "locked_out")
    assert r.headers["retry-after"] == "1"

    clock.set(at(minute=15))  # the first failure has left the window: 4 remain
    r = await stack.registry.get(url, params={"phone_last4": right})
    assert r.status_code == 200, r.text
    assert r.json()["application_no"] == app["application_no"]

    # A right answer cleared nothing: one more wrong one makes 5 again.
    problem(await stack.registry.get(url, params={"phone_last4": wrong}), 404, "not_found")
    problem(await stack.registry.get(url, params={"phone_last4": right}), 429, "locked_out")

    clock.set(at(minute=60))
    assert (await stack.registry.get(url, params={"phone_last4": right})).status_code == 200
    # Expired failures are pruned on the next failure (any number's).
    await stack.registry.get(PROGRESS.format("SQ-OTHER"), params={"phone_last4": wrong})
    assert await stack.count_rows("registry", "progress_failures") == 1


async def test_a_locked_number_is_locked_for_every_client(stack: InProcessStack) -> None:
    stack.rt("registry").clock = FixedClock(at())
    app = await stack.submit_application()
    url = PROGRESS.format(app["application_no"])
    right = app["mother"]["phone"][-4:]
    wrong = "0000" if right != "0000" else "1111"
    for _ in range(stack.settings.progress_lockout_failures):
        assert (await stack.registry.get(url, params={"phone_last4": wrong})).status_code == 404

    # Another client of this app, and one of a second replica over the same database.
    replica = create_registry(stack.settings)
    replica.state.runtime.clock = FixedClock(at(minute=1))
    try:
        for app_, host in ((stack.apps["registry"], "10.0.0.2"), (replica, "10.0.0.3")):
            other = httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app_, client=(host, 4000)),
                base_url="http://registry",
            )
            async with other:
                r = await other.get(url, params={"phone_last4": right})
                problem(r, 429, "locked_out")
                assert int(r.headers["retry-after"]) > 0
    finally:
        await replica.state.runtime.db.dispose()


async def test_unknown_numbers_answer_alike_and_lock_alike(stack: InProcessStack) -> None:
    stack.rt("registry").clock = FixedClock(at())
    app = await stack.submit_application()
    known = app["application_no"]
    right = app["mother"]["phone"][-4:]
    wrong = "0000" if right != "0000" else "1111"
    unknown = known[:-1] + ("1" if known.endswith("0") else "0")  # same length, no such

    def same(r: httpx.Response) -> tuple[Any, ...]:
        body = {k: v for k, v in r.json().items() if k != "instance"}
        return r.status_code, r.headers["content-type"], body

    a = await stack.registry.get(PROGRESS.format(known), params={"phone_last4": wrong})
    b = await stack.registry.get(PROGRESS.format(unknown), params={"phone_last4": wrong})
    problem(a, 404, "not_found")
    assert same(a) == same(b)
    assert set(a.headers) == set(b.headers)

    for _ in range(stack.settings.progress_lockout_failures - 1):
        a = await stack.registry.get(PROGRESS.format(known), params={"phone_last4": wrong})
        b = await stack.registry.get(PROGRESS.format(unknown), params={"phone_last4": wrong})
        assert same(a) == same(b)
    a = await stack.registry.get(PROGRESS.format(known), params={"phone_last4": right})
    b = await stack.registry.get(PROGRESS.format(unknown), params={"phone_last4": right})
    problem(a, 429, "locked_out")
    assert same(a) == same(b)
    assert a.headers["retry-after"] == b.headers["retry-after"] == "900"

    # A number longer than any real one is counted too (under its digest).
    long_no = "SQ" + "7" * 200
    for _ in range(stack.settings.progress_lockout_failures):
        r = await stack.registry.get(PROGRESS.format(long_no), params={"phone_last4": wrong})
        problem(r, 404, "not_found")
    r = await stack.registry.get(PROGRESS.format(long_no), params={"phone_last4": wrong})
    problem(r, 429, "locked_out")


# -- body size ----------------------------------------------------------------------------------


@pytest.mark.parametrize("service", list(POSTS))
async def test_an_oversized_body_is_refused_on_every_service(
    stack: InProcessStack, service: str
) -> None:
    client = stack.clients[service]
    url = POSTS[service]
    limit = stack.settings.max_body_bytes
    assert limit == MIB

    # Declared by Content-Length: refused before a byte of the body is read.
    r = await client.post(url, content=b" " * (limit + 1), headers={"content-type": "text/plain"})
    body = problem(r, 413, "payload_too_large")
    assert body["detail"] == f"请求体超过 {limit} 字节的上限"

    # Chunked: counted as it arrives.
    r = await client.post(url, content=chunks(limit + 1), headers={"content-type": "text/plain"})
    assert "content-length" not in r.request.headers
    problem(r, 413, "payload_too_large")

    # Exactly at the limit it goes through to the route (which has its own opinion).
    r = await client.post(url, content=b" " * limit, headers={"content-type": "text/plain"})
    assert r.status_code != 413


async def test_oversized_json_read_by_a_route_is_refused(stack: InProcessStack) -> None:
    """Chunked, authenticated: the route itself reads the body and the limit stops it."""
    padding = "x" * (MIB + 10)

    async def body() -> AsyncIterator[bytes]:
        yield b'{"name": "'
        for i in range(0, len(padding), 50_000):
            yield padding[i : i + 50_000].encode()
        yield b'"}'

    r = await stack.registry.post(
        "/api/v1/persons",
        content=body(),
        headers={
            **stack.auth("village_agent", TOWNSHIP),
            "content-type": "application/json",
            "Accept-Language": "en",
        },
    )
    body = problem(r, 413, "payload_too_large")
    assert body["detail"] == f"The request body exceeds the limit of {MIB} bytes"


async def test_the_bank_return_file_has_its_own_larger_limit(stack: InProcessStack) -> None:
    url = "/api/v1/payment-runs/00000000-0000-0000-0000-000000000000/reconciliation"
    officer = {**stack.auth("county_officer", "330102"), "content-type": "text/csv"}
    assert stack.settings.max_return_file_bytes == 64 * MIB
    stack.settings.max_return_file_bytes = 2 * MIB  # the same settings object the apps use

    # Over the default, under its own: reaches the route, which reads it (and finds no CSV).
    r = await stack.benefits.post(url, content=b"x" * (MIB + 1), headers=officer)
    problem(r, 422, "return_file_invalid")
    r = await stack.benefits.post(url, content=chunks(MIB + 1), headers=officer)
    problem(r, 422, "return_file_invalid")

    # Over its own: 413, declared or counted.
    r = await stack.benefits.post(url, content=b"x" * (2 * MIB + 1), headers=officer)
    assert problem(r, 413, "payload_too_large")["detail"] == f"请求体超过 {2 * MIB} 字节的上限"
    r = await stack.benefits.post(url, content=chunks(2 * MIB + 1), headers=officer)
    problem(r, 413, "payload_too_large")

    # Other routes of the service keep the default.
    r = await stack.benefits.post("/api/v1/enrollments", content=chunks(MIB + 1))
    problem(r, 413, "payload_too_large")


async def test_larger_limits_are_published(stack: InProcessStack) -> None:
    benefits = (await stack.benefits.get("/openapi.json")).json()
    op = benefits["paths"]["/api/v1/payment-runs/{run_id}/reconciliation"]["post"]
    assert op["x-max-body-setting"] == "max_return_file_bytes"
    assert "413" in op["responses"]
    visits = (await stack.visits.get("/openapi.json")).json()
    assert visits["paths"]["/api/v1/sync"]["post"]["x-max-body-setting"] == "max_sync_push_bytes"
    # A phone's push over the default limit reaches the route (refused there for other reasons).
    worker = {**stack.auth("village_worker", "330102001001"), "content-type": "application/json"}
    r = await stack.visits.post("/api/v1/sync", content=chunks(MIB + 1), headers=worker)
    problem(r, 422, "body_not_json")
