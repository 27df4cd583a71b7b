"""What every registry use case shares: the catalogue, ID numbers, record access."""

from __future__ import annotations

import tomllib
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any

from services.registry.domain import applications as rules
from services.registry.domain.identity import IdentityFacts, InvalidIdNumber, parse_id_number
from services.registry.models import Person
from shared.auth import Principal, Role
from shared.errors import Problem

CATALOGUE_FILE = Path(__file__).parent.parent / "certificate_types.toml"


@lru_cache(maxsize=1)
def _catalogue_file() -> dict[str, Any]:
    return tomllib.loads(CATALOGUE_FILE.read_text("utf-8"))


@lru_cache(maxsize=1)
def catalogue() -> dict[str, rules.CertificateType]:
    return rules.parse_catalogue(_catalogue_file())


@lru_cache(maxsize=1)
def fallback_holidays() -> frozenset[date]:
    """Holidays for years the official calendar library does not cover yet."""
    return frozenset(date.fromisoformat(d) for d in _catalogue_file().get("fallback_holidays", []))


def identity_or_422(id_number: str, today: date, field: str) -> IdentityFacts:
    """The ID number's facts on the business day ``today`` (a birth after it is refused)."""
    try:
        return parse_id_number(id_number, today=today)
    except InvalidIdNumber as e:
        raise Problem(
            422,
            "validation_failed",
            f"{field}: {e}",
            f"{field}: {e.english}",
            errors=[{"field": field, "message": str(e)}],
        ) from e


def require_person_access(principal: Principal, person: Person) -> None:
    if principal.role is Role.resident:
        if principal.person_id != person.id:
            raise Problem(
                403, "forbidden", "只能查看本人的记录", "Residents see only their own record"
            )
        return
    principal.require_region(person.region_code)
