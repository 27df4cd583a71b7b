"""The services as real processes (uvicorn), as `make run` starts them."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import nats

from shared.config import SERVICES
from shared.db import Database
from shared.devstack import NatsServer, Stack, free_port
from tests.support import (
    TOWNSHIP,
    VILLAGE,
    auth,
    make_id_number,
    reset_broker,
    reset_databases,
    settings_for_tests,
)
from tests.test_event_delivery import certificate_issued


def _stack(databases: dict[str, str], nats_server: NatsServer, tmp_path: Path, **env: str) -> Stack:
    asyncio.run(reset_databases(databases))
    asyncio.run(reset_broker(nats_server.url))
    ports = {f"{s}_port": free_port() for s in SERVICES}
    settings = settings_for_tests(databases, nats_server.url, tmp_path, **ports)
    child_env = {
        "LINGJU_ENV": "test",
        "LINGJU_LOG_JSON": "false",
        "LINGJU_CONSUMER_ACK_WAIT_SECONDS": "2",
        "LINGJU_CONSUMER_FETCH_TIMEOUT_SECONDS": "0.5",
        "LINGJU_RELAY_POLL_SECONDS": "0.5",
        **env,
    }
    return Stack(settings, env=child_env)


def _wait(check: Any, within: float = 30.0) -> Any:
    deadline = time.monotonic() + within
    while True:
        try:
            return check()
        except (AssertionError, httpx.HTTPError):
            if time.monotonic() > deadline:
                raise
        time.sleep(0.2)


def test_the_flow_end_to_end_over_http(
    databases: dict[str, str], nats_server: NatsServer, tmp_path: Path
) -> None:
    stack = _stack(databases, nats_server, tmp_path)
    stack.start()
    try:
        s = stack.settings
        agent = auth(s, "village_agent", TOWNSHIP)
        with httpx.Client(timeout=10) as http:
            reg = stack.url("registry")

            def person(birth: date, sex: str) -> str:
                r = http.post(
                    f"{reg}/api/v1/persons",
                    headers=agent,
                    json={
                        "id_number": make_id_number(birth, sex),
                        "name": "周红",
                        "phone": "13600136000",
                        "region_code": VILLAGE,
                        "household_type": "rural",
                    },
                )
                assert r.status_code == 201, r.text
                return r.json()["id"]  # type: ignore[no-any-return]

            mother, father, child = (
                person(date(1972, 1, 1), "female"),
                person(date(1970, 1, 1), "male"),
                person(date(2012, 1, 1), "male"),  # under 18: the reward is owed
            )
            r = http.post(
                f"{reg}/api/v1/applications",
                headers=agent,
                json={
                    "type": "only_child_honor",
                    "applicant_id": mother,
                    "subjects": {"spouse_id": father, "child_id": child},
                    "materials": [
                        {"code": c, "ref": "u"}
                        for c in (
                            "household_register",
                            "marriage_certificate",
                            "child_birth_certificate",
                        )
                    ],
                },
            )
            assert r.status_code == 201, r.text
            app = r.json()
            assert app["status"] == "submitted"
            for role, region in (("village_worker", VILLAGE), ("township_officer", TOWNSHIP)):
                r = http.post(
                    f"{reg}/api/v1/applications/{app['id']}/review",
                    headers=auth(s, role, region),
                    json={"decision": "approve", "version": app["version"]},
                )
                assert r.status_code == 200, r.text
                app = r.json()
            assert app["status"] == "issued" and app["certificate_no"]

            def enrolled() -> list[dict[str, Any]]:
                r = http.get(
                    f"{stack.url('benefits')}/api/v1/enrollments",
                    params={"status": "pending_review"},
                    headers=auth(s, "township_officer", TOWNSHIP),
                )
                items = r.json()["items"]
                assert sorted(e["person_id"] for e in items) == sorted([mother, father])
                assert {e["program"] for e in items} == {"only_child_parent_reward"}
                return items  # type: ignore[no-any-return]

            # Maker-checker: the system prepared them, a township officer confirms each.
            for e in _wait(enrolled):
                r = http.post(
                    f"{stack.url('benefits')}/api/v1/enrollments/{e['id']}/confirm",
                    headers=auth(s, "township_officer", TOWNSHIP, sub="checker-1"),
                    json={"version": e["version"]},
                )
                assert r.status_code == 200, r.text

            def told() -> None:
                r = http.get(
                    f"{stack.url('notify')}/api/v1/inbox",
                    headers=auth(s, "resident", person_id=mother),
                )
                titles = sorted(m["title"] for m in r.json()["items"])
                assert titles == ["待遇资格已确认", "证件已办好"], titles

            _wait(told)

            def texted() -> None:
                out = tmp_path / "notify-messages.jsonl"  # the development SMS provider
                assert out.exists()
                sms = [json.loads(line) for line in out.read_text("utf-8").splitlines()]
                # Each parent (one shared phone): the certificate is ready, the reward confirmed.
                assert [m["to"] for m in sms] == ["13600136000"] * 4

            _wait(texted)
            for name in SERVICES:
                assert http.get(f"{stack.url(name)}/readyz").status_code == 200
                assert "lingju_consumer_lag" in http.get(f"{stack.url(name)}/metrics").text
    finally:
        stack.stop()


def test_crash_after_commit_before_ack_is_redelivered_and_applied_once(
    databases: dict[str, str], nats_server: NatsServer, tmp_path: Path
) -> None:
    """benefits dies (as by SIGKILL) after committing an enrollment and before acking it."""
    stack = _stack(databases, nats_server, tmp_path, LINGJU_FAILPOINTS="consumer.after_commit=exit")
    # benefits already knows the holders and their child (as from earlier person events).
    asyncio.run(_known_persons(databases["benefits"], ["mother-x", "father-x"], "child-x"))
    stack.services = ("benefits",)
    stack.start()
    try:
        event = certificate_issued(["mother-x", "father-x"], "child-x")

        async def send() -> None:
            nc = await nats.connect(nats_server.url)
            await nc.jetstream().publish(
                "lingju.registry.certificate.issued",
                json.dumps(event).encode(),
                headers={"Nats-Msg-Id": event["id"]},
            )
            await nc.close()

        asyncio.run(send())
        proc = stack.procs["benefits"]
        assert proc.wait(timeout=30) == 70  # the failpoint's exit: effect committed, no ack
        stack.start_service("benefits", {"LINGJU_FAILPOINTS": ""})
        stack.wait_ready(30)
        officer = auth(stack.settings, "county_officer", "330102")
        with httpx.Client(timeout=5) as http:

            def redelivered_once() -> None:
                text = http.get(f"{stack.url('benefits')}/metrics").text
                assert (
                    'outcome="duplicate",service="benefits",'
                    'type="lingju.registry.certificate.issued"} 1.0' in text
                )

            _wait(redelivered_once)
            items = http.get(f"{stack.url('benefits')}/api/v1/enrollments", headers=officer).json()
            assert sorted(e["person_id"] for e in items["items"]) == ["father-x", "mother-x"]
    finally:
        stack.stop()


async def _known_persons(url: str, holders: list[str], child_id: str) -> None:
    from services.benefits.models import PersonFacts

    db = Database(url)
    try:
        async with db.session() as s, s.begin():
            for person_id, born in [(h, date(1975, 5, 1)) for h in holders] + [
                (child_id, date(2012, 6, 1))
            ]:
                s.add(
                    PersonFacts(
                        person_id=person_id,
                        sex="female",
                        birth_date=born,
                        region_code=VILLAGE,
                        household_type="rural",
                    )
                )
    finally:
        await db.dispose()


def test_lingju_run_stops_everything_on_ctrl_c(tmp_path: Path) -> None:
    """`make run` on SQLite with its own nats-server; Ctrl-C leaves no process behind."""
    env = {
        **os.environ,
        "LINGJU_VAR_DIR": str(tmp_path / "var"),
        "LINGJU_NATS_PORT": str(free_port()),
        **{f"LINGJU_{s.upper()}_PORT": str(free_port()) for s in SERVICES},
    }
    env.pop("LINGJU_NATS_URL", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "shared.cli", "run"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    children: list[int] = []
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 90
        seen = ""
        while "Ctrl-C" not in seen and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            seen += line
        assert "Lingju is running" in seen, seen
        children = [
            int(p) for p in Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        ]
        assert len(children) == 5  # nats-server and four services
        for s in SERVICES:
            assert (tmp_path / "var" / f"{s}.db").exists()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    time.sleep(0.5)
    alive = [
        pid
        for pid in children
        if Path(f"/proc/{pid}").exists()
        and "Z" not in Path(f"/proc/{pid}/stat").read_text().split()[2]
    ]
    assert alive == []
