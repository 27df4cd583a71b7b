"""Benefit programs as data, and which certificate founds which enrollment."""

from __future__ import annotations

import tomllib
from pathlib import Path

from services.benefits.domain.programs import Program, parse_programs, programs_founded_by

PROGRAMS_FILE = Path(__file__).resolve().parents[1] / "programs.toml"


def test_real_programs_file_parses() -> None:
    """The shipped programs.toml still offers the only-child parents' reward by certificate."""
    programs = parse_programs(tomllib.loads(PROGRAMS_FILE.read_text("utf-8")))
    reward = programs["only_child_parent_reward"]
    assert (reward.code, reward.name, reward.founded_by_certificate) == (
        "only_child_parent_reward",
        "独生子女父母奖励费",
        "only_child_honor",
    )
    assert isinstance(reward, Program)


def test_real_honor_certificate_founds_the_reward() -> None:
    """Issuing an only-child honor certificate enrolls its holders in the reward."""
    programs = parse_programs(tomllib.loads(PROGRAMS_FILE.read_text("utf-8")))
    assert [p.code for p in programs_founded_by("only_child_honor", programs)] == [
        "only_child_parent_reward"
    ]


def test_program_without_a_founding_certificate() -> None:
    """A program may be founded by no certificate; extra keys in the file are ignored."""
    programs = parse_programs(
        {"programs": [{"code": "elderly_care", "name": "计生特扶", "source": "省条例"}]}
    )
    assert programs["elderly_care"].founded_by_certificate is None
    assert programs_founded_by("only_child_honor", programs) == []


def test_every_program_founded_by_a_certificate_is_returned_in_order() -> None:
    """One certificate may found several programs; others are left out."""
    programs = parse_programs(
        {
            "programs": [
                {"code": "a", "name": "A", "founded_by_certificate": "honor"},
                {"code": "b", "name": "B", "founded_by_certificate": "other"},
                {"code": "c", "name": "C", "founded_by_certificate": "honor"},
                {"code": "d", "name": "D"},
            ]
        }
    )
    assert [p.code for p in programs_founded_by("honor", programs)] == ["a", "c"]
    assert [p.code for p in programs_founded_by("other", programs)] == ["b"]
    assert programs_founded_by("unknown", programs) == []


def test_no_programs() -> None:
    """A file without programs founds nothing."""
    assert parse_programs({}) == {}
    assert programs_founded_by("only_child_honor", {}) == []
