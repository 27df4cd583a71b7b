"""A generic HTTP SMS gateway: the county's own SMS platform, on our published contract.

Send::

    POST {base_url}/messages
    Content-Type: application/json
    X-Lingju-Timestamp / X-Lingju-Signature   (shared.signing, over the raw body)
    {"to": "13800000000", "text": "...", "reference": "<delivery id>"}

    2xx  {"message_id": "..."}                       accepted
    4xx  {"error": "invalid_number" | "blocked_number", ...}   the number is refused
    429  (Retry-After)  rate limited;  5xx  unavailable;  any other 4xx  rejected

Receipts (the gateway POSTs them to our callback URL): a JSON array of
``{"message_id", "status": "delivered" | "failed", "error"?, "at"?}`` (``at``: ISO 8601).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import httpx

from services.notify.providers.base import (
    Accepted,
    HttpProvider,
    OutgoingMessage,
    Receipt,
    SendError,
)
from shared.signing import signed_headers

# The gateway's error values meaning the number itself is refused.
RECIPIENT_ERRORS = frozenset({"invalid_number", "blocked_number", "unknown_number"})


class GatewayProvider(HttpProvider):
    name = "gateway"
    channel = "sms"

    def __init__(
        self,
        base_url: str,
        secret: str,
        *,
        timeout: float,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        super().__init__(timeout=timeout, client=client)
        self.base_url = base_url.rstrip("/")
        self.secret = secret

    async def send(self, message: OutgoingMessage) -> Accepted:
        body = json.dumps(
            {"to": message.address, "text": message.text, "reference": message.delivery_id},
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode()
        headers = {"Content-Type": "application/json", **signed_headers(self.secret, body)}
        response = await self._request(
            "POST", f"{self.base_url}/messages", content=body, headers=headers
        )
        status = response.status_code
        if not response.is_success:
            if 400 <= status < 500 and status != 429:
                error = _error_of(response)
                kind = "recipient_rejected" if error in RECIPIENT_ERRORS else "rejected"
                raise SendError(
                    kind,
                    f"gateway: HTTP {status} {error or response.text[:200]!r}",
                    http_status=status,
                )
            raise self._status_error(response) or SendError(
                "rejected", f"gateway: HTTP {status}", http_status=status
            )
        answer = self._json(response)
        message_id = answer.get("message_id") if isinstance(answer, dict) else None
        if not isinstance(message_id, str | int) or message_id == "":
            raise SendError("unavailable", f"gateway: answer without message_id: {answer!r}"[:300])
        return Accepted(str(message_id))

    def parse_receipts(self, body: bytes) -> list[Receipt]:
        try:
            items = json.loads(body)
        except ValueError as e:
            raise ValueError(f"gateway receipts: not JSON: {e}") from e
        if not isinstance(items, list):
            raise ValueError("gateway receipts: expected a JSON array")
        receipts = []
        for item in items:
            if not isinstance(item, dict) or "message_id" not in item:
                raise ValueError(f"gateway receipts: item without message_id: {item!r}"[:300])
            status = item.get("status")
            if status not in ("delivered", "failed"):
                raise ValueError(f"gateway receipts: unknown status {status!r}")
            error = item.get("error")
            receipts.append(
                Receipt(
                    provider_message_id=str(item["message_id"]),
                    delivered=status == "delivered",
                    error=None if status == "delivered" else (str(error) if error else "failed"),
                    at=_parse_at(item.get("at")),
                )
            )
        return receipts


def _error_of(response: httpx.Response) -> str | None:
    try:
        answer = response.json()
    except ValueError:
        return None
    error = answer.get("error") if isinstance(answer, dict) else None
    return str(error) if error is not None else None


def _parse_at(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)
