"""Appointments for checks at stations: booking never overbooks, over real HTTP, on SQLite and
PostgreSQL, with a real nats-server behind the outbox."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select, update

from services.visits.models import Appointment, PersonFacts, Slot
from shared.clock import SHANGHAI
from tests.support import OTHER_TOWNSHIP, TOWNSHIP, VILLAGE, InProcessStack, published

DISTRICT = "330102"
OTHER_VILLAGE = OTHER_TOWNSHIP + "001"


def api(stack: InProcessStack) -> httpx.AsyncClient:
    return stack.visits


def officer(
    stack: InProcessStack, region: str = TOWNSHIP, sub: str = "officer-1"
) -> dict[str, str]:
    return stack.auth("township_officer", region, sub=sub)


def resident(stack: InProcessStack, person_id: str) -> dict[str, str]:
    return stack.auth("resident", VILLAGE, person_id=person_id)


def problem(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = r.json()
    assert body["code"] == code, body
    return body


async def add_persons(stack: InProcessStack, n: int, region: str = VILLAGE) -> list[str]:
    """Persons as visits knows them (what registry events would have written), quickly."""
    ids = [str(uuid.uuid4()) for _ in range(n)]
    async with stack.rt("visits").db.session() as s:
        s.add_all(
            PersonFacts(
                person_id=i,
                name="测试居民",
                sex="female",
                birth_date=date(1995, 5, 1),
                region_code=region,
            )
            for i in ids
        )
        await s.commit()
    return ids


async def station(stack: InProcessStack, region: str = TOWNSHIP) -> dict[str, Any]:
    r = await api(stack).post(
        "/api/v1/stations",
        json={"name": "清波街道社区卫生服务中心", "region_code": region},
        headers=stack.auth("county_officer", DISTRICT),
    )
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


async def slot(
    stack: InProcessStack,
    station_id: str,
    capacity: int = 10,
    starts_at: datetime | None = None,
    service: str = "pre_pregnancy_check",
) -> dict[str, Any]:
    starts = starts_at or datetime.now(UTC) + timedelta(days=3)
    r = await api(stack).post(
        "/api/v1/slots",
        json={
            "station_id": station_id,
            "service": service,
            "starts_at": starts.isoformat(),
            "ends_at": (starts + timedelta(hours=3)).isoformat(),
            "capacity": capacity,
        },
        headers=officer(stack),
    )
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


async def book(
    stack: InProcessStack, slot_id: str, person_id: str, headers: dict[str, str] | None = None
) -> httpx.Response:
    return await api(stack).post(
        "/api/v1/appointments",
        json={"slot_id": slot_id, "person_id": person_id},
        headers=headers or resident(stack, person_id),
    )


async def slot_row(stack: InProcessStack, slot_id: str) -> Slot:
    async with stack.rt("visits").db.session() as s:
        row = await s.get(Slot, slot_id)
        assert row is not None
        return row


async def live_rows(stack: InProcessStack, slot_id: str) -> int:
    async with stack.rt("visits").db.session() as s:
        rows = await s.scalars(
            select(Appointment.id).where(
                Appointment.slot_id == slot_id, Appointment.status == "booked"
            )
        )
        return len(list(rows))


async def start_slot(stack: InProcessStack, slot_id: str) -> None:
    """Time travel: the slot began an hour ago."""
    starts = datetime.now(UTC) - timedelta(hours=1)
    async with stack.rt("visits").db.session() as s:
        await s.execute(
            update(Slot)
            .where(Slot.id == slot_id)  # type: ignore[arg-type]
            .values(starts_at=starts, ends_at=starts + timedelta(hours=3))
        )
        await s.commit()


# -- capacity under concurrency -------------------------------------------------------------------


async def test_hundred_concurrent_bookings_of_a_slot_of_ten_take_exactly_ten(
    stack: InProcessStack,
) -> None:
    st = await station(stack)
    sl = await slot(stack, st["id"], capacity=10)
    persons = await add_persons(stack, 100)
    results = await asyncio.gather(*(book(stack, sl["id"], p) for p in persons))
    created = [r for r in results if r.status_code == 201]
    refused = [r for r in results if r.status_code != 201]
    assert len(created) == 10
    assert len(refused) == 90
    for r in refused:
        problem(r, 409, "slot_full")
    row = await slot_row(stack, sl["id"])
    assert row.booked == 10 and row.capacity == 10
    assert await live_rows(stack, sl["id"]) == 10
    assert await stack.count_rows("visits", "appointments") == 10
    assert len(await published(stack, "visits", "lingju.visits.appointment.booked")) == 10
    listed = await api(stack).get(
        "/api/v1/slots", params={"station_id": st["id"]}, headers=resident(stack, persons[0])
    )
    assert listed.status_code == 200, listed.text
    [shown] = listed.json()["items"]
    assert (shown["capacity"], shown["booked"], shown["remaining"]) == (10, 10, 0)
    available = await api(stack).get(
        "/api/v1/slots",
        params={"station_id": st["id"], "available": "true"},
        headers=resident(stack, persons[0]),
    )
    assert available.json()["items"] == []


async def test_the_same_person_cannot_hold_two_seats_in_a_slot(stack: InProcessStack) -> None:
    st = await station(stack)
    sl = await slot(stack, st["id"], capacity=5)
    [p] = await add_persons(stack, 1)
    first = await book(stack, sl["id"], p)
    assert first.status_code == 201, first.text
    problem(await book(stack, sl["id"], p), 409, "already_booked")
    # And at once: whatever the interleaving, one seat for the person.
    [q] = await add_persons(stack, 1)
    results = await asyncio.gather(*(book(stack, sl["id"], q) for _ in range(5)))
    assert sorted(r.status_code for r in results) == [201] + [409] * 4
    assert (await slot_row(stack, sl["id"])).booked == 2
    assert await live_rows(stack, sl["id"]) == 2


async def test_an_idempotency_key_replays_the_booking(stack: InProcessStack) -> None:
    st = await station(stack)
    sl = await slot(stack, st["id"])
    [p] = await add_persons(stack, 1)
    headers = {**resident(stack, p), "Idempotency-Key": "book-1"}
    first = await book(stack, sl["id"], p, headers)
    again = await book(stack, sl["id"], p, headers)
    assert first.status_code == again.status_code == 201, again.text
    assert again.json() == first.json()
    assert again.headers.get("idempotent-replayed") == "true"
    assert (await slot_row(stack, sl["id"])).booked == 1
    assert await stack.count_rows("visits", "appointments") == 1


async def test_two_concurrent_cancels_free_one_seat(stack: InProcessStack) -> None:
    st = await station(stack)
    sl = await slot(stack, st["id"], capacity=3)
    a, b = await add_persons(stack, 2)
    booked = (await book(stack, sl["id"], a)).json()
    assert (await book(stack, sl["id"], b)).status_code == 201
    assert (await slot_row(stack, sl["id"])).booked == 2
    results = await asyncio.gather(
        *(
            api(stack).post(f"/api/v1/appointments/{booked['id']}/cancel", headers=h)
            for h in (resident(stack, a), stack.auth("village_agent", TOWNSHIP))
        )
    )
    assert sorted(r.status_code for r in results) == [200, 409]
    assert (await slot_row(stack, sl["id"])).booked == 1
    again = await api(stack).post(
        f"/api/v1/appointments/{booked['id']}/cancel", headers=resident(stack, a)
    )
    problem(again, 409, "invalid_transition")
    assert (await slot_row(stack, sl["id"])).booked == 1
    cancelled = await published(stack, "visits", "lingju.visits.appointment.cancelled")
    assert [e["data"]["appointment_id"] for e in cancelled] == [booked["id"]]
    # The freed seat can be taken again.
    [c] = await add_persons(stack, 1)
    assert (await book(stack, sl["id"], c)).status_code == 201
    assert (await slot_row(stack, sl["id"])).booked == 2


async def test_a_stale_version_does_not_cancel(stack: InProcessStack) -> None:
    st = await station(stack)
    sl = await slot(stack, st["id"])
    [p] = await add_persons(stack, 1)
    booked = (await book(stack, sl["id"], p)).json()
    r = await api(stack).post(
        f"/api/v1/appointments/{booked['id']}/cancel",
        headers={**resident(stack, p), "If-Match": '"7"'},
    )
    problem(r, 409, "version_conflict")
    assert (await slot_row(stack, sl["id"])).booked == 1


# -- reschedule ---------------------------------------------------------------------------------


async def test_reschedule_moves_the_seat_in_one_transaction(stack: InProcessStack) -> None:
    st = await station(stack)
    old = await slot(stack, st["id"], capacity=2)
    new = await slot(stack, st["id"], capacity=2, starts_at=datetime.now(UTC) + timedelta(days=5))
    [p] = await add_persons(stack, 1)
    booked = (await book(stack, old["id"], p)).json()
    r = await api(stack).post(
        f"/api/v1/appointments/{booked['id']}/reschedule",
        json={"slot_id": new["id"]},
        headers=resident(stack, p),
    )
    assert r.status_code == 200, r.text
    moved = r.json()
    assert moved["id"] == booked["id"] and moved["slot_id"] == new["id"]
    assert moved["version"] == booked["version"] + 1
    assert (await slot_row(stack, old["id"])).booked == 0
    assert (await slot_row(stack, new["id"])).booked == 1
    events = await published(stack, "visits", "lingju.visits.appointment.rescheduled")
    assert [e["data"]["from_slot_id"] for e in events] == [old["id"]]


async def test_reschedule_to_a_full_slot_leaves_the_old_appointment(stack: InProcessStack) -> None:
    st = await station(stack)
    old = await slot(stack, st["id"], capacity=2)
    full = await slot(stack, st["id"], capacity=1, starts_at=datetime.now(UTC) + timedelta(days=4))
    p, q = await add_persons(stack, 2)
    booked = (await book(stack, old["id"], p)).json()
    assert (await book(stack, full["id"], q)).status_code == 201
    r = await api(stack).post(
        f"/api/v1/appointments/{booked['id']}/reschedule",
        json={"slot_id": full["id"]},
        headers=resident(stack, p),
    )
    problem(r, 409, "slot_full")
    still = await api(stack).get(f"/api/v1/appointments/{booked['id']}", headers=resident(stack, p))
    assert still.status_code == 200, still.text
    assert still.json()["slot_id"] == old["id"]
    assert still.json()["status"] == "booked"
    assert still.json()["version"] == booked["version"]
    assert (await slot_row(stack, old["id"])).booked == 1
    assert (await slot_row(stack, full["id"])).booked == 1


# -- attendance ---------------------------------------------------------------------------------


async def test_attended_and_no_show_only_by_station_staff_after_the_start(
    stack: InProcessStack,
) -> None:
    st = await station(stack)
    sl = await slot(stack, st["id"], capacity=3)
    a, b = await add_persons(stack, 2)
    first = (await book(stack, sl["id"], a)).json()
    second = (await book(stack, sl["id"], b)).json()
    url = f"/api/v1/appointments/{first['id']}/attended"
    problem(await api(stack).post(url, headers=officer(stack)), 422, "slot_not_started")
    await start_slot(stack, sl["id"])
    problem(await api(stack).post(url, headers=resident(stack, a)), 403, "forbidden")
    problem(
        await api(stack).post(url, headers=stack.auth("village_worker", VILLAGE)), 403, "forbidden"
    )
    problem(
        await api(stack).post(url, headers=officer(stack, OTHER_TOWNSHIP)), 403, "out_of_region"
    )
    r = await api(stack).post(url, headers=officer(stack))
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "attended"
    problem(await api(stack).post(url, headers=officer(stack)), 409, "invalid_transition")
    r = await api(stack).post(
        f"/api/v1/appointments/{second['id']}/no-show", headers=officer(stack)
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "no_show"
    # Booking a slot that has started is refused.
    [c] = await add_persons(stack, 1)
    problem(await book(stack, sl["id"], c), 422, "slot_in_past")
    # Staff list them by status.
    listed = await api(stack).get(
        "/api/v1/appointments", params={"status": "no_show"}, headers=officer(stack)
    )
    assert [x["id"] for x in listed.json()["items"]] == [second["id"]]


# -- roles and regions ----------------------------------------------------------------------------


async def test_who_may_book_for_whom(stack: InProcessStack) -> None:
    st = await station(stack)
    sl = await slot(stack, st["id"])
    mine, other = await add_persons(stack, 2)
    [far] = await add_persons(stack, 1, region=OTHER_VILLAGE)
    problem(await book(stack, sl["id"], other, resident(stack, mine)), 403, "forbidden")
    problem(
        await book(stack, sl["id"], far, stack.auth("village_agent", TOWNSHIP)),
        403,
        "out_of_region",
    )
    problem(
        await book(stack, sl["id"], str(uuid.uuid4()), stack.auth("village_agent", TOWNSHIP)),
        404,
        "unknown_person",
    )
    problem(await book(stack, sl["id"], other, stack.auth("bureau_system")), 403, "forbidden")
    r = await book(stack, sl["id"], other, stack.auth("village_agent", TOWNSHIP, sub="agent-7"))
    assert r.status_code == 201, r.text
    assert (r.json()["booked_by"], r.json()["booked_by_role"]) == ("agent-7", "village_agent")
    # A resident cannot cancel or see someone else's appointment; another region's staff neither.
    url = f"/api/v1/appointments/{r.json()['id']}"
    problem(await api(stack).post(url + "/cancel", headers=resident(stack, mine)), 403, "forbidden")
    problem(
        await api(stack).post(url + "/cancel", headers=stack.auth("village_agent", OTHER_TOWNSHIP)),
        403,
        "out_of_region",
    )
    problem(await api(stack).get(url, headers=resident(stack, mine)), 403, "forbidden")
    # Lists: the resident's own only; staff by region.
    own = await api(stack).get("/api/v1/appointments", headers=resident(stack, other))
    assert [x["id"] for x in own.json()["items"]] == [r.json()["id"]]
    problem(
        await api(stack).get(
            "/api/v1/appointments", params={"person_id": other}, headers=resident(stack, mine)
        ),
        403,
        "forbidden",
    )
    away = await api(stack).get("/api/v1/appointments", headers=officer(stack, OTHER_TOWNSHIP))
    assert away.json()["items"] == []


async def test_stations_and_slots_are_opened_by_staff_of_their_region(
    stack: InProcessStack,
) -> None:
    body = {"name": "区妇幼保健院", "region_code": DISTRICT}
    problem(
        await api(stack).post("/api/v1/stations", json=body, headers=officer(stack)),
        403,
        "out_of_region",
    )
    problem(
        await api(stack).post(
            "/api/v1/stations", json=body, headers=stack.auth("village_worker", VILLAGE)
        ),
        403,
        "forbidden",
    )
    r = await api(stack).post(
        "/api/v1/stations", json=body, headers=stack.auth("county_officer", DISTRICT)
    )
    assert r.status_code == 201, r.text
    assert r.json()["tier"] == "district"
    other = await station(stack, OTHER_TOWNSHIP)
    starts = datetime.now(UTC) + timedelta(days=2)
    problem(
        await api(stack).post(
            "/api/v1/slots",
            json={
                "station_id": other["id"],
                "service": "postpartum_42d_check",
                "starts_at": starts.isoformat(),
                "ends_at": (starts + timedelta(hours=2)).isoformat(),
                "capacity": 5,
            },
            headers=officer(stack),
        ),
        403,
        "out_of_region",
    )


async def test_the_slot_list_pages_and_filters(stack: InProcessStack) -> None:
    st = await station(stack)
    base = datetime.now(UTC) + timedelta(days=2)
    made = [
        await slot(stack, st["id"], starts_at=base + timedelta(hours=i), service=svc)
        for i, svc in enumerate(
            ["pre_pregnancy_check", "cervical_breast_screening", "pre_pregnancy_check"]
        )
    ]
    headers = stack.auth("village_worker", VILLAGE)
    seen: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 2, "station_id": st["id"]}
        if cursor:
            params["cursor"] = cursor
        page = (await api(stack).get("/api/v1/slots", params=params, headers=headers)).json()
        seen += [x["id"] for x in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [s["id"] for s in made]
    only = await api(stack).get(
        "/api/v1/slots",
        params={
            "service": "pre_pregnancy_check",
            "from": (base + timedelta(minutes=30)).isoformat(),
        },
        headers=headers,
    )
    assert [x["id"] for x in only.json()["items"]] == [made[2]["id"]]
    problem(await api(stack).get("/api/v1/slots"), 401, "unauthenticated")


# -- bad input ----------------------------------------------------------------------------------


async def test_bad_input_is_problem_json_in_chinese(stack: InProcessStack) -> None:
    st = await station(stack)
    starts = datetime.now(UTC) + timedelta(days=2)
    good = {
        "station_id": st["id"],
        "service": "pre_pregnancy_check",
        "starts_at": starts.isoformat(),
        "ends_at": (starts + timedelta(hours=2)).isoformat(),
        "capacity": 5,
    }

    async def post_slot(**changes: Any) -> httpx.Response:
        return await api(stack).post(
            "/api/v1/slots", json={**good, **changes}, headers=officer(stack)
        )

    body = problem(await post_slot(capacity=0), 422, "validation_failed")
    assert body["errors"] == [{"field": "capacity", "message": "数值过小"}]
    body = problem(
        await post_slot(ends_at=(starts - timedelta(hours=1)).isoformat()), 422, "validation_failed"
    )
    assert "结束时间须晚于开始时间" in body["detail"]
    body = problem(await post_slot(starts_at="2030-03-01T08:00:00"), 422, "validation_failed")
    assert "时区" in body["detail"]
    body = problem(await post_slot(service="abortion_quota"), 422, "validation_failed")
    assert body["errors"][0]["field"] == "service"
    past = datetime.now(UTC) - timedelta(days=1)
    problem(
        await post_slot(
            starts_at=past.isoformat(), ends_at=(past + timedelta(hours=1)).isoformat()
        ),
        422,
        "validation_failed",
    )
    problem(await post_slot(station_id="nope"), 422, "unknown_station")
    body = problem(
        await api(stack).post(
            "/api/v1/stations",
            json={"name": "站", "region_code": "330102001", "tier": "district"},
            headers=officer(stack),
        ),
        422,
        "validation_failed",
    )
    assert "站点层级与辖区代码不符" in body["detail"]
    [p] = await add_persons(stack, 1)
    body = problem(await book(stack, "no-such-slot", p), 404, "not_found")
    assert body["detail"] == "预约时段不存在"
    problem(
        await api(stack).post(
            "/api/v1/appointments", json={"slot_id": "x"}, headers=resident(stack, p)
        ),
        422,
        "validation_failed",
    )
    en = await api(stack).post(
        "/api/v1/slots",
        json={**good, "capacity": 0},
        headers={**officer(stack), "Accept-Language": "en"},
    )
    assert en.json()["title"] == "Invalid request"


# -- reminders ----------------------------------------------------------------------------------


async def test_reminders_go_once_the_day_before_and_never_for_a_cancelled_one(
    stack: InProcessStack,
) -> None:
    """A day far ahead, so the running worker (today's reminders) never touches it."""
    st = await station(stack)
    # 09:00 in Beijing on 15 March 2030 is 01:00 UTC; 23:30 UTC on the 14th is 07:30 on the 15th.
    morning = await slot(stack, st["id"], starts_at=datetime(2030, 3, 15, 1, 0, tzinfo=UTC))
    # Sent with +08:00 (stored in UTC): 07:30 on the 15th in Beijing is still the 14th in UTC.
    early = await slot(stack, st["id"], starts_at=datetime(2030, 3, 15, 7, 30, tzinfo=SHANGHAI))
    assert early["starts_at"].startswith("2030-03-14T23:30:00")
    later = await slot(stack, st["id"], starts_at=datetime(2030, 3, 16, 1, 0, tzinfo=UTC))
    a, b, c, d = await add_persons(stack, 4)
    kept = (await book(stack, morning["id"], a)).json()
    dropped = (await book(stack, morning["id"], b)).json()
    early_one = (await book(stack, early["id"], c)).json()
    (await book(stack, later["id"], d)).json()
    r = await api(stack).post(
        f"/api/v1/appointments/{dropped['id']}/cancel", headers=resident(stack, b)
    )
    assert r.status_code == 200, r.text
    admin = stack.auth("admin")
    problem(
        await api(stack).post(
            "/api/v1/admin/reminders", params={"as_of": "2030-03-14"}, headers=officer(stack)
        ),
        403,
        "forbidden",
    )
    r = await api(stack).post(
        "/api/v1/admin/reminders", params={"as_of": "2030-03-14"}, headers=admin
    )
    assert r.status_code == 200, r.text
    assert sorted(r.json()["reminded"]) == sorted([kept["id"], early_one["id"]])
    again = await api(stack).post(
        "/api/v1/admin/reminders", params={"as_of": "2030-03-14"}, headers=admin
    )
    assert again.json()["reminded"] == []
    events = await published(stack, "visits", "lingju.visits.appointment.reminder")
    assert sorted(e["data"]["appointment_id"] for e in events) == sorted(
        [kept["id"], early_one["id"]]
    )
    data = next(e["data"] for e in events if e["data"]["appointment_id"] == kept["id"])
    assert data["person_id"] == a and data["service"] == "pre_pregnancy_check"
    assert data["station_name"] == st["name"] and data["region_code"] == VILLAGE
    # Two replicas at once: still one reminder each.
    both = await asyncio.gather(
        *(
            api(stack).post(
                "/api/v1/admin/reminders", params={"as_of": "2030-03-15"}, headers=admin
            )
            for _ in range(2)
        )
    )
    assert sum(len(x.json()["reminded"]) for x in both) == 1
    assert len(await published(stack, "visits", "lingju.visits.appointment.reminder")) == 3
