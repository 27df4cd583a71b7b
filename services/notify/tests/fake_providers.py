"""One real HTTP server on loopback imitating every outside system notify talks to.

Endpoints (under ``fake.url``):

- ``POST /gateway/messages``                        the county SMS gateway
- ``POST /aliyun/``                                 Aliyun Dysmsapi SendSms (RPC, form body)
- ``POST /tencent/``                                Tencent Cloud SMS SendSms 2021-01-11
- ``GET  /wechat/cgi-bin/token``                    WeChat access_token
- ``POST /wechat/cgi-bin/message/template/send``    WeChat template message
- ``POST /webhook/<anything>``                      a webhook receiver

Usage, from any test::

    from services.notify.tests.fake_providers import FakeProviders

    async with FakeProviders() as fake:
        settings = Settings(**fake.settings_overrides(), notify_sms_providers=["aliyun"])
        ...
        fake.fail_next("aliyun", 2)            # the next 2 requests answer HTTP 500
        fake.hang_next("tencent")              # the next request never answers ...
        fake.release()                         # ... until released (then answers normally)
        fake.rate_limit_next("gateway", retry_after=7)   # 429 with Retry-After: 7
        fake.error_next("aliyun", "isv.MOBILE_NUMBER_ILLEGAL")   # the provider's error
        fake.error_next("tencent", "AuthFailure.SignatureFailure", top_level=True)
        fake.error_next("wechat_send", 43004)
        fake.invalidate_wechat_token()         # the next send answers 40001
        fake.requests_to("aliyun")[-1].form()  # what was sent

or the ``fake_providers`` fixture: import it into a conftest.py (``from
services.notify.tests.fake_providers import fake_providers  # noqa: F401``), or declare a
three-line fixture of your own around ``async with FakeProviders()``. Endpoint names for the
commands: gateway, aliyun, tencent, wechat_token, wechat_send, webhook. Nothing here checks
signatures: the tests recompute them from the recorded requests.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
import uuid
from collections import defaultdict, deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

ENDPOINTS = ("gateway", "aliyun", "tencent", "wechat_token", "wechat_send", "webhook")

# Credentials the fake hands out through settings_overrides() (it accepts any, but for
# the WeChat token endpoint, which checks appid and secret like the real one).
GATEWAY_SECRET = "fake-gateway-secret"
ALIYUN_ACCESS_KEY_ID = "fake-aliyun-key-id"
ALIYUN_ACCESS_KEY_SECRET = "fake-aliyun-key-secret"
TENCENT_SECRET_ID = "AKIDfakeTencentSecretId"
TENCENT_SECRET_KEY = "fake-tencent-secret-key"
TENCENT_SDK_APP_ID = "1400000000"
SIGN_NAME = "零距"
WECHAT_APP_ID = "wxfake0000000000"
WECHAT_APP_SECRET = "fake-wechat-app-secret"
WEBHOOK_SECRET = "fake-webhook-secret"
# Our template codes (routing.toml) -> the providers' approved template ids.
ALIYUN_TEMPLATES = {
    "enrollment_activated": "SMS_100000001",
    "payment_disbursed": "SMS_100000002",
    "payment_failed": "SMS_100000003",
    "claim_decided": "SMS_100000004",
}
TENCENT_TEMPLATES = {
    "enrollment_activated": "2000001",
    "payment_disbursed": "2000002",
    "payment_failed": "2000003",
    "claim_decided": "2000004",
}


@dataclass
class RecordedRequest:
    endpoint: str
    method: str
    path: str
    query: dict[str, str]  # the last value of each name
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> dict[str, str]:
        """A form body (Aliyun), decoded."""
        return dict(parse_qsl(self.body.decode(), keep_blank_values=True))


@dataclass
class _Plan:
    kind: str  # "status" | "hang" | "error"
    status: int = 500
    headers: dict[str, str] = field(default_factory=dict)
    code: Any = None
    message: str = ""
    top_level: bool = False


class FakeProviders:
    def __init__(self, *, wechat_expires_in: int = 7200) -> None:
        self.requests: list[RecordedRequest] = []
        self.wechat_expires_in = wechat_expires_in
        self._plans: dict[str, deque[_Plan]] = defaultdict(deque)
        self._hanging: list[asyncio.Event] = []
        self._seq = itertools.count(1)
        self._token_seq = itertools.count(1)
        self._wechat_token: str | None = None
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._socket: socket.socket | None = None
        self.port = 0
        self.app = Starlette(
            routes=[
                Route("/gateway/messages", self._gateway, methods=["POST"]),
                Route("/aliyun/", self._aliyun, methods=["GET", "POST"]),
                Route("/aliyun", self._aliyun, methods=["GET", "POST"]),
                Route("/tencent/", self._tencent, methods=["POST"]),
                Route("/tencent", self._tencent, methods=["POST"]),
                Route("/wechat/cgi-bin/token", self._wechat_token_endpoint, methods=["GET"]),
                Route(
                    "/wechat/cgi-bin/message/template/send",
                    self._wechat_send,
                    methods=["POST"],
                ),
                Route("/webhook/{name:path}", self._webhook, methods=["POST"]),
            ]
        )

    # --- where things are -----------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def gateway_url(self) -> str:
        return f"{self.url}/gateway"

    @property
    def aliyun_url(self) -> str:
        return f"{self.url}/aliyun"

    @property
    def tencent_url(self) -> str:
        return f"{self.url}/tencent"

    @property
    def wechat_url(self) -> str:
        return f"{self.url}/wechat"

    def webhook_url(self, name: str = "hook") -> str:
        return f"{self.url}/webhook/{name}"

    def settings_overrides(self) -> dict[str, Any]:
        """Settings fields pointing every provider at this server, with its credentials."""
        return {
            "notify_gateway_url": self.gateway_url,
            "notify_gateway_secret": GATEWAY_SECRET,
            "notify_aliyun_base_url": self.aliyun_url,
            "notify_aliyun_access_key_id": ALIYUN_ACCESS_KEY_ID,
            "notify_aliyun_access_key_secret": ALIYUN_ACCESS_KEY_SECRET,
            "notify_aliyun_sign_name": SIGN_NAME,
            "notify_aliyun_templates": dict(ALIYUN_TEMPLATES),
            "notify_tencent_base_url": self.tencent_url,
            "notify_tencent_secret_id": TENCENT_SECRET_ID,
            "notify_tencent_secret_key": TENCENT_SECRET_KEY,
            "notify_tencent_sdk_app_id": TENCENT_SDK_APP_ID,
            "notify_tencent_sign_name": SIGN_NAME,
            "notify_tencent_templates": dict(TENCENT_TEMPLATES),
            "notify_wechat_base_url": self.wechat_url,
            "notify_wechat_app_id": WECHAT_APP_ID,
            "notify_wechat_app_secret": WECHAT_APP_SECRET,
        }

    def requests_to(self, endpoint: str) -> list[RecordedRequest]:
        self._check(endpoint)
        return [r for r in self.requests if r.endpoint == endpoint]

    # --- commands -------------------------------------------------------------------------

    def fail_next(
        self, endpoint: str, n: int = 1, *, status: int = 500, headers: dict[str, str] | None = None
    ) -> None:
        """The next ``n`` requests to ``endpoint`` answer ``status`` (a bare HTTP error)."""
        self._queue(endpoint, n, _Plan("status", status=status, headers=dict(headers or {})))

    def hang_next(self, endpoint: str, n: int = 1) -> None:
        """The next ``n`` requests get no answer until ``release()`` (then a normal one)."""
        self._queue(endpoint, n, _Plan("hang"))

    def rate_limit_next(
        self, endpoint: str, n: int = 1, *, retry_after: float | str | None = 30
    ) -> None:
        """The next ``n`` requests answer HTTP 429, with ``Retry-After`` unless None."""
        headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
        self._queue(endpoint, n, _Plan("status", status=429, headers=headers))

    def error_next(
        self,
        endpoint: str,
        code: Any,
        n: int = 1,
        *,
        status: int | None = None,
        message: str = "",
        top_level: bool = False,
    ) -> None:
        """The next ``n`` requests answer the provider's error ``code`` in its own format:
        gateway ``{"error": code}`` (HTTP 422 unless ``status``); aliyun ``{"Code": code}``
        (HTTP 200 unless ``status``); tencent the code in SendStatusSet[0], or in
        Response.Error with ``top_level``; wechat ``{"errcode": code}``; webhook: HTTP
        ``code``."""
        default = {"gateway": 422, "webhook": int(code) if endpoint == "webhook" else 200}
        plan = _Plan(
            "error",
            status=status if status is not None else default.get(endpoint, 200),
            code=code,
            message=message or f"fake error {code}",
            top_level=top_level,
        )
        self._queue(endpoint, n, plan)

    def invalidate_wechat_token(self) -> None:
        """The access_token handed out is no longer valid (sends answer 40001)."""
        self._wechat_token = None

    def release(self) -> None:
        """Let every hung request go on (each then answers as it normally would)."""
        hanging, self._hanging = self._hanging, []
        for event in hanging:
            event.set()

    def reset(self) -> None:
        """Forget the recorded requests and every pending command."""
        self.release()
        self.requests.clear()
        self._plans.clear()

    def _check(self, endpoint: str) -> None:
        if endpoint not in ENDPOINTS:
            raise ValueError(f"unknown endpoint {endpoint!r} (known: {', '.join(ENDPOINTS)})")

    def _queue(self, endpoint: str, n: int, plan: _Plan) -> None:
        self._check(endpoint)
        self._plans[endpoint].extend([plan] * n)

    # --- life cycle -----------------------------------------------------------------------

    async def __aenter__(self) -> FakeProviders:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self._socket = sock
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            lifespan="off",
            log_config=None,
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        while not self._server.started:
            if self._task.done():
                await self._task  # raises what stopped it
                raise RuntimeError("the fake provider server stopped while starting")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        self.release()
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            try:
                await asyncio.wait_for(self._task, timeout=5)
            except TimeoutError:
                self._task.cancel()
        if self._socket is not None:
            self._socket.close()
        self._server = self._task = self._socket = None

    # --- the endpoints --------------------------------------------------------------------

    async def _begin(self, endpoint: str, request: Request) -> tuple[RecordedRequest, _Plan | None]:
        body = await request.body()
        recorded = RecordedRequest(
            endpoint=endpoint,
            method=request.method,
            path=request.url.path,
            query=dict(request.query_params),
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body,
        )
        self.requests.append(recorded)
        plans = self._plans.get(endpoint)
        plan = plans.popleft() if plans else None
        if plan is not None and plan.kind == "hang":
            event = asyncio.Event()
            self._hanging.append(event)
            await event.wait()
            plan = None
        return recorded, plan

    @staticmethod
    def _bare(plan: _Plan) -> Response:
        return JSONResponse(
            {"error": f"fake HTTP {plan.status}"}, status_code=plan.status, headers=plan.headers
        )

    async def _gateway(self, request: Request) -> Response:
        _, plan = await self._begin("gateway", request)
        if plan is not None and plan.kind == "status":
            return self._bare(plan)
        if plan is not None:
            return JSONResponse(
                {"error": plan.code, "message": plan.message}, status_code=plan.status
            )
        return JSONResponse({"message_id": f"gw-{next(self._seq)}"})

    async def _aliyun(self, request: Request) -> Response:
        _, plan = await self._begin("aliyun", request)
        request_id = str(uuid.uuid4()).upper()
        if plan is not None and plan.kind == "status":
            return self._bare(plan)
        if plan is not None:
            return JSONResponse(
                {"Code": plan.code, "Message": plan.message, "RequestId": request_id},
                status_code=plan.status,
            )
        return JSONResponse(
            {
                "Code": "OK",
                "Message": "OK",
                "BizId": f"{next(self._seq):015d}^0",
                "RequestId": request_id,
            }
        )

    async def _tencent(self, request: Request) -> Response:
        recorded, plan = await self._begin("tencent", request)
        request_id = str(uuid.uuid4())
        if plan is not None and plan.kind == "status":
            return self._bare(plan)
        try:
            sent = recorded.json()
        except ValueError:
            sent = {}
        numbers = sent.get("PhoneNumberSet") or [""]
        context = sent.get("SessionContext", "")
        if plan is not None and plan.top_level:
            return JSONResponse(
                {
                    "Response": {
                        "Error": {"Code": plan.code, "Message": plan.message},
                        "RequestId": request_id,
                    }
                },
                status_code=plan.status,
            )
        if plan is not None:
            item = {"SerialNo": "", "Code": plan.code, "Message": plan.message, "Fee": 0}
        else:
            serial = f"2433:{next(self._seq):028d}"
            item = {"SerialNo": serial, "Code": "Ok", "Message": "send success", "Fee": 1}
        item |= {"PhoneNumber": numbers[0], "SessionContext": context, "IsoCode": "CN"}
        return JSONResponse(
            {"Response": {"SendStatusSet": [item], "RequestId": request_id}},
            status_code=plan.status if plan is not None else 200,
        )

    async def _wechat_token_endpoint(self, request: Request) -> Response:
        recorded, plan = await self._begin("wechat_token", request)
        if plan is not None and plan.kind == "status":
            return self._bare(plan)
        if plan is not None:
            return JSONResponse({"errcode": int(plan.code), "errmsg": plan.message})
        q = recorded.query
        if q.get("grant_type") != "client_credential":
            return JSONResponse({"errcode": 40002, "errmsg": "invalid grant_type"})
        if q.get("appid") != WECHAT_APP_ID:
            return JSONResponse({"errcode": 40013, "errmsg": "invalid appid"})
        if q.get("secret") != WECHAT_APP_SECRET:
            return JSONResponse({"errcode": 40125, "errmsg": "invalid appsecret"})
        self._wechat_token = f"fake-token-{next(self._token_seq)}"
        return JSONResponse(
            {"access_token": self._wechat_token, "expires_in": self.wechat_expires_in}
        )

    async def _wechat_send(self, request: Request) -> Response:
        recorded, plan = await self._begin("wechat_send", request)
        if plan is not None and plan.kind == "status":
            return self._bare(plan)
        if plan is not None:
            return JSONResponse({"errcode": int(plan.code), "errmsg": plan.message})
        token = recorded.query.get("access_token")
        if not token or token != self._wechat_token:
            return JSONResponse(
                {
                    "errcode": 40001,
                    "errmsg": "invalid credential, access_token is invalid or not latest",
                }
            )
        return JSONResponse({"errcode": 0, "errmsg": "ok", "msgid": 200228332 + next(self._seq)})

    async def _webhook(self, request: Request) -> Response:
        _, plan = await self._begin("webhook", request)
        if plan is not None:
            return self._bare(plan)
        return Response(status_code=204)


@pytest.fixture
async def fake_providers() -> AsyncIterator[FakeProviders]:
    """A running FakeProviders for one test."""
    async with FakeProviders() as fake:
        yield fake
