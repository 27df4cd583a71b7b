"""Follow-up plans as data: parsing plans.toml strictly, step windows and task states.

Pure: no I/O. The caller reads plans.toml and hands the parsed dict to ``parse_plans``.

A step is due, overdue and expired at three offsets from an anchor date (as OpenSRP does).
The three dates of a ``Window`` are each the *first day* of a state:

    anchor ... due_on ... overdue_on ... expires_on ...
    scheduled | due       | overdue      | missed

Overdue and missed are derived from the dates and today, never stored (DESIGN §5): a task
row keeps only its window and whether it was done or cancelled.

Offsets are whole days (``"7d"``) or calendar months (``"3m"``). A month offset keeps the day
of the month and clamps to the month's end when that day does not exist (31 Jan + 1m =
28/29 Feb; 29 Feb + 12m = 28 Feb), the way people count "one month after". The three offsets
of a step (and its ``repeat``) use one unit, so their order is the same for every anchor,
month ends and leap days included: with mixed units "1m" vs "30d" would flip order
depending on the month.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum
from typing import Any, Literal

Unit = Literal["d", "m"]
_OFFSET = re.compile(r"^(0|[1-9][0-9]{0,4})([dm])$")
_CODE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
# Long enough for any real schedule (a yearly IUD check for decades), short enough that a
# typo such as "36000m" is refused instead of producing dates past year 9999.
_MAX_DAYS = 36_600
_MAX_MONTHS = 1_200
# Only used to check that steps are listed in order when neighbours use different units.
_MEAN_MONTH_DAYS = 365.2425 / 12

TIERS = ("village", "township", "district")
SEXES = ("female", "male")


@dataclass(frozen=True)
class TriggerKind:
    """What an event type offers a plan: the date fields that can anchor it, and whom the
    resulting tasks can be for (which person id of the event)."""

    anchors: frozenset[str]
    subjects: frozenset[str]


# The events visits knows how to start a plan from. "age" is not an event: a screening plan
# applies to everyone of a sex within an age range, anchored at the birthday.
TRIGGERS: dict[str, TriggerKind] = {
    "lingju.registry.child.born": TriggerKind(
        frozenset({"birth_date"}), frozenset({"mother", "child"})
    ),
    "lingju.registry.family.registered": TriggerKind(
        frozenset({"marriage_date"}), frozenset({"wife"})
    ),
    "lingju.visits.procedure.recorded": TriggerKind(
        frozenset({"performed_on"}), frozenset({"person"})
    ),
    "age": TriggerKind(frozenset({"birth_date"}), frozenset({"person"})),
}
PROCEDURE_EVENT = "lingju.visits.procedure.recorded"
AGE = "age"


def add_months(day: date, months: int) -> date:
    """``day`` plus whole calendar months, clamped to the end of the target month."""
    year, month0 = divmod(day.year * 12 + day.month - 1 + months, 12)
    last = calendar.monthrange(year, month0 + 1)[1] if 1 <= year <= 9999 else 31
    return date(year, month0 + 1, min(day.day, last))  # out-of-range years raise ValueError


@dataclass(frozen=True, order=True)
class Offset:
    amount: int
    unit: Unit

    @classmethod
    def parse(cls, value: object, where: str) -> Offset:
        if not isinstance(value, str) or not (m := _OFFSET.match(value)):
            raise ValueError(
                f'{where}: an offset is a whole number of days or months such as "7d" or '
                f'"3m", got {value!r}'
            )
        offset = cls(int(m[1]), m[2])  # type: ignore[arg-type]
        if offset.amount > (_MAX_DAYS if offset.unit == "d" else _MAX_MONTHS):
            raise ValueError(f"{where}: offset {value!r} is longer than 100 years")
        return offset

    def plus(self, other: Offset, times: int = 1) -> Offset:
        if other.unit != self.unit:
            raise ValueError(f"cannot add {other} to {self}: different units")
        return Offset(self.amount + times * other.amount, self.unit)

    def from_anchor(self, anchor: date) -> date:
        if self.unit == "d":
            return anchor + timedelta(days=self.amount)
        return add_months(anchor, self.amount)

    def approx_days(self) -> float:
        return float(self.amount) if self.unit == "d" else self.amount * _MEAN_MONTH_DAYS

    def __str__(self) -> str:
        return f"{self.amount}{self.unit}"


@dataclass(frozen=True)
class Window:
    """First day due, first day overdue, first day missed (the window has closed)."""

    due_on: date
    overdue_on: date
    expires_on: date

    def offered_from(self, day: date) -> Window:
        """The window as offered to someone first known on ``day``, inside it: due from that
        day and overdue only after the step's own grace (``overdue_on - due_on``) counted from
        it, never past the expiry. A woman first registered at 36 is offered the current
        screening round from today, not shown as overdue since her 35th birthday."""
        if day <= self.due_on or day >= self.expires_on:
            return self
        grace = self.overdue_on - self.due_on
        return Window(day, min(self.expires_on, max(self.overdue_on, day + grace)), self.expires_on)


class TaskState(StrEnum):
    scheduled = "scheduled"
    due = "due"
    overdue = "overdue"
    missed = "missed"
    done = "done"
    cancelled = "cancelled"


def state_on(window: Window, today: date, done: bool = False, cancelled: bool = False) -> TaskState:
    """The state of a task on ``today``. Done wins over cancelled: a visit that happened stays
    on the record even if the task was later cancelled (e.g. the person moved away); and a
    late visit is still done, whatever the dates say."""
    if done:
        return TaskState.done
    if cancelled:
        return TaskState.cancelled
    if today < window.due_on:
        return TaskState.scheduled
    if today < window.overdue_on:
        return TaskState.due
    if today < window.expires_on:
        return TaskState.overdue
    return TaskState.missed


@dataclass(frozen=True)
class Step:
    code: str
    name: str
    service: str
    tier: str
    due: Offset
    overdue: Offset
    expiry: Offset
    repeat: Offset | None = None
    note: str = ""

    def window(self, anchor: date, occurrence: int = 0) -> Window:
        """The window of the ``occurrence``-th run of the step (0 = the first). Repeats are
        added to the offsets and counted from the original anchor, never chained from the
        previous window, so a month-end clamp in one year does not drift into the next
        (IUD inserted 31 Jan: yearly checks stay on 31 Jan, not 28 Feb after a 28 Feb)."""
        if occurrence and self.repeat is None:
            raise ValueError(f"step {self.code} does not repeat")
        if occurrence < 0:
            raise ValueError("occurrence must be >= 0")
        shift = self.repeat or Offset(0, self.due.unit)
        return Window(
            self.due.plus(shift, occurrence).from_anchor(anchor),
            self.overdue.plus(shift, occurrence).from_anchor(anchor),
            self.expiry.plus(shift, occurrence).from_anchor(anchor),
        )


def occurrences(step: Step, anchor: date, until: date) -> Iterator[Window]:
    """The windows of a step that are due on or before ``until``, oldest first: one at most
    for a step that does not repeat. ``until`` is the horizon a task generator looks to (or,
    for an age plan, the day before the person ages out)."""
    k = 0
    while True:
        window = step.window(anchor, k)
        if window.due_on > until:
            return
        yield window
        if step.repeat is None:
            return
        k += 1


@dataclass(frozen=True)
class Trigger:
    event: str
    anchor: str
    procedures: tuple[str, ...] = ()  # procedure.recorded: which procedures start the plan
    sex: str | None = None  # age plans only
    ages: tuple[int, int] | None = None  # age plans only: first and last age, inclusive


@dataclass(frozen=True)
class Plan:
    code: str
    name: str
    subject: str
    source: str
    trigger: Trigger
    steps: tuple[Step, ...]
    note: str = ""

    def step(self, code: str) -> Step | None:
        return next((s for s in self.steps if s.code == code), None)


def age_span(plan: Plan, birth_date: date) -> tuple[date, date]:
    """For an age plan: the birthday the person enters the range (the anchor of its steps),
    and the last day they are in it (the day before the birthday past the last age). A
    29 February birthday falls on 28 February in other years, as benefits counts ages."""
    if plan.trigger.ages is None:
        raise ValueError(f"plan {plan.code} is not an age plan")
    first, last = plan.trigger.ages
    return (
        add_months(birth_date, 12 * first),
        add_months(birth_date, 12 * (last + 1)) - timedelta(days=1),
    )


# -- parsing ------------------------------------------------------------------------------


def _keys(raw: object, where: str, required: set[str], optional: set[str]) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: expected a table, got {type(raw).__name__}")
    unknown = sorted(set(raw) - required - optional)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {', '.join(unknown)}")
    missing = sorted(required - set(raw))
    if missing:
        raise ValueError(f"{where}: missing key(s) {', '.join(missing)}")
    return raw


def _text(raw: dict[str, Any], key: str, where: str, default: str | None = None) -> str:
    value = raw.get(key, default)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{where}.{key}: expected non-empty text, got {value!r}")
    return value


def _code(raw: dict[str, Any], key: str, where: str) -> str:
    value = _text(raw, key, where)
    if not _CODE.match(value):
        raise ValueError(f"{where}.{key}: {value!r} is not a code (lowercase, digits, _)")
    return value


def _choice(raw: dict[str, Any], key: str, where: str, allowed: Iterable[str]) -> str:
    value = _text(raw, key, where)
    options = sorted(allowed)
    if value not in options:
        raise ValueError(f"{where}.{key}: {value!r} is not one of {', '.join(options)}")
    return value


def _step(raw: object, where: str) -> Step:
    r = _keys(
        raw,
        where,
        {"code", "name", "service", "tier", "due", "overdue", "expiry"},
        {"repeat", "note"},
    )
    code = _code(r, "code", where)
    where = f"{where} ({code})"
    due, overdue, expiry = (
        Offset.parse(r[k], f"{where}.{k}") for k in ("due", "overdue", "expiry")
    )
    repeat = Offset.parse(r["repeat"], f"{where}.repeat") if "repeat" in r else None
    units = {o.unit for o in (due, overdue, expiry, repeat) if o is not None}
    if len(units) > 1:
        raise ValueError(
            f"{where}: due, overdue, expiry and repeat must use one unit (all days or all "
            f"months), got {due}, {overdue}, {expiry}" + (f", {repeat}" if repeat else "")
        )
    if not due.amount <= overdue.amount <= expiry.amount:
        raise ValueError(
            f"{where}: offsets must be ordered due <= overdue <= expiry, got due {due}, "
            f"overdue {overdue}, expiry {expiry}"
        )
    if due.amount == expiry.amount:
        raise ValueError(f"{where}: expiry {expiry} must be after due {due}")
    if repeat is not None:
        if repeat.amount == 0:
            raise ValueError(f"{where}.repeat: must be longer than 0")
        # The next run opens no earlier than the previous one closes: never two open tasks
        # for one step.
        if due.amount + repeat.amount < expiry.amount:
            raise ValueError(
                f"{where}.repeat: {repeat} would open the next run (due + repeat) before "
                f"this one expires ({expiry})"
            )
    return Step(
        code=code,
        name=_text(r, "name", where),
        service=_code(r, "service", where),
        tier=_choice(r, "tier", where, TIERS),
        due=due,
        overdue=overdue,
        expiry=expiry,
        repeat=repeat,
        note=_text(r, "note", where) if "note" in r else "",
    )


def _trigger(raw: object, where: str) -> Trigger:
    r = _keys(raw, where, {"event", "anchor"}, {"procedures", "sex", "ages", "note"})
    event = _choice(r, "event", where, TRIGGERS)
    kind = TRIGGERS[event]
    anchor = _choice(r, "anchor", where, kind.anchors)
    procedures: tuple[str, ...] = ()
    if event == PROCEDURE_EVENT:
        raw_procs = r.get("procedures")
        if not isinstance(raw_procs, list) or not raw_procs:
            raise ValueError(f"{where}.procedures: list the procedure codes that start the plan")
        procedures = tuple(_code({"p": p}, "p", f"{where}.procedures") for p in raw_procs)
        if len(set(procedures)) != len(procedures):
            raise ValueError(f"{where}.procedures: a procedure is listed twice")
    elif "procedures" in r:
        raise ValueError(f"{where}.procedures: only for {PROCEDURE_EVENT}")
    sex: str | None = None
    ages: tuple[int, int] | None = None
    if event == AGE:
        sex = _choice(r, "sex", where, SEXES)
        raw_ages = r.get("ages")
        if (
            not isinstance(raw_ages, list)
            or len(raw_ages) != 2
            or not all(type(a) is int for a in raw_ages)
            or not 0 <= raw_ages[0] <= raw_ages[1] <= 120
        ):
            raise ValueError(
                f"{where}.ages: expected [first, last] whole ages in 0..120, got {raw_ages!r}"
            )
        ages = (raw_ages[0], raw_ages[1])
    else:
        for key in ("sex", "ages"):
            if key in r:
                raise ValueError(f"{where}.{key}: only for age plans (event = {AGE!r})")
    return Trigger(event, anchor, procedures, sex, ages)


def _plan(raw: object, where: str) -> Plan:
    r = _keys(raw, where, {"code", "name", "subject", "source", "trigger", "steps"}, {"note"})
    code = _code(r, "code", where)
    where = f"{where} ({code})"
    trigger = _trigger(r["trigger"], f"{where}.trigger")
    subject = _choice(r, "subject", where, TRIGGERS[trigger.event].subjects)
    if not isinstance(r["steps"], list) or not r["steps"]:
        raise ValueError(f"{where}.steps: a plan needs at least one step")
    steps = tuple(_step(s, f"{where}.steps[{i}]") for i, s in enumerate(r["steps"]))
    seen: set[str] = set()
    for i, s in enumerate(steps):
        if s.code in seen:
            raise ValueError(f"{where}.steps[{i}]: step code {s.code!r} is used twice")
        seen.add(s.code)
        # A repeating step runs until the plan ends (e.g. IUD removal), so nothing follows it.
        if s.repeat is not None and i != len(steps) - 1:
            raise ValueError(f"{where}.steps[{i}] ({s.code}): only the last step may repeat")
        if i and _before(s.due, steps[i - 1].due):
            raise ValueError(
                f"{where}.steps[{i}] ({s.code}): steps are listed in the order they fall due; "
                f"due {s.due} is before the previous step's {steps[i - 1].due}"
            )
    return Plan(
        code=code,
        name=_text(r, "name", where),
        subject=subject,
        source=_text(r, "source", where),
        trigger=trigger,
        steps=steps,
        note=_text(r, "note", where) if "note" in r else "",
    )


def _before(a: Offset, b: Offset) -> bool:
    if a.unit == b.unit:
        return a.amount < b.amount
    return a.approx_days() < b.approx_days()


def parse_plans(raw: object) -> dict[str, Plan]:
    """Plans by code, in file order. Anything malformed raises ValueError naming the place
    (``plans[2] (iud_followup).steps[1] (month_3).overdue: ...``)."""
    r = _keys(raw, "plans.toml", {"plans"}, set())
    if not isinstance(r["plans"], list) or not r["plans"]:
        raise ValueError("plans.toml: no [[plans]]")
    plans: dict[str, Plan] = {}
    starts: dict[str, str] = {}
    for i, p in enumerate(r["plans"]):
        plan = _plan(p, f"plans[{i}]")
        if plan.code in plans:
            raise ValueError(f"plans[{i}]: plan code {plan.code!r} is used twice")
        # One procedure starts one plan: two would assign the same follow-up twice.
        for proc in plan.trigger.procedures:
            if proc in starts:
                raise ValueError(
                    f"plans[{i}] ({plan.code}): procedure {proc!r} already starts plan "
                    f"{starts[proc]!r}"
                )
            starts[proc] = plan.code
        plans[plan.code] = plan
    return plans
