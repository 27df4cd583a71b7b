"""Webhooks: POST the message's JSON payload to the subscriber's URL.

Signed like every Lingju integration call (``X-Lingju-Timestamp`` and ``X-Lingju-Signature``
from ``shared.signing``) with the recipient's own secret (``OutgoingMessage.signing_secrets``:
the new and the previous one while a rotation's grace lasts), plus ``X-Lingju-Delivery:
<delivery id>`` so a receiver can drop the duplicates at-least-once delivery brings.

Before connecting, the URL is checked again (``webhook_targets``: https, a DNS name resolving
only to public addresses) and the request goes to the address that was checked, with the
host's name for TLS; a refused URL fails the delivery at once (``recipient_rejected``). 2xx is
accepted; 410 Gone means the subscription is gone (``recipient_rejected``); 429 rate limited;
5xx unavailable; any other answer rejected. Redirects are not followed. Webhooks have no
receipts. Errors never quote the URL: its path may carry the receiver's key.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from services.notify.providers.base import (
    Accepted,
    HttpProvider,
    OutgoingMessage,
    Receipt,
    SendError,
)
from services.notify.webhook_targets import (
    TargetRefused,
    TargetUnresolvable,
    checked_addresses,
)
from shared.signing import signed_headers

DELIVERY_HEADER = "X-Lingju-Delivery"


class WebhookProvider(HttpProvider):
    name = "webhook"
    channel = "webhook"

    def __init__(
        self,
        *,
        timeout: float,
        client: httpx.AsyncClient | None = None,
        allow_private: bool = False,
    ) -> None:
        super().__init__(timeout=timeout, client=client)
        self.allow_private = allow_private

    async def send(self, message: OutgoingMessage) -> Accepted:
        if not message.signing_secrets:
            raise SendError("recipient_rejected", "webhook: the recipient has no signing secret")
        try:
            url = httpx.URL(message.address)
        except (httpx.InvalidURL, TypeError) as e:
            raise SendError("recipient_rejected", "webhook: invalid URL") from e
        if url.scheme not in ("http", "https") or not url.host:
            raise SendError("recipient_rejected", "webhook: not an http(s) URL")
        try:
            addresses = await checked_addresses(str(url), allow_private=self.allow_private)
        except TargetRefused as e:
            raise SendError("recipient_rejected", f"webhook: URL refused: {e.en}") from e
        except TargetUnresolvable as e:
            raise SendError("unavailable", f"webhook: the host does not resolve ({e})") from e
        body = json.dumps(
            message.payload if message.payload is not None else {},
            ensure_ascii=False,
            separators=(",", ":"),
            default=str,
        ).encode()
        headers = {
            "Content-Type": "application/json",
            **message.headers,
            DELIVERY_HEADER: message.delivery_id,
            **signed_headers(list(message.signing_secrets), body),
        }
        target = url
        extra: dict[str, Any] = {}
        if addresses:
            # Connect to the address just checked, not to what a second lookup might answer;
            # the Host header and TLS (SNI, certificate check) still name the host.
            target = url.copy_with(host=str(addresses[0]))
            headers["Host"] = url.netloc.decode("ascii")
            extra["extensions"] = {"sni_hostname": url.raw_host.decode("ascii")}
        response = await self._request("POST", str(target), content=body, headers=headers, **extra)
        status = response.status_code
        if response.is_success:
            return Accepted(None, http_status=status)
        if status == 410:
            raise SendError("recipient_rejected", "webhook: HTTP 410 Gone", http_status=status)
        raise self._status_error(response) or SendError(
            "rejected", f"webhook: HTTP {status}", http_status=status
        )

    def parse_receipts(self, body: bytes) -> list[Receipt]:
        return []
