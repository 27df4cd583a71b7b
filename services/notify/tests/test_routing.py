"""Routing as data (routing.toml, parsed strictly) and template rendering (lenient)."""

from __future__ import annotations

import tomllib
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.notify.domain.routing import parse_routing, render, yuan
from services.notify.events import routing
from services.notify.views import VIEWS

ROUTING_FILE = Path(__file__).resolve().parents[1] / "routing.toml"

# DESIGN §3 and the issue: every event that tells a person something, and whom.
TOLD = {
    "lingju.registry.application.materials_requested": {
        "person:applicant_id",
        "staff:submitted_by",
    },
    "lingju.registry.application.decided": {"person:applicant_id", "staff:submitted_by"},
    "lingju.registry.application.overdue": {
        "officers:village_worker",
        "officers:township_officer",
        "officers:county_officer",
    },
    "lingju.registry.certificate.issued": {"person:holder_ids", "staff:submitted_by"},
    "lingju.registry.certificate.revoked": {"person:holder_ids"},
    "lingju.benefits.enrollment.activated": {"person:payee_id"},
    "lingju.benefits.enrollment.suspended": {"person:payee_id"},
    "lingju.benefits.enrollment.resumed": {"person:payee_id"},
    "lingju.benefits.enrollment.ended": {"person:payee_id"},
    "lingju.benefits.payment.disbursed": {"person:payee_id"},
    "lingju.benefits.payment.failed": {"person:payee_id"},
    "lingju.benefits.claim.decided": {"person:person_id"},
    "lingju.visits.task.due": {"staff:assignee", "person:person_id"},
    "lingju.visits.task.overdue": {"staff:assignee"},
    "lingju.visits.assignment.changed": {"staff:assignee_sub", "staff:previous_assignee_sub"},
    "lingju.visits.appointment.booked": {"person:person_id"},
    "lingju.visits.appointment.rescheduled": {"person:person_id"},
    "lingju.visits.appointment.cancelled": {"person:person_id"},
    "lingju.visits.appointment.reminder": {"person:person_id"},
}


def test_every_event_that_tells_someone_is_routed_to_whom_it_should() -> None:
    r = routing()
    assert set(r.routes) == set(TOLD) == set(VIEWS)
    for event, expected in TOLD.items():
        whom = {
            f"{spec.kind}:{spec.role if spec.kind == 'officers' else spec.field}"
            for route in r.routes[event]
            for spec in route.recipients
        }
        assert whom == expected, event
        for route in r.routes[event]:
            assert route.channels[0] == "app", "the inbox keeps what everyone was told"
            fields = set(VIEWS[event].model_fields)
            assert {s.field for s in route.recipients} <= fields, event
            assert set(route.when) <= fields, event


def test_decisions_route_by_what_was_decided() -> None:
    r = routing()
    decided = "lingju.registry.application.decided"
    assert [x.template for x in r.for_event(decided, {"decision": "return"})] == [
        "application_returned"
    ]
    assert [x.template for x in r.for_event(decided, {"decision": "reject"})] == [
        "application_rejected"
    ]
    # An intermediate approval tells nobody; the certificate's issue does.
    assert r.for_event(decided, {"decision": "approve"}) == []
    overdue = "lingju.registry.application.overdue"
    village = r.for_event(overdue, {"level": "village"})
    assert [(s.role, s.digits) for x in village for s in x.recipients] == [
        ("village_worker", 12),
        ("township_officer", 9),
    ]
    # Waiting on the applicant (returned, materials asked for): no level, nobody's backlog.
    assert r.for_event(overdue, {"level": None}) == []
    township = r.for_event(overdue, {"level": "township"})
    assert [s.role for x in township for s in x.recipients] == [
        "township_officer",
        "county_officer",
    ]


def test_categories_critical_and_digests() -> None:
    r = routing()
    assert {c for c, cat in r.categories.items() if cat.critical} == {"appointment_change"}
    digests = {x.template: x.digest for rs in r.routes.values() for x in rs if x.digest}
    assert digests == {"task_due_worker": "due_visits", "task_overdue_worker": "due_visits"}
    important = {x.template for rs in r.routes.values() for x in rs if x.important}
    assert "payment_failed" in important and "materials_requested" in important


def _minimal(**route: Any) -> dict[str, Any]:
    base = {
        "event": "lingju.benefits.payment.failed",
        "template": "t",
        "category": "c",
        "channels": ["app"],
        "recipients": [{"person": "payee_id"}],
    }
    return {"categories": [{"code": "c", "name": "类"}], "routes": [{**base, **route}]}


@pytest.mark.parametrize(
    ("change", "place"),
    [
        ({"event": "lingju.nope.thing.happened"}, "routes[0].event"),
        ({"category": "other"}, "routes[0].category"),
        ({"channels": ["app", "fax"]}, "routes[0].channels"),
        ({"channels": []}, "routes[0].channels"),
        ({"recipients": []}, "routes[0].recipients"),
        ({"recipients": [{"someone": "x"}]}, "routes[0].recipients[0]"),
        ({"recipients": [{"officers": "mayor", "region": "r", "digits": 9}]}, "officers"),
        ({"recipients": [{"officers": "county_officer", "region": "r", "digits": 7}]}, "digits"),
        ({"template": "Bad Code"}, "routes[0].template"),
        ({"when": {"decision": "return"}}, "routes[0].when"),
        ({"important": "yes"}, "routes[0].important"),
        ({"extra": 1}, "routes[0]: unknown key"),
    ],
)
def test_a_mistaken_routing_file_is_refused_naming_the_place(
    change: dict[str, Any], place: str
) -> None:
    with pytest.raises(ValueError, match=place.replace("[", r"\[").replace("]", r"\]")):
        parse_routing(_minimal(**change), set(VIEWS))


def test_the_shipped_file_parses_as_routing_reads_it() -> None:
    parsed = parse_routing(tomllib.loads(ROUTING_FILE.read_text("utf-8")), set(VIEWS))
    assert parsed == routing()


# -- the yuan filter ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fen", "text"),
    [
        (0, "0.00"),
        (5, "0.05"),
        (100, "1.00"),
        (12345, "123.45"),
        (-5, "-0.05"),
        (-12000, "-120.00"),
        (5_000_000, "50000.00"),
        ("30000", "300.00"),  # a number sent as text still reads right
    ],
)
def test_yuan_writes_fen_as_yuan_exactly(fen: int | str, text: str) -> None:
    assert yuan(fen) == text
    assert render("{amount_fen|yuan}", {"amount_fen": fen}) == text


@given(st.integers(min_value=-(10**12), max_value=10**12))
def test_yuan_round_trips_every_amount(fen: int) -> None:
    """Reading the text back as a decimal gives exactly the fen: no float rounding."""
    assert Decimal(yuan(fen)) * 100 == fen
    assert len(yuan(fen).split(".")[1]) == 2


def test_yuan_leaves_what_is_not_a_whole_number_of_fen() -> None:
    assert yuan(1.5) == "1.5"
    assert yuan("abc") == "abc"
    assert yuan(True) == "True"


def test_other_filters() -> None:
    missing = [{"code": "id_card", "name": "身份证"}, {"code": "hukou", "name": "户口簿"}]
    assert render("{m|names}", {"m": missing}) == "身份证、户口簿"
    assert render("{d|cn_date}", {"d": "2026-06-05"}) == "2026年6月5日"
    # 01:30 UTC is 09:30 in Shanghai.
    assert render("{t|local_time}", {"t": "2026-06-15T01:30:00+00:00"}) == "6月15日 09:30"
    assert render("{t|local_time}", {"t": "not a time"}) == "not a time"


def test_filters_on_missing_or_unknown_names_never_fail() -> None:
    assert render("[{amount_fen|yuan}]", {}) == "[]"
    assert render("[{amount_fen|nope}]", {"amount_fen": 100}) == "[100]"
    assert render("[{amount_fen|yuan:>8}]", {"amount_fen": 100}) == "[    1.00]"


def test_render_fills_variables_and_ignores_extra_values() -> None:
    assert render("{name}，您好", {"name": "张三", "unused": 1}) == "张三，您好"


def test_render_formats_non_text_values() -> None:
    assert render("{n} 人 {d}", {"n": 2, "d": date(2025, 7, 1)}) == "2 人 2025-07-01"


def test_render_missing_or_null_variable_is_empty() -> None:
    assert render("您好{name}！", {}) == "您好！"
    assert render("您好{name}！", {"name": None}) == "您好！"
    assert render("[{name!s}][{name:>3}]", {}) == "[][   ]"


def test_render_keeps_escaped_braces() -> None:
    assert render("{{x}} {x}", {"x": 1}) == "{x} 1"


@pytest.mark.parametrize(
    "template",
    ["金额 {amount:.2f} 元", "{person.name}", "{items[0]}", "{0}", "您好{", "您好}", "{name"],
)
def test_render_never_fails(template: str) -> None:
    """A typo in a county-edited text degrades the message; it never stops delivery."""
    assert isinstance(render(template, {"name": "张三"}), str)
