"""Families (家庭), births and deaths: the rules, no I/O.

A family is a couple (wife and husband, as the civil register records a marriage) with its
marriage date and the children linked to it. Benefits need its structure (how many children,
their sexes, alive or not), and the registry works out from it whose only child a deceased
person was (特别扶助, special assistance for the parents).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date

CURRENT = "current"


class RuleBroken(Exception):
    """A request breaks a rule: an HTTP status, a stable code, zh-CN and English text."""

    def __init__(self, status: int, code: str, zh: str, en: str, field: str | None = None) -> None:
        super().__init__(en)
        self.status = status
        self.code = code
        self.zh = zh
        self.en = en
        self.field = field


def _invalid(field: str, zh: str, en: str) -> RuleBroken:
    return RuleBroken(422, "validation_failed", zh, en, field)


@dataclass(frozen=True)
class PersonFacts:
    id: str
    sex: str
    birth_date: date
    died_on: date | None = None

    @property
    def alive(self) -> bool:
        return self.died_on is None


@dataclass(frozen=True)
class FamilyFacts:
    id: str
    wife_id: str
    husband_id: str
    marriage_date: date
    child_ids: tuple[str, ...] = ()
    status: str = CURRENT

    @property
    def current(self) -> bool:
        return self.status == CURRENT


@dataclass(frozen=True)
class FamilyStructure:
    """What benefits needs to know about a family's children."""

    children_count: int
    living_children_count: int
    sons: int
    daughters: int


def couple_key(wife_id: str, husband_id: str) -> str:
    """The key that makes one current family per couple (unique while current)."""
    return f"{wife_id}:{husband_id}"


# -- registering a family ----------------------------------------------------------------------


def check_couple(wife: PersonFacts, husband: PersonFacts, marriage_date: date, today: date) -> None:
    if wife.id == husband.id:
        raise _invalid("husband_id", "夫妻双方不能是同一人", "Wife and husband are the same person")
    if wife.sex != "female":
        raise _invalid("wife_id", "妻子应为女性居民", "The wife must be a woman")
    if husband.sex != "male":
        raise _invalid("husband_id", "丈夫应为男性居民", "The husband must be a man")
    if marriage_date > today:
        raise _invalid(
            "marriage_date", "结婚日期不能晚于今天", "The marriage date is in the future"
        )
    if marriage_date <= max(wife.birth_date, husband.birth_date):
        raise _invalid(
            "marriage_date",
            "结婚日期早于配偶的出生日期",
            "The marriage date is before a spouse's birth",
        )
    # A family is registered late often enough (the records of an older couple, say, for
    # special assistance): a spouse may have died since, but not before the marriage.
    for field, spouse in (("wife_id", wife), ("husband_id", husband)):
        if spouse.died_on is not None and spouse.died_on < marriage_date:
            raise _invalid(
                field,
                "配偶的死亡日期早于结婚日期",
                "A spouse died before the marriage date",
            )


def check_child(wife: PersonFacts, husband: PersonFacts, child: PersonFacts, field: str) -> None:
    if child.id in (wife.id, husband.id):
        raise _invalid(field, "子女不能是夫妻本人", "A spouse cannot be their own child")
    if child.birth_date <= max(wife.birth_date, husband.birth_date):
        raise _invalid(
            field,
            "子女的出生日期应晚于父母的出生日期",
            "A child must be born after both parents",
        )


def check_children(
    wife: PersonFacts, husband: PersonFacts, children: Sequence[PersonFacts]
) -> None:
    seen: set[str] = set()
    for i, child in enumerate(children):
        field = f"children_ids.{i}"
        if child.id in seen:
            raise _invalid(field, "子女重复列出", "A child is listed twice")
        seen.add(child.id)
        check_child(wife, husband, child, field)


def check_new_child(
    family: FamilyFacts, wife: PersonFacts, husband: PersonFacts, child: PersonFacts
) -> None:
    if child.id in family.child_ids:
        raise RuleBroken(
            409,
            "child_already_linked",
            "该子女已在此家庭中",
            "The child is already linked to this family",
            "child_id",
        )
    check_child(wife, husband, child, "child_id")


def marital_status_after_marriage(spouse: PersonFacts, partner: PersonFacts) -> str:
    """ "married", or "widowed" for a living spouse whose partner has died since."""
    return "widowed" if spouse.alive and not partner.alive else "married"


def structure(children: Iterable[PersonFacts]) -> FamilyStructure:
    kids = list(children)
    return FamilyStructure(
        children_count=len(kids),
        living_children_count=sum(1 for c in kids if c.alive),
        sons=sum(1 for c in kids if c.sex == "male"),
        daughters=sum(1 for c in kids if c.sex == "female"),
    )


# -- births ------------------------------------------------------------------------------------


def check_birth(
    mother: PersonFacts,
    father: PersonFacts | None,
    *,
    birth_date: date,
    sex: str,
    today: date,
    id_birth_date: date | None = None,
    id_sex: str | None = None,
) -> None:
    """``id_birth_date`` and ``id_sex``: what the child's ID number says, if it has one."""
    if mother.sex != "female":
        raise _invalid("mother_id", "母亲应为女性居民", "The mother must be a woman")
    if father is not None and father.sex != "male":
        raise _invalid("father_id", "父亲应为男性居民", "The father must be a man")
    if birth_date > today:
        raise _invalid(
            "child.birth_date", "出生日期不能晚于今天", "The birth date is in the future"
        )
    parents = [mother] if father is None else [mother, father]
    if any(birth_date <= p.birth_date for p in parents):
        raise _invalid(
            "child.birth_date",
            "出生日期应晚于父母的出生日期",
            "The child must be born after the parents",
        )
    if mother.died_on is not None and mother.died_on < birth_date:
        raise _invalid(
            "child.birth_date",
            "母亲的死亡日期早于出生日期",
            "The mother died before the birth date",
        )
    if id_birth_date is not None and id_birth_date != birth_date:
        raise _invalid(
            "child.id_number",
            "身份证号中的出生日期与出生日期不符",
            "The ID number's birth date differs from the birth date",
        )
    if id_sex is not None and id_sex != sex:
        raise _invalid(
            "child.id_number",
            "身份证号中的性别与填报的性别不符",
            "The ID number's sex differs from the sex given",
        )


def family_for_birth(mothers_families: Iterable[FamilyFacts], father_id: str | None) -> str | None:
    """The mother's current family a newborn joins, if any.

    With a father reported, only a current family of the mother with him as husband; without
    one, the mother's most recent current family (the husband is presumed the father).
    """
    current = [f for f in mothers_families if f.current]
    if father_id is not None:
        current = [f for f in current if f.husband_id == father_id]
    if not current:
        return None
    return max(current, key=lambda f: (f.marriage_date, f.id)).id


# -- deaths ------------------------------------------------------------------------------------


def check_death(person: PersonFacts, date_of_death: date, today: date) -> None:
    if person.died_on is not None:
        raise RuleBroken(
            409,
            "already_dead",
            f"该居民的死亡已于 {person.died_on.isoformat()} 登记",
            f"This person's death was already recorded ({person.died_on.isoformat()})",
        )
    if date_of_death > today:
        raise _invalid(
            "date_of_death", "死亡日期不能晚于今天", "The date of death is in the future"
        )
    if date_of_death < person.birth_date:
        raise _invalid(
            "date_of_death", "死亡日期早于出生日期", "The date of death is before the birth date"
        )


def only_child_parents(deceased_id: str, families: Iterable[FamilyFacts]) -> list[str]:
    """The parents whose only child the deceased was: wife and husband of every family that
    has the deceased as its one and only child (a child who died earlier still counts as a
    child: parents of two children are not an only-child family)."""
    parents: list[str] = []
    for family in sorted(families, key=lambda f: (f.marriage_date, f.id)):
        if set(family.child_ids) == {deceased_id}:
            for parent in (family.wife_id, family.husband_id):
                if parent not in parents:
                    parents.append(parent)
    return parents


def surviving_spouses(deceased_id: str, families: Iterable[FamilyFacts]) -> list[str]:
    """The spouses in the deceased's current families: they become widowed (丧偶)."""
    out: list[str] = []
    for family in families:
        if not family.current:
            continue
        if family.wife_id == deceased_id and family.husband_id not in out:
            out.append(family.husband_id)
        elif family.husband_id == deceased_id and family.wife_id not in out:
            out.append(family.wife_id)
    return out
