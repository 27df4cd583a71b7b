"""The one interface every channel provider implements, and what a send can end in.

A provider hands one message to one outside system (an SMS platform, WeChat, a webhook
receiver) and either answers ``Accepted`` (with the provider's message id, which delivery
receipts refer to) or raises ``SendError`` with a kind that decides what the dispatcher does:

- ``timeout`` and ``unavailable`` (5xx, connection refused): try the channel's next provider,
  then back off and try again;
- ``rate_limited``: the same, waiting at least ``retry_after`` seconds when the provider said;
- ``rejected``: this provider refuses the message (credentials, template not approved, a bad
  request): try the next provider, never this one again for this message;
- ``recipient_rejected``: the address itself is wrong (an invalid or blocked number, an openid
  that unfollowed): no provider will do better, the delivery fails now.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Literal, Protocol

import httpx

from shared.clock import SHANGHAI

ErrorKind = Literal["timeout", "unavailable", "rate_limited", "rejected", "recipient_rejected"]


@dataclass(frozen=True)
class OutgoingMessage:
    delivery_id: str  # ours; providers that take a caller reference get it (idempotency)
    channel: str  # sms | wechat | webhook
    address: str  # a mobile number, a WeChat openid, or a URL
    text: str  # the rendered text (SMS: the whole message; WeChat: the first line)
    template: str  # our template code; SMS platforms map it to their approved template id
    # The rendered variables, in the order they appear in the template: SMS platforms take
    # them as template parameters (Aliyun by name, Tencent by position); for WeChat, the
    # template message's fields (first, keyword1, ..., remark).
    params: dict[str, str] = field(default_factory=dict)
    wechat_template_id: str | None = None
    payload: dict[str, object] | None = None  # webhook: the JSON body to post
    # webhook: the recipient's signing secrets, newest first (two during a rotation's grace).
    signing_secrets: tuple[str, ...] = ()
    # webhook: headers besides the signature's (the event feed's X-Lingju-Event-Type).
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Accepted:
    provider_message_id: str | None
    http_status: int | None = None  # the receiver's answer, where the log keeps it (webhooks)


class SendError(Exception):
    def __init__(
        self,
        kind: ErrorKind,
        message: str,
        *,
        http_status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.kind: ErrorKind = kind
        self.http_status = http_status
        self.retry_after = retry_after


@dataclass(frozen=True)
class Receipt:
    """A provider's report of what became of a message it accepted."""

    provider_message_id: str
    delivered: bool
    error: str | None = None
    at: datetime | None = None


class Provider(Protocol):
    name: str  # e.g. "aliyun", "tencent", "gateway", "wechat", "webhook", "file"
    channel: str

    async def send(self, message: OutgoingMessage) -> Accepted:
        """Hand the message over; raise SendError (never anything else) on failure."""
        ...

    def parse_receipts(self, body: bytes) -> list[Receipt]:
        """The receipts in a callback body this provider posts to us (empty if it has none);
        raise ValueError for a body that is not its receipt format."""
        ...


# --- Helpers for the HTTP providers (additive: none of the names above changed) -------------

_MAX_RETRY_AFTER_SECONDS = 86_400.0


def retry_after_seconds(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date); None if absent
    or unreadable. Capped at a day so a silly value cannot park a delivery for ever."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), _MAX_RETRY_AFTER_SECONDS)


class HttpProvider:
    """Shared plumbing of the providers that speak HTTP: one ``httpx.AsyncClient`` per
    provider (created on first use unless one is passed in), its own timeout, ``aclose()``,
    and the translation of transport failures and HTTP statuses into ``SendError``."""

    name: str = "http"
    channel: str = ""

    def __init__(self, *, timeout: float, client: httpx.AsyncClient | None = None) -> None:
        self.timeout = timeout
        self._client = client
        self._owns_client = client is None

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout, follow_redirects=False)
        return self._client

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None and self._owns_client:
            await client.aclose()

    async def _request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """One HTTP exchange; every failure to get an answer becomes a ``SendError``."""
        try:
            return await self.client.request(method, url, timeout=self.timeout, **kwargs)
        except httpx.TimeoutException as e:
            raise SendError(
                "timeout", f"{self.name}: no answer within {self.timeout:g} s ({type(e).__name__})"
            ) from e
        except httpx.InvalidURL as e:
            raise SendError("rejected", f"{self.name}: invalid URL {url!r}: {e}") from e
        except httpx.HTTPError as e:  # connection refused or reset, protocol errors, ...
            raise SendError("unavailable", f"{self.name}: {type(e).__name__}: {e}") from e

    def _status_error(self, response: httpx.Response, detail: str = "") -> SendError | None:
        """The error an HTTP status alone means (429, 5xx, other 4xx), or None for 1xx-3xx."""
        status = response.status_code
        what = f"{self.name}: HTTP {status}" + (f" ({detail})" if detail else "")
        if status == 429:
            return SendError(
                "rate_limited",
                what,
                http_status=status,
                retry_after=retry_after_seconds(response.headers.get("Retry-After")),
            )
        if status >= 500:
            return SendError("unavailable", what, http_status=status)
        if status >= 400:
            return SendError("rejected", what, http_status=status)
        return None

    def _json(self, response: httpx.Response) -> Any:
        """The answer's JSON; an unreadable answer counts as the provider being unwell."""
        try:
            return response.json()
        except ValueError as e:
            raise SendError(
                "unavailable",
                f"{self.name}: unreadable answer (HTTP {response.status_code}): "
                f"{response.text[:200]!r}",
                http_status=response.status_code,
            ) from e


def report_time(value: object) -> datetime | None:
    """A receipt's "2030-01-05 09:00:05": Chinese SMS platforms report Beijing time."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%d %H:%M:%S").replace(tzinfo=SHANGHAI)
    except ValueError:
        return None
