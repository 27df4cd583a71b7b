"""Benefit programs as data, and which certificate founds which enrollment (no I/O)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Program:
    code: str
    name: str
    founded_by_certificate: str | None


def parse_programs(raw: dict[str, Any]) -> dict[str, Program]:
    return {
        p["code"]: Program(p["code"], p["name"], p.get("founded_by_certificate"))
        for p in raw.get("programs", [])
    }


def programs_founded_by(certificate_type: str, programs: dict[str, Program]) -> list[Program]:
    return [p for p in programs.values() if p.founded_by_certificate == certificate_type]
