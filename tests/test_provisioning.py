"""Streams and durable consumers are declared explicitly, and follow a changed declaration.

nats-py's ``pull_subscribe(durable=...)`` silently keeps an old consumer config; Lingju
declares streams and consumers itself before it reports ready.
"""

from __future__ import annotations

from pathlib import Path

import nats
from nats.js.api import ConsumerConfig, StreamConfig

from shared.devstack import NatsServer
from tests.support import InProcessStack, eventually, reset_broker, reset_databases


async def test_changed_stream_and_consumer_declarations_are_applied(
    databases: dict[str, str], nats_server: NatsServer, tmp_path: Path
) -> None:
    await reset_databases(databases)
    await reset_broker(nats_server.url)
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    try:
        # What an older release (or a hand-made change) left on the server.
        await js.add_stream(
            StreamConfig(name="REGISTRY", subjects=["lingju.registry.>"], duplicate_window=10)
        )
        await js.add_consumer(
            "REGISTRY",
            ConsumerConfig(
                durable_name="benefits",
                filter_subject="lingju.registry.person.registered",
                max_deliver=2,
                ack_wait=60,
            ),
        )
        stack = InProcessStack(databases, nats_server, tmp_path)
        async with stack.running():
            stream = await js.stream_info("REGISTRY")
            assert stream.config.duplicate_window == stack.settings.stream_duplicate_window_seconds
            assert stream.config.max_age == stack.settings.stream_max_age_days * 86400
            consumer = await js.consumer_info("REGISTRY", "benefits")
            assert sorted(consumer.config.filter_subjects or []) == [
                "lingju.registry.certificate.issued",
                "lingju.registry.certificate.revoked",
                "lingju.registry.child.born",
                "lingju.registry.family.child_linked",
                "lingju.registry.family.registered",
                "lingju.registry.person.died",
                "lingju.registry.person.registered",
                "lingju.registry.person.updated",
            ]
            # visits keeps its person copy and starts / cancels follow-up plans.
            visits = await js.consumer_info("REGISTRY", "visits")
            assert sorted(visits.config.filter_subjects or []) == [
                "lingju.registry.child.born",
                "lingju.registry.family.registered",
                "lingju.registry.person.died",
                "lingju.registry.person.registered",
                "lingju.registry.person.updated",
            ]
            # notify takes every type each stream carries: what it tells someone about
            # (routing.toml), and all of it for the outbound event feed (docs/event-feed.md).
            notify = await js.consumer_info("BENEFITS", "notify")
            assert sorted(notify.config.filter_subjects or []) == [
                "lingju.benefits.claim.decided",
                "lingju.benefits.enrollment.activated",
                "lingju.benefits.enrollment.created",
                "lingju.benefits.enrollment.ended",
                "lingju.benefits.enrollment.resumed",
                "lingju.benefits.enrollment.suspended",
                "lingju.benefits.payment.disbursed",
                "lingju.benefits.payment.failed",
            ]
            notify = await js.consumer_info("REGISTRY", "notify")
            assert sorted(notify.config.filter_subjects or []) == [
                "lingju.registry.application.decided",
                "lingju.registry.application.materials_requested",
                "lingju.registry.application.overdue",
                "lingju.registry.certificate.issued",
                "lingju.registry.certificate.revoked",
                "lingju.registry.child.born",
                "lingju.registry.family.child_linked",
                "lingju.registry.family.registered",
                "lingju.registry.person.died",
                "lingju.registry.person.registered",
                "lingju.registry.person.updated",
            ]
            notify = await js.consumer_info("VISITS", "notify")
            assert sorted(notify.config.filter_subjects or []) == [
                "lingju.visits.appointment.booked",
                "lingju.visits.appointment.cancelled",
                "lingju.visits.appointment.reminder",
                "lingju.visits.appointment.rescheduled",
                "lingju.visits.assignment.changed",
                "lingju.visits.procedure.recorded",
                "lingju.visits.task.due",
                "lingju.visits.task.overdue",
                "lingju.visits.visit.recorded",
            ]
            assert consumer.config.max_deliver == stack.settings.consumer_max_deliver + 1
            assert consumer.config.ack_wait == stack.settings.consumer_ack_wait_seconds
            # And it works: a certificate (a subject the old consumer did not take) enrolls.
            issued = await stack.issue_certificate()

            async def enrolled() -> None:
                assert len(await stack.enrollments_of(issued["mother"]["id"])) == 1

            await eventually(enrolled)
    finally:
        await nc.close()


async def test_relay_wakes_on_commit_not_on_its_poll(
    databases: dict[str, str], nats_server: NatsServer, tmp_path: Path
) -> None:
    """With a one-minute poll, an event still leaves within moments of its commit."""
    await reset_databases(databases)
    await reset_broker(nats_server.url)
    stack = InProcessStack(databases, nats_server, tmp_path, relay_poll_seconds=60)
    async with stack.running():
        await stack.register_person()

        async def known_to_visits() -> None:
            assert await stack.count_rows("visits", "person_facts") == 1

        await eventually(known_to_visits, within=5)
