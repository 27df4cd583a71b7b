"""Channel providers behind one interface. The development provider writes to a file."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Protocol

from shared.db import utcnow


class Provider(Protocol):
    async def send(self, channel: str, address: str | None, body: str, delivery_id: str) -> None:
        """Hand the message over; raise on failure (the dispatcher retries)."""


class FileProvider:
    """Development and tests: one JSON line per message, so a person can read what went out."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = asyncio.Lock()

    async def send(self, channel: str, address: str | None, body: str, delivery_id: str) -> None:
        line = json.dumps(
            {
                "at": utcnow().isoformat(),
                "channel": channel,
                "to": address,
                "body": body,
                "delivery_id": delivery_id,
            },
            ensure_ascii=False,
        )
        async with self._lock:
            await asyncio.to_thread(self._append, line)

    def _append(self, line: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as f:
            f.write(line + "\n")
