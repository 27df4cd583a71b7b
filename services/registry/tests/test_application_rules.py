"""Certificate applications: the catalogue and the multi-level review rules (no I/O)."""

from __future__ import annotations

import tomllib
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from services.registry.domain.applications import (
    CertificateType,
    Decision,
    LoggedAction,
    Material,
    ReviewOutcome,
    ReviewRefused,
    Status,
    certificate_number,
    parse_catalogue,
    replay,
    review,
    valid_until,
)
from shared.auth import Role

CATALOGUE_FILE = Path(__file__).resolve().parents[1] / "certificate_types.toml"

THREE_LEVELS = ("village", "township", "county")
TWO_LEVELS = ("village", "township")


def type_entry(**overrides: Any) -> dict[str, Any]:
    """A minimal catalogue entry; keys left out take the parser's defaults."""
    entry: dict[str, Any] = {
        "code": "only_child_honor",
        "name": "独生子女父母光荣证",
        "time_limit_working_days": 20,
        "levels": ["village", "township"],
    }
    entry.update(overrides)
    return entry


# -- the catalogue ---------------------------------------------------------------------------


def test_real_catalogue_file_parses() -> None:
    """The shipped certificate_types.toml is a valid catalogue."""
    catalogue = parse_catalogue(tomllib.loads(CATALOGUE_FILE.read_text("utf-8")))
    honor = catalogue["only_child_honor"]
    assert honor.name == "独生子女父母光荣证"
    assert honor.enabled is True
    assert honor.levels == TWO_LEVELS
    assert honor.time_limit_working_days == 20
    assert honor.fee_fen == 0
    assert honor.validity_years is None
    assert [m.code for m in honor.materials] == [
        "household_register",
        "marriage_certificate",
        "child_birth_certificate",
    ]
    assert all(m.required for m in honor.materials)
    assert honor.basis


def test_defaults_of_a_catalogue_entry() -> None:
    """Enabled, free, no materials, valid without end."""
    ctype = parse_catalogue({"types": [type_entry(code="birth_permit")]})["birth_permit"]
    assert ctype == CertificateType(
        code="birth_permit",
        name="独生子女父母光荣证",
        enabled=True,
        time_limit_working_days=20,
        levels=TWO_LEVELS,
        materials=(),
        fee_fen=0,
        validity_years=None,
        basis="",
    )


def test_disabled_type_and_optional_material_are_read() -> None:
    """``enabled = false`` and ``required = false`` are kept."""
    ctype = parse_catalogue(
        {
            "types": [
                type_entry(
                    enabled=False,
                    materials=[{"code": "photo", "name": "照片", "required": False}],
                )
            ]
        }
    )["only_child_honor"]
    assert ctype.enabled is False
    assert ctype.materials == (Material("photo", "照片", required=False),)


def test_empty_catalogue() -> None:
    """A file without types offers no certificate."""
    assert parse_catalogue({}) == {}


@pytest.mark.parametrize(
    "levels", [[], ["province"], ["village", "city"]], ids=["none", "unknown", "one-unknown"]
)
def test_bad_review_levels_are_refused(levels: list[str]) -> None:
    """Every type needs at least one review level, each one known."""
    with pytest.raises(ValueError, match="only_child_honor: bad review levels"):
        parse_catalogue({"types": [type_entry(levels=levels)]})


def test_single_level_catalogue_is_accepted() -> None:
    """A county may drop levels (简政放权) down to one."""
    ctype = parse_catalogue({"types": [type_entry(levels=["county"])]})["only_child_honor"]
    assert ctype.levels == ("county",)


def test_duplicate_type_code_is_refused() -> None:
    """Two catalogue entries with one code are a configuration error, not a silent overwrite."""
    with pytest.raises(ValueError):
        parse_catalogue({"types": [type_entry(fee_fen=0), type_entry(fee_fen=500)]})


@pytest.mark.parametrize(
    "levels", [["township", "village"], ["village", "village"]], ids=["reversed", "repeated"]
)
def test_levels_must_be_distinct_and_in_village_township_county_order(levels: list[str]) -> None:
    """Levels run village -> township -> county; a county may drop one, not reorder them."""
    with pytest.raises(ValueError):
        parse_catalogue({"types": [type_entry(levels=levels)]})


# -- materials (一次性告知) ---------------------------------------------------------------------


def honor_type() -> CertificateType:
    return parse_catalogue(
        {
            "types": [
                type_entry(
                    materials=[
                        {"code": "household_register", "name": "户口簿"},
                        {"code": "photo", "name": "照片", "required": False},
                        {"code": "marriage_certificate", "name": "结婚证"},
                    ]
                )
            ]
        }
    )["only_child_honor"]


def test_missing_materials_lists_every_missing_required_one_in_catalogue_order() -> None:
    """The applicant is told everything missing at once, in catalogue order."""
    assert [m.code for m in honor_type().missing_materials(set())] == [
        "household_register",
        "marriage_certificate",
    ]


def test_optional_and_provided_materials_are_not_missing() -> None:
    """Only required materials not provided are missing; extra ones are ignored."""
    ctype = honor_type()
    assert [m.code for m in ctype.missing_materials({"household_register", "other"})] == [
        "marriage_certificate"
    ]
    assert ctype.missing_materials({"household_register", "marriage_certificate"}) == []


# -- review ----------------------------------------------------------------------------------


def test_each_approval_moves_up_one_level_and_the_last_issues() -> None:
    """Village, then township, then county: the county's approval issues the certificate."""
    first = review(Status.submitted, 0, THREE_LEVELS, Decision.approve, Role.village_worker)
    assert first == ReviewOutcome(Status.in_review, 1, False)
    second = review(first.status, 1, THREE_LEVELS, Decision.approve, Role.township_officer)
    assert second == ReviewOutcome(Status.in_review, 2, False)
    last = review(second.status, 2, THREE_LEVELS, Decision.approve, Role.county_officer)
    assert last == ReviewOutcome(Status.issued, 2, True)


def test_two_level_catalogue_issues_at_the_township() -> None:
    """With the county level dropped, the township's approval is the last one."""
    outcome = review(Status.in_review, 1, TWO_LEVELS, Decision.approve, Role.township_officer)
    assert outcome == ReviewOutcome(Status.issued, 1, True)


def test_single_level_issues_on_the_first_approval() -> None:
    """With one level, the first approval of a submitted application issues it."""
    outcome = review(Status.submitted, 0, ("county",), Decision.approve, Role.county_officer)
    assert outcome == ReviewOutcome(Status.issued, 0, True)


@pytest.mark.parametrize(
    ("decision", "status"),
    [(Decision.return_, Status.returned), (Decision.reject, Status.rejected)],
)
@pytest.mark.parametrize("level_index", [0, 1, 2])
def test_return_and_reject_stop_at_the_current_level(
    decision: Decision, status: Status, level_index: int
) -> None:
    """Return or reject ends this round at the level where it happened; nothing is issued."""
    role = [Role.village_worker, Role.township_officer, Role.county_officer][level_index]
    start = Status.submitted if level_index == 0 else Status.in_review
    outcome = review(start, level_index, THREE_LEVELS, decision, role)
    assert outcome == ReviewOutcome(status, level_index, False)


def test_decision_values_match_the_api_contract() -> None:
    """The API sends "approve", "return", "reject"."""
    assert [d.value for d in Decision] == ["approve", "return", "reject"]
    assert Decision("return") is Decision.return_


@pytest.mark.parametrize(
    ("level_index", "role"),
    [
        (0, Role.township_officer),
        (0, Role.county_officer),
        (0, Role.resident),
        (0, Role.village_agent),
        (1, Role.village_worker),
        (1, Role.county_officer),
        (2, Role.township_officer),
        (2, Role.bureau_system),
    ],
)
def test_wrong_role_for_the_level_is_refused(level_index: int, role: Role) -> None:
    """Only the level's own role reviews it: no skipping up or down."""
    start = Status.submitted if level_index == 0 else Status.in_review
    with pytest.raises(ReviewRefused) as e:
        review(start, level_index, THREE_LEVELS, Decision.approve, role)
    assert e.value.code == "wrong_review_level"
    assert THREE_LEVELS[level_index] in e.value.en
    assert ["村级", "乡镇级", "县级"][level_index] in e.value.zh


@pytest.mark.parametrize("level_index", [0, 1, 2])
@pytest.mark.parametrize("decision", list(Decision))
def test_admin_may_review_any_level(level_index: int, decision: Decision) -> None:
    """An admin acts at whatever level the application is at."""
    outcome = review(Status.in_review, level_index, THREE_LEVELS, decision, Role.admin)
    expected = {
        Decision.approve: Status.in_review if level_index < 2 else Status.issued,
        Decision.return_: Status.returned,
        Decision.reject: Status.rejected,
    }[decision]
    assert outcome.status is expected


@pytest.mark.parametrize(
    "status",
    [Status.materials_required, Status.returned, Status.rejected, Status.issued, Status.revoked],
)
@pytest.mark.parametrize("role", [Role.village_worker, Role.admin])
def test_statuses_that_cannot_be_reviewed_are_refused(status: Status, role: Role) -> None:
    """Only submitted or in-review applications are reviewed, even by an admin."""
    with pytest.raises(ReviewRefused) as e:
        review(status, 0, THREE_LEVELS, Decision.approve, role)
    assert e.value.code == "invalid_transition"
    assert status.value in e.value.zh
    assert status.value in e.value.en


def test_status_is_checked_before_the_role() -> None:
    """An issued application answers "invalid transition" whoever asks."""
    with pytest.raises(ReviewRefused) as e:
        review(Status.issued, 0, THREE_LEVELS, Decision.approve, Role.resident)
    assert e.value.code == "invalid_transition"


def test_level_dropped_from_the_catalogue_is_refused_not_a_crash() -> None:
    """An application at a level the catalogue no longer has is refused with a ReviewRefused."""
    with pytest.raises(ReviewRefused):
        review(Status.in_review, 2, TWO_LEVELS, Decision.approve, Role.county_officer)


def test_certificate_numbers_are_county_year_and_six_digit_sequence() -> None:
    """<county code>-<year>-<sequence>: sortable, and unique as long as the sequence is."""
    assert certificate_number("330102", 2026, 1) == "330102-2026-000001"
    assert certificate_number("330102", 2027, 123456) == "330102-2027-123456"


def test_validity_counts_whole_years_and_survives_29_february() -> None:
    assert valid_until(date(2026, 3, 1), None) is None
    assert valid_until(date(2026, 3, 1), 3) == date(2029, 3, 1)
    assert valid_until(date(2028, 2, 29), 3) == date(2031, 2, 28)


def test_replaying_the_log_gives_status_and_level() -> None:
    """Approvals move the level up; a return and its supplement resume at the same level."""
    log = [
        LoggedAction("submit", "submitted"),
        LoggedAction("approve", "in_review"),
        LoggedAction("return", "returned"),
        LoggedAction("supplement", "in_review"),
    ]
    assert replay(log) == (Status.in_review, 1)
    assert replay([*log, LoggedAction("approve", "issued")]) == (Status.issued, 1)
    with pytest.raises(ValueError):
        replay([])
