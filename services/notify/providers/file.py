"""The development provider: one JSON line per message in a file a person can read."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from pathlib import Path

from services.notify.providers.base import Accepted, OutgoingMessage, Receipt, SendError
from shared.db import utcnow

# One lock per file, shared by every FileProvider writing it (the sms and wechat providers
# usually share one file): a thread lock, because the writes run in worker threads.
_FILE_LOCKS: dict[Path, threading.Lock] = {}
_FILE_LOCKS_GUARD = threading.Lock()


def _lock_for(path: Path) -> threading.Lock:
    key = path.resolve()
    with _FILE_LOCKS_GUARD:
        return _FILE_LOCKS.setdefault(key, threading.Lock())


class FileProvider:
    """Development and tests: appends ``{"at", "provider_message_id", "delivery_id",
    "channel", "address", "to", "text", "template", "params", ...}`` as one line per message;
    accepts every message."""

    name = "file"

    def __init__(self, channel: str, path: Path) -> None:
        self.channel = channel
        self.path = Path(path)

    async def send(self, message: OutgoingMessage) -> Accepted:
        provider_message_id = f"file-{uuid.uuid4().hex}"
        record: dict[str, object] = {
            "at": utcnow().isoformat(),
            "provider_message_id": provider_message_id,
            "delivery_id": message.delivery_id,
            "channel": self.channel,
            "address": message.address,
            "to": message.address,  # the older line format's name, which tests still read
            "text": message.text,
            "template": message.template,
            "params": message.params,
        }
        if message.wechat_template_id is not None:
            record["wechat_template_id"] = message.wechat_template_id
        if message.payload is not None:
            record["payload"] = message.payload
        line = json.dumps(record, ensure_ascii=False, default=str)
        try:
            await asyncio.to_thread(self._append, line)
        except OSError as e:
            raise SendError("unavailable", f"file: cannot write {self.path}: {e}") from e
        return Accepted(provider_message_id)

    def parse_receipts(self, body: bytes) -> list[Receipt]:
        return []

    async def aclose(self) -> None:
        return None

    def _append(self, line: str) -> None:
        with _lock_for(self.path):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as f:
                f.write(line + "\n")
