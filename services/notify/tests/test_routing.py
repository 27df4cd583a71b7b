"""Notification routing as data, and template rendering that never fails."""

from __future__ import annotations

import tomllib
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.notify.domain.routing import Route, parse_routes, render, yuan

ROUTING_FILE = Path(__file__).resolve().parents[1] / "routing.toml"
ACTIVATED = "lingju.benefits.enrollment.activated"
DISBURSED = "lingju.benefits.payment.disbursed"
FAILED = "lingju.benefits.payment.failed"
CLAIM_DECIDED = "lingju.benefits.claim.decided"


def real_routes() -> dict[str, list[Route]]:
    return parse_routes(tomllib.loads(ROUTING_FILE.read_text("utf-8")))


def test_real_routing_file_parses() -> None:
    """The shipped routing.toml tells the payee, on the app and by SMS, of a confirmed
    enrollment and of each payment made or failed (a pending enrollment tells nobody), and
    the claimant of a claim's decision."""
    routes = real_routes()
    assert list(routes) == [ACTIVATED, DISBURSED, FAILED, CLAIM_DECIDED]
    templates = {event: route.template for event, (route,) in routes.items()}
    assert templates == {
        ACTIVATED: "enrollment_activated",
        DISBURSED: "payment_disbursed",
        FAILED: "payment_failed",
        CLAIM_DECIDED: "claim_decided",
    }
    (claim,) = routes[CLAIM_DECIDED]
    assert (claim.recipient, claim.channels) == ("person_id", ("app", "sms"))
    for (route,) in (routes[ACTIVATED], routes[DISBURSED], routes[FAILED]):
        assert route.recipient == "payee_id"
        assert route.channels == ("app", "sms")
        assert route.sms.startswith("【零距】")
        assert "{program_name}" in route.body


def test_activation_says_which_program_and_from_which_month() -> None:
    (route,) = real_routes()[ACTIVATED]
    data = {"program_name": "独生子女父母奖励费", "pays_from": "2026-11", "payee_id": "p1"}
    assert render(route.title, data) == "待遇资格已确认"
    assert render(route.body, data) == (
        "“独生子女父母奖励费”待遇资格已审核确认，自 2026-11 起按月发放至您登记的银行账户。"
    )
    assert render(route.sms, data) == (
        "【零距】独生子女父母奖励费待遇资格已确认，自2026-11起发放，详情请查看零距App消息。"
    )


def test_a_payment_says_the_amount_in_yuan_and_the_months() -> None:
    (route,) = real_routes()[DISBURSED]
    data = {
        "program_name": "农村部分计划生育家庭奖励扶助",
        "period_from": "2026-09",
        "period_until": "2026-11",
        "amount_fen": 36000,
    }
    assert render(route.body, data) == (
        "“农村部分计划生育家庭奖励扶助”2026-09 至 2026-11 的待遇共 360.00 元"
        "已发放至您登记的银行账户。"
    )
    assert "360.00元" in render(route.sms, data)


def test_a_failed_payment_asks_to_check_the_bank_account() -> None:
    (route,) = real_routes()[FAILED]
    data = {
        "program_name": "育儿补贴",
        "period_from": "2026-11",
        "period_until": "2026-11",
        "amount_fen": 30005,
        "reason": "账户已销户",
    }
    body = render(route.body, data)
    assert "300.05 元未能发放（账户已销户）" in body
    assert "请核对您登记的银行账户" in body
    assert "请核对您的银行账户" in render(route.sms, data)


def test_real_templates_render_without_any_data() -> None:
    """An event missing every field still produces a message."""
    for (route,) in real_routes().values():
        assert isinstance(render(route.body, {}), str)
        assert render(route.title, {}) == route.title


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


def test_filters_on_missing_or_unknown_names_never_fail() -> None:
    assert render("[{amount_fen|yuan}]", {}) == "[]"
    assert render("[{amount_fen|nope}]", {"amount_fen": 100}) == "[100]"
    assert render("[{amount_fen|yuan:>8}]", {"amount_fen": 100}) == "[    1.00]"


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


def test_a_claim_decision_reads_whole_with_or_without_a_comment() -> None:
    """A null optional field (no comment on a full approval) renders empty, never "None"."""
    (route,) = real_routes()[CLAIM_DECIDED]
    approved = {
        "program_name": "失独家庭辅助生殖费用补助",
        "claim_no": "CL-202611-ab12",
        "requested_fen": 3000000,
        "decision_name": "已核准 30000.00 元",
        "comment": None,
    }
    assert render(route.body, approved) == (
        "您的“失独家庭辅助生殖费用补助”报销申请（CL-202611-ab12，申请 30000.00 元）"
        "审核结果：已核准 30000.00 元。"
    )
    rejected = {**approved, "decision_name": "未予核准", "comment": "票据不全"}
    assert render(route.body, rejected).endswith("审核结果：未予核准。票据不全")
