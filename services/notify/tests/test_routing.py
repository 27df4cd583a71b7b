"""Notification routing as data, and template rendering that never fails."""

from __future__ import annotations

import tomllib
from datetime import date
from pathlib import Path

import pytest

from services.notify.domain.routing import Route, parse_routes, render

ROUTING_FILE = Path(__file__).resolve().parents[1] / "routing.toml"
ENROLLMENT_CREATED = "lingju.benefits.enrollment.created"


def real_routes() -> dict[str, list[Route]]:
    return parse_routes(tomllib.loads(ROUTING_FILE.read_text("utf-8")))


def test_real_routing_file_parses() -> None:
    """The shipped routing.toml tells the enrolled person on the app and by SMS."""
    routes = real_routes()
    assert list(routes) == [ENROLLMENT_CREATED]
    (route,) = routes[ENROLLMENT_CREATED]
    assert route.template == "enrollment_created"
    assert route.recipient == "person_id"
    assert route.channels == ("app", "sms")
    assert route.title == "待遇资格已确认"
    assert "{program_name}" in route.body
    assert route.sms.startswith("【零距】")


def test_real_templates_render_with_event_data() -> None:
    """The shipped body and SMS fill in the program name and start date."""
    (route,) = real_routes()[ENROLLMENT_CREATED]
    data = {"program_name": "独生子女父母奖励费", "starts_on": "2025-07-01", "person_id": "p1"}
    assert render(route.body, data) == "您已纳入“独生子女父母奖励费”，自 2025-07-01 起享受。"
    assert render(route.sms, data) == "【零距】您已纳入独生子女父母奖励费，详情请查看零距App消息。"


def test_real_templates_render_without_any_data() -> None:
    """An event missing every field still produces a message."""
    (route,) = real_routes()[ENROLLMENT_CREATED]
    assert render(route.body, {}) == "您已纳入“”，自  起享受。"
    assert render(route.title, {}) == "待遇资格已确认"


def test_sms_defaults_to_the_body() -> None:
    """A route without an ``sms`` text sends the body by SMS."""
    raw = {
        "routes": [
            {
                "event": "e",
                "template": "t",
                "recipient": "person_id",
                "channels": ["sms"],
                "title": "标题",
                "body": "正文{name}",
            }
        ]
    }
    assert parse_routes(raw)["e"][0].sms == "正文{name}"


def test_routes_of_one_event_are_grouped_in_file_order() -> None:
    """Several routes for one event all apply, in the order the file lists them."""

    def entry(event: str, template: str) -> dict[str, object]:
        return {
            "event": event,
            "template": template,
            "recipient": "person_id",
            "channels": ["app"],
            "title": "t",
            "body": "b",
        }

    routes = parse_routes({"routes": [entry("a", "one"), entry("b", "two"), entry("a", "three")]})
    assert [r.template for r in routes["a"]] == ["one", "three"]
    assert [r.template for r in routes["b"]] == ["two"]


def test_no_routes() -> None:
    """A file without routes routes nothing."""
    assert parse_routes({}) == {}


def test_route_missing_a_required_key_is_refused() -> None:
    """A route without a recipient cannot be loaded."""
    with pytest.raises(KeyError):
        parse_routes(
            {"routes": [{"event": "e", "template": "t", "channels": [], "title": "", "body": ""}]}
        )


def test_render_fills_variables_and_ignores_extra_values() -> None:
    """Known variables are filled; values the template does not use are ignored."""
    assert render("{name}，您好", {"name": "张三", "unused": 1}) == "张三，您好"


def test_render_formats_non_text_values() -> None:
    """Numbers and dates from event data render as text."""
    assert render("{n} 人 {d}", {"n": 2, "d": date(2025, 7, 1)}) == "2 人 2025-07-01"


def test_render_missing_variable_is_empty() -> None:
    """A variable missing from the data renders as empty text."""
    assert render("您好{name}！", {}) == "您好！"


def test_render_missing_variable_with_conversion_or_alignment_is_empty() -> None:
    """Conversions and alignment on a missing variable do not fail."""
    assert render("[{name!s}][{name:>3}]", {}) == "[][   ]"


def test_render_keeps_escaped_braces() -> None:
    """Doubled braces are literal braces."""
    assert render("{{x}} {x}", {"x": 1}) == "{x} 1"


@pytest.mark.parametrize(
    "template",
    ["金额 {amount:.2f} 元", "{person.name}", "{items[0]}", "{0}"],
    ids=["format-spec", "attribute", "index", "positional"],
)
def test_render_never_fails_on_a_missing_variable(template: str) -> None:
    """Whatever the field syntax, a missing variable renders without raising."""
    assert isinstance(render(template, {}), str)


@pytest.mark.parametrize(
    "template", ["您好{", "您好}", "{name"], ids=["lone-open", "lone-close", "unclosed"]
)
def test_render_never_fails_on_a_stray_brace(template: str) -> None:
    """A typo in a template degrades the text; it does not break delivery."""
    assert isinstance(render(template, {"name": "张三"}), str)
