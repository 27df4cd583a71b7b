"""Aliyun SMS (Dysmsapi, API version 2017-05-25): SendSms in the RPC style.

The request is a form POST to the endpoint's ``/`` carrying the common parameters (Format,
Version, AccessKeyId, SignatureMethod HMAC-SHA1, SignatureVersion 1.0, SignatureNonce,
Timestamp, RegionId, Action) and SendSms's (PhoneNumbers, SignName, TemplateCode,
TemplateParam, OutId), signed as Aliyun documents for RPC APIs:

1. sort the parameters (all but Signature) by name; percent-encode each name and value in
   UTF-8 (A-Z a-z 0-9 ``-_.~`` stay, everything else ``%XY`` upper-case, space ``%20``) and
   join them as ``name=value`` with ``&``: the canonicalized query string;
2. StringToSign = HTTP method + ``&`` + percentEncode(``/``) + ``&`` +
   percentEncode(canonicalized query string);
3. Signature = Base64(HMAC-SHA1(key = AccessKeySecret + ``&``, StringToSign)).

Answers are JSON (``Format=JSON``): ``{"Code": "OK", "BizId": ..., "RequestId": ...}`` on
success, else ``{"Code": <error code>, "Message": ...}`` (HTTP 200 for the business errors,
4xx/5xx for the gateway's own: signature, access key, throttling, internal errors).

Receipts: the SmsReport "HTTP batch push" body, a JSON array of ``{"phone_number",
"send_time", "report_time", "success", "err_code", "err_msg", "sms_size", "biz_id",
"out_id"}`` with times as ``YYYY-MM-DD hh:mm:ss`` in Beijing time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from urllib.parse import quote

import httpx

from services.notify.providers.base import (
    Accepted,
    ErrorKind,
    HttpProvider,
    OutgoingMessage,
    Receipt,
    SendError,
    report_time,
    retry_after_seconds,
)

API_VERSION = "2017-05-25"

# The documented SendSms error codes, by what they mean for a delivery. Anything else that
# is not "OK" (a template or signature not approved, bad credentials, no balance, bad
# parameters, content refused, ...) is ``rejected``.
RECIPIENT_CODES = frozenset({"isv.MOBILE_NUMBER_ILLEGAL"})
RATE_LIMIT_CODES = frozenset(
    {
        "isv.BUSINESS_LIMIT_CONTROL",  # per-number flow control (minute / hour / day)
        "isv.DAY_LIMIT_CONTROL",  # the account's daily total set in the console
        "isv.MONTH_LIMIT_CONTROL",  # the account's monthly total
        "Throttling",
        "Throttling.User",
        "Throttling.Api",
        "Throttling.System",
    }
)
UNAVAILABLE_CODES = frozenset(
    {"isp.SYSTEM_ERROR", "isp.GATEWAY_ERROR", "ServiceUnavailable", "InternalError"}
)


def percent_encode(value: str) -> str:
    """Aliyun's RPC percent-encoding: RFC 3986 unreserved characters stay, the rest %XY."""
    return quote(value, safe="-_.~", encoding="utf-8")


def canonicalized_query(params: Mapping[str, str]) -> str:
    return "&".join(
        f"{percent_encode(k)}={percent_encode(v)}"
        for k, v in sorted(params.items())
        if k != "Signature"
    )


def string_to_sign(method: str, params: Mapping[str, str]) -> str:
    return f"{method.upper()}&{percent_encode('/')}&{percent_encode(canonicalized_query(params))}"


def signature(method: str, params: Mapping[str, str], access_key_secret: str) -> str:
    digest = hmac.new(
        (access_key_secret + "&").encode(),
        string_to_sign(method, params).encode(),
        hashlib.sha1,
    ).digest()
    return base64.b64encode(digest).decode()


def error_kind(code: str | None, http_status: int) -> ErrorKind:
    if code in RATE_LIMIT_CODES or (code or "").startswith("Throttling"):
        return "rate_limited"
    if code in RECIPIENT_CODES:
        return "recipient_rejected"
    if code in UNAVAILABLE_CODES or http_status >= 500:
        return "unavailable"
    return "rejected"


class AliyunSmsProvider(HttpProvider):
    name = "aliyun"
    channel = "sms"

    def __init__(
        self,
        *,
        access_key_id: str,
        access_key_secret: str,
        sign_name: str,
        templates: Mapping[str, str],
        region: str = "cn-hangzhou",
        base_url: str = "https://dysmsapi.aliyuncs.com",
        timeout: float,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        super().__init__(timeout=timeout, client=client)
        self.access_key_id = access_key_id
        self.access_key_secret = access_key_secret
        self.sign_name = sign_name
        self.templates = dict(templates)
        self.region = region
        self.base_url = base_url.rstrip("/")

    def request_params(self, message: OutgoingMessage, template_code: str) -> dict[str, str]:
        """Every parameter of the SendSms call but Signature."""
        return {
            "AccessKeyId": self.access_key_id,
            "Action": "SendSms",
            "Format": "JSON",
            "OutId": message.delivery_id,
            "PhoneNumbers": message.address,
            "RegionId": self.region,
            "SignName": self.sign_name,
            "SignatureMethod": "HMAC-SHA1",
            "SignatureNonce": uuid.uuid4().hex,
            "SignatureVersion": "1.0",
            "TemplateCode": template_code,
            "TemplateParam": json.dumps(message.params, ensure_ascii=False, separators=(",", ":")),
            "Timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "Version": API_VERSION,
        }

    async def send(self, message: OutgoingMessage) -> Accepted:
        template_code = self.templates.get(message.template)
        if not template_code:
            raise SendError(
                "rejected", f"aliyun: no Aliyun template code for template {message.template!r}"
            )
        params = self.request_params(message, template_code)
        params["Signature"] = signature("POST", params, self.access_key_secret)
        body = "&".join(f"{percent_encode(k)}={percent_encode(v)}" for k, v in params.items())
        response = await self._request(
            "POST",
            f"{self.base_url}/",
            content=body.encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
        )
        status = response.status_code
        if status == 429:
            raise SendError(
                "rate_limited",
                "aliyun: HTTP 429",
                http_status=status,
                retry_after=retry_after_seconds(response.headers.get("Retry-After")),
            )
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise self._status_error(response) or SendError(
                "unavailable", f"aliyun: unreadable answer: {response.text[:200]!r}"
            )
        code = answer.get("Code")
        if response.is_success and code == "OK":
            biz_id = answer.get("BizId")
            if not biz_id:
                raise SendError("unavailable", "aliyun: Code OK without BizId")
            return Accepted(str(biz_id))
        kind = error_kind(code, status)
        raise SendError(
            kind,
            f"aliyun: {code}: {answer.get('Message', '')}"[:500],
            http_status=status,
            retry_after=retry_after_seconds(response.headers.get("Retry-After"))
            if kind == "rate_limited"
            else None,
        )

    def parse_receipts(self, body: bytes) -> list[Receipt]:
        try:
            items = json.loads(body)
        except ValueError as e:
            raise ValueError(f"aliyun receipts: not JSON: {e}") from e
        if not isinstance(items, list):
            raise ValueError("aliyun receipts: expected a JSON array")
        receipts = []
        for item in items:
            if not isinstance(item, dict) or not item.get("biz_id") or "success" not in item:
                raise ValueError(f"aliyun receipts: not a report: {item!r}"[:300])
            success = item["success"]
            delivered = success is True or str(success).lower() == "true"
            error = None
            if not delivered:
                parts = [str(p) for p in (item.get("err_code"), item.get("err_msg")) if p]
                error = ": ".join(parts) or "failed"
            receipts.append(
                Receipt(
                    provider_message_id=str(item["biz_id"]),
                    delivered=delivered,
                    error=error,
                    at=report_time(item.get("report_time")),
                )
            )
        return receipts
