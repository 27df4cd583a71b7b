"""Benefit programs as data: periods, effective-dated amounts per region, founding certificates,
and the payment schedule (monthly, or yearly in one pay month).

Pure: no I/O. The caller reads programs.toml and hands the parsed dict to ``parse_programs``.
Money is integer fen everywhere; a float in the file is refused, never rounded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")
_PERIOD = re.compile(r"^(\d{4})-(\d{2})$")


@dataclass(frozen=True, order=True)
class Period:
    """A calendar month (the unit benefits are paid in), ordered by (year, month)."""

    year: int
    month: int

    def __post_init__(self) -> None:
        if not 1 <= self.month <= 12 or not 1 <= self.year <= 9999:
            raise ValueError(f"invalid period {self.year}-{self.month}")

    @classmethod
    def of(cls, day: date | datetime) -> Period:
        """The period of a date; an aware datetime is first moved to Asia/Shanghai.

        Benefits are paid by the Chinese calendar month: 2025-01-31T20:00Z is already
        2025-02-01 in Beijing, so it belongs to 2025-02.
        """
        if isinstance(day, datetime):
            if day.tzinfo is None:
                raise ValueError("naive datetime: say which time zone it is in")
            day = day.astimezone(SHANGHAI).date()
        return cls(day.year, day.month)

    @classmethod
    def parse(cls, text: str) -> Period:
        m = _PERIOD.match(text)
        if not m:
            raise ValueError(f"period must be YYYY-MM, got {text!r}")
        return cls(int(m[1]), int(m[2]))

    def plus(self, months: int) -> Period:
        index = self.year * 12 + self.month - 1 + months
        return Period(index // 12, index % 12 + 1)

    def next(self) -> Period:
        return self.plus(1)

    def previous(self) -> Period:
        return self.plus(-1)

    def months_until(self, other: Period) -> int:
        """How many periods from self up to (not including) other; negative if other is earlier."""
        return (other.year - self.year) * 12 + other.month - self.month

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"


@dataclass(frozen=True)
class AmountRule:
    """One effective-dated amount: in force for periods [from_period, until_period]."""

    from_period: Period
    until_period: Period | None
    region: str  # division-code prefix; "" is the national default
    amount_fen: int
    per: Literal["month", "year"]
    source: str
    case: str = ""  # e.g. child_died / child_disabled; "" when the program has one amount

    def in_force(self, period: Period) -> bool:
        return self.from_period <= period and (
            self.until_period is None or period <= self.until_period
        )

    def applies_to(self, region_code: str, period: Period, case: str = "") -> bool:
        return self.case == case and region_code.startswith(self.region) and self.in_force(period)

    def monthly_fen(self, period: Period) -> int:
        """This rule's amount for one month of ``period``.

        A yearly amount is split as amount // 12 a month with the remainder paid in December,
        so the twelve months of any calendar year sum exactly to the yearly amount in fen.
        """
        if self.per == "month":
            return self.amount_fen
        base, remainder = divmod(self.amount_fen, 12)
        return base + (remainder if period.month == 12 else 0)


@dataclass(frozen=True)
class EligibilityParams:
    """The parameters of a program's rule (the rule itself is code in eligibility.py)."""

    rule: str = ""
    age: int | None = None
    household_type: str | None = None
    mother_age: int | None = None
    father_age: int | None = None
    child_age_until: int | None = None


@dataclass(frozen=True)
class Program:
    code: str
    name: str
    founded_by_certificate: str | None = None
    name_en: str = ""
    source: str = ""
    amounts: tuple[AmountRule, ...] = ()
    cap_fen: int | None = None
    cap_source: str = ""
    eligibility: EligibilityParams = field(default_factory=EligibilityParams)
    # Payment schedule: a run each month, or once a year in ``pay_month`` (1-12), when the run
    # pays every month owed up to and including that month.
    pay_every: Literal["month", "year"] = "month"
    pay_month: int | None = None

    def pays_in(self, period: Period) -> bool:
        """Whether a payment run of this program may be made for ``period``."""
        return self.pay_every == "month" or period.month == self.pay_month

    def first_period(self, region_code: str) -> Period | None:
        """The first period any amount of this program applies to in this region."""
        starts = [a.from_period for a in self.amounts if region_code.startswith(a.region)]
        return min(starts) if starts else None


def _fen(value: Any, where: str) -> int:
    # bool is an int subclass and a float would silently lose fen: refuse both.
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{where}: money must be a non-negative integer number of fen")
    return value


def _amount(raw: dict[str, Any], where: str) -> AmountRule:
    per = raw.get("per", "month")
    if per not in ("month", "year"):
        raise ValueError(f"{where}: per must be 'month' or 'year', got {per!r}")
    source = raw.get("source")
    if not isinstance(source, str) or not source.strip():
        raise ValueError(f"{where}: every amount says where it comes from (source)")
    start = Period.parse(raw["from"])
    until = Period.parse(raw["until"]) if raw.get("until") else None
    if until is not None and until < start:
        raise ValueError(f"{where}: until {until} is before from {start}")
    return AmountRule(
        from_period=start,
        until_period=until,
        region=str(raw.get("region", "")),
        amount_fen=_fen(raw.get("amount_fen"), where),
        per=per,
        source=source,
        case=str(raw.get("case", "")),
    )


def _schedule(p: dict[str, Any], where: str) -> tuple[Literal["month", "year"], int | None]:
    """``pay_every`` (default "month") and, for "year" only, ``pay_month``: strict, so a typo
    in the file fails at start-up instead of silently paying in the wrong month."""
    every = p.get("pay_every", "month")
    month = p.get("pay_month")
    if every == "month":
        if month is not None:
            raise ValueError(f"{where}: pay_month is only for pay_every = 'year'")
        return "month", None
    if every != "year":
        raise ValueError(f"{where}: pay_every must be 'month' or 'year', got {every!r}")
    # bool is an int subclass: `pay_month = true` is a typo, not January.
    if isinstance(month, bool) or not isinstance(month, int) or not 1 <= month <= 12:
        raise ValueError(f"{where}: pay_every = 'year' needs pay_month, an integer 1-12")
    return "year", month


def _program(p: dict[str, Any]) -> Program:
    code = p["code"]
    pay_every, pay_month = _schedule(p, f"programs.{code}")
    amounts = tuple(
        _amount(a, f"programs.{code}.amounts[{i}]") for i, a in enumerate(p.get("amounts", []))
    )
    cap = p.get("cap_fen")
    e = p.get("eligibility", {})
    return Program(
        code=code,
        name=p["name"],
        founded_by_certificate=p.get("founded_by_certificate"),
        name_en=p.get("name_en", ""),
        source=p.get("source", ""),
        amounts=amounts,
        cap_fen=None if cap is None else _fen(cap, f"programs.{code}.cap_fen"),
        cap_source=p.get("cap_source", ""),
        eligibility=EligibilityParams(
            rule=e.get("rule", code),
            age=e.get("age"),
            household_type=e.get("household_type"),
            mother_age=e.get("mother_age"),
            father_age=e.get("father_age"),
            child_age_until=e.get("child_age_until"),
        ),
        pay_every=pay_every,
        pay_month=pay_month,
    )


def parse_programs(raw: dict[str, Any]) -> dict[str, Program]:
    """Programs by code, in file order; a malformed amount raises ValueError naming it."""
    return {p["code"]: _program(p) for p in raw.get("programs", [])}


def programs_founded_by(certificate_type: str, programs: dict[str, Program]) -> list[Program]:
    return [p for p in programs.values() if p.founded_by_certificate == certificate_type]


def rule_in_force(
    program: Program, region_code: str, period: Period, case: str = ""
) -> AmountRule | None:
    """The amount rule for a region and period: longest region prefix, then latest ``from``."""
    candidates = [a for a in program.amounts if a.applies_to(region_code, period, case)]
    if not candidates:
        return None
    return max(candidates, key=lambda a: (len(a.region), a.from_period))


def monthly_amount(program: Program, region_code: str, period: Period, case: str = "") -> int:
    """Fen due for one month of ``period``; 0 when no amount is in force (e.g. claims only)."""
    rule = rule_in_force(program, region_code, period, case)
    return 0 if rule is None else rule.monthly_fen(period)
