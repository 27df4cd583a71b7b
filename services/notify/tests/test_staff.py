"""The staff directory notify tells: kept by an admin, or a county officer for their county;
read by officers within their region, phone numbers masked for anyone but the person."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support import OTHER_TOWNSHIP, TOWNSHIP, VILLAGE, InProcessStack

COUNTY = "330102"
OTHER_COUNTY = "330103"
URL = "/api/v1/staff-contacts"


@pytest.fixture(autouse=True)
def routers_mounted(monkeypatch: pytest.MonkeyPatch) -> None:
    """Until app.py names these routers, mount them for this module's apps (a no-op after)."""
    from services.notify import app
    from services.notify.api import preferences as api_preferences
    from services.notify.api import staff as api_staff

    missing = [r for r in (api_preferences.router, api_staff.router) if r not in app.SPEC.routers]
    monkeypatch.setattr(app.SPEC, "routers", [*app.SPEC.routers, *missing])


def entry(**fields: Any) -> dict[str, Any]:
    return {
        "name": "王芳",
        "role": "village_worker",
        "region_code": VILLAGE,
        "phone": "13800138000",
        **fields,
    }


async def put(
    stack: InProcessStack, sub: str, body: dict[str, Any], headers: dict[str, str] | None = None
) -> Any:
    return await stack.notify.put(
        f"{URL}/{sub}", json=body, headers=headers or stack.auth("admin", sub="admin-1")
    )


async def test_an_admin_adds_and_changes_an_entry(stack: InProcessStack) -> None:
    r = await put(stack, "worker-1", entry(webhook_url="https://hooks.example.cn/t/abc?key=s"))
    assert r.status_code == 201, r.text
    out = r.json()
    secret = out["webhook_secret"]  # the webhook's own signing secret, answered this once
    assert isinstance(secret, str) and len(secret) >= 43
    assert out == {
        "sub": "worker-1",
        "name": "王芳",
        "role": "village_worker",
        "region_code": VILLAGE,
        "phone": "138****8000",  # masked even for an admin: only the person sees it whole
        "webhook_url": "https://hooks.example.cn/t/abc?key=s",
        "webhook_secret": secret,
        "wechat_bound": False,
        "active": True,
        "updated_by": "admin-1",
        "updated_at": out["updated_at"],
        "version": 1,
    }

    r = await put(stack, "worker-1", entry(name="王芳芳", active=False, version=1))
    assert r.status_code == 200, r.text
    assert (r.json()["name"], r.json()["active"], r.json()["version"]) == ("王芳芳", False, 2)
    assert r.json()["webhook_url"] is None and r.json()["webhook_secret"] is None

    # Someone changed it since version 1 was read.
    r = await put(stack, "worker-1", entry(name="李四", version=1))
    assert r.status_code == 409, r.text
    assert r.json()["code"] == "version_conflict"
    r = await stack.notify.get(f"{URL}/worker-1", headers=stack.auth("admin"))
    assert (r.json()["name"], r.json()["version"]) == ("王芳芳", 2)

    # Without a version, the last writer wins.
    r = await put(stack, "worker-1", entry(name="李四"))
    assert r.status_code == 200, r.text
    assert r.json()["version"] == 3

    # A version for an entry that does not exist names nothing to change.
    r = await put(stack, "nobody", entry(version=1))
    assert r.status_code == 404, r.text
    assert r.json()["code"] == "not_found"


async def test_a_county_officer_keeps_the_staff_of_their_county_only(
    stack: InProcessStack,
) -> None:
    officer = stack.auth("county_officer", COUNTY, sub="county-1")
    r = await put(stack, "agent-1", entry(role="village_agent", region_code=TOWNSHIP), officer)
    assert r.status_code == 201, r.text
    assert r.json()["updated_by"] == "county-1"
    assert r.json()["phone"] == "138****8000"  # masked for anyone but the person

    r = await put(stack, "agent-2", entry(region_code=f"{OTHER_COUNTY}001001"), officer)
    assert r.status_code == 403, r.text
    assert r.json()["code"] == "out_of_region"

    # Nor may they move someone of another county into theirs.
    r = await put(stack, "worker-x", entry(region_code=f"{OTHER_COUNTY}001001"))
    assert r.status_code == 201, r.text
    r = await put(stack, "worker-x", entry(region_code=VILLAGE), officer)
    assert r.status_code == 403, r.text
    assert r.json()["code"] == "out_of_region"

    # Officers of a township, workers and residents keep nobody.
    for headers in (
        stack.auth("township_officer", TOWNSHIP),
        stack.auth("village_worker", VILLAGE),
        stack.auth("resident", person_id="p-1"),
    ):
        r = await put(stack, "agent-3", entry(), headers)
        assert r.status_code == 403, r.text
        assert r.json()["code"] == "forbidden"


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"role": "admin"}, "role"),
        ({"role": "resident"}, "role"),
        ({"role": "county_officer", "region_code": TOWNSHIP}, "region_code"),
        ({"role": "county_officer", "region_code": VILLAGE}, "region_code"),
        ({"role": "township_officer", "region_code": VILLAGE}, "region_code"),
        ({"role": "township_officer", "region_code": COUNTY}, "region_code"),
        ({"role": "village_worker", "region_code": COUNTY}, "region_code"),
        ({"role": "village_agent", "region_code": "3301020010"}, "region_code"),
        ({"region_code": "33010200100A"}, "region_code"),
        ({"phone": "23800138000"}, "phone"),
        ({"phone": "1380013800"}, "phone"),
        ({"phone": "+8613800138000"}, "phone"),
        ({"webhook_url": "https://"}, "webhook_url"),
        ({"webhook_url": "https://hooks.example.cn/a b"}, "webhook_url"),
        ({"webhook_url": "ftp://hooks.example.cn"}, "webhook_url"),
        ({"name": ""}, "name"),
        ({"version": 0}, "version"),
        ({"colour": "red"}, "colour"),
    ],
)
async def test_invalid_entries_name_the_field(
    stack: InProcessStack, fields: dict[str, Any], field: str
) -> None:
    r = await put(stack, "worker-bad", entry(**fields))
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "validation_failed"
    assert field in [e["field"] for e in r.json()["errors"]]


@pytest.mark.parametrize(
    ("role", "region"),
    [
        ("village_agent", TOWNSHIP),
        ("village_agent", VILLAGE),
        ("village_worker", TOWNSHIP),
        ("village_worker", VILLAGE),
        ("township_officer", TOWNSHIP),
        ("county_officer", COUNTY),
    ],
)
async def test_each_role_takes_its_region_lengths(
    stack: InProcessStack, role: str, region: str
) -> None:
    r = await put(stack, f"{role}-ok", entry(role=role, region_code=region))
    assert r.status_code == 201, r.text
    assert (r.json()["role"], r.json()["region_code"]) == (role, region)


async def test_phones_are_masked_but_for_the_person_and_webhooks_but_for_an_admin(
    stack: InProcessStack,
) -> None:
    r = await put(stack, "worker-m", entry(webhook_url="https://hooks.example.cn/t/secret"))
    assert r.status_code == 201, r.text
    r = await stack.notify.get(f"{URL}/worker-m", headers=stack.auth("admin"))
    assert r.json()["phone"] == "138****8000"
    assert r.json()["webhook_url"] == "https://hooks.example.cn/t/secret"
    assert r.json()["webhook_secret"] is None  # shown once, when it was made
    # An officer reading their own entry sees their own number.
    r = await put(stack, "town-1", entry(role="township_officer", region_code=TOWNSHIP))
    assert r.status_code == 201, r.text
    r = await stack.notify.get(
        f"{URL}/town-1", headers=stack.auth("township_officer", TOWNSHIP, sub="town-1")
    )
    assert r.status_code == 200, r.text
    assert r.json()["phone"] == "13800138000"
    for headers in (
        stack.auth("county_officer", COUNTY),
        stack.auth("township_officer", TOWNSHIP),
    ):
        r = await stack.notify.get(f"{URL}/worker-m", headers=headers)
        assert r.status_code == 200, r.text
        assert r.json()["phone"] == "138****8000"
        assert r.json()["webhook_url"] == "https://hooks.example.cn/…"
        r = await stack.notify.get(URL, headers=headers, params={"role": "village_worker"})
        assert [i["phone"] for i in r.json()["items"]] == ["138****8000"]

    # Outside the reader's region, or not a reader at all.
    r = await stack.notify.get(
        f"{URL}/worker-m", headers=stack.auth("township_officer", OTHER_TOWNSHIP)
    )
    assert r.status_code == 403
    assert r.json()["code"] == "out_of_region"
    r = await stack.notify.get(f"{URL}/worker-m", headers=stack.auth("village_worker", VILLAGE))
    assert r.status_code == 403
    r = await stack.notify.get(f"{URL}/nobody", headers=stack.auth("admin"))
    assert r.status_code == 404
    assert r.json()["code"] == "not_found"


async def test_listing_pages_through_the_readers_region(stack: InProcessStack) -> None:
    for i in range(5):
        village = f"{TOWNSHIP}{i + 1:03d}"
        r = await put(stack, f"w-{i}", entry(region_code=village))
        assert r.status_code == 201, r.text
    r = await put(stack, "a-0", entry(role="village_agent", region_code=TOWNSHIP))
    assert r.status_code == 201, r.text
    r = await put(stack, "t-0", entry(role="township_officer", region_code=TOWNSHIP))
    assert r.status_code == 201, r.text
    for i in range(2):
        r = await put(stack, f"o-{i}", entry(region_code=f"{OTHER_TOWNSHIP}00{i + 1}"))
        assert r.status_code == 201, r.text
    r = await put(stack, "c-0", entry(role="county_officer", region_code=OTHER_COUNTY))
    assert r.status_code == 201, r.text

    async def all_pages(headers: dict[str, str], **params: Any) -> tuple[list[str], int]:
        subs: list[str] = []
        pages = 0
        cursor = None
        while True:
            query = {**params, **({"cursor": cursor} if cursor else {})}
            r = await stack.notify.get(URL, headers=headers, params=query)
            assert r.status_code == 200, r.text
            pages += 1
            subs += [i["sub"] for i in r.json()["items"]]
            cursor = r.json()["next_cursor"]
            if cursor is None:
                return subs, pages

    township = stack.auth("township_officer", TOWNSHIP)
    subs, pages = await all_pages(township, limit=2)
    assert subs == ["a-0", "t-0", "w-0", "w-1", "w-2", "w-3", "w-4"]
    assert pages == 4
    subs, _ = await all_pages(township, role="village_worker", limit=3)
    assert subs == ["w-0", "w-1", "w-2", "w-3", "w-4"]
    subs, _ = await all_pages(township, region=f"{TOWNSHIP}002")
    assert subs == ["w-1"]

    county = stack.auth("county_officer", COUNTY)
    subs, _ = await all_pages(county, limit=50)
    assert subs == ["a-0", "o-0", "o-1", "t-0", "w-0", "w-1", "w-2", "w-3", "w-4"]
    subs, _ = await all_pages(county, region=OTHER_TOWNSHIP)
    assert subs == ["o-0", "o-1"]

    admin = stack.auth("admin")
    subs, pages = await all_pages(admin, limit=4)
    assert len(subs) == 10 and pages == 3
    subs, _ = await all_pages(admin, role="county_officer")
    assert subs == ["c-0"]

    # Another region than the reader's, a bad filter or cursor, or a resident: refused.
    r = await stack.notify.get(URL, headers=township, params={"region": OTHER_TOWNSHIP})
    assert r.status_code == 403
    assert r.json()["code"] == "out_of_region"
    r = await stack.notify.get(URL, headers=county, params={"region": "33"})
    assert r.status_code == 403
    r = await stack.notify.get(URL, headers=township, params={"role": "admin"})
    assert r.status_code == 422
    r = await stack.notify.get(URL, headers=township, params={"cursor": "garbage!"})
    assert r.status_code == 422
    r = await stack.notify.get(URL, headers=stack.auth("resident", person_id="p-1"))
    assert r.status_code == 403
    r = await stack.notify.get(URL, headers=stack.auth("county_officer"))  # no region
    assert r.status_code == 403
