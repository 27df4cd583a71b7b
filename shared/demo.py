"""A demo county (issue 8): ``lingju run --demo N`` seeds district 330102 through the real APIs.

Everything goes over HTTP as staff would do it, so the events flow and every service builds its
own records as in production: residents, families, births and deaths (registry), applications
in every state, enrollments founded by the issued certificates and confirmed by a second
officer, a month paid and reconciled (benefits), visit tasks, visits and appointments (visits),
and the messages about all of it (notify). Nothing is written into a service's tables.

The people are made up: names drawn from short lists of common surnames and given-name
characters, valid GB 11643 ID numbers (region 330102), mobile numbers 13x/15x/18x. The same
``seed`` makes the same county (births and visits fall relative to today).

What the API cannot make with a real clock is left out and said so: an application becomes
overdue only when its statutory due date (set from the day it is accepted) has passed.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, TypeVar

import httpx
from rich.console import Console
from rich.progress import Progress, TaskID
from rich.table import Table
from stdnum.cn import ric

from shared.auth import mint_dev_token
from shared.clock import SHANGHAI
from shared.clock import today as beijing_today
from shared.config import Settings

T = TypeVar("T")

COUNTY = "330102"  # Shangcheng district, Hangzhou (as in the tests)
TOWNSHIPS = tuple(f"{COUNTY}{t:03d}" for t in range(1, 7))
VILLAGES = tuple(f"{t}{v:03d}" for t in TOWNSHIPS for v in range(1, 9))
ID_REGIONS = (COUNTY, "330100")  # the district, else Hangzhou city (stdnum checks the era)
URBAN_TOWNSHIPS = frozenset(TOWNSHIPS[:2])  # the town centre; the others are mostly rural
PROGRAM = "only_child_parent_reward"
CONCURRENCY = 16
PHASES = ("residents", "families", "applications", "benefits", "payments", "visits")

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蒋蔡余杜叶程"
GIVEN_FEMALE = "芳娜敏静丽艳娟霞秀英华玲红梅燕雪琳婷慧颖琴洁兰萍晶倩"
GIVEN_MALE = "伟强磊军洋勇杰涛明超刚平辉鹏华飞鑫波斌宇浩凯健俊峰建国"
GIVEN_CHILD = "子涵梓轩一诺欣怡浩然思远语桐雨辰佳琪宇航若曦沐阳"
HOSPITALS = ("上城区妇幼保健院", "浙江大学医学院附属妇产科医院", "杭州市妇产科医院")
BANKS = ("浙江农商银行", "中国农业银行", "中国工商银行", "杭州银行")


class DemoError(RuntimeError):
    """The seeding could not go on: what was asked, and what the service answered."""


@dataclass
class Resident:
    name: str
    sex: str
    birth: date
    village: str
    household_type: str
    id_number: str | None = None  # None: a newborn, registered by its birth
    phone: str | None = None
    id: str = ""


@dataclass
class Household:
    kind: str  # elder, older, middle, two_children, young_birth, young_child
    members: list[Resident]
    wife: Resident | None = None
    husband: Resident | None = None
    children: list[Resident] = field(default_factory=list)
    marriage: date | None = None
    newborn: Resident | None = None  # born recently: registered through POST /births
    child_dies: bool = False
    family_id: str = ""


@dataclass
class Summary:
    """What the seeding made (or found), and how long each phase took."""

    made: Counter[str] = field(default_factory=Counter)
    seconds: dict[str, float] = field(default_factory=dict)
    skipped: bool = False


# -- the county, made up ---------------------------------------------------------------------


class _People:
    def __init__(self, rng: random.Random, today: date) -> None:
        self.rng, self.today = rng, today
        self.used: set[str] = set()

    def name(self, sex: str, child: bool = False) -> str:
        pool = GIVEN_CHILD if child else GIVEN_FEMALE if sex == "female" else GIVEN_MALE
        given = "".join(self.rng.choice(pool) for _ in range(self.rng.choice((1, 2))))
        return self.rng.choice(SURNAMES) + given

    def id_number(self, birth: date, sex: str) -> str:
        # The 3-digit sequence is odd for men, even for women (GB 11643). The region part is
        # the district's code where it existed at the birth, else the city's (an older
        # resident's number names the division of their birth year).
        while True:
            seq = self.rng.randrange(0, 500) * 2 + (1 if sex == "male" else 0)
            for region in ID_REGIONS:
                base = f"{region}{birth:%Y%m%d}{seq:03d}"
                number = base + ric.calc_check_digit(base + "0")
                if ric.is_valid(number):
                    break
            else:
                raise DemoError(f"no valid ID number region for a birth on {birth}")
            if number not in self.used:
                self.used.add(number)
                return number

    def phone(self) -> str:
        return f"1{self.rng.choice('358')}{self.rng.randrange(10)}{self.rng.randrange(10**8):08d}"

    def born(self, first_year: int, last_year: int) -> date:
        year = self.rng.randint(first_year, last_year)
        day = date(year, 1, 1) + timedelta(days=self.rng.randrange(365))
        return min(day, self.today - timedelta(days=1))

    def person(
        self, sex: str, birth: date, village: str, household: str, *, child: bool = False
    ) -> Resident:
        adult = (self.today - birth).days >= 16 * 365
        return Resident(
            name=self.name(sex, child),
            sex=sex,
            birth=birth,
            village=village,
            household_type=household,
            id_number=self.id_number(birth, sex),
            phone=self.phone() if adult else None,
        )


def plan_county(residents: int, seed: int, today: date) -> list[Household]:
    """Households until ``residents`` people (newborns included); the same seed, the same
    county (birth years are counted from this year, newborns from today)."""
    rng = random.Random(seed)
    people = _People(rng, today)
    y = today.year
    kinds = (
        ("elder", 12),
        ("older", 20),
        ("middle", 32),
        ("two_children", 14),
        ("young_birth", 14),
        ("young_child", 8),
    )
    names, weights = zip(*kinds, strict=True)
    out: list[Household] = []
    count = 0
    while count < residents:
        kind = rng.choices(names, weights)[0]
        village = rng.choice(VILLAGES)
        urban = village[:9] in URBAN_TOWNSHIPS
        household = ("urban" if rng.random() < 0.8 else "rural") if urban else "rural"
        if rng.random() < 0.15:
            household = "urban" if household == "rural" else "rural"
        if kind == "elder":
            p = people.person(
                rng.choice(("female", "male")), people.born(y - 90, y - 60), village, household
            )
            h = Household(kind, [p])
        else:
            wife_years, husband_gap, child_years = {
                "older": ((y - 65, y - 50), 3, None),
                "middle": ((y - 48, y - 36), 2, (2010, 2015)),
                "two_children": ((y - 45, y - 32), 2, (y - 16, y - 4)),
                "young_birth": ((y - 34, y - 23), 2, None),
                "young_child": ((y - 36, y - 25), 2, (y - 4, y - 2)),
            }[kind]
            wife_birth = people.born(*wife_years)
            husband_birth = wife_birth - timedelta(days=rng.randrange(-365, 365 * husband_gap))
            wife = people.person("female", wife_birth, village, household)
            husband = people.person("male", husband_birth, village, household)
            h = Household(kind, [wife, husband], wife=wife, husband=husband)
            adult_on = max(wife_birth, husband_birth) + timedelta(days=22 * 365)
            if kind == "older":
                # One child, grown up; in a few such families the only child has died.
                child_birth = adult_on + timedelta(days=rng.randrange(365, 6 * 365))
                h.children = [
                    people.person(rng.choice(("female", "male")), child_birth, village, household)
                ]
                h.child_dies = rng.random() < 0.08
            elif child_years is not None:
                n = 2 if kind == "two_children" else 1
                first, last = child_years
                first = max(first, adult_on.year + 1)
                for _ in range(n):
                    birth = people.born(first, max(first, last))
                    h.children.append(
                        people.person(
                            rng.choice(("female", "male")), birth, village, household, child=True
                        )
                    )
                h.children.sort(key=lambda c: c.birth)
            first_child = min((c.birth for c in h.children), default=today - timedelta(days=60))
            h.marriage = max(adult_on, first_child - timedelta(days=rng.randrange(300, 1500)))
            h.marriage = min(
                h.marriage, first_child - timedelta(days=30), today - timedelta(days=90)
            )
            if kind == "young_birth":
                sex = rng.choice(("female", "male"))
                # Born 1-55 days ago: postpartum and newborn visits due, overdue or done.
                h.newborn = Resident(
                    name=husband.name[0] + people.name(sex, child=True)[1:],
                    sex=sex,
                    birth=today - timedelta(days=rng.randint(1, 55)),
                    village=village,
                    household_type=household,
                )
            h.members += h.children
        out.append(h)
        count += len(h.members) + (1 if h.newborn else 0)
    return out


# -- the APIs ----------------------------------------------------------------------------------


class _Api:
    """The services over HTTP with development tokens; bounded concurrency; clear errors."""

    def __init__(self, clients: Mapping[str, httpx.AsyncClient], settings: Settings) -> None:
        self.clients, self.settings = clients, settings
        self.gate = asyncio.Semaphore(CONCURRENCY)
        self._tokens: dict[tuple[str, str, str | None], dict[str, str]] = {}

    def as_(self, role: str, region: str, sub: str | None = None) -> dict[str, str]:
        key = (role, region, sub)
        if key not in self._tokens:
            token = mint_dev_token(
                self.settings, role=role, region=region, sub=sub or f"demo-{role}-{region}"
            )
            self._tokens[key] = {"Authorization": f"Bearer {token}"}
        return self._tokens[key]

    async def call(
        self,
        service: str,
        method: str,
        path: str,
        headers: dict[str, str],
        *,
        expect: Iterable[int] = (200, 201),
        **kwargs: Any,
    ) -> Any:
        async with self.gate:
            for attempt in range(5):
                try:
                    r = await self.clients[service].request(method, path, headers=headers, **kwargs)
                except httpx.TransportError as e:
                    if attempt == 4:
                        raise DemoError(f"{service} {method} {path}: {e!r}") from e
                    await asyncio.sleep(0.5 * (attempt + 1))
                    continue
                # SQLite under load may answer 503 (busy); a short wait and the same call again.
                if r.status_code in (502, 503, 504) and attempt < 4:
                    await asyncio.sleep(0.5 * (attempt + 1))
                    continue
                break
        if r.status_code not in tuple(expect):
            raise DemoError(f"{service} {method} {path}: {r.status_code} {r.text[:500]}")
        if r.headers.get("content-type", "").startswith("application/json"):
            return r.json()
        return r.text

    async def pages(
        self, service: str, path: str, headers: dict[str, str], params: dict[str, Any]
    ) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            query = {**params, "limit": 200, **({"cursor": cursor} if cursor else {})}
            page = await self.call(service, "GET", path, headers, params=query)
            items += page["items"]
            cursor = page.get("next_cursor")
            if not cursor:
                return items


async def _wait_for(
    what: str, check: Callable[[], Awaitable[T | None]], within: float, interval: float = 0.5
) -> T:
    """Poll ``check`` until it answers something, or fail saying what never came."""
    deadline = time.monotonic() + within
    while True:
        got = await check()
        if got is not None:
            return got
        if time.monotonic() > deadline:
            raise DemoError(
                f"timed out after {within:.0f}s waiting for {what}: are all four services "
                "running and connected to NATS?"
            )
        await asyncio.sleep(interval)


class _Bar:
    """One rich task per phase, or nothing when no progress is shown."""

    def __init__(self, progress: Progress | None) -> None:
        self.progress = progress
        self.task: TaskID | None = None

    def start(self, phase: str, total: int) -> None:
        if self.progress is not None:
            self.task = self.progress.add_task(phase, total=total)

    def advance(self, n: int = 1) -> None:
        if self.progress is not None and self.task is not None:
            self.progress.advance(self.task, n)


async def _each(items: Iterable[T], work: Callable[[T], Awaitable[Any]], bar: _Bar) -> None:
    """Run ``work`` on every item, at most CONCURRENCY HTTP calls at a time (the _Api gate);
    the first failure stops the phase."""

    async def one(item: T) -> None:
        await work(item)
        bar.advance()

    try:
        async with asyncio.TaskGroup() as tg:
            for item in items:
                tg.create_task(one(item))
    except ExceptionGroup as group:
        raise group.exceptions[0] from None  # the first failure says what went wrong


# -- seeding ---------------------------------------------------------------------------------


async def seed_county(
    clients: Mapping[str, httpx.AsyncClient],
    settings: Settings,
    residents: int,
    progress: Progress | None,
    seed: int = 2026,
    *,
    wait_timeout: float = 300.0,
) -> Summary:
    """Seed the demo county through the services' APIs; see the module's docstring.

    A county already seeded (its first resident's ID number is registered) is left as it is:
    the summary says ``skipped``.
    """
    if settings.env == "production":
        raise DemoError("the demo county uses development tokens: refused in production")
    api = _Api(clients, settings)
    today = beijing_today()
    households = plan_county(residents, seed, today)
    summary = Summary()
    county = api.as_("county_officer", COUNTY, "demo-county-officer")

    first = households[0].members[0]
    found = await api.call(
        "registry", "GET", "/api/v1/persons", county, params={"id_number": first.id_number}
    )
    if found["items"]:
        summary.skipped = True
        return summary

    bar = _Bar(progress)
    seeder = _Seeder(api, households, today, summary, bar, wait_timeout, random.Random(seed + 1))
    for phase in PHASES:
        started = time.monotonic()
        await getattr(seeder, phase)()
        summary.seconds[phase] = time.monotonic() - started
    return summary


@dataclass
class _Seeder:
    api: _Api
    households: list[Household]
    today: date
    summary: Summary
    bar: _Bar
    wait_timeout: float
    rng: random.Random
    honor: list[tuple[Household, dict[str, Any]]] = field(default_factory=list)
    issued: list[Household] = field(default_factory=list)
    confirmed: list[dict[str, Any]] = field(default_factory=list)

    @property
    def made(self) -> Counter[str]:
        return self.summary.made

    def agent(self, village: str) -> dict[str, str]:
        return self.api.as_("village_agent", village[:9], f"demo-agent-{village[:9]}")

    def worker(self, village: str) -> dict[str, str]:
        return self.api.as_("village_worker", village, f"demo-worker-{village}")

    def officer(self, village: str, n: int = 1) -> dict[str, str]:
        township = village[:9]
        return self.api.as_("township_officer", township, f"demo-officer{n}-{township}")

    # -- residents -----------------------------------------------------------------------------

    async def residents(self) -> None:
        people = [p for h in self.households for p in h.members]
        self.bar.start("residents", len(people))

        async def register(p: Resident) -> None:
            body = {
                "id_number": p.id_number,
                "name": p.name,
                "phone": p.phone,
                "region_code": p.village,
                "household_type": p.household_type,
            }
            out = await self.api.call(
                "registry", "POST", "/api/v1/persons", self.agent(p.village), json=body
            )
            p.id = out["id"]
            self.made["residents"] += 1

        await _each(people, register, self.bar)

    # -- families, births, deaths --------------------------------------------------------------

    async def families(self) -> None:
        couples = [h for h in self.households if h.wife is not None]
        births = [h for h in couples if h.newborn is not None]
        deaths = [h for h in couples if h.child_dies]
        self.bar.start("families", len(couples) + len(births) + len(deaths))

        async def register(h: Household) -> None:
            assert h.wife and h.husband and h.marriage
            out = await self.api.call(
                "registry",
                "POST",
                "/api/v1/families",
                self.agent(h.wife.village),
                json={
                    "wife_id": h.wife.id,
                    "husband_id": h.husband.id,
                    "marriage_date": h.marriage.isoformat(),
                    "children_ids": [c.id for c in h.children],
                },
            )
            h.family_id = out["id"]
            self.made["families"] += 1

        await _each(couples, register, self.bar)

        async def born(h: Household) -> None:
            assert h.wife and h.husband and h.newborn
            child = h.newborn
            out = await self.api.call(
                "registry",
                "POST",
                "/api/v1/births",
                self.officer(child.village),
                json={
                    "mother_id": h.wife.id,
                    "father_id": h.husband.id,
                    "child": {
                        "name": child.name,
                        "sex": child.sex,
                        "birth_date": child.birth.isoformat(),
                        "hospital": self.rng.choice(HOSPITALS),
                        "birth_certificate_no": f"Q{uuid.uuid4().hex[:10].upper()}",
                    },
                },
            )
            child.id = out["child"]["id"]
            self.made["births"] += 1

        async def died(h: Household) -> None:
            [child] = h.children
            on = self.today - timedelta(days=self.rng.randint(30, 700))
            await self.api.call(
                "registry",
                "POST",
                f"/api/v1/persons/{child.id}/death",
                self.officer(child.village),
                json={"date_of_death": on.isoformat(), "reported_by": "家属"},
            )
            self.made["deaths"] += 1

        await _each(births, born, self.bar)
        await _each(deaths, died, self.bar)

    # -- applications ------------------------------------------------------------------------

    async def applications(self) -> None:
        # Only-child honor certificates for the families with one child born 2010-2015, each
        # taken to a different state; birth registrations for the newborns.
        candidates = [h for h in self.households if h.kind == "middle"]
        # Half issued, the rest spread over every other state, interleaved so that even a
        # small county has each.
        plans = ("issued", "submitted", "issued", "in_review", "issued", "materials_required")
        plans += ("issued", "returned", "issued", "rejected", "issued", "in_review", "submitted")
        births = [h for h in self.households if h.newborn is not None]
        self.bar.start("applications", len(candidates) + len(births))
        materials = ("household_register", "marriage_certificate", "child_birth_certificate")

        async def honor(pair: tuple[int, Household]) -> None:
            i, h = pair
            assert h.wife and h.husband
            target = plans[i % len(plans)]
            given = materials[:2] if target == "materials_required" else materials
            app = await self.api.call(
                "registry",
                "POST",
                "/api/v1/applications",
                self.agent(h.wife.village),
                json={
                    "type": "only_child_honor",
                    "applicant_id": h.wife.id,
                    "subjects": {"spouse_id": h.husband.id, "child_id": h.children[0].id},
                    "materials": [{"code": c, "ref": f"demo-{c}-{h.wife.id[:8]}"} for c in given],
                },
            )
            app = await self._take(app, target, h.wife.village)
            self.made[f"applications {app['status']}"] += 1
            if app["status"] == "issued":
                self.issued.append(h)

        async def registration(h: Household) -> None:
            assert h.wife and h.husband and h.newborn
            app = await self.api.call(
                "registry",
                "POST",
                "/api/v1/applications",
                self.agent(h.wife.village),
                json={
                    "type": "birth_registration",
                    "applicant_id": h.wife.id,
                    "subjects": {"spouse_id": h.husband.id, "child_id": h.newborn.id},
                    "materials": [
                        {"code": c, "ref": f"demo-{c}-{h.wife.id[:8]}"}
                        for c in ("id_card", "household_register")
                    ],
                },
            )
            if self.rng.random() < 0.7:
                app = await self._review(app, "approve", self.officer(h.wife.village))
            self.made[f"applications {app['status']}"] += 1

        await _each(enumerate(candidates), honor, self.bar)
        await _each(births, registration, self.bar)

    async def _review(
        self, app: dict[str, Any], decision: str, who: dict[str, str]
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"decision": decision, "version": app["version"]}
        if decision != "approve":
            body["comment"] = {
                "return": "结婚证复印件不清晰，请重新提供",
                "reject": "子女出生于2016年后，不符合办证条件",
            }[decision]
        return await self.api.call(  # type: ignore[no-any-return]
            "registry", "POST", f"/api/v1/applications/{app['id']}/review", who, json=body
        )

    async def _take(self, app: dict[str, Any], target: str, village: str) -> dict[str, Any]:
        """From submitted to ``target`` through the reviews a real one would get."""
        if target in ("submitted", "materials_required"):
            return app
        worker, officer = self.worker(village), self.officer(village)
        if target == "returned":
            return await self._review(app, "return", worker)
        app = await self._review(app, "approve", worker)
        if target == "in_review":
            return app
        if target == "rejected":
            return await self._review(app, "reject", officer)
        return await self._review(app, "approve", officer)

    # -- benefits ----------------------------------------------------------------------------

    async def benefits(self) -> None:
        # Each issued certificate founds an enrollment for both parents (pending review).
        expected = {p.id for h in self.issued for p in (h.wife, h.husband) if p is not None}
        self.bar.start("benefits", len(expected))
        county = self.api.as_("county_officer", COUNTY, "demo-county-officer")

        async def founded() -> list[dict[str, Any]] | None:
            items = await self.api.pages(
                "benefits", "/api/v1/enrollments", county, {"program": PROGRAM}
            )
            mine = [e for e in items if e["person_id"] in expected]
            return mine if len(mine) >= len(expected) else None

        enrollments = await _wait_for(
            f"{len(expected)} enrollments founded by the issued certificates",
            founded,
            self.wait_timeout,
            interval=2.0,
        )
        # Most are confirmed by a township officer (the checker of what the system prepared);
        # the rest wait in the officers' queue. Most confirmed payees give a bank account.
        names = {p.id: p.name for h in self.issued for p in (h.wife, h.husband) if p is not None}
        villages = {p.id: p.village for h in self.issued for p in (h.wife, h.husband) if p}

        async def decide(e: dict[str, Any]) -> None:
            officer = self.officer(villages[e["person_id"]], 2)
            if e["status"] == "pending_review" and self.rng.random() < 0.85:
                e = await self.api.call(
                    "benefits",
                    "POST",
                    f"/api/v1/enrollments/{e['id']}/confirm",
                    officer,
                    json={"version": e["version"]},
                )
            self.made[f"enrollments {e['status']}"] += 1
            if e["status"] == "active" and self.rng.random() < 0.95:
                await self.api.call(
                    "benefits",
                    "PUT",
                    f"/api/v1/persons/{e['payee_id']}/payee-account",
                    officer,
                    json={
                        "account_name": names.get(e["payee_id"], "居民"),
                        "bank_name": self.rng.choice(BANKS),
                        "account_no": f"622848{self.rng.randrange(10**13):013d}",
                    },
                    expect=(200, 201),
                )
                self.made["payee accounts"] += 1

        await _each(enrollments, decide, self.bar)

    # -- payments ----------------------------------------------------------------------------

    async def payments(self) -> None:
        """This month's run of the only-child reward: drafted by one county officer, approved
        by another, exported, and reconciled with the bank's return file (a few failed)."""
        self.bar.start("payments", 5)
        maker = self.api.as_("county_officer", COUNTY, "demo-county-maker")
        checker = self.api.as_("county_officer", COUNTY, "demo-county-checker")
        period = f"{self.today:%Y-%m}"
        run = await self.api.call(
            "benefits",
            "POST",
            "/api/v1/payment-runs",
            maker,
            json={"program": PROGRAM, "period": period, "region": COUNTY},
        )
        self.bar.advance()
        url = f"/api/v1/payment-runs/{run['id']}"
        run = await self.api.call(
            "benefits", "POST", f"{url}/approve", checker, json={"version": run["version"]}
        )
        self.bar.advance()
        run = await self.api.call(
            "benefits", "POST", f"{url}/export", maker, json={"version": run["version"]}
        )
        self.bar.advance()
        bank_file = await self.api.call("benefits", "GET", f"{url}/disbursement-file", maker)
        self.bar.advance()
        rows = [line.split(",") for line in bank_file.strip().splitlines()][1:-1]
        returned = ["reference,result,reason"]
        for ref, *_ in rows:
            failed = self.rng.random() < 0.03
            returned.append(f"{ref},failed,账户已销户" if failed else f"{ref},paid,")
        out = await self.api.call(
            "benefits",
            "POST",
            f"{url}/reconciliation",
            {**checker, "Content-Type": "text/csv"},
            content="\r\n".join(returned).encode() + b"\r\n",
        )
        self.bar.advance()
        r = out["run"]
        self.made["payment runs reconciled"] += 1
        self.made["payment lines paid"] += r["paid_count"]
        self.made["payment lines failed"] += r["failed_count"]
        self.made["payment lines held (no account)"] += r.get("held_count", 0)
        self.made["yuan paid"] += r["paid_fen"] // 100

    # -- visits ------------------------------------------------------------------------------

    async def visits(self) -> None:
        births = [h for h in self.households if h.newborn is not None]
        self.bar.start("visits", len(VILLAGES) + len(births) + 1)
        county = self.api.as_("county_officer", COUNTY, "demo-county-officer")
        for village in VILLAGES:
            await self.api.call(
                "visits",
                "PUT",
                f"/api/v1/assignments/{village}/village",
                self.officer(village),
                json={"assignee_sub": f"demo-worker-{village}", "assignee_name": "村计生专干"},
            )
            self.bar.advance()
        for township in TOWNSHIPS:
            await self.api.call(
                "visits",
                "PUT",
                f"/api/v1/assignments/{township}/township",
                self.officer(township),
                json={"assignee_sub": f"demo-station-{township}", "assignee_name": "乡镇站"},
            )

        # Each birth plans the mother's postpartum and the baby's newborn visits.
        async def planned(h: Household) -> None:
            assert h.wife and h.newborn
            child = h.newborn.id

            async def tasks() -> bool | None:
                page = await self.api.call(
                    "visits", "GET", "/api/v1/tasks", county, params={"person_id": child}
                )
                return True if page["items"] else None

            await _wait_for(f"the visit tasks of the child {child}", tasks, self.wait_timeout)

        await _each(births, planned, self.bar)
        open_tasks = await self.api.pages(
            "visits", "/api/v1/tasks", county, {"state": "due,overdue"}
        )
        # Half of what is due has been visited today (with consent); the rest waits.
        visit_now = [t for t in open_tasks if self.rng.random() < 0.5]
        now = datetime.now(SHANGHAI)

        async def visit(t: dict[str, Any]) -> None:
            village = t["region_code"]
            await self.api.call(
                "visits",
                "POST",
                f"/api/v1/tasks/{t['id']}/visits",
                # The village worker visits what is assigned to them; the township's own
                # steps (its station's) are recorded by the township officer.
                self.worker(village)
                if t["assignee"] == f"demo-worker-{village}"
                else self.officer(village),
                json={
                    "id": str(uuid.uuid4()),
                    "task_version": t["version"],
                    "performed_at": now.isoformat(),
                    "place": "家中",
                    "consent": {"given": True},
                    "findings": {"notes": "母婴情况良好"},
                },
            )
            self.made["visits done"] += 1

        await _each(visit_now, visit, _Bar(None))
        self.made["visit tasks due or overdue"] += len(open_tasks) - len(visit_now)
        await self._appointments([h for h in births if h.wife is not None][:60])
        self.bar.advance()

    async def _appointments(self, births: list[Household]) -> None:
        """A 42-day check slot per township that starts in a few seconds (so attendance can
        be recorded) and one next week: some attended, a few no-shows, some booked ahead."""
        if not births:
            return
        county = self.api.as_("county_officer", COUNTY, "demo-county-officer")
        starts_soon = datetime.now(SHANGHAI) + timedelta(seconds=4)
        next_week = datetime.combine(self.today + timedelta(days=7), datetime.min.time(), SHANGHAI)
        slots: dict[str, tuple[str, str]] = {}
        for township in sorted({h.wife.village[:9] for h in births if h.wife}):
            station = await self.api.call(
                "visits",
                "POST",
                "/api/v1/stations",
                county,
                json={"name": "社区卫生服务中心", "region_code": township},
            )
            made = []
            for start in (starts_soon, next_week.replace(hour=9)):
                slot = await self.api.call(
                    "visits",
                    "POST",
                    "/api/v1/slots",
                    self.officer(township),
                    json={
                        "station_id": station["id"],
                        "service": "postpartum_42d_check",
                        "starts_at": start.isoformat(),
                        "ends_at": (start + timedelta(hours=2)).isoformat(),
                        "capacity": 100,
                    },
                )
                made.append(slot["id"])
            slots[township] = (made[0], made[1])
        booked: list[tuple[str, str]] = []
        for i, h in enumerate(births):
            assert h.wife
            now_slot, later_slot = slots[h.wife.village[:9]]
            a = await self.api.call(
                "visits",
                "POST",
                "/api/v1/appointments",
                self.officer(h.wife.village),
                json={"slot_id": now_slot if i % 3 else later_slot, "person_id": h.wife.id},
            )
            if i % 3:
                booked.append((a["id"], h.wife.village))
            else:
                self.made["appointments booked"] += 1
        await asyncio.sleep(max(0.0, (starts_soon - datetime.now(SHANGHAI)).total_seconds()))
        for i, (appointment, village) in enumerate(booked):
            outcome = "no-show" if i % 5 == 0 else "attended"
            await self.api.call(
                "visits",
                "POST",
                f"/api/v1/appointments/{appointment}/{outcome}",
                self.officer(village),
                json={},
            )
            self.made[f"appointments {outcome}"] += 1


def summary_rows(summary: Summary) -> list[tuple[str, str]]:
    """What was made, in the order a reader follows it, for the CLI's table."""
    return [(k, f"{v:,}") for k, v in summary.made.items()]


async def seed_over_http(
    urls: Mapping[str, str], settings: Settings, residents: int, console: Console
) -> Summary:
    """``lingju run --demo N``: seed the running services at ``urls`` with a progress bar per
    phase, then print what was made and how long each phase took."""
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

    async with contextlib.AsyncExitStack() as es:
        clients = {
            name: await es.enter_async_context(httpx.AsyncClient(base_url=url, timeout=60))
            for name, url in urls.items()
        }
        with Progress(
            TextColumn("{task.description:<13}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        ) as progress:
            summary = await seed_county(clients, settings, residents, progress)
    if summary.skipped:
        console.print(
            "The demo county is already seeded in this data directory (its first resident is "
            "registered): left as it is. `make clean` starts afresh."
        )
        return summary
    table = Table(title=f"Demo county {COUNTY}: what was made")
    table.add_column("what")
    table.add_column("count", justify="right")
    for what, count in summary_rows(summary):
        table.add_row(what, count)
    for phase, seconds in summary.seconds.items():
        table.add_row(f"[dim]{phase} phase[/dim]", f"[dim]{seconds:.0f} s[/dim]")
    console.print(table)
    return summary
