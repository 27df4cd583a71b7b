"""Family, birth and death rules (no I/O): couples, children, structure, only child, widowing."""

from __future__ import annotations

from datetime import date

import pytest

from services.registry.domain.families import (
    FamilyFacts,
    PersonFacts,
    RuleBroken,
    check_birth,
    check_children,
    check_couple,
    check_death,
    check_new_child,
    couple_key,
    family_for_birth,
    marital_status_after_marriage,
    only_child_parents,
    structure,
    surviving_spouses,
)

TODAY = date(2025, 6, 1)
WIFE = PersonFacts("w", "female", date(1990, 3, 1))
HUSBAND = PersonFacts("h", "male", date(1988, 7, 9))
SON = PersonFacts("s", "male", date(2015, 1, 2))
DAUGHTER = PersonFacts("d", "female", date(2018, 8, 8), died_on=date(2020, 1, 1))


def broken(fn, *args, **kwargs) -> RuleBroken:  # type: ignore[no-untyped-def]
    with pytest.raises(RuleBroken) as info:
        fn(*args, **kwargs)
    return info.value


# -- couples -----------------------------------------------------------------------------------


def test_a_plausible_couple_passes() -> None:
    check_couple(WIFE, HUSBAND, date(2014, 5, 20), TODAY)


def test_the_same_person_cannot_marry_themselves() -> None:
    e = broken(check_couple, WIFE, WIFE, date(2014, 5, 20), TODAY)
    assert (e.status, e.code, e.field) == (422, "validation_failed", "husband_id")
    assert e.zh == "夫妻双方不能是同一人"


def test_wife_and_husband_have_the_recorded_sexes() -> None:
    e = broken(check_couple, HUSBAND, WIFE, date(2014, 5, 20), TODAY)
    assert e.field == "wife_id" and "女性" in e.zh
    e = broken(
        check_couple, WIFE, PersonFacts("x", "female", date(1980, 1, 1)), date(2014, 1, 1), TODAY
    )
    assert e.field == "husband_id" and "男性" in e.zh


def test_marriage_date_is_not_in_the_future_nor_before_a_birth() -> None:
    assert broken(check_couple, WIFE, HUSBAND, date(2025, 6, 2), TODAY).field == "marriage_date"
    check_couple(WIFE, HUSBAND, TODAY, TODAY)  # today itself is fine
    e = broken(check_couple, WIFE, HUSBAND, date(1990, 3, 1), TODAY)
    assert e.field == "marriage_date" and "出生" in e.zh


def test_a_spouse_may_have_died_since_but_not_before_the_marriage() -> None:
    late = PersonFacts("h", "male", date(1950, 1, 1), died_on=date(2010, 1, 1))
    check_couple(PersonFacts("w", "female", date(1952, 1, 1)), late, date(1975, 1, 1), TODAY)
    e = broken(
        check_couple, PersonFacts("w", "female", date(1952, 1, 1)), late, date(2011, 1, 1), TODAY
    )
    assert e.field == "husband_id" and "死亡" in e.zh


def test_couple_key_is_ordered_wife_then_husband() -> None:
    assert couple_key("w", "h") == "w:h" != couple_key("h", "w")


def test_marital_status_is_married_or_widowed_when_the_partner_died() -> None:
    dead = PersonFacts("h", "male", date(1950, 1, 1), died_on=date(2010, 1, 1))
    assert marital_status_after_marriage(WIFE, HUSBAND) == "married"
    assert marital_status_after_marriage(WIFE, dead) == "widowed"
    assert marital_status_after_marriage(dead, WIFE) == "married"


# -- children ----------------------------------------------------------------------------------


def test_children_are_distinct_not_spouses_and_younger_than_both_parents() -> None:
    check_children(WIFE, HUSBAND, [SON, DAUGHTER])
    assert broken(check_children, WIFE, HUSBAND, [SON, SON]).field == "children_ids.1"
    assert broken(check_children, WIFE, HUSBAND, [WIFE]).field == "children_ids.0"
    older = PersonFacts("o", "male", date(1989, 1, 1))  # older than the wife
    e = broken(check_children, WIFE, HUSBAND, [SON, older])
    assert e.field == "children_ids.1" and e.zh == "子女的出生日期应晚于父母的出生日期"


def test_linking_a_child_twice_is_a_conflict() -> None:
    family = FamilyFacts("f", "w", "h", date(2014, 5, 20), child_ids=("s",))
    e = broken(check_new_child, family, WIFE, HUSBAND, SON)
    assert (e.status, e.code) == (409, "child_already_linked")
    check_new_child(family, WIFE, HUSBAND, DAUGHTER)  # a deceased child may be linked


def test_structure_counts_children_living_sons_and_daughters() -> None:
    shape = structure([SON, DAUGHTER])
    assert (shape.children_count, shape.living_children_count) == (2, 1)
    assert (shape.sons, shape.daughters) == (1, 1)
    assert structure([]).children_count == 0


# -- births ------------------------------------------------------------------------------------


def test_a_birth_checks_the_parents_sexes_and_the_dates() -> None:
    born = date(2025, 5, 30)
    check_birth(WIFE, HUSBAND, birth_date=born, sex="female", today=TODAY)
    check_birth(WIFE, None, birth_date=TODAY, sex="male", today=TODAY)
    assert broken(check_birth, HUSBAND, None, birth_date=born, sex="male", today=TODAY).field == (
        "mother_id"
    )
    assert broken(check_birth, WIFE, WIFE, birth_date=born, sex="male", today=TODAY).field == (
        "father_id"
    )
    e = broken(check_birth, WIFE, HUSBAND, birth_date=date(2025, 6, 2), sex="male", today=TODAY)
    assert e.field == "child.birth_date" and e.zh == "出生日期不能晚于今天"
    e = broken(check_birth, WIFE, HUSBAND, birth_date=date(1989, 1, 1), sex="male", today=TODAY)
    assert e.field == "child.birth_date"


def test_a_mother_who_died_before_the_birth_date_is_refused() -> None:
    mother = PersonFacts("w", "female", date(1990, 3, 1), died_on=date(2025, 5, 1))
    check_birth(mother, None, birth_date=date(2025, 5, 1), sex="male", today=TODAY)
    e = broken(check_birth, mother, None, birth_date=date(2025, 5, 2), sex="male", today=TODAY)
    assert e.field == "child.birth_date"


def test_the_id_number_must_agree_with_the_birth_date_and_sex_given() -> None:
    born = date(2025, 5, 30)
    check_birth(
        WIFE, None, birth_date=born, sex="male", today=TODAY, id_birth_date=born, id_sex="male"
    )
    e = broken(
        check_birth,
        WIFE,
        None,
        birth_date=born,
        sex="male",
        today=TODAY,
        id_birth_date=date(2025, 5, 29),
        id_sex="male",
    )
    assert e.field == "child.id_number" and "出生日期" in e.zh
    e = broken(check_birth, WIFE, None, birth_date=born, sex="male", today=TODAY, id_sex="female")
    assert e.field == "child.id_number" and "性别" in e.zh


def test_a_newborn_joins_the_mothers_latest_current_family() -> None:
    first = FamilyFacts("f1", "w", "h1", date(2010, 1, 1))
    second = FamilyFacts("f2", "w", "h2", date(2020, 1, 1))
    gone = FamilyFacts("f3", "w", "h3", date(2022, 1, 1), status="dissolved")
    assert family_for_birth([first, second, gone], None) == "f2"
    assert family_for_birth([], None) is None
    assert family_for_birth([gone], None) is None


def test_with_a_father_reported_only_his_family_with_the_mother_counts() -> None:
    first = FamilyFacts("f1", "w", "h1", date(2010, 1, 1))
    second = FamilyFacts("f2", "w", "h2", date(2020, 1, 1))
    assert family_for_birth([first, second], "h1") == "f1"
    assert family_for_birth([first, second], "someone-else") is None


# -- deaths ------------------------------------------------------------------------------------


def test_a_death_is_recorded_once_within_the_persons_lifetime() -> None:
    check_death(WIFE, TODAY, TODAY)
    check_death(WIFE, WIFE.birth_date, TODAY)  # died the day she was born
    e = broken(check_death, DAUGHTER, date(2020, 1, 1), TODAY)
    assert (e.status, e.code) == (409, "already_dead")
    assert broken(check_death, WIFE, date(2025, 6, 2), TODAY).field == "date_of_death"
    assert broken(check_death, WIFE, date(1990, 2, 28), TODAY).field == "date_of_death"


def test_only_child_of_lists_the_parents_of_a_family_with_exactly_that_one_child() -> None:
    only = FamilyFacts("f1", "w", "h", date(2010, 1, 1), child_ids=("s",))
    assert only_child_parents("s", [only]) == ["w", "h"]


def test_parents_of_two_children_are_not_an_only_child_family_even_if_one_died() -> None:
    two = FamilyFacts("f1", "w", "h", date(2010, 1, 1), child_ids=("s", "d"))
    assert only_child_parents("s", [two]) == []


def test_only_child_of_is_empty_for_a_spouse_or_someone_in_no_family() -> None:
    only = FamilyFacts("f1", "w", "h", date(2010, 1, 1), child_ids=("s",))
    assert only_child_parents("w", [only]) == []
    assert only_child_parents("s", []) == []


def test_only_child_of_merges_families_without_repeating_a_parent() -> None:
    # The mother remarried: the child is the only child of both her families.
    a = FamilyFacts("a", "w", "h1", date(2010, 1, 1), child_ids=("s",))
    b = FamilyFacts("b", "w", "h2", date(2016, 1, 1), child_ids=("s",))
    assert only_child_parents("s", [b, a]) == ["w", "h1", "h2"]


def test_surviving_spouses_of_current_families_are_widowed() -> None:
    current = FamilyFacts("f1", "w", "h", date(2010, 1, 1))
    dissolved = FamilyFacts("f0", "w", "old", date(2000, 1, 1), status="dissolved")
    assert surviving_spouses("w", [dissolved, current]) == ["h"]
    assert surviving_spouses("h", [current]) == ["w"]
    assert surviving_spouses("s", [current]) == []
