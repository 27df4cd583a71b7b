"""Events: CloudEvents envelope, transactional outbox and relay, JetStream consumers, inbox."""

from shared.events.envelope import CloudEvent, EventData, new_event, subject_for

__all__ = ["CloudEvent", "EventData", "new_event", "subject_for"]
