"""The CloudEvents 1.0 envelope (structured JSON mode) every Lingju event travels in."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared import context

_VERSION_SUFFIX = re.compile(r"\.v\d+$")


def subject_for(event_type: str) -> str:
    """NATS subject = the type without its version suffix (``x.issued.v2`` -> ``x.issued``)."""
    return _VERSION_SUFFIX.sub("", event_type)


class CloudEvent(BaseModel):
    # Consumers must tolerate attributes and fields they do not know.
    model_config = ConfigDict(extra="allow")

    specversion: Literal["1.0"] = "1.0"
    id: str
    source: str
    type: str
    time: datetime
    subject: str | None = None
    datacontenttype: str = "application/json"
    dataschema: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)
    correlationid: str | None = None
    traceparent: str | None = None


class EventData(BaseModel):
    """Base of every published event's payload; each subclass is one versioned schema."""

    TYPE: ClassVar[str]
    VERSION: ClassVar[int] = 1
    model_config = ConfigDict(extra="forbid")


class ConsumedData(BaseModel):
    """Base of a consumer's view of someone else's event: reads what it needs, ignores the rest."""

    model_config = ConfigDict(extra="ignore")


def new_event(service: str, data: EventData, subject: str | None = None) -> CloudEvent:
    return CloudEvent(
        id=str(uuid.uuid4()),
        source=f"/lingju/{service}",
        type=data.TYPE,
        time=datetime.now(UTC),
        subject=subject,
        dataschema=f"urn:lingju:schema:{subject_for(data.TYPE)}:v{data.VERSION}",
        data=data.model_dump(mode="json"),
        correlationid=context.correlation_id.get(),
        traceparent=context.traceparent.get(),
    )
