"""The public progress lockout under parallel guessing: attempts for one application number take
turns (an advisory lock on PostgreSQL, the write lock on SQLite), so a burst of wrong guesses
sent at once gets no more tries than the same guesses sent one by one."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from shared.devstack import NatsServer
from tests.support import InProcessStack, clean_stack

PROGRESS = "/api/v1/public/applications/{}/progress"
BURST = 30


@pytest.fixture
async def roomy(
    databases: dict[str, str], nats_server: NatsServer, tmp_path: Path
) -> AsyncIterator[InProcessStack]:
    """The stack with a public rate far above the burst: only the lockout can stop guesses."""
    async with clean_stack(
        databases, nats_server, tmp_path, public_rate_per_minute=10 * BURST
    ) as st:
        yield st


async def _burst(stack: InProcessStack, url: str, endings: list[str]) -> list[httpx.Response]:
    return list(
        await asyncio.gather(*(stack.registry.get(url, params={"phone_last4": e}) for e in endings))
    )


def _endings(right: str) -> tuple[str, str]:
    return right, "0000" if right != "0000" else "1111"


async def test_parallel_wrong_guesses_get_no_more_tries_than_the_lockout_allows(
    roomy: InProcessStack,
) -> None:
    app = await roomy.submit_application()
    url = PROGRESS.format(app["application_no"])
    right, wrong = _endings(app["mother"]["phone"][-4:])
    limit = roomy.settings.progress_lockout_failures
    assert BURST > limit

    answers = await _burst(roomy, url, [wrong] * BURST)
    statuses = Counter(r.status_code for r in answers)
    assert set(statuses) <= {404, 429}, [r.text for r in answers if r.status_code not in (404, 429)]
    # Every answer but the 429s was a try: no more than the lockout's budget.
    assert statuses[404] == limit, statuses
    assert statuses[429] == BURST - limit, statuses
    assert await roomy.count_rows("registry", "progress_failures") == limit
    assert all(r.json()["code"] == "locked_out" for r in answers if r.status_code == 429)

    # The right digits are refused while the number is locked.
    r = await roomy.registry.get(url, params={"phone_last4": right})
    assert r.status_code == 429, r.text
    assert r.json()["code"] == "locked_out"


async def test_a_right_guess_inside_the_budget_still_answers(roomy: InProcessStack) -> None:
    app = await roomy.submit_application()
    url = PROGRESS.format(app["application_no"])
    right, wrong = _endings(app["mother"]["phone"][-4:])
    limit = roomy.settings.progress_lockout_failures

    # One short of the budget, sent at once with the right digits: whatever the order, the
    # right answer finds fewer failures than the limit.
    *wrongs, ok = await _burst(roomy, url, [wrong] * (limit - 1) + [right])
    assert [r.status_code for r in wrongs] == [404] * (limit - 1), [r.text for r in wrongs]
    assert ok.status_code == 200, ok.text
    assert ok.json()["application_no"] == app["application_no"]

    # Another number's guesses do not spend this one's budget, even when sent together.
    other = await roomy.submit_application()
    other_url = PROGRESS.format(other["application_no"])
    _, other_wrong = _endings(other["mother"]["phone"][-4:])
    mixed = await asyncio.gather(
        *(roomy.registry.get(other_url, params={"phone_last4": other_wrong}) for _ in range(BURST)),
        roomy.registry.get(url, params={"phone_last4": right}),
    )
    assert mixed[-1].status_code == 200, mixed[-1].text
    assert Counter(r.status_code for r in mixed[:-1]) == {404: limit, 429: BURST - limit}
