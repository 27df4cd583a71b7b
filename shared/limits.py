"""Request body size limits, for every service: 413 ``payload_too_large`` before the body is read.

A body may be as large as ``Settings.max_body_bytes`` (1 MiB). A route that legitimately takes
more names the setting holding its own limit in its ``openapi_extra`` (``larger_body``), which
also publishes it in OpenAPI as ``x-max-body-setting``. The check runs when the app first
asks for the body (routed by then, so the route's own limit is known), before any of it is
taken in: the declared ``Content-Length`` first, then a chunked body (or one whose length lies)
is counted chunk by chunk and refused as soon as it goes over; no more than the limit is ever
buffered. A body the route never reads is never refused (nor held).
"""

from __future__ import annotations

from typing import Any

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.config import Settings
from shared.errors import Problem, problem_response

LIMIT_SETTING = "x-max-body-setting"


def larger_body(setting: str) -> dict[str, Any]:
    """``openapi_extra`` of a route whose body may exceed ``max_body_bytes``: up to ``setting``."""
    if setting not in Settings.model_fields:
        raise ValueError(f"no setting {setting!r}")
    return {LIMIT_SETTING: setting}


def too_large(limit: int) -> Problem:
    return Problem(
        413,
        "payload_too_large",
        f"请求体超过 {limit} 字节的上限",
        f"The request body exceeds the limit of {limit} bytes",
    )


class _BodyTooLarge(HTTPException):
    """Raised from ``receive``: an HTTPException because FastAPI's body parsing passes those on
    (any other error becomes a 400); ``install_error_handlers`` answers with its problem."""

    def __init__(self, limit: int) -> None:
        super().__init__(413)
        self.problem = too_large(limit)


class BodySizeLimit:
    """Pure ASGI middleware (it must see the body's chunks, not a buffered request)."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    def _route_limit(self, scope: Scope) -> int:
        """The limit of the route the request was routed to (asked only for a large body)."""
        extra = getattr(scope.get("route"), "openapi_extra", None) or {}
        setting = extra.get(LIMIT_SETTING)
        return int(getattr(self.settings, setting)) if setting else self.settings.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        default = self.settings.max_body_bytes
        limit: int | None = None  # the route's, once needed
        declared = _content_length(scope)
        received = 0

        def check(size: int) -> None:
            nonlocal limit
            if size <= default:
                return
            if limit is None:
                limit = self._route_limit(scope)
            if size > limit:
                raise _BodyTooLarge(limit)

        async def limited_receive() -> Message:
            nonlocal received
            if declared is not None and received == 0:
                check(declared)  # refused before a byte is read
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                check(received)
            return message

        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge as e:  # read outside the routes' error handling
            if started:
                raise
            await problem_response(Request(scope), e.problem)(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    value = Headers(scope=scope).get("content-length")
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
