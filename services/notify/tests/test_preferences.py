"""A recipient's preferences: the pure rules (channels, quiet hours, digests) and the API."""

from __future__ import annotations

import tomllib
import uuid
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest

from services.notify import preferences
from services.notify.domain.preferences import (
    QUIET_CHANNELS,
    channels_for,
    digest_day,
    digest_text,
    hold_until,
    quiet_hours,
)
from services.notify.domain.routing import CHANNELS, parse_routing
from services.notify.models import (
    CONTACT_OPENID,
    CONTACT_PHONE,
    STAFF_OPENID,
    STAFF_PHONE,
    Contact,
    StaffContact,
    person_key,
    staff_key,
)
from services.notify.sealed import seal, unseal
from shared.clock import SHANGHAI
from tests.support import TOWNSHIP, VILLAGE, InProcessStack

ROUTING_FILE = Path(__file__).resolve().parents[1] / "routing.toml"

NIGHT = (time(21, 0), time(8, 0))
NOON = (time(12, 0), time(14, 0))


def sh(day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, second, tzinfo=SHANGHAI)


# -- channels ---------------------------------------------------------------------------------


def test_channels_for_keeps_the_route_order_minus_those_turned_off() -> None:
    route = ("app", "sms", "wechat", "webhook")
    assert channels_for(route, []) == route
    assert channels_for(route, ["wechat"]) == ("app", "sms", "webhook")
    assert channels_for(route, ["sms", "wechat", "webhook"]) == ("app",)
    assert channels_for(("wechat", "app", "sms"), ["sms"]) == ("wechat", "app")


def test_app_is_never_turned_off() -> None:
    assert channels_for(("app", "sms"), ["app", "sms"]) == ("app",)
    assert channels_for(("app",), ["app"]) == ("app",)


def test_channels_turned_off_that_the_route_does_not_use_change_nothing() -> None:
    assert channels_for(("app", "sms"), ["wechat", "webhook"]) == ("app", "sms")
    assert channels_for(("sms",), ["sms"]) == ()


# -- quiet hours ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("at", "held_until"),
    [
        (sh(10, 20, 59, 59), None),
        (sh(10, 21, 0), sh(11, 8, 0)),  # the start is inclusive
        (sh(10, 23, 30), sh(11, 8, 0)),  # before midnight: tomorrow morning
        (sh(11, 0, 0), sh(11, 8, 0)),
        (sh(11, 3, 0), sh(11, 8, 0)),  # after midnight: this morning
        (sh(11, 7, 59, 59), sh(11, 8, 0)),
        (sh(11, 8, 0), None),  # the end is exclusive
        (sh(11, 12, 0), None),
    ],
)
def test_quiet_hours_across_midnight(at: datetime, held_until: datetime | None) -> None:
    for channel in QUIET_CHANNELS:
        assert hold_until(at, channel, False, *NIGHT) == held_until


def test_held_until_is_an_aware_shanghai_datetime() -> None:
    until = hold_until(sh(10, 23, 30), "sms", False, *NIGHT)
    assert until is not None
    assert until.tzinfo is not None
    assert until.utcoffset() == timedelta(hours=8)
    assert until.astimezone(UTC) == datetime(2026, 3, 11, 0, 0, tzinfo=UTC)


def test_quiet_hours_at_the_end_of_a_month_and_a_year() -> None:
    late = datetime(2026, 12, 31, 22, 0, tzinfo=SHANGHAI)
    assert hold_until(late, "sms", False, *NIGHT) == datetime(2027, 1, 1, 8, 0, tzinfo=SHANGHAI)
    feb = datetime(2026, 2, 28, 21, 0, tzinfo=SHANGHAI)
    assert hold_until(feb, "wechat", False, *NIGHT) == datetime(2026, 3, 1, 8, tzinfo=SHANGHAI)


@pytest.mark.parametrize(
    ("at", "held_until"),
    [
        (sh(10, 11, 59), None),
        (sh(10, 12, 0), sh(10, 14, 0)),
        (sh(10, 13, 59), sh(10, 14, 0)),
        (sh(10, 14, 0), None),
        (sh(10, 23, 0), None),
        (sh(10, 3, 0), None),
    ],
)
def test_quiet_hours_within_one_day(at: datetime, held_until: datetime | None) -> None:
    assert hold_until(at, "sms", False, *NOON) == held_until


def test_start_equal_to_end_means_no_quiet_hours() -> None:
    for hour in (0, 3, 8, 21, 23):
        assert hold_until(sh(10, hour), "sms", False, time(8, 0), time(8, 0)) is None
        assert hold_until(sh(10, hour), "sms", False, time(0, 0), time(0, 0)) is None


def test_critical_messages_are_never_held() -> None:
    for at in (sh(10, 21, 0), sh(10, 23, 30), sh(11, 3, 0)):
        for channel in QUIET_CHANNELS:
            assert hold_until(at, channel, True, *NIGHT) is None


def test_only_sms_and_wechat_wait() -> None:
    assert QUIET_CHANNELS == ("sms", "wechat")
    for channel in ("app", "webhook"):
        assert hold_until(sh(10, 23, 30), channel, False, *NIGHT) is None


def test_now_in_utc_is_read_on_the_shanghai_clock() -> None:
    # 14:00Z is 22:00 in Shanghai: quiet until 08:00 there, which is 00:00Z the next day.
    at = datetime(2026, 3, 10, 14, 0, tzinfo=UTC)
    assert hold_until(at, "sms", False, *NIGHT) == sh(11, 8, 0)
    # 02:00Z is 10:00 in Shanghai: not quiet, although 02:00 would be on a UTC clock.
    assert hold_until(datetime(2026, 3, 10, 2, 0, tzinfo=UTC), "sms", False, *NIGHT) is None
    # 19:30Z on the 10th is 03:30 on the 11th in Shanghai: held until 08:00 that same morning.
    assert hold_until(datetime(2026, 3, 10, 19, 30, tzinfo=UTC), "sms", False, *NIGHT) == sh(
        11, 8, 0
    )


def test_quiet_hours_come_from_the_recipient_or_the_defaults() -> None:
    d = NIGHT
    assert quiet_hours(None, None, *d) == d
    assert quiet_hours(time(22, 0), time(7, 0), *d) == (time(22, 0), time(7, 0))
    assert quiet_hours(time(22, 0), None, *d) == d  # half a window is no choice
    assert quiet_hours(None, time(7, 0), *d) == d
    assert quiet_hours(time(0, 0), time(0, 0), *d) == (time(0, 0), time(0, 0))  # none at all


# -- digests ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("at", "day"),
    [
        (sh(10, 0, 0), date(2026, 3, 10)),
        (sh(10, 7, 59, 59), date(2026, 3, 10)),  # before the hour: this morning's digest
        (sh(10, 8, 0), date(2026, 3, 11)),  # the hour itself: tomorrow's
        (sh(10, 15, 0), date(2026, 3, 11)),
        (sh(10, 23, 59, 59), date(2026, 3, 11)),
        (sh(11, 0, 0, 0), date(2026, 3, 11)),  # just past midnight: still that day's
    ],
)
def test_digest_day(at: datetime, day: date) -> None:
    assert digest_day(at, 8) == day


def test_digest_day_reads_the_shanghai_clock() -> None:
    # 23:30Z on the 10th is 07:30 on the 11th in Shanghai: the 11th's digest.
    assert digest_day(datetime(2026, 3, 10, 23, 30, tzinfo=UTC), 8) == date(2026, 3, 11)
    # 00:30Z on the 11th is 08:30 there: the 12th's.
    assert digest_day(datetime(2026, 3, 11, 0, 30, tzinfo=UTC), 8) == date(2026, 3, 12)
    # At 16:30Z the date turns in Shanghai (00:30 on the 11th).
    assert digest_day(datetime(2026, 3, 10, 16, 30, tzinfo=UTC), 8) == date(2026, 3, 11)
    assert digest_day(datetime(2026, 12, 31, 9, 0, tzinfo=SHANGHAI), 8) == date(2027, 1, 1)


def test_digest_hour_zero_means_every_item_waits_for_the_next_day() -> None:
    assert digest_day(sh(10, 0, 0), 0) == date(2026, 3, 11)
    assert digest_day(sh(10, 23, 0), 0) == date(2026, 3, 11)


def test_digest_text_numbers_the_lines() -> None:
    assert digest_text(["张三 随访", "李四 随访"]) == ("1. 张三 随访\n2. 李四 随访", 2)
    assert digest_text([]) == ("", 0)


def test_digest_text_stops_at_the_limit_and_says_how_many_more() -> None:
    lines = [f"居民{i}" for i in range(1, 26)]
    text, count = digest_text(lines)
    assert count == 25
    out = text.split("\n")
    assert len(out) == 21
    assert out[0] == "1. 居民1"
    assert out[19] == "20. 居民20"
    assert out[20] == "……另有 5 项，请在App中查看"

    exactly = [f"x{i}" for i in range(3)]
    assert digest_text(exactly, limit=3) == ("1. x0\n2. x1\n3. x2", 3)
    assert digest_text(exactly, limit=2) == ("1. x0\n2. x1\n……另有 1 项，请在App中查看", 3)


# -- the API ----------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def routers_mounted(monkeypatch: pytest.MonkeyPatch) -> None:
    """Until app.py names these routers, mount them for this module's apps (a no-op after)."""
    from services.notify import app
    from services.notify.api import preferences as api_preferences
    from services.notify.api import staff as api_staff

    missing = [r for r in (api_preferences.router, api_staff.router) if r not in app.SPEC.routers]
    monkeypatch.setattr(app.SPEC, "routers", [*app.SPEC.routers, *missing])


def file_categories() -> list[dict[str, Any]]:
    routing = parse_routing(tomllib.loads(ROUTING_FILE.read_text("utf-8")))
    return [
        {"code": c.code, "name": c.name, "critical": c.critical}
        for c in routing.categories.values()
    ]


async def add_contact(stack: InProcessStack, person_id: str | None = None) -> str:
    """A resident notify has heard of (as registry's events would have told it)."""
    pid = person_id or str(uuid.uuid4())
    async with stack.rt("notify").db.session() as s:
        phone_enc = seal(stack.rt("notify").cipher, "13800138000", CONTACT_PHONE)
        s.add(Contact(person_id=pid, name="测试居民", phone_enc=phone_enc, region_code=VILLAGE))
        await s.commit()
    return pid


async def add_staff(stack: InProcessStack, sub: str, role: str = "village_worker") -> None:
    async with stack.rt("notify").db.session() as s:
        s.add(
            StaffContact(
                sub=sub,
                name="王芳",
                role=role,
                region_code=VILLAGE,
                phone_enc=seal(stack.rt("notify").cipher, "13900139000", STAFF_PHONE),
                updated_by="admin",
            )
        )
        await s.commit()


def resident(stack: InProcessStack, person_id: str) -> dict[str, str]:
    return stack.auth("resident", person_id=person_id)


async def test_categories_are_routing_files_for_any_caller(stack: InProcessStack) -> None:
    expected = file_categories()
    assert {"code": "appointment_change", "name": "预约变更", "critical": True} in expected
    for headers in (
        resident(stack, str(uuid.uuid4())),
        stack.auth("village_agent", TOWNSHIP),
        stack.auth("county_officer", "330102"),
        stack.auth("admin"),
    ):
        r = await stack.notify.get("/api/v1/notification-categories", headers=headers)
        assert r.status_code == 200, r.text
        assert r.json() == expected
    r = await stack.notify.get("/api/v1/notification-categories")
    assert r.status_code == 401
    assert r.json()["code"] == "unauthenticated"


async def test_without_choices_every_category_has_the_defaults(stack: InProcessStack) -> None:
    r = await stack.notify.get("/api/v1/preferences", headers=resident(stack, str(uuid.uuid4())))
    assert r.status_code == 200, r.text
    items = r.json()
    assert [i["category"] for i in items] == [c["code"] for c in file_categories()]
    for item in items:
        assert item["channels_on"] == list(CHANNELS)
        assert item["channels_off"] == []
        assert (item["quiet_start"], item["quiet_end"]) == ("21:00", "08:00")
        assert item["quiet_default"] is True
        assert item["default"] is True
        assert item["version"] == 0
    critical = {i["category"]: i["critical"] for i in items}
    assert critical["appointment_change"] is True
    assert critical["appointment"] is False


async def test_a_resident_sets_channels_and_quiet_hours_for_a_category(
    stack: InProcessStack,
) -> None:
    pid = str(uuid.uuid4())
    headers = resident(stack, pid)
    r = await stack.notify.put(
        "/api/v1/preferences/appointment",
        headers=headers,
        json={"channels_off": ["wechat", "wechat"], "quiet_start": "22:00", "quiet_end": "07:00"},
    )
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["category"] == "appointment"
    assert out["channels_on"] == ["app", "sms", "webhook"]
    assert out["channels_off"] == ["wechat"]
    assert (out["quiet_start"], out["quiet_end"]) == ("22:00", "07:00")
    assert out["quiet_default"] is False
    assert out["default"] is False
    assert out["version"] == 1

    # What the handler reads: the row, by the caller's recipient key.
    async with stack.rt("notify").db.session() as s:
        row = await preferences.load(s, person_key(pid), "appointment")
        assert await preferences.load(s, person_key(pid), "benefits") is None
    assert row is not None
    assert row.channels_off == ["wechat"]
    assert (row.quiet_start, row.quiet_end) == (time(22, 0), time(7, 0))

    r = await stack.notify.get("/api/v1/preferences", headers=headers)
    by_code = {i["category"]: i for i in r.json()}
    assert by_code["appointment"] == out
    assert by_code["benefits"]["default"] is True

    # Back to the county's hours, SMS off too; the version guards the change.
    r = await stack.notify.put(
        "/api/v1/preferences/appointment",
        headers=headers,
        json={"channels_off": ["sms", "wechat"], "version": 1},
    )
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["channels_on"] == ["app", "webhook"]
    assert (out["quiet_start"], out["quiet_end"], out["quiet_default"]) == ("21:00", "08:00", True)
    assert out["version"] == 2

    # Someone else's choices are their own.
    r = await stack.notify.get("/api/v1/preferences", headers=resident(stack, str(uuid.uuid4())))
    assert all(i["default"] for i in r.json())


async def test_a_stale_version_is_refused(stack: InProcessStack) -> None:
    headers = resident(stack, str(uuid.uuid4()))
    url = "/api/v1/preferences/benefits"
    r = await stack.notify.put(url, headers=headers, json={"channels_off": [], "version": 3})
    assert r.status_code == 409, r.text  # there is no row: version 0
    assert r.json()["code"] == "version_conflict"
    r = await stack.notify.put(url, headers=headers, json={"channels_off": ["sms"], "version": 0})
    assert r.status_code == 200, r.text
    r = await stack.notify.put(url, headers=headers, json={"channels_off": [], "version": 1})
    assert r.status_code == 200, r.text
    for stale in (0, 1):
        r = await stack.notify.put(
            url, headers=headers, json={"channels_off": [], "version": stale}
        )
        assert r.status_code == 409, r.text
        assert r.json()["code"] == "version_conflict"
    r = await stack.notify.get("/api/v1/preferences", headers=headers)
    (benefits,) = [i for i in r.json() if i["category"] == "benefits"]
    assert (benefits["version"], benefits["channels_off"]) == (2, [])
    # Without a version, the last writer wins.
    r = await stack.notify.put(url, headers=headers, json={"channels_off": ["webhook"]})
    assert r.status_code == 200, r.text
    assert r.json()["version"] == 3


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"channels_off": ["fax"]}, "channels_off"),
        ({"channels_off": ["app"]}, "channels_off"),
        ({"channels_off": ["sms", "app"]}, "channels_off"),
        ({"channels_off": [], "quiet_start": "22:00"}, "quiet_end"),
        ({"channels_off": [], "quiet_end": "07:00"}, "quiet_start"),
        ({"channels_off": [], "quiet_start": "24:00", "quiet_end": "07:00"}, "quiet_start"),
        ({"channels_off": [], "quiet_start": "22:00", "quiet_end": "7:00"}, "quiet_end"),
        ({"channels_off": "sms"}, "channels_off"),
        ({"channels_off": [], "colour": "red"}, "colour"),
    ],
)
async def test_invalid_preferences_name_the_field(
    stack: InProcessStack, body: dict[str, Any], field: str
) -> None:
    r = await stack.notify.put(
        "/api/v1/preferences/appointment", headers=resident(stack, str(uuid.uuid4())), json=body
    )
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "validation_failed"
    assert field in [e["field"] for e in r.json()["errors"]]


async def test_an_unknown_category_is_not_found(stack: InProcessStack) -> None:
    r = await stack.notify.put(
        "/api/v1/preferences/lottery",
        headers=resident(stack, str(uuid.uuid4())),
        json={"channels_off": []},
    )
    assert r.status_code == 404, r.text
    assert r.json()["code"] == "not_found"


async def test_equal_start_and_end_turn_quiet_hours_off(stack: InProcessStack) -> None:
    r = await stack.notify.put(
        "/api/v1/preferences/visits",
        headers=resident(stack, str(uuid.uuid4())),
        json={"channels_off": [], "quiet_start": "00:00", "quiet_end": "00:00"},
    )
    assert r.status_code == 200, r.text
    assert (r.json()["quiet_start"], r.json()["quiet_end"]) == ("00:00", "00:00")
    assert r.json()["quiet_default"] is False


async def test_staff_have_their_own_preferences_by_sub(stack: InProcessStack) -> None:
    headers = stack.auth("village_worker", VILLAGE, sub="worker-pref")
    r = await stack.notify.put(
        "/api/v1/preferences/work", headers=headers, json={"channels_off": ["sms"]}
    )
    assert r.status_code == 200, r.text
    async with stack.rt("notify").db.session() as s:
        row = await preferences.load(s, staff_key("worker-pref"), "work")
    assert row is not None and row.channels_off == ["sms"]
    # A resident's token without a person is refused rather than taken for staff.
    r = await stack.notify.get("/api/v1/preferences", headers=stack.auth("resident", sub="x"))
    assert r.status_code == 403


async def test_a_resident_binds_and_unbinds_wechat(stack: InProcessStack) -> None:
    pid = str(uuid.uuid4())
    headers = resident(stack, pid)
    openid = "oX1a2B3c4D5e6F7g8H9i0JkLmNoP"
    r = await stack.notify.put("/api/v1/me/wechat", headers=headers, json={"openid": openid})
    assert r.status_code == 404, r.text  # notify has not heard of them yet
    assert r.json()["code"] == "not_found"

    await add_contact(stack, pid)
    r = await stack.notify.put("/api/v1/me/wechat", headers=headers, json={"openid": openid})
    assert r.status_code == 200, r.text
    assert r.json() == {"recipient": person_key(pid), "wechat_bound": True}
    async with stack.rt("notify").db.session() as s:
        contact = await s.get(Contact, pid)
    assert contact is not None and contact.wechat_openid_enc != openid  # sealed
    assert unseal(stack.rt("notify").cipher, contact.wechat_openid_enc, CONTACT_OPENID) == openid

    r = await stack.notify.delete("/api/v1/me/wechat", headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["wechat_bound"] is False
    async with stack.rt("notify").db.session() as s:
        contact = await s.get(Contact, pid)
    assert contact is not None and contact.wechat_openid_enc is None

    r = await stack.notify.put("/api/v1/me/wechat", headers=headers, json={"openid": "no way!"})
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "openid"


async def test_staff_bind_wechat_on_their_directory_entry(stack: InProcessStack) -> None:
    headers = stack.auth("village_worker", VILLAGE, sub="worker-wx")
    body = {"openid": "oWorker0000000000000000000001"}
    r = await stack.notify.put("/api/v1/me/wechat", headers=headers, json=body)
    assert r.status_code == 404, r.text  # not in the directory yet

    await add_staff(stack, "worker-wx")
    r = await stack.notify.put("/api/v1/me/wechat", headers=headers, json=body)
    assert r.status_code == 200, r.text
    assert r.json() == {"recipient": staff_key("worker-wx"), "wechat_bound": True}
    async with stack.rt("notify").db.session() as s:
        staff = await s.get(StaffContact, "worker-wx")
    assert staff is not None
    opened = unseal(stack.rt("notify").cipher, staff.wechat_openid_enc, STAFF_OPENID)
    assert opened == body["openid"] != staff.wechat_openid_enc
    assert staff.version == 1  # the admin's version guard is not disturbed

    r = await stack.notify.delete("/api/v1/me/wechat", headers=headers)
    assert r.status_code == 200, r.text
    async with stack.rt("notify").db.session() as s:
        staff = await s.get(StaffContact, "worker-wx")
    assert staff is not None and staff.wechat_openid_enc is None

    r = await stack.notify.put("/api/v1/me/wechat", headers=stack.auth("admin"), json=body)
    assert r.status_code == 403
