"""Work that shutdown must not cut in half.

Cancelling a loop while it is inside a database transaction can leave the connection in an
undefined state (on SQLite: a write lock held until garbage collection). Loops run each unit
of work through ``InFlight.run``: cancelling the loop then lets the unit finish, and shutdown
drains what is left before closing the database and the broker.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class InFlight:
    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    async def run(self, coro: Coroutine[Any, Any, T]) -> T:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return await asyncio.shield(task)

    async def drain(self, within: float) -> None:
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=within)
