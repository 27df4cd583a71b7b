"""Where a webhook may point: no server-side request forgery through the staff directory.

A county officer registers a webhook URL and notify's servers POST to it, so a URL naming an
internal host (the cloud's metadata service at 169.254.169.254, a database on 10.x, notify
itself on 127.0.0.1) would let them reach what they should not. A URL must be https, name its
host by a DNS name (no IP literal), and that name must resolve only to public addresses. It is
checked when the URL is registered and again right before each send, because DNS can change
in between; the send then connects to the very address that was checked (``pinned``), so a
second lookup cannot swap in another one.

``notify_webhook_allow_private`` (development and tests, whose receivers are plain http on
loopback) lets every URL through; production refuses to start with it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

from shared.errors import Problem

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class TargetRefused(Exception):
    """The URL may not be called; ``zh`` and ``en`` say why (no URL in them: it may hold a key)."""

    def __init__(self, zh: str, en: str) -> None:
        super().__init__(en)
        self.zh = zh
        self.en = en


class TargetUnresolvable(Exception):
    """The host has no address now (DNS down or the name unknown)."""


def _refused_kind(ip: IPAddress) -> str | None:
    """Why ``ip`` is no place for a webhook, or None for a public address."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    for kind in ("unspecified", "loopback", "private", "link_local", "multicast", "reserved"):
        if getattr(ip, f"is_{kind}"):
            return kind
    if not ip.is_global:  # e.g. 100.64.0.0/10, carrier-grade NAT: not the internet either
        return "not_global"
    return None


def check_address(ip: IPAddress) -> None:
    kind = _refused_kind(ip)
    if kind is not None:
        raise TargetRefused(
            f"网址的主机解析到内部地址 {ip}（{kind}），不允许作为 Webhook",
            f"The URL's host resolves to {ip} ({kind}): not allowed for a webhook",
        )


def check_shape(url: str) -> tuple[str, int]:
    """The host and port of an https URL naming its host by a DNS name; else TargetRefused."""
    parts = urlsplit(url)
    if parts.scheme != "https":
        raise TargetRefused("Webhook 网址必须以 https:// 开头", "A webhook URL must be https")
    host = parts.hostname or ""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        raise TargetRefused(
            "Webhook 网址须使用域名，不能直接写 IP 地址",
            "A webhook URL must name its host, not an IP address",
        )
    try:
        port = parts.port or 443
    except ValueError as e:
        raise TargetRefused("Webhook 网址的端口不正确", "The webhook URL's port is invalid") from e
    return host, port


async def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to now, each once."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as e:
        raise TargetUnresolvable(f"{type(e).__name__}: {e}") from e
    # The scope of an IPv6 link-local address (fe80::1%eth0) is not part of the address.
    found = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    if not found:
        raise TargetUnresolvable("no address")
    return list(dict.fromkeys(found))


async def checked_addresses(url: str, *, allow_private: bool) -> list[IPAddress]:
    """The addresses ``url`` may be sent to now (all of them public), or an exception: None of
    this when private targets are allowed (development): then an empty list, connect as is."""
    if allow_private:
        return []
    host, port = check_shape(url)
    addresses = await resolve(host, port)
    for ip in addresses:  # one internal address among public ones is still refused
        check_address(ip)
    return addresses


def forbidden(e: TargetRefused) -> Problem:
    return Problem(
        422,
        "webhook_url_forbidden",
        e.zh,
        e.en,
        errors=[{"field": "webhook_url", "message": e.zh}],
    )


def unresolvable() -> Problem:
    return Problem(
        422,
        "webhook_url_unresolvable",
        "Webhook 网址的域名无法解析，请确认后重试",
        "The webhook URL's host name does not resolve",
        errors=[{"field": "webhook_url", "message": "域名无法解析"}],
    )
