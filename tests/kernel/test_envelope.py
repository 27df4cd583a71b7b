"""The CloudEvents 1.0 envelope every event travels in."""

from __future__ import annotations

import contextvars
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime

import pytest
from pydantic import ValidationError

from shared import context
from shared.events.envelope import (
    CloudEvent,
    ConsumedData,
    EventData,
    new_event,
    subject_for,
)


class ThingHappened(EventData):
    TYPE = "lingju.test.thing.happened"
    VERSION = 2
    thing_id: str
    on: date


@pytest.mark.parametrize(
    ("event_type", "subject"),
    [
        ("lingju.registry.certificate.issued.v2", "lingju.registry.certificate.issued"),
        ("lingju.registry.certificate.issued.v10", "lingju.registry.certificate.issued"),
        ("lingju.registry.certificate.issued", "lingju.registry.certificate.issued"),
        ("lingju.v2.issued", "lingju.v2.issued"),
        ("lingju.issued.v2.v3", "lingju.issued.v2"),
        ("lingju.issued.v", "lingju.issued.v"),
        ("lingju.issuedv2", "lingju.issuedv2"),
        ("lingju.issued.V2", "lingju.issued.V2"),
        ("lingju.issued.v2x", "lingju.issued.v2x"),
    ],
)
def test_subject_strips_only_a_trailing_version(event_type: str, subject: str) -> None:
    """Only a final ``.v<digits>`` is removed from the type to make the NATS subject."""
    assert subject_for(event_type) == subject


@pytest.fixture
def correlated() -> Iterator[str]:
    """A correlation id and traceparent in the current context, as a request would set them."""
    cid = "corr-123"
    tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    tokens = (context.correlation_id.set(cid), context.traceparent.set(tp))
    yield cid
    context.traceparent.reset(tokens[1])
    context.correlation_id.reset(tokens[0])


def test_new_event_fills_the_cloudevents_attributes(correlated: str) -> None:
    """Id, source, type, time, dataschema, data and the request's correlation id are set."""
    before = datetime.now(UTC)
    event = new_event("registry", ThingHappened(thing_id="t1", on=date(2025, 10, 9)), subject="t1")
    assert event.specversion == "1.0"
    assert uuid.UUID(event.id).version == 4
    assert event.source == "/lingju/registry"
    assert event.type == "lingju.test.thing.happened"
    assert before <= event.time <= datetime.now(UTC)
    assert event.time.tzinfo is not None
    assert event.subject == "t1"
    assert event.datacontenttype == "application/json"
    assert event.dataschema == "urn:lingju:schema:lingju.test.thing.happened:v2"
    assert event.data == {"thing_id": "t1", "on": "2025-10-09"}
    assert event.correlationid == correlated
    assert event.traceparent == "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_new_event_ids_are_unique() -> None:
    """Two events from the same data are two events."""
    data = ThingHappened(thing_id="t1", on=date(2025, 10, 9))
    assert new_event("registry", data).id != new_event("registry", data).id


def test_new_event_outside_a_request_has_no_correlation_id() -> None:
    """With no correlation id in context, the attribute is left empty."""
    data = ThingHappened(thing_id="t1", on=date(2025, 10, 9))
    event = contextvars.Context().run(new_event, "benefits", data)
    assert event.correlationid is None
    assert event.traceparent is None
    assert event.source == "/lingju/benefits"


def test_versioned_type_gives_a_schema_without_a_double_version() -> None:
    """A type that carries ``.vN`` names its schema by the subject plus the version."""

    class Versioned(EventData):
        TYPE = "lingju.test.thing.moved.v3"
        VERSION = 3

    event = new_event("visits", Versioned())
    assert event.dataschema == "urn:lingju:schema:lingju.test.thing.moved:v3"


def test_published_schemas_are_strict() -> None:
    """A publisher cannot put a field its schema does not declare into an event."""
    with pytest.raises(ValidationError):
        ThingHappened(thing_id="t1", on=date(2025, 10, 9), extra="x")  # type: ignore[call-arg]


def test_consumer_views_ignore_unknown_fields() -> None:
    """A consumer reads the fields it needs and ignores the ones added later."""

    class ThingView(ConsumedData):
        thing_id: str

    view = ThingView.model_validate({"thing_id": "t1", "on": "2025-10-09", "new_field": 1})
    assert view.model_dump() == {"thing_id": "t1"}


def test_cloud_event_tolerates_unknown_attributes() -> None:
    """An envelope with extension attributes we do not know parses and keeps them."""
    raw = {
        "specversion": "1.0",
        "id": "e1",
        "source": "/county/bureau",
        "type": "lingju.bureau.birth.reported",
        "time": "2025-10-09T08:00:00Z",
        "partitionkey": "330102",
        "knativearrivaltime": "2025-10-09T08:00:01Z",
        "data": {"child": "c1", "unknown": [1, 2]},
    }
    event = CloudEvent.model_validate(raw)
    assert event.model_extra == {
        "partitionkey": "330102",
        "knativearrivaltime": "2025-10-09T08:00:01Z",
    }
    assert event.data == {"child": "c1", "unknown": [1, 2]}
    assert event.correlationid is None
    again = CloudEvent.model_validate_json(event.model_dump_json())
    assert again.model_extra == event.model_extra
    assert again.time == datetime(2025, 10, 9, 8, 0, tzinfo=UTC)


def test_cloud_event_requires_specversion_1_0_and_core_attributes() -> None:
    """Another spec version, or a missing id/source/type/time, is refused."""
    base = {"id": "e1", "source": "/s", "type": "t", "time": "2025-10-09T08:00:00Z"}
    CloudEvent.model_validate(base)
    with pytest.raises(ValidationError):
        CloudEvent.model_validate({**base, "specversion": "0.3"})
    for key in base:
        with pytest.raises(ValidationError):
            CloudEvent.model_validate({k: v for k, v in base.items() if k != key})
