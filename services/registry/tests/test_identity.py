"""Resident ID numbers (GB 11643): validation, and the birth date and sex derived from them."""

from __future__ import annotations

from datetime import date

import pytest
from stdnum.cn import ric

from services.registry.domain.identity import IdentityFacts, InvalidIdNumber, parse_id_number

TODAY = date(2025, 6, 1)


def with_check_digit(base17: str) -> str:
    """A full 18-character number: ``base17`` plus its GB 11643 check digit."""
    assert len(base17) == 17
    return base17 + ric.calc_check_digit(base17 + "0")


def test_design_example_is_valid_and_derives_a_woman_born_1949_12_31() -> None:
    """The DESIGN example 11010519491231002X is a valid number (check digit X)."""
    facts = parse_id_number("11010519491231002X", today=TODAY)
    assert facts == IdentityFacts(
        id_number="11010519491231002X", birth_date=date(1949, 12, 31), sex="female"
    )


def test_check_digit_x_is_accepted_lowercase_and_normalised() -> None:
    """A lowercase x and surrounding spaces are tolerated; the stored number is canonical."""
    facts = parse_id_number(" 11010519491231002x ", today=TODAY)
    assert facts.id_number == "11010519491231002X"


@pytest.mark.parametrize(
    ("sequence", "sex"),
    [("001", "male"), ("123", "male"), ("999", "male"), ("000", "female"), ("122", "female")],
)
def test_sex_comes_from_the_parity_of_the_17th_digit(sequence: str, sex: str) -> None:
    """The 17th digit is odd for men and even for women."""
    number = with_check_digit("110105" + "19900101" + sequence)
    assert parse_id_number(number, today=TODAY).sex == sex


def test_birth_date_comes_from_digits_7_to_14() -> None:
    """Digits 7-14 are the birth date YYYYMMDD."""
    number = with_check_digit("110105" + "20000229" + "011")
    assert parse_id_number(number, today=TODAY).birth_date == date(2000, 2, 29)


def test_born_today_is_accepted() -> None:
    """A baby registered on the day of birth is valid (the limit is strictly in the future)."""
    number = with_check_digit("110105" + "20250601" + "012")
    assert parse_id_number(number, today=date(2025, 6, 1)).birth_date == date(2025, 6, 1)


def test_birth_date_after_today_is_refused() -> None:
    """A number whose birth date is tomorrow cannot belong to anyone yet."""
    number = with_check_digit("110105" + "20250602" + "012")
    with pytest.raises(InvalidIdNumber) as e:
        parse_id_number(number, today=date(2025, 6, 1))
    assert str(e.value) == "身份证号中的出生日期晚于今天"
    assert e.value.english == "ID number birth date is in the future"


def test_wrong_checksum_is_refused() -> None:
    """Changing the check digit of a valid number makes it invalid."""
    with pytest.raises(InvalidIdNumber) as e:
        parse_id_number("110105194912310021", today=TODAY)
    assert str(e.value) == "身份证号校验码错误"
    assert e.value.english == "ID number checksum is wrong"


def test_swapped_digits_fail_the_checksum() -> None:
    """A typical typing mistake (two digits swapped) is caught by the checksum."""
    valid = with_check_digit("110105" + "19900101" + "123")
    swapped = valid[:14] + valid[15] + valid[14] + valid[16:]
    assert swapped != valid
    with pytest.raises(InvalidIdNumber, match="校验码"):
        parse_id_number(swapped, today=TODAY)


@pytest.mark.parametrize(
    "value",
    ["", "11010519491231002", "11010519491231002X0", "110105491231002"],
    ids=["empty", "17-chars", "19-chars", "15-digit-first-generation"],
)
def test_wrong_length_is_refused(value: str) -> None:
    """Only 18-character numbers are accepted."""
    with pytest.raises(InvalidIdNumber) as e:
        parse_id_number(value, today=TODAY)
    assert str(e.value) == "身份证号应为 18 位"
    assert e.value.english == "ID number must have 18 characters"


@pytest.mark.parametrize(
    "value", ["1101051949123100AX", "X10105194912310021", "11010519491231-02X"]
)
def test_non_digits_before_the_check_digit_are_refused(value: str) -> None:
    """The first 17 characters must be digits."""
    with pytest.raises(InvalidIdNumber) as e:
        parse_id_number(value, today=TODAY)
    assert str(e.value) == "身份证号格式错误"
    assert e.value.english == "ID number format is wrong"


@pytest.mark.parametrize("birth", ["19490230", "19491301", "19490000", "19000229"])
def test_impossible_birth_date_is_refused(birth: str) -> None:
    """A birth date that does not exist (with a correct check digit) is refused."""
    number = with_check_digit("110105" + birth + "002")
    with pytest.raises(InvalidIdNumber) as e:
        parse_id_number(number, today=TODAY)
    assert str(e.value) == "身份证号中的出生日期或地区码无效"
    assert e.value.english == "ID number has an invalid birth date or region"


def test_unknown_region_code_is_refused() -> None:
    """A region code that is no administrative division is refused."""
    number = with_check_digit("000000" + "19900101" + "123")
    with pytest.raises(InvalidIdNumber, match="地区码"):
        parse_id_number(number, today=TODAY)


def test_invalid_id_number_is_a_value_error() -> None:
    """Validators raising it turn into a 422 field error, not a 500."""
    with pytest.raises(ValueError):
        parse_id_number("123", today=TODAY)
