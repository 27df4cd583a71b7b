"""Resident ID numbers (居民身份证号, GB 11643): validated, and birth date and sex derived."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Literal

from stdnum import exceptions as stdnum_errors
from stdnum.cn import ric

from shared.errors import LocalizedValueError

Sex = Literal["male", "female"]


class InvalidIdNumber(LocalizedValueError):
    """The message is zh-CN; ``english`` carries the English one."""


@dataclass(frozen=True)
class IdentityFacts:
    id_number: str
    birth_date: date
    sex: Sex


def parse_id_number(value: str, today: date | None = None) -> IdentityFacts:
    """Validate and read an ID number; with ``today``, a birth date after it is refused too.

    Without ``today`` (a request validator, a search) only shape and checksum are checked:
    the use case checks the birth date on its own business day (``uow.clock``).
    """
    try:
        number = ric.validate(value)
    except stdnum_errors.InvalidChecksum as e:
        raise InvalidIdNumber("身份证号校验码错误", "ID number checksum is wrong") from e
    except stdnum_errors.InvalidLength as e:
        raise InvalidIdNumber("身份证号应为 18 位", "ID number must have 18 characters") from e
    except stdnum_errors.InvalidFormat as e:
        raise InvalidIdNumber("身份证号格式错误", "ID number format is wrong") from e
    except stdnum_errors.InvalidComponent as e:
        raise InvalidIdNumber(
            "身份证号中的出生日期或地区码无效", "ID number has an invalid birth date or region"
        ) from e
    except stdnum_errors.ValidationError as e:
        raise InvalidIdNumber("身份证号无效", "ID number is invalid") from e
    birth = ric.get_birth_date(number)
    if today is not None and birth > today:
        raise InvalidIdNumber(
            "身份证号中的出生日期晚于今天", "ID number birth date is in the future"
        )
    # The 17th digit (sequence code) is odd for men and even for women.
    sex: Sex = "male" if int(number[16]) % 2 == 1 else "female"
    return IdentityFacts(id_number=number, birth_date=birth, sex=sex)
