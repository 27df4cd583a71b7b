"""Webhooks: POST the message's JSON payload to the subscriber's URL.

Signed like every Lingju integration call (``X-Lingju-Timestamp`` and ``X-Lingju-Signature``
from ``shared.signing``), plus ``X-Lingju-Delivery: <delivery id>`` so a receiver can drop
the duplicates at-least-once delivery brings. 2xx is accepted; 410 Gone means the
subscription is gone (``recipient_rejected``); 429 rate limited; 5xx unavailable; any other
answer rejected. Webhooks have no receipts.
"""

from __future__ import annotations

import json

import httpx

from services.notify.providers.base import (
    Accepted,
    HttpProvider,
    OutgoingMessage,
    Receipt,
    SendError,
)
from shared.signing import signed_headers

DELIVERY_HEADER = "X-Lingju-Delivery"


class WebhookProvider(HttpProvider):
    name = "webhook"
    channel = "webhook"

    def __init__(
        self, secret: str, *, timeout: float, client: httpx.AsyncClient | None = None
    ) -> None:
        super().__init__(timeout=timeout, client=client)
        self.secret = secret

    async def send(self, message: OutgoingMessage) -> Accepted:
        try:
            url = httpx.URL(message.address)
        except (httpx.InvalidURL, TypeError) as e:
            raise SendError("recipient_rejected", f"webhook: invalid URL: {e}") from e
        if url.scheme not in ("http", "https") or not url.host:
            raise SendError(
                "recipient_rejected", f"webhook: not an http(s) URL: {message.address!r}"
            )
        body = json.dumps(
            message.payload if message.payload is not None else {},
            ensure_ascii=False,
            separators=(",", ":"),
            default=str,
        ).encode()
        headers = {
            "Content-Type": "application/json",
            DELIVERY_HEADER: message.delivery_id,
            **signed_headers(self.secret, body),
        }
        response = await self._request("POST", str(url), content=body, headers=headers)
        status = response.status_code
        if response.is_success:
            return Accepted(None)
        if status == 410:
            raise SendError("recipient_rejected", "webhook: HTTP 410 Gone", http_status=status)
        raise self._status_error(response) or SendError(
            "rejected", f"webhook: HTTP {status}", http_status=status
        )

    def parse_receipts(self, body: bytes) -> list[Receipt]:
        return []
