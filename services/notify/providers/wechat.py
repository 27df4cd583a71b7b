"""WeChat official account template messages.

- access_token: ``GET {base}/cgi-bin/token?grant_type=client_credential&appid=..&secret=..``
  answers ``{"access_token", "expires_in"}`` (or ``{"errcode", "errmsg"}``). The token is
  cached until ``expires_in`` minus a margin; one refresh at a time (an asyncio.Lock), and
  callers that waited use the token the first one fetched.
- send: ``POST {base}/cgi-bin/message/template/send?access_token=..`` with
  ``{"touser": openid, "template_id": .., "data": {field: {"value": ..}}}``; answers
  ``{"errcode": 0, "errmsg": "ok", "msgid": ..}`` or an error code. 40001 / 40014 / 42001
  (the token is invalid or expired, e.g. another server refreshed it) refresh the token once
  and send once more.
- receipts: the ``TEMPLATESENDJOBFINISH`` event WeChat pushes to the account's server URL
  (XML with ``MsgID`` and ``Status`` ``success`` / ``failed:user block`` /
  ``failed: system failed``).
"""

from __future__ import annotations

import asyncio
import json
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx

from services.notify.providers.base import (
    Accepted,
    ErrorKind,
    HttpProvider,
    OutgoingMessage,
    Receipt,
    SendError,
    retry_after_seconds,
)

TOKEN_INVALID_CODES = frozenset({40001, 40014, 42001})
RECIPIENT_CODES = frozenset({43004, 40003})  # the user unfollowed; not a valid openid
RATE_LIMIT_CODES = frozenset({45009, 45047})  # API daily quota reached; too many messages
UNAVAILABLE_CODES = frozenset({-1})  # system busy


def error_kind(errcode: int) -> ErrorKind:
    if errcode in RECIPIENT_CODES:
        return "recipient_rejected"
    if errcode in RATE_LIMIT_CODES:
        return "rate_limited"
    if errcode in UNAVAILABLE_CODES:
        return "unavailable"
    return "rejected"  # 40037 template id, 47003 data, 48001 not authorized, 40013 appid, ...


def _errcode(answer: Any) -> int | None:
    if not isinstance(answer, dict) or "errcode" not in answer:
        return None
    try:
        return int(answer["errcode"])
    except (TypeError, ValueError):
        return None


class WechatProvider(HttpProvider):
    name = "wechat"
    channel = "wechat"

    def __init__(
        self,
        *,
        app_id: str,
        app_secret: str,
        base_url: str = "https://api.weixin.qq.com",
        timeout: float,
        client: httpx.AsyncClient | None = None,
        token_margin_seconds: float = 300,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(timeout=timeout, client=client)
        self.app_id = app_id
        self.app_secret = app_secret
        self.base_url = base_url.rstrip("/")
        self.token_margin_seconds = token_margin_seconds
        self._clock = clock
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = asyncio.Lock()

    # --- access_token ---------------------------------------------------------------------

    def _cached(self) -> str | None:
        if self._token is not None and self._clock() < self._expires_at:
            return self._token
        return None

    async def access_token(self) -> str:
        token = self._cached()
        if token is not None:
            return token
        async with self._lock:
            token = self._cached()  # fetched by whoever held the lock before us
            if token is None:
                token = await self._fetch_token()
        return token

    def invalidate(self, token: str) -> None:
        """Forget ``token`` (unless a newer one has replaced it already)."""
        if self._token == token:
            self._token = None

    async def _fetch_token(self) -> str:
        response = await self._request(
            "GET",
            f"{self.base_url}/cgi-bin/token",
            params={
                "grant_type": "client_credential",
                "appid": self.app_id,
                "secret": self.app_secret,
            },
        )
        if not response.is_success:
            raise self._status_error(response) or SendError(
                "unavailable", f"wechat: token HTTP {response.status_code}"
            )
        answer = self._json(response)
        token = answer.get("access_token") if isinstance(answer, dict) else None
        if not isinstance(token, str) or not token:
            errcode = _errcode(answer)
            kind: ErrorKind = (
                "rejected" if errcode is None or errcode in RECIPIENT_CODES else error_kind(errcode)
            )
            errmsg = answer.get("errmsg", "") if isinstance(answer, dict) else ""
            raise SendError(kind, f"wechat: access_token refused: {errcode} {errmsg}"[:300])
        try:
            expires_in = float(answer.get("expires_in", 7200))
        except (TypeError, ValueError):
            expires_in = 7200.0
        margin = min(self.token_margin_seconds, expires_in / 2)
        self._token = token
        self._expires_at = self._clock() + expires_in - margin
        return token

    # --- send -----------------------------------------------------------------------------

    async def send(self, message: OutgoingMessage) -> Accepted:
        if not message.wechat_template_id:
            raise SendError("rejected", f"wechat: template {message.template!r} has no WeChat id")
        body = json.dumps(
            {
                "touser": message.address,
                "template_id": message.wechat_template_id,
                "data": {field: {"value": str(v)} for field, v in message.params.items()},
            },
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode()
        token = await self.access_token()
        response, answer = await self._post_template(token, body)
        if _errcode(answer) in TOKEN_INVALID_CODES:
            self.invalidate(token)
            token = await self.access_token()
            response, answer = await self._post_template(token, body)
        errcode = _errcode(answer)
        if errcode == 0:
            msgid = answer.get("msgid")
            return Accepted(str(msgid) if msgid is not None else None)
        if errcode is None:
            raise SendError("unavailable", f"wechat: answer without errcode: {answer!r}"[:300])
        kind = error_kind(errcode)
        raise SendError(
            kind,
            f"wechat: {errcode} {answer.get('errmsg', '')}"[:300],
            http_status=response.status_code,
            retry_after=retry_after_seconds(response.headers.get("Retry-After"))
            if kind == "rate_limited"
            else None,
        )

    async def _post_template(self, token: str, body: bytes) -> tuple[httpx.Response, Any]:
        response = await self._request(
            "POST",
            f"{self.base_url}/cgi-bin/message/template/send",
            params={"access_token": token},
            content=body,
            headers={"Content-Type": "application/json; charset=utf-8"},
        )
        if not response.is_success:
            raise self._status_error(response) or SendError(
                "unavailable", f"wechat: HTTP {response.status_code}"
            )
        return response, self._json(response)

    # --- receipts -------------------------------------------------------------------------

    def parse_receipts(self, body: bytes) -> list[Receipt]:
        """The TEMPLATESENDJOBFINISH event's receipt; other events and messages pushed to
        the same URL have none (``[]``)."""
        head = body[:4096].upper()
        if b"<!DOCTYPE" in head or b"<!ENTITY" in head:
            raise ValueError("wechat receipts: DTDs are not accepted")
        try:
            root = ET.fromstring(body)
        except ET.ParseError as e:
            raise ValueError(f"wechat receipts: not XML: {e}") from e
        if root.tag != "xml":
            raise ValueError(f"wechat receipts: unexpected root element {root.tag!r}")
        msg_type = (root.findtext("MsgType") or "").strip()
        if not msg_type and root.find("Encrypt") is not None:
            raise ValueError("wechat receipts: the body is encrypted; decrypt it first")
        event = (root.findtext("Event") or "").strip()
        if msg_type != "event" or event != "TEMPLATESENDJOBFINISH":
            return []
        msg_id = (root.findtext("MsgID") or root.findtext("MsgId") or "").strip()
        if not msg_id:
            raise ValueError("wechat receipts: TEMPLATESENDJOBFINISH without MsgID")
        status = (root.findtext("Status") or "").strip()
        delivered = status == "success"
        return [
            Receipt(
                provider_message_id=msg_id,
                delivered=delivered,
                error=None if delivered else (status or "failed"),
                at=_unix_time(root.findtext("CreateTime")),
            )
        ]


def _unix_time(value: str | None) -> datetime | None:
    try:
        return datetime.fromtimestamp(int((value or "").strip()), UTC)
    except (ValueError, OverflowError, OSError):
        return None
