"""Tencent Cloud SMS: SendSms, API version 2021-01-11, signed with TC3-HMAC-SHA256.

A JSON POST to the endpoint's ``/`` with the headers ``X-TC-Action: SendSms``,
``X-TC-Version: 2021-01-11``, ``X-TC-Timestamp``, ``X-TC-Region`` and ``Authorization``,
computed as Tencent Cloud's "signature v3" documents:

1. CanonicalRequest = ``POST\\n/\\n\\n`` + CanonicalHeaders (``content-type:...\\nhost:...\\n``,
   lower-case names, sorted) + ``\\n`` + SignedHeaders (``content-type;host``) + ``\\n`` +
   hex(SHA256(payload));
2. StringToSign = ``TC3-HMAC-SHA256\\n`` + timestamp + ``\\n`` + CredentialScope
   (``<UTC date>/sms/tc3_request``) + ``\\n`` + hex(SHA256(CanonicalRequest));
3. SecretDate = HMAC-SHA256(``"TC3" + SecretKey``, date); SecretService =
   HMAC-SHA256(SecretDate, ``"sms"``); SecretSigning = HMAC-SHA256(SecretService,
   ``"tc3_request"``); Signature = hex(HMAC-SHA256(SecretSigning, StringToSign));
4. Authorization = ``TC3-HMAC-SHA256 Credential=<SecretId>/<scope>,
   SignedHeaders=content-type;host, Signature=<signature>``.

The answer is ``{"Response": {"SendStatusSet": [{"SerialNo", "Code": "Ok", ...}], ...}}``,
or ``{"Response": {"Error": {"Code", "Message"}, ...}}`` when the call itself failed.

Receipts: the SMS status callback body, a JSON array of ``{"user_receive_time",
"nationcode", "mobile", "report_status": "SUCCESS" | "FAIL", "errmsg", "description",
"sid"}`` (``sid`` is the SerialNo SendSms answered; times in Beijing time).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from datetime import UTC, datetime

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

ALGORITHM = "TC3-HMAC-SHA256"
SERVICE = "sms"
API_VERSION = "2021-01-11"
CONTENT_TYPE = "application/json; charset=utf-8"

RECIPIENT_CODES = frozenset(
    {
        "InvalidParameterValue.IncorrectPhoneNumber",  # not a valid number
        "FailedOperation.PhoneNumberInBlacklist",  # unsubscribed / carrier do-not-disturb list
        "FailedOperation.PhoneNumberParseFail",  # the number cannot be parsed (E.164)
    }
)


def error_kind(code: str | None) -> ErrorKind:
    """What a SendSms error code (Response.Error.Code or a SendStatus Code) means for us."""
    code = code or ""
    if code.startswith(("LimitExceeded", "RequestLimitExceeded")):
        return "rate_limited"
    if code in RECIPIENT_CODES:
        return "recipient_rejected"
    if code.startswith("InternalError") or code == "ResourceUnavailable":
        return "unavailable"
    # AuthFailure.*, FailedOperation.TemplateIncorrectOrUnapproved,
    # FailedOperation.SignatureIncorrectOrUnapproved, InvalidParameter*, UnauthorizedOperation.*,
    # UnsupportedOperation.*, FailedOperation.InsufficientBalanceInSmsPackage, ...
    return "rejected"


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def canonical_request(host: str, payload: bytes, content_type: str = CONTENT_TYPE) -> str:
    canonical_headers = f"content-type:{content_type.lower()}\nhost:{host.lower()}\n"
    return "\n".join(["POST", "/", "", canonical_headers, "content-type;host", sha256_hex(payload)])


def credential_scope(timestamp: int, service: str = SERVICE) -> str:
    date = datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")
    return f"{date}/{service}/tc3_request"


def string_to_sign(timestamp: int, scope: str, canonical: str) -> str:
    return "\n".join([ALGORITHM, str(timestamp), scope, sha256_hex(canonical.encode())])


def signing_key(secret_key: str, date: str, service: str = SERVICE) -> bytes:
    secret_date = _hmac(("TC3" + secret_key).encode(), date)
    secret_service = _hmac(secret_date, service)
    return _hmac(secret_service, "tc3_request")


def authorization(
    secret_id: str,
    secret_key: str,
    *,
    host: str,
    payload: bytes,
    timestamp: int,
    service: str = SERVICE,
    content_type: str = CONTENT_TYPE,
) -> str:
    scope = credential_scope(timestamp, service)
    to_sign = string_to_sign(timestamp, scope, canonical_request(host, payload, content_type))
    key = signing_key(secret_key, scope.split("/", 1)[0], service)
    sig = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    return (
        f"{ALGORITHM} Credential={secret_id}/{scope}, "
        f"SignedHeaders=content-type;host, Signature={sig}"
    )


class TencentSmsProvider(HttpProvider):
    name = "tencent"
    channel = "sms"

    def __init__(
        self,
        *,
        secret_id: str,
        secret_key: str,
        sdk_app_id: str,
        sign_name: str,
        templates: Mapping[str, str],
        region: str = "ap-guangzhou",
        base_url: str = "https://sms.tencentcloudapi.com",
        timeout: float,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        super().__init__(timeout=timeout, client=client)
        self.secret_id = secret_id
        self.secret_key = secret_key
        self.sdk_app_id = sdk_app_id
        self.sign_name = sign_name
        self.templates = dict(templates)
        self.region = region
        self.base_url = base_url.rstrip("/")
        # The Host header sent, and signed (host[:port] as the URL gives it).
        self.host = httpx.URL(self.base_url).netloc.decode("ascii")

    def payload(self, message: OutgoingMessage, template_id: str) -> bytes:
        number = message.address
        if not number.startswith("+"):
            number = "+86" + number
        return json.dumps(
            {
                "PhoneNumberSet": [number],
                "SmsSdkAppId": self.sdk_app_id,
                "SignName": self.sign_name,
                "TemplateId": template_id,
                "TemplateParamSet": [str(v) for v in message.params.values()],
                "SessionContext": message.delivery_id,
            },
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode()

    async def send(self, message: OutgoingMessage) -> Accepted:
        template_id = self.templates.get(message.template)
        if not template_id:
            raise SendError(
                "rejected", f"tencent: no Tencent template id for template {message.template!r}"
            )
        body = self.payload(message, template_id)
        timestamp = int(time.time())
        headers = {
            "Authorization": authorization(
                self.secret_id, self.secret_key, host=self.host, payload=body, timestamp=timestamp
            ),
            "Content-Type": CONTENT_TYPE,
            "Host": self.host,
            "X-TC-Action": "SendSms",
            "X-TC-Version": API_VERSION,
            "X-TC-Timestamp": str(timestamp),
            "X-TC-Region": self.region,
        }
        response = await self._request("POST", f"{self.base_url}/", content=body, headers=headers)
        status = response.status_code
        try:
            answer = response.json()
        except ValueError:
            answer = None
        result = answer.get("Response") if isinstance(answer, dict) else None
        if status == 429 or not isinstance(result, dict):
            raise self._status_error(response) or SendError(
                "unavailable", f"tencent: unreadable answer: {response.text[:200]!r}"
            )
        error = result.get("Error")
        if isinstance(error, dict):
            raise self._error(error.get("Code"), error.get("Message"), response)
        if not response.is_success:
            raise self._status_error(response) or SendError(
                "rejected", f"tencent: HTTP {status}", http_status=status
            )
        statuses = result.get("SendStatusSet")
        first = statuses[0] if isinstance(statuses, list) and statuses else None
        if not isinstance(first, dict):
            raise SendError("unavailable", f"tencent: answer without SendStatusSet: {result!r}")
        if first.get("Code") == "Ok":
            serial = first.get("SerialNo")
            if not serial:
                raise SendError("unavailable", "tencent: Code Ok without SerialNo")
            return Accepted(str(serial))
        raise self._error(first.get("Code"), first.get("Message"), response)

    def _error(self, code: object, text: object, response: httpx.Response) -> SendError:
        kind = error_kind(str(code) if code else None)
        return SendError(
            kind,
            f"tencent: {code}: {text or ''}"[:500],
            http_status=response.status_code,
            retry_after=retry_after_seconds(response.headers.get("Retry-After"))
            if kind == "rate_limited"
            else None,
        )

    def parse_receipts(self, body: bytes) -> list[Receipt]:
        try:
            items = json.loads(body)
        except ValueError as e:
            raise ValueError(f"tencent receipts: not JSON: {e}") from e
        if not isinstance(items, list):
            raise ValueError("tencent receipts: expected a JSON array")
        receipts = []
        for item in items:
            if not isinstance(item, dict) or not item.get("sid"):
                raise ValueError(f"tencent receipts: not a status report: {item!r}"[:300])
            report_status = item.get("report_status")
            if report_status not in ("SUCCESS", "FAIL"):
                raise ValueError(f"tencent receipts: unknown report_status {report_status!r}")
            delivered = report_status == "SUCCESS"
            error = None
            if not delivered:
                parts = [str(p) for p in (item.get("errmsg"), item.get("description")) if p]
                error = ": ".join(parts) or "FAIL"
            receipts.append(
                Receipt(
                    provider_message_id=str(item["sid"]),
                    delivered=delivered,
                    error=error,
                    at=report_time(item.get("user_receive_time")),
                )
            )
        return receipts
