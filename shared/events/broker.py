"""One NATS connection per service process, with the JetStream streams declared explicitly."""

from __future__ import annotations

import asyncio
import logging

import nats
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

log = logging.getLogger("lingju.broker")

# One stream per producing service (DESIGN §3).
STREAMS: dict[str, tuple[str, str]] = {
    "registry": ("REGISTRY", "lingju.registry.>"),
    "benefits": ("BENEFITS", "lingju.benefits.>"),
    "visits": ("VISITS", "lingju.visits.>"),
    "notify": ("NOTIFY", "lingju.notify.>"),
}


def stream_of(subject: str) -> str:
    service = subject.split(".")[1]
    return STREAMS[service][0]


class Broker:
    """Connects in the background and keeps reconnecting forever; never blocks a start-up."""

    def __init__(self, url: str, name: str) -> None:
        self.url = url
        self.name = name
        self.nc: Client | None = None
        self.js: JetStreamContext | None = None
        self.connected = asyncio.Event()
        self.reconnects = 0  # bumped on each reconnect so pull loops rebuild their subscription
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._connect(), name=f"{self.name}-nats-connect")

    async def _connect(self) -> None:
        async def disconnected() -> None:
            self.connected.clear()
            if not self._closing:
                log.warning("nats disconnected")

        async def reconnected() -> None:
            self.reconnects += 1
            self.connected.set()
            log.info("nats reconnected")

        async def error(e: Exception) -> None:
            log.debug("nats error: %s", e)

        self.nc = await nats.connect(
            self.url,
            name=self.name,
            max_reconnect_attempts=-1,  # also retries the first connection forever
            reconnect_time_wait=0.5,
            connect_timeout=2,
            disconnected_cb=disconnected,
            reconnected_cb=reconnected,
            error_cb=error,
        )
        self.js = self.nc.jetstream()
        self.connected.set()
        log.info("nats connected", extra={"nats_url": self.url})

    @property
    def closing(self) -> bool:
        return self._closing

    @property
    def is_connected(self) -> bool:
        return self.nc is not None and self.nc.is_connected

    async def close(self) -> None:
        self._closing = True
        if self._task and not self._task.done():
            self._task.cancel()
        if self.nc is not None and not self.nc.is_closed:
            try:
                await asyncio.wait_for(self.nc.close(), timeout=5)
            except Exception:  # closing a half-dead connection must not fail shutdown
                log.debug("nats close failed", exc_info=True)


async def ensure_stream(
    js: JetStreamContext, service: str, *, max_age_days: float, duplicate_window: float
) -> None:
    """Create the service's stream, or update it when its declared config changed."""
    name, subjects = STREAMS[service]
    config = StreamConfig(
        name=name,
        subjects=[subjects],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        discard=DiscardPolicy.OLD,
        max_age=max_age_days * 86400,
        duplicate_window=duplicate_window,
    )
    try:
        info = await js.stream_info(name)
    except NotFoundError:
        await js.add_stream(config)
        log.info("stream created", extra={"stream": name})
        return
    current = info.config
    if (
        current.subjects != config.subjects
        or current.max_age != config.max_age
        or current.duplicate_window != config.duplicate_window
    ):
        await js.update_stream(config)
        log.info("stream updated", extra={"stream": name})
