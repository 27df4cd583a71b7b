"""A token bucket per client, for public endpoints that need no login.

Per process: with N replicas a client gets up to N times the rate, which still bounds
guessing (the point of it). A shared limiter belongs at the gateway when there is one.
"""

from __future__ import annotations

import time
from collections import OrderedDict

from fastapi import Request

from shared.errors import Problem


class RateLimiter:
    def __init__(
        self, per_minute: int, burst: int | None = None, max_clients: int = 10_000
    ) -> None:
        self.rate = per_minute / 60.0
        self.burst = float(burst or per_minute)
        self.max_clients = max_clients
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def allow(self, key: str, now: float | None = None) -> float:
        """0 if the call may go ahead, else the seconds until it may."""
        now = time.monotonic() if now is None else now
        tokens, last = self._buckets.pop(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        wait = 0.0
        if tokens >= 1:
            tokens -= 1
        else:
            wait = (1 - tokens) / self.rate
        self._buckets[key] = (tokens, now)
        while len(self._buckets) > self.max_clients:  # forget the least recently seen
            self._buckets.popitem(last=False)
        return wait

    def check(self, request: Request) -> None:
        client = request.client.host if request.client else "unknown"
        wait = self.allow(client)
        if wait > 0:
            raise Problem(
                429,
                "rate_limited",
                "请求过于频繁，请稍后再试",
                "Too many requests; retry later",
                headers={"Retry-After": str(max(1, round(wait)))},
            )
