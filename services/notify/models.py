"""Notify tables (its own database).

Who: ``contacts`` (residents, fed by registry events; never a call to the registry) and
``staff_contacts`` (workers, agents, officers: kept by an admin), each addressed by a recipient
key: ``person:<person id>`` or ``staff:<sub>``.
What: ``templates`` (versioned zh-CN texts per channel) and ``preferences`` (channels on or
off and quiet hours, per recipient and category).
Phones, WeChat openids, webhook URLs and signing secrets, and every delivery's address, are kept
only as ``FieldCipher`` ciphertext (the ``*_enc`` columns, ``ENCRYPTED_COLUMNS``): the database
alone reveals no way of reaching anyone. Nothing is looked up by them, so they have no blind
index.
Sent: ``notifications`` (one per event, recipient and template: the database refuses a
second), each with one ``deliveries`` row per channel (queued -> sending -> sent -> delivered /
failed) and its ``delivery_attempts``; ``inbox_messages`` (the app channel); ``digest_items``
(lines waiting for a worker's morning digest).
"""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Any

from sqlalchemy import JSON, BigInteger, CheckConstraint, Index, Integer, UniqueConstraint
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from shared.crypto import EncryptedColumn
from shared.db import UtcDateTime, utcnow
from shared.tables import kernel_tables


class Base(SQLModel, registry=registry()):
    pass


metadata = Base.metadata
KERNEL = kernel_tables(metadata)

CHANNELS = ("app", "sms", "wechat", "webhook")

# FieldCipher contexts ("notify.<table>.<column>"), bound as associated data: a value moved to
# another column does not decrypt.
CONTACT_PHONE = "notify.contacts.phone"
CONTACT_OPENID = "notify.contacts.wechat_openid"
STAFF_PHONE = "notify.staff_contacts.phone"
STAFF_OPENID = "notify.staff_contacts.wechat_openid"
STAFF_WEBHOOK_URL = "notify.staff_contacts.webhook_url"
STAFF_WEBHOOK_SECRET = "notify.staff_contacts.webhook_secret"
STAFF_WEBHOOK_PREVIOUS_SECRET = "notify.staff_contacts.webhook_previous_secret"
DELIVERY_ADDRESS = "notify.deliveries.address"
FEED_URL = "notify.feed_subscriptions.url"
FEED_SECRET = "notify.feed_subscriptions.secret"
FEED_PREVIOUS_SECRET = "notify.feed_subscriptions.previous_secret"

ENCRYPTED_COLUMNS: tuple[EncryptedColumn, ...] = (
    EncryptedColumn("contacts", "phone_enc", CONTACT_PHONE, key="person_id"),
    EncryptedColumn("contacts", "wechat_openid_enc", CONTACT_OPENID, key="person_id"),
    EncryptedColumn("staff_contacts", "phone_enc", STAFF_PHONE, key="sub"),
    EncryptedColumn("staff_contacts", "wechat_openid_enc", STAFF_OPENID, key="sub"),
    EncryptedColumn("staff_contacts", "webhook_url_enc", STAFF_WEBHOOK_URL, key="sub"),
    EncryptedColumn("staff_contacts", "webhook_secret_enc", STAFF_WEBHOOK_SECRET, key="sub"),
    EncryptedColumn(
        "staff_contacts",
        "webhook_previous_secret_enc",
        STAFF_WEBHOOK_PREVIOUS_SECRET,
        key="sub",
    ),
    EncryptedColumn("deliveries", "address_enc", DELIVERY_ADDRESS),
    EncryptedColumn("feed_subscriptions", "url_enc", FEED_URL),
    EncryptedColumn("feed_subscriptions", "secret_enc", FEED_SECRET),
    EncryptedColumn("feed_subscriptions", "previous_secret_enc", FEED_PREVIOUS_SECRET),
)
# skipped: an important message's SMS that was waiting for the inbox copy to be read, and it was.
DELIVERY_STATUSES = ("queued", "sending", "sent", "delivered", "failed", "skipped")


def _ts(nullable: bool = False) -> Any:
    if nullable:
        return Field(default=None, sa_type=UtcDateTime)
    return Field(default_factory=utcnow, sa_type=UtcDateTime)


def person_key(person_id: str) -> str:
    return f"person:{person_id}"


def staff_key(sub: str) -> str:
    return f"staff:{sub}"


class Contact(Base, table=True):
    """A resident's contact details, from registry events; the WeChat openid is bound by the
    resident in the app (registry does not know it)."""

    __tablename__ = "contacts"

    person_id: str = Field(primary_key=True, max_length=36)
    name: str = Field(max_length=50)
    phone_enc: str | None = Field(default=None, max_length=200)
    wechat_openid_enc: str | None = Field(default=None, max_length=300)
    region_code: str = Field(max_length=12)
    source_version: int = 1  # the registry version this copy reflects
    updated_at: datetime = _ts()


class StaffContact(Base, table=True):
    """A worker, agent or officer notify may tell something (by the token's ``sub``)."""

    __tablename__ = "staff_contacts"
    __table_args__ = (Index("ix_staff_contacts_role_region", "role", "region_code"),)

    sub: str = Field(primary_key=True, max_length=80)
    name: str = Field(max_length=50)
    role: str = Field(max_length=20)
    region_code: str = Field(max_length=12)
    phone_enc: str | None = Field(default=None, max_length=200)
    wechat_openid_enc: str | None = Field(default=None, max_length=300)
    webhook_url_enc: str | None = Field(default=None, max_length=1000)
    # The webhook's own signing secret, made when the URL is registered; after a rotation the
    # one before it also signs until ``webhook_previous_secret_until`` (the receiver's grace).
    webhook_secret_enc: str | None = Field(default=None, max_length=300)
    webhook_previous_secret_enc: str | None = Field(default=None, max_length=300)
    webhook_previous_secret_until: datetime | None = _ts(nullable=True)
    active: bool = True
    updated_by: str = Field(max_length=80)
    updated_at: datetime = _ts()
    version: int = 1


class Template(Base, table=True):
    """One version of a message template; the newest version of a code is the one used."""

    __tablename__ = "templates"

    code: str = Field(primary_key=True, max_length=60)
    version: int = Field(primary_key=True)
    title: str = Field(max_length=100)  # the inbox title (and the WeChat "first" line)
    app_body: str = Field(max_length=2000)  # the in-app text, the longest
    sms_body: str = Field(max_length=500)  # short: a text message
    # WeChat template message: {"template_id": "...", "fields": {"first": "...", ...}}
    wechat: dict[str, Any] | None = Field(default=None, sa_type=JSON)
    note: str | None = Field(default=None, max_length=500)
    created_by: str = Field(max_length=80)
    created_at: datetime = _ts()


class Preference(Base, table=True):
    """A recipient's choices for one category (defaults apply when there is no row)."""

    __tablename__ = "preferences"

    recipient: str = Field(primary_key=True, max_length=90)
    category: str = Field(primary_key=True, max_length=40)
    channels_off: list[str] = Field(default_factory=list, sa_type=JSON)
    # Quiet hours in Asia/Shanghai; both None means the defaults (settings).
    quiet_start: time | None = None
    quiet_end: time | None = None
    updated_at: datetime = _ts()
    version: int = 1


class Notification(Base, table=True):
    """One message for one recipient about one event, whatever its channels."""

    __tablename__ = "notifications"
    __table_args__ = (
        UniqueConstraint("event_id", "recipient", "template", name="uq_notifications_once"),
        Index("ix_notifications_recipient_created", "recipient", "created_at"),
        Index("ix_notifications_region_created", "region_code", "created_at"),
    )

    id: str = Field(primary_key=True, max_length=36)
    event_id: str = Field(max_length=36)
    event_type: str = Field(max_length=100)
    recipient: str = Field(max_length=90)  # person:<id> | staff:<sub>
    template: str = Field(max_length=60)
    template_version: int
    category: str = Field(max_length=40)
    critical: bool = False  # ignores quiet hours
    important: bool = False  # unread in the inbox for long: escalated by SMS
    region_code: str = Field(max_length=12)  # the recipient's, for officers' queries
    title: str = Field(max_length=100)
    created_at: datetime = _ts()


class Delivery(Base, table=True):
    """A notification on one channel: queued -> sending -> sent -> delivered, or failed (or
    skipped: an important message's SMS no longer needed because the app copy was read)."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("notification_id", "channel", name="uq_deliveries_channel"),
        Index("ix_deliveries_due", "channel", "status", "not_before"),
        Index("ix_deliveries_provider_message", "provider", "provider_message_id"),
        CheckConstraint(
            "status IN ('queued', 'sending', 'sent', 'delivered', 'failed', 'skipped')",
            name="ck_deliveries_status",
        ),
    )

    id: str = Field(primary_key=True, max_length=36)
    notification_id: str = Field(max_length=36, foreign_key="notifications.id")
    channel: str = Field(max_length=10)  # app | sms | wechat | webhook
    # The phone, openid or URL it goes to (ciphertext; context notify.deliveries.address).
    address_enc: str | None = Field(default=None, max_length=1000)
    body: str = Field(max_length=2000)
    # What the provider needs besides the text: an SMS template's variables (in order), a
    # WeChat template's fields and id, a webhook's JSON body.
    params: dict[str, Any] | None = Field(default=None, sa_type=JSON)
    status: str = Field(max_length=12)
    attempts: int = 0
    not_before: datetime | None = _ts(nullable=True)  # quiet hours or backoff
    # Why it waits for not_before: quiet_hours | retry | unread (an important message's SMS
    # waits for its inbox copy to be read first).
    held: str | None = Field(default=None, max_length=20)
    lease_until: datetime | None = _ts(nullable=True)  # a sender holds it until then
    provider: str | None = Field(default=None, max_length=30)  # the last one tried
    provider_message_id: str | None = Field(default=None, max_length=100)
    last_error: str | None = Field(default=None, max_length=1000)
    created_at: datetime = _ts()
    updated_at: datetime = _ts()
    sent_at: datetime | None = _ts(nullable=True)
    delivered_at: datetime | None = _ts(nullable=True)
    failed_at: datetime | None = _ts(nullable=True)


class DeliveryAttempt(Base, table=True):
    """One hand-over to one provider, kept for the officer who asks what happened."""

    __tablename__ = "delivery_attempts"
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: int | None = Field(
        default=None, primary_key=True, sa_type=BigInteger().with_variant(Integer, "sqlite")
    )
    delivery_id: str = Field(max_length=36, foreign_key="deliveries.id", index=True)
    provider: str = Field(max_length=30)
    started_at: datetime = _ts()
    duration_ms: int = 0
    # sent | timeout | unavailable | rate_limited | rejected | recipient_rejected
    outcome: str = Field(max_length=20)
    http_status: int | None = None
    error: str | None = Field(default=None, max_length=500)


class InboxMessage(Base, table=True):
    """A message in the app inbox (站内信) of a resident or a member of staff."""

    __tablename__ = "inbox_messages"
    __table_args__ = (Index("ix_inbox_recipient_created", "recipient", "created_at", "id"),)

    id: str = Field(primary_key=True, max_length=36)
    recipient: str = Field(max_length=90)
    notification_id: str | None = Field(default=None, max_length=36, index=True)
    delivery_id: str = Field(foreign_key="deliveries.id", max_length=36, unique=True)
    title: str = Field(max_length=100)
    body: str = Field(max_length=2000)
    important: bool = False
    created_at: datetime = _ts()
    read_at: datetime | None = _ts(nullable=True)


class DigestItem(Base, table=True):
    """A line waiting for a recipient's digest (a worker's morning list of due visits)."""

    __tablename__ = "digest_items"
    __table_args__ = (
        UniqueConstraint("recipient", "digest", "event_id", name="uq_digest_items_once"),
        Index("ix_digest_items_due", "digest", "day", "recipient"),
        {"sqlite_autoincrement": True},
    )

    id: int | None = Field(
        default=None, primary_key=True, sa_type=BigInteger().with_variant(Integer, "sqlite")
    )
    recipient: str = Field(max_length=90)
    digest: str = Field(max_length=40)  # the route's digest code
    day: date  # the Asia/Shanghai day whose digest carries it
    event_id: str = Field(max_length=36)
    region_code: str = Field(max_length=12)
    line: str = Field(max_length=300)
    created_at: datetime = _ts()
    sent_at: datetime | None = _ts(nullable=True)  # when its digest was made


# -- the outbound event feed (feed.py) -----------------------------------------------------------

# failed: the retry budget is spent or the receiver is gone (dead); the API puts it back.
FEED_STATUSES = ("queued", "sending", "delivered", "failed")


class FeedSubscription(Base, table=True):
    """A system's webhook for the event types it wants (the county health bureau's, say)."""

    __tablename__ = "feed_subscriptions"
    __table_args__ = (Index("ix_feed_subscriptions_owner", "owner", "created_at", "id"),)

    id: str = Field(primary_key=True, max_length=36)
    owner: str = Field(max_length=80)  # the token's sub that registered it
    url_enc: str = Field(max_length=1000)
    # After a rotation the secret before also signs until ``previous_secret_until``.
    secret_enc: str = Field(max_length=300)
    previous_secret_enc: str | None = Field(default=None, max_length=300)
    previous_secret_until: datetime | None = _ts(nullable=True)
    event_types: list[str] = Field(default_factory=list, sa_type=JSON)
    active: bool = True
    created_at: datetime = _ts()
    updated_at: datetime = _ts()


class FeedDelivery(Base, table=True):
    """One event for one subscription: queued -> sending -> delivered, or failed (dead)."""

    __tablename__ = "feed_deliveries"
    __table_args__ = (
        UniqueConstraint("subscription_id", "event_id", name="uq_feed_deliveries_once"),
        Index("ix_feed_deliveries_due", "status", "next_attempt_at"),
        Index("ix_feed_deliveries_subscription", "subscription_id", "created_at", "id"),
        CheckConstraint(
            "status IN ('queued', 'sending', 'delivered', 'failed')",
            name="ck_feed_deliveries_status",
        ),
    )

    id: str = Field(primary_key=True, max_length=36)
    subscription_id: str = Field(max_length=36, foreign_key="feed_subscriptions.id")
    event_id: str = Field(max_length=36)
    event_type: str = Field(max_length=100)
    payload: dict[str, Any] = Field(sa_type=JSON)  # the CloudEvent as published
    status: str = Field(max_length=12)
    attempts: int = 0
    next_attempt_at: datetime | None = _ts(nullable=True)
    lease_until: datetime | None = _ts(nullable=True)  # a sender holds it until then
    last_error: str | None = Field(default=None, max_length=1000)
    created_at: datetime = _ts()
    updated_at: datetime = _ts()
    delivered_at: datetime | None = _ts(nullable=True)
    failed_at: datetime | None = _ts(nullable=True)


class FeedAttempt(Base, table=True):
    """One POST of a feed delivery: the delivery log the subscriber reads."""

    __tablename__ = "feed_attempts"
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: int | None = Field(
        default=None, primary_key=True, sa_type=BigInteger().with_variant(Integer, "sqlite")
    )
    delivery_id: str = Field(max_length=36, foreign_key="feed_deliveries.id", index=True)
    started_at: datetime = _ts()
    duration_ms: int = 0
    # delivered | timeout | unavailable | rate_limited | rejected | recipient_rejected
    outcome: str = Field(max_length=20)
    http_status: int | None = None
    error: str | None = Field(default=None, max_length=500)
