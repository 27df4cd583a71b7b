"""Certificate applications (证件申请): the catalogue and the review rules, no I/O."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Any

from shared.auth import Role


class Status(StrEnum):
    submitted = "submitted"
    materials_required = "materials_required"  # 一次性告知: waiting for missing materials
    in_review = "in_review"
    returned = "returned"
    rejected = "rejected"
    issued = "issued"
    revoked = "revoked"


class Decision(StrEnum):
    approve = "approve"
    return_ = "return"
    reject = "reject"


# Who reviews at each level (村 / 乡镇 / 县).
LEVEL_ROLES: dict[str, Role] = {
    "village": Role.village_worker,
    "township": Role.township_officer,
    "county": Role.county_officer,
}


LEVEL_NAMES_ZH = {"village": "村级", "township": "乡镇级", "county": "县级"}


@dataclass(frozen=True)
class Material:
    code: str
    name: str
    required: bool = True


@dataclass(frozen=True)
class CertificateType:
    code: str
    name: str
    enabled: bool
    time_limit_working_days: int
    levels: tuple[str, ...]
    materials: tuple[Material, ...]
    fee_fen: int
    validity_years: int | None  # None: valid without end
    basis: str = ""

    def missing_materials(self, provided: set[str]) -> list[Material]:
        return [m for m in self.materials if m.required and m.code not in provided]


def parse_catalogue(raw: dict[str, Any]) -> dict[str, CertificateType]:
    out: dict[str, CertificateType] = {}
    order = list(LEVEL_ROLES)
    for t in raw.get("types", []):
        levels = tuple(t["levels"])
        if t["code"] in out:
            raise ValueError(f"certificate type {t['code']} is listed twice")
        unknown = set(levels) - set(LEVEL_ROLES)
        # Levels run village -> township -> county; a county may drop one, not reorder them.
        if not levels or unknown or list(levels) != sorted(set(levels), key=order.index):
            raise ValueError(f"certificate type {t['code']}: bad review levels {levels}")
        out[t["code"]] = CertificateType(
            code=t["code"],
            name=t["name"],
            enabled=bool(t.get("enabled", True)),
            time_limit_working_days=int(t["time_limit_working_days"]),
            levels=levels,
            materials=tuple(Material(**m) for m in t.get("materials", [])),
            fee_fen=int(t.get("fee_fen", 0)),
            validity_years=t.get("validity_years"),
            basis=t.get("basis", ""),
        )
    return out


def certificate_number(county_code: str, year: int, sequence: int) -> str:
    """``<county code>-<year>-<sequence>``: e.g. 330102-2026-000123. Sequences never repeat."""
    return f"{county_code}-{year}-{sequence:06d}"


def valid_until(issued_on: date, validity_years: int | None) -> date | None:
    if validity_years is None:
        return None
    try:
        return issued_on.replace(year=issued_on.year + validity_years)
    except ValueError:  # issued on 29 February
        return issued_on.replace(year=issued_on.year + validity_years, day=28)


def verification_code(key: bytes, certificate_no: str) -> str:
    """Printed on the certificate (and in its QR code): HMAC of the number, 16 hex digits.

    Without the county's key nobody can compute a valid code for a number, so a forged or
    altered certificate fails verification.
    """
    return hmac.new(key, certificate_no.encode(), hashlib.sha256).hexdigest()[:16].upper()


def verification_code_matches(key: bytes, certificate_no: str, code: str) -> bool:
    return hmac.compare_digest(verification_code(key, certificate_no), code.strip().upper())


NEXT_STEP_ZH: dict[Status, str] = {
    Status.submitted: "等待审核",
    Status.in_review: "审核中",
    Status.materials_required: "请按一次性告知补充材料",
    Status.returned: "已退回，请按审核意见修改后重新提交",
    Status.rejected: "不予批准，可查看理由",
    Status.issued: "已办结，可领取或下载证件",
    Status.revoked: "证件已注销",
}


@dataclass(frozen=True)
class LoggedAction:
    """One entry of an application's append-only log."""

    action: str  # submit | supplement | approve | return | reject | revoke | collect
    to_status: str


def replay(log: list[LoggedAction]) -> tuple[Status, int]:
    """The state an application's log leads to: its status and the level it has reached.

    The stored status is a projection of this log, written in the same transaction as each
    entry; replaying the log must always give it back.
    """
    status: Status | None = None
    level_index = 0
    for entry in log:
        if entry.action == "approve" and entry.to_status == Status.in_review:
            level_index += 1
        status = Status(entry.to_status)
    if status is None:
        raise ValueError("an application's log starts with its submission")
    return status, level_index


class ReviewRefused(Exception):
    def __init__(self, code: str, zh: str, en: str) -> None:
        super().__init__(en)
        self.code, self.zh, self.en = code, zh, en


@dataclass(frozen=True)
class ReviewOutcome:
    status: Status
    level_index: int
    issue_certificate: bool


def waiting_level(status: Status, level_index: int, levels: tuple[str, ...]) -> str | None:
    """The level an application waits at, if it waits for a review at all."""
    if status in (Status.submitted, Status.in_review) and level_index < len(levels):
        return levels[level_index]
    return None


def review(
    status: Status, level_index: int, levels: tuple[str, ...], decision: Decision, role: Role
) -> ReviewOutcome:
    """Each approval moves the application up one level; the last one issues the certificate."""
    if status not in (Status.submitted, Status.in_review):
        raise ReviewRefused(
            "invalid_transition",
            f"当前状态（{status.value}）不能审核",
            f"An application in status {status.value} cannot be reviewed",
        )
    if level_index >= len(levels):
        raise ReviewRefused(
            "level_not_in_catalogue",
            "该申请所处的审核层级已从证件目录中删除，请管理员处理",
            "The application's review level was removed from the catalogue; an admin must act",
        )
    level = levels[level_index]
    if role is not Role.admin and LEVEL_ROLES[level] is not role:
        raise ReviewRefused(
            "wrong_review_level",
            f"本申请当前处于{LEVEL_NAMES_ZH[level]}审核，您的角色不能审核",
            f"The application is at the {level} level; your role cannot review it",
        )
    if decision is Decision.reject:
        return ReviewOutcome(Status.rejected, level_index, False)
    if decision is Decision.return_:
        return ReviewOutcome(Status.returned, level_index, False)
    if level_index + 1 < len(levels):
        return ReviewOutcome(Status.in_review, level_index + 1, False)
    return ReviewOutcome(Status.issued, level_index, True)


# A review decision as the applicant reads it (the ``decision_name`` of application.decided).
DECISIONS_ZH: dict[str, str] = {
    "approve": "审核通过",
    "return": "退回补正",
    "reject": "不予批准",
}
