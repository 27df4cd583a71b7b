"""Explainable eligibility: which program, from which month to which, by which rule and facts.

Pure: no I/O. The facts are plain values (until the read models exist, an officer sends them).
Every answer carries sentences in zh-CN and English an officer can read out to the resident.

Period conventions (all windows are inclusive ranges of calendar months):
- an age is reached in the month of the birthday; a 29 February birthday counts on 28 February
  in a non-leap year (which is still February, so the month never moves);
- "from the month after they turn N" is the first period after the month of the N-th
  birthday, whatever the day: born 1 Jan 1966 or 31 Jan 1966 -> from 2026-02;
- "under N" ends with the month before the month of the N-th birthday;
- a death mid-month is paid for the month of death and nothing after it;
- no window starts before the first period the program has an amount for in the region.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Literal

from services.benefits.domain.programs import Period, Program


@dataclass(frozen=True)
class Child:
    birth_date: date
    alive: bool = True
    disabled: bool = False  # 伤残 as the special-assistance rule defines it (grade 3 or worse)
    died_on: date | None = None


@dataclass(frozen=True)
class Person:
    sex: Literal["female", "male"]
    birth_date: date
    household_type: Literal["rural", "urban"]
    region_code: str
    died_on: date | None = None


@dataclass(frozen=True)
class Facts:
    person: Person
    children: tuple[Child, ...] = ()  # every child of the person's family, living or not
    holds_only_child_honor: bool = False  # 独生子女父母光荣证


@dataclass(frozen=True)
class Eligibility:
    eligible: bool  # entitled for the period asked about (as_of)
    from_period: Period | None  # the entitlement window, even when as_of lies outside it
    until_period: Period | None  # None: open-ended (until death, not yet known)
    rule: str
    reasons_zh: list[str] = field(default_factory=list)
    reasons_en: list[str] = field(default_factory=list)
    case: str = ""  # which amount applies, e.g. child_died / child_disabled


def birthday_in(birth: date, year: int) -> date:
    """The birthday in ``year``; 29 February counts on 28 February in a non-leap year."""
    try:
        return birth.replace(year=year)
    except ValueError:
        return date(year, 2, 28)


def month_of_birthday(birth: date, age: int) -> Period:
    return Period.of(birthday_in(birth, birth.year + age))


def age_in(birth: date, period: Period) -> int:
    """Whole years reached by the end of ``period`` (a birthday in that month counts)."""
    return period.year - birth.year - (1 if period.month < birth.month else 0)


class _Why:
    def __init__(self) -> None:
        self.zh: list[str] = []
        self.en: list[str] = []

    def add(self, zh: str, en: str) -> None:
        self.zh.append(zh)
        self.en.append(en)


def _window(
    program: Program,
    facts: Facts,
    start: Period | None,
    end: Period | None,
    why: _Why,
) -> tuple[Period | None, Period | None, bool]:
    """Clamp a window to the program's first amount period and the person's death.

    Returns (from, until, empty): an empty window means the entitlement never opens.
    """
    first = program.first_period(facts.person.region_code)
    if first is not None and (start is None or start < first):
        start = first
        why.add(
            f"本项目在您所在地区自 {first} 起发放。",
            f"The program pays in this region from {first}.",
        )
    died = facts.person.died_on
    if died is not None:
        death = Period.of(died)
        if end is None or death < end:
            end = death
        why.add(
            f"本人于 {died.isoformat()} 去世：发放至去世当月（{death}）为止，之后不再发放。",
            f"Died on {died.isoformat()}: paid through the month of death ({death}), "
            "nothing after.",
        )
    empty = start is not None and end is not None and end < start
    return start, end, empty


def _result(
    program: Program,
    facts: Facts,
    as_of: Period,
    rule: str,
    start: Period | None,
    end: Period | None,
    why: _Why,
    case: str = "",
) -> Eligibility:
    start, end, empty = _window(program, facts, start, end, why)
    if empty:
        why.add(
            "资格期间在开始前已结束，不予发放。", "The window closes before it opens: nothing due."
        )
        return Eligibility(False, None, None, rule, why.zh, why.en, case)
    inside = (start is None or start <= as_of) and (end is None or as_of <= end)
    if inside:
        why.add(f"{as_of} 符合条件。", f"Eligible for {as_of}.")
    elif start is not None and as_of < start:
        why.add(f"{as_of} 尚未符合条件，自 {start} 起符合。", f"Not yet for {as_of}: from {start}.")
    else:
        why.add(f"{as_of} 已不符合条件（截至 {end}）。", f"No longer for {as_of}: ended {end}.")
    return Eligibility(inside, start, end, rule, why.zh, why.en, case)


def _no(rule: str, why: _Why, zh: str, en: str) -> Eligibility:
    why.add(zh, en)
    return Eligibility(False, None, None, rule, why.zh, why.en)


def _only_child(facts: Facts, why: _Why, rule: str) -> Child | Eligibility:
    n = len(facts.children)
    if n != 1:
        return _no(
            rule,
            why,
            f"家庭登记的子女数为 {n}，本项目仅适用于独生子女家庭。",
            f"The family has {n} children on record; the program is for only-child families.",
        )
    return facts.children[0]


def _rural_reward(program: Program, facts: Facts, as_of: Period) -> Eligibility:
    age = program.eligibility.age or 60
    household = program.eligibility.household_type or "rural"
    rule = f"rural_reward_assistance(age={age}, household_type={household})"
    why = _Why()
    p = facts.person
    if p.household_type != household:
        return _no(
            rule,
            why,
            "本人不是农业户口，本项目仅适用于农村计划生育家庭。",
            "Not a rural household; the program is for rural family planning families.",
        )
    birthday = month_of_birthday(p.birth_date, age)
    start = birthday.next()
    why.add(
        f"农业户口，出生于 {p.birth_date.isoformat()}，{birthday} 年满 {age} 周岁，"
        f"自次月 {start} 起发放。",
        f"Rural household, born {p.birth_date.isoformat()}, turns {age} in {birthday}: "
        f"paid from the following month, {start}.",
    )
    return _result(program, facts, as_of, rule, start, None, why)


def _only_child_reward(program: Program, facts: Facts, as_of: Period) -> Eligibility:
    until_age = program.eligibility.child_age_until or 18
    rule = f"only_child_parent_reward(certificate=only_child_honor, child_under={until_age})"
    why = _Why()
    if not facts.holds_only_child_honor:
        return _no(
            rule,
            why,
            "未持有独生子女父母光荣证。",
            "Holds no only-child parents' honor certificate.",
        )
    child = _only_child(facts, why, rule)
    if isinstance(child, Eligibility):
        return child
    start = Period.of(child.birth_date)
    end = month_of_birthday(child.birth_date, until_age).previous()
    why.add(
        f"持有独生子女父母光荣证；独生子女出生于 {child.birth_date.isoformat()}，"
        f"发放至其年满 {until_age} 周岁的前一个月（{end}）。",
        f"Holds the honor certificate; the only child was born {child.birth_date.isoformat()}: "
        f"paid until the month before the child turns {until_age} ({end}).",
    )
    if not child.alive:
        if child.died_on is None:
            return _no(
                rule,
                why,
                "独生子女已去世（日期不详）；请考虑计划生育家庭特别扶助。",
                "The only child has died (date unknown); see special assistance.",
            )
        died = Period.of(child.died_on)
        end = min(end, died)
        why.add(
            f"独生子女于 {child.died_on.isoformat()} 去世，发放至当月。",
            f"The only child died on {child.died_on.isoformat()}: paid through that month.",
        )
    return _result(program, facts, as_of, rule, start, end, why)


def _special_assistance(program: Program, facts: Facts, as_of: Period) -> Eligibility:
    params = program.eligibility
    sex = facts.person.sex
    age = (params.mother_age if sex == "female" else params.father_age) or 49
    rule = f"special_assistance(mother_age={params.mother_age}, father_age={params.father_age})"
    why = _Why()
    child = _only_child(facts, why, rule)
    if isinstance(child, Eligibility):
        return child
    if not child.alive:
        case = "child_died"
        why.add("独生子女已去世。", "The only child has died.")
    elif child.disabled:
        case = "child_disabled"
        why.add("独生子女伤残。", "The only child is disabled.")
    else:
        return _no(
            rule,
            why,
            "独生子女健在且未伤残，不符合特别扶助条件。",
            "The only child is alive and not disabled: special assistance does not apply.",
        )
    who_zh, who_en = ("母亲", "mother") if sex == "female" else ("父亲", "father")
    birthday = month_of_birthday(facts.person.birth_date, age)
    start = birthday.next()
    why.add(
        f"{who_zh}出生于 {facts.person.birth_date.isoformat()}，{birthday} 年满 {age} 周岁，"
        f"自次月 {start} 起发放。",
        f"The {who_en} was born {facts.person.birth_date.isoformat()} and turns {age} in "
        f"{birthday}: paid from the following month, {start}.",
    )
    if child.died_on is not None:
        after = Period.of(child.died_on).next()
        if after > start:
            start = after
            why.add(
                f"子女于 {child.died_on.isoformat()} 去世，自次月 {after} 起发放。",
                f"The child died on {child.died_on.isoformat()}: paid from the next month, "
                f"{after}.",
            )
    return _result(program, facts, as_of, rule, start, None, why, case)


def childcare_window(
    program: Program, facts: Facts, child: Child, why: _Why | None = None
) -> tuple[Period | None, Period | None]:
    """One child's months: birth month to the month before the 3rd birthday, clamped."""
    until_age = program.eligibility.child_age_until or 3
    start = Period.of(child.birth_date)
    end = month_of_birthday(child.birth_date, until_age).previous()
    if child.died_on is not None:
        end = min(end, Period.of(child.died_on))
    start, end, empty = _window(program, facts, start, end, why or _Why())
    return (None, None) if empty else (start, end)


def _childcare(program: Program, facts: Facts, as_of: Period) -> Eligibility:
    until_age = program.eligibility.child_age_until or 3
    rule = f"childcare_subsidy(per_child, under={until_age})"
    why = _Why()
    if not facts.children:
        return _no(rule, why, "家庭未登记子女。", "No child on record.")
    windows: list[tuple[Period, Period]] = []
    clamps = _Why()  # the program start and a death are said once, not once per child
    for i, child in enumerate(facts.children, start=1):
        born = child.birth_date.isoformat()
        if not child.alive and child.died_on is None:
            why.add(
                f"第 {i} 个子女（{born} 出生）已去世，日期不详，不计。",
                f"Child {i} (born {born}) has died, date unknown: not counted.",
            )
            continue
        start, end = childcare_window(program, facts, child, clamps)
        if start is None or end is None:
            why.add(
                f"第 {i} 个子女（{born} 出生）在本项目发放期内已满 {until_age} 周岁，不计。",
                f"Child {i} (born {born}) was {until_age} or older before the program paid: "
                "not counted.",
            )
            continue
        windows.append((start, end))
        months = start.months_until(end) + 1
        why.add(
            f"第 {i} 个子女（{born} 出生）：{start} 至 {end}，共 {months} 个月"
            f"（至满 {until_age} 周岁的前一个月）。",
            f"Child {i} (born {born}): {start} to {end}, {months} months "
            f"(until the month before turning {until_age}).",
        )
    for zh, en in dict(zip(clamps.zh, clamps.en, strict=True)).items():
        why.add(zh, en)
    if not windows:
        why.add("没有符合条件的子女。", "No child qualifies.")
        return Eligibility(False, None, None, rule, why.zh, why.en)
    inside = any(s <= as_of <= e for s, e in windows)
    start = min(s for s, _ in windows)
    end = max(e for _, e in windows)
    if inside:
        why.add(f"{as_of} 符合条件。", f"Eligible for {as_of}.")
    elif as_of < start:
        why.add(f"{as_of} 尚未符合条件，自 {start} 起符合。", f"Not yet for {as_of}: from {start}.")
    else:
        why.add(f"{as_of} 没有符合条件的子女。", f"No child qualifies for {as_of}.")
    return Eligibility(inside, start, end, rule, why.zh, why.en)


def _assisted_reproduction(program: Program, facts: Facts, as_of: Period) -> Eligibility:
    rule = "assisted_reproduction_reimbursement(only_child_died, capped)"
    why = _Why()
    child = _only_child(facts, why, rule)
    if isinstance(child, Eligibility):
        return child
    if child.alive:
        return _no(
            rule,
            why,
            "独生子女健在，本项目仅适用于失独家庭。",
            "The only child is alive; the program is for bereaved families.",
        )
    start = Period.of(child.died_on) if child.died_on is not None else None
    cap = program.cap_fen
    cap_zh = f"，每对夫妻累计不超过 {cap // 100} 元" if cap is not None else ""
    cap_en = f", at most {cap // 100} yuan per couple in total" if cap is not None else ""
    why.add(
        f"独生子女已去世（失独家庭），可按票据报销辅助生殖费用{cap_zh}。",
        f"The only child has died (bereaved family): assisted reproduction costs are "
        f"reimbursed against receipts{cap_en}.",
    )
    return _result(program, facts, as_of, rule, start, None, why)


_RULES = {
    "rural_reward_assistance": _rural_reward,
    "only_child_parent_reward": _only_child_reward,
    "special_assistance": _special_assistance,
    "childcare_subsidy": _childcare,
    "assisted_reproduction_reimbursement": _assisted_reproduction,
}


def evaluate(program: Program, facts: Facts, as_of: Period) -> Eligibility:
    """Whether the person is entitled for ``as_of``, the window, the rule and the reasons."""
    rule = _RULES.get(program.eligibility.rule)
    if rule is None:
        return _no(
            program.eligibility.rule,
            _Why(),
            f"未配置资格规则 {program.eligibility.rule!r}。",
            f"No eligibility rule {program.eligibility.rule!r} is implemented.",
        )
    return rule(program, facts, as_of)
