"""Message templates: the seed file, the check before a save, versions in the database, and
/api/v1/templates over HTTP (who may read and write, conflicts, preview)."""

from __future__ import annotations

import asyncio
import string
import tomllib
import types
import typing
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from services.notify import templates
from services.notify.domain.routing import parse_routing, render
from services.notify.domain.templates import (
    check_template,
    parse_seed,
    placeholders,
    variables_used,
)
from services.notify.views import DIGEST_VARIABLES, VIEWS, variables_of
from tests.support import TOWNSHIP, VILLAGE, InProcessStack

HERE = Path(__file__).resolve().parents[1]
SEED = tomllib.loads((HERE / "templates.toml").read_text("utf-8"))
ROUTING = parse_routing(tomllib.loads((HERE / "routing.toml").read_text("utf-8")), set(VIEWS))
DIGEST_ALLOWED = set(DIGEST_VARIABLES) | {"recipient_name"}


def routed_codes() -> dict[str, set[str]]:
    """Every template code the routing uses (digests too) with the variables it may use."""
    codes = {code: variables_of(events) for code, events in ROUTING.templates().items()}
    for routes in ROUTING.routes.values():
        for route in routes:
            if route.digest:
                codes[f"digest_{route.digest}"] = DIGEST_ALLOWED
    return codes


def seeds() -> dict[str, dict[str, Any]]:
    return parse_seed(SEED, routed_codes())


# -- sample values ------------------------------------------------------------------------------


def _sample(name: str, annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _sample(name, inner[0])
    if origin is list:
        (item,) = typing.get_args(annotation)
        if typing.get_origin(item) is dict:
            return [{"code": "id_card", "name": "身份证"}, {"code": "hukou", "name": "户口簿"}]
        return ["p-1"]
    if annotation is datetime:
        return datetime(2026, 6, 15, 1, 0, tzinfo=UTC)
    if annotation is date:
        return date(2026, 6, 15)
    if annotation is int:
        return 36000
    if name.endswith(("_from", "_until")) or name == "ends_after":
        return "2026-06"
    return f"示例{name}"


def sample_values(code: str) -> dict[str, Any]:
    """Values like an event's: every field of the code's views, and the common variables."""
    if code.startswith("digest_"):
        return {
            "count": 2,
            "lines": "张三：产后访视\n李四：新生儿访视",
            "day": "2026-06-15",
            "recipient_name": "王芳",
        }
    values: dict[str, Any] = {"recipient_name": "王芳", "person_name": "李梅"}
    for event in ROUTING.templates()[code]:
        for name, f in VIEWS[event].model_fields.items():
            values.setdefault(name, _sample(name, f.annotation))
    return values


def texts(fields: dict[str, Any]) -> list[str]:
    out = [fields["title"], fields["app_body"], fields["sms_body"]]
    if fields.get("wechat"):
        out.extend(fields["wechat"]["fields"].values())
    return out


# -- the seed file ------------------------------------------------------------------------------


def test_the_seed_file_covers_every_routed_code_and_the_digest() -> None:
    parsed = seeds()
    assert set(parsed) == set(ROUTING.templates()) | {"digest_due_visits"}
    assert len(parsed) == 22
    for code, fields in parsed.items():
        assert fields["sms_body"].startswith("【零距】"), code
        assert fields["wechat"]["template_id"] == "", code  # the county fills it in
        assert {"first", "remark"} <= set(fields["wechat"]["fields"]), code


@pytest.mark.parametrize("code", sorted(routed_codes()))
def test_each_seed_renders_whole_with_sample_values(code: str) -> None:
    fields = seeds()[code]
    values = sample_values(code)
    assert variables_used(fields) <= set(values), code
    for text in texts(fields):
        out = render(text, values)
        assert out.strip(), (code, text)
        assert "{" not in out and "}" not in out, (code, out)
        assert "None" not in out, (code, out)


def test_the_sms_texts_are_short_and_tell_nothing_private() -> None:
    """One SMS (about 70 characters) once filled; never an ID, a finding, a visit's service or
    a reason: the details are in the app, which only the resident opens."""
    private = {
        "person_id",
        "holder_ids",
        "applicant_id",
        "plan_name",
        "step_name",
        "service_name",
        "reason",
        "comment",
    }
    for code, fields in seeds().items():
        fixed = "".join(lit for lit, *_ in string.Formatter().parse(fields["sms_body"]))
        assert len(fixed) <= 45, (code, fixed)
        used = {name for name, _ in placeholders(fields["sms_body"])}
        assert not used & private, (code, used & private)


def test_the_benefits_texts_keep_their_wording() -> None:
    s = seeds()
    activated = {"program_name": "独生子女父母奖励费", "pays_from": "2026-11"}
    assert render(s["enrollment_activated"]["title"], activated) == "待遇资格已确认"
    assert render(s["enrollment_activated"]["app_body"], activated) == (
        "“独生子女父母奖励费”待遇资格已审核确认，自 2026-11 起按月发放至您登记的银行账户。"
    )
    assert render(s["enrollment_activated"]["sms_body"], activated) == (
        "【零距】独生子女父母奖励费待遇资格已确认，自2026-11起发放，详情请查看零距App消息。"
    )
    paid = {
        "program_name": "农村部分计划生育家庭奖励扶助",
        "period_from": "2026-09",
        "period_until": "2026-11",
        "amount_fen": 36000,
    }
    assert s["payment_disbursed"]["title"] == "待遇已发放"
    assert render(s["payment_disbursed"]["app_body"], paid) == (
        "“农村部分计划生育家庭奖励扶助”2026-09 至 2026-11 的待遇共 360.00 元"
        "已发放至您登记的银行账户。"
    )
    assert "360.00元" in render(s["payment_disbursed"]["sms_body"], paid)
    assert s["payment_failed"]["title"] == "待遇发放未成功"
    assert "请核对您登记的银行账户信息" in s["payment_failed"]["app_body"]
    assert s["claim_decided"]["app_body"] == (
        "您的“{program_name}”报销申请（{claim_no}，申请 {requested_fen|yuan} 元）"
        "审核结果：{decision_name}。{comment}"
    )


def test_a_visit_is_offered_not_ordered() -> None:
    resident = seeds()["visit_due_resident"]
    for text in (resident["app_body"], resident["sms_body"]):
        assert "自主决定" in text
        assert "必须" not in text and "务必" not in text


def test_the_worker_lines_and_the_digest() -> None:
    s = seeds()
    line = render(s["task_due_worker"]["app_body"], sample_values("task_due_worker"))
    assert line == "李梅：示例step_name（示例plan_name），2026年6月15日起应访"
    assert "\n" not in s["task_overdue_worker"]["app_body"]
    digest = s["digest_due_visits"]
    values = sample_values("digest_due_visits")
    assert render(digest["title"], values) == "今日随访提醒"
    body = render(digest["app_body"], values)
    assert "2026年6月15日共有 2 项随访待办" in body and "张三：产后访视\n李四：新生儿访视" in body
    assert render(digest["sms_body"], values) == "【零距】您今天有2项随访待办，请打开零距App查看。"


def test_the_materials_notice_lists_every_missing_material() -> None:
    s = seeds()["materials_requested"]
    values = sample_values("materials_requested")
    assert "身份证、户口簿" in render(s["app_body"], values)
    assert "身份证、户口簿" in render(s["sms_body"], values)


def test_a_seed_file_with_a_mistake_is_refused_naming_the_place() -> None:
    codes = routed_codes()
    missing = {k: v for k, v in SEED.items() if k != "claim_decided"}
    with pytest.raises(ValueError, match="claim_decided"):
        parse_seed(missing, codes)
    with pytest.raises(ValueError, match=r"templates\.no_such_code"):
        parse_seed({**SEED, "no_such_code": SEED["claim_decided"]}, codes)
    bad = {**SEED, "payment_failed": {**SEED["payment_failed"], "sms": "【零距】{id_number}"}}
    with pytest.raises(ValueError, match=r"templates\.payment_failed\.sms: 未知变量“id_number”"):
        parse_seed(bad, codes)
    wechat = {"template_id": "", "fields": {"first": "{claim_no}"}}
    bad = {**SEED, "payment_failed": {**SEED["payment_failed"], "wechat": wechat}}
    with pytest.raises(ValueError, match=r"payment_failed\.wechat\.fields\.first: 未知变量"):
        parse_seed(bad, codes)
    bad = {**SEED, "payment_failed": {**SEED["payment_failed"], "body": "x"}}
    with pytest.raises(ValueError, match=r"payment_failed\.body: 未知的项"):
        parse_seed(bad, codes)
    no_sms = {k: v for k, v in SEED["payment_failed"].items() if k != "sms"}
    with pytest.raises(ValueError, match=r"payment_failed: 缺少 sms"):
        parse_seed({**SEED, "payment_failed": no_sms}, codes)


def test_the_service_loads_the_same_seeds() -> None:
    assert templates.seeds() == seeds()
    assert templates.variables_for("digest_due_visits") == DIGEST_ALLOWED
    assert "amount_fen" in templates.variables_for("payment_disbursed")
    with pytest.raises(KeyError):
        templates.variables_for("no_such_code")
    with pytest.raises(KeyError):
        templates.variables_for("digest_no_such_digest")


# -- placeholders and check_template ------------------------------------------------------------

ALLOWED = {"program_name", "amount_fen", "missing", "recipient_name"}


def valid(**changes: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "title": "待遇已发放",
        "app_body": "“{program_name}”共 {amount_fen|yuan} 元已发放。",
        "sms_body": "【零距】{program_name}{amount_fen|yuan}元已发放。",
        "wechat": {"template_id": "", "fields": {"first": "您好", "keyword1": "{program_name}"}},
        "note": None,
    }
    fields.update(changes)
    return fields


def test_placeholders_with_filters_and_literal_braces() -> None:
    assert placeholders("{a}，{b|yuan}，{{c}}，{a}") == [("a", None), ("b", "yuan"), ("a", None)]
    assert placeholders("{a| names }") == [("a", "names")]
    assert placeholders("no variables") == []
    for bad in ("{a", "a}", "{", "{a{b}}"):
        with pytest.raises(ValueError, match="花括号不配对"):
            placeholders(bad)


def test_a_valid_template_has_no_errors() -> None:
    assert check_template(valid(), ALLOWED) == []
    assert check_template(valid(wechat=None), ALLOWED) == []
    assert check_template(valid(app_body="字面的花括号 {{ 和 }}"), ALLOWED) == []


def test_an_unknown_variable_is_named_with_the_allowed_ones() -> None:
    errors = check_template(valid(app_body="{program_name}{id_number}{id_number}"), ALLOWED)
    assert errors == [
        {
            "field": "app_body",
            "message": "未知变量“id_number”（可用变量：amount_fen、missing、program_name、"
            "recipient_name）",
        }
    ]
    (e,) = check_template(valid(title="{a.b}"), ALLOWED)
    assert e["field"] == "title" and "写法有误" in e["message"]
    (e,) = check_template(valid(title="{}"), ALLOWED)
    assert "写法有误" in e["message"]


def test_an_unknown_filter_is_named() -> None:
    (e,) = check_template(valid(sms_body="【零距】{amount_fen|dollars}"), ALLOWED)
    assert e == {
        "field": "sms_body",
        "message": "未知过滤器“dollars”（可用过滤器：cn_date、local_time、names、yuan）",
    }
    (e,) = check_template(valid(sms_body="【零距】{amount_fen|}"), ALLOWED)
    assert "未知过滤器“（空）”" in e["message"]


@pytest.mark.parametrize("text", ["{program_name", "program_name}", "{program_name{x}}"])
def test_unbalanced_braces_are_refused(text: str) -> None:
    (e,) = check_template(valid(app_body=text), ALLOWED)
    assert e["field"] == "app_body" and e["message"].startswith("花括号不配对")


def test_empty_texts_are_refused() -> None:
    errors = check_template(valid(title=" ", app_body="", sms_body=""), ALLOWED)
    assert errors == [
        {"field": "title", "message": "标题不能为空"},
        {"field": "app_body", "message": "站内信正文不能为空"},
        {"field": "sms_body", "message": "短信正文不能为空"},
    ]
    errors = check_template({"wechat": None}, ALLOWED)
    assert [e["field"] for e in errors] == ["title", "app_body", "sms_body"]


def test_an_sms_needs_the_signature_and_at_most_500_characters() -> None:
    (e,) = check_template(valid(sms_body="{program_name}已发放"), ALLOWED)
    assert e == {"field": "sms_body", "message": "短信正文须以签名“【零距】”开头"}
    (e,) = check_template(valid(sms_body="【零距】" + "字" * 497), ALLOWED)
    assert e["field"] == "sms_body" and "不能超过 500 字" in e["message"]
    assert check_template(valid(sms_body="【零距】" + "字" * 496), ALLOWED) == []
    (e,) = check_template(valid(title="字" * 101), ALLOWED)
    assert e["field"] == "title" and "100" in e["message"]
    (e,) = check_template(valid(note="字" * 501), ALLOWED)
    assert e["field"] == "note"


@pytest.mark.parametrize(
    ("wechat", "field", "words"),
    [
        ("not a table", "wechat", "微信模板消息应为"),
        ({"template_id": 7, "fields": {"first": "x"}}, "wechat.template_id", "应为文字"),
        ({"fields": {"first": "x"}}, "wechat.template_id", "应为文字"),
        ({"template_id": "", "fields": ["first"]}, "wechat.fields", "非空的表"),
        ({"template_id": "", "fields": {}}, "wechat.fields", "非空的表"),
        ({"template_id": "", "fields": {"first": 1}}, "wechat.fields.first", "应为文字"),
        ({"template_id": "", "fields": {"first": "{nope}"}}, "wechat.fields.first", "未知变量"),
        ({"template_id": "", "fields": {"a b": "x"}}, "wechat.fields", "字段名“a b”无效"),
        ({"template_id": "", "fields": {"first": "x"}, "url": "x"}, "wechat", "未知的项：url"),
    ],
)
def test_a_wechat_message_of_the_wrong_shape_is_refused(
    wechat: Any, field: str, words: str
) -> None:
    (e,) = check_template(valid(wechat=wechat), ALLOWED)
    assert e["field"] == field and words in e["message"], e


# -- over HTTP ----------------------------------------------------------------------------------


COUNTY = "330102"


def admin(stack: InProcessStack) -> dict[str, str]:
    return stack.auth("admin", sub="admin-1")


def problem(r: Any, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = r.json()
    assert body["code"] == code, body
    return body


def edited(version: int, **changes: Any) -> dict[str, Any]:
    body = {
        "version": version,
        "title": "待遇已到账",
        "app_body": "“{program_name}”{period_from}至{period_until}共{amount_fen|yuan}元已到账。",
        "sms_body": "【零距】{program_name}{amount_fen|yuan}元已到账，请注意查收。",
        "wechat": {"template_id": "TPL-1", "fields": {"first": "待遇已到账"}},
        "note": "改为“到账”",
    }
    body.update(changes)
    return body


async def test_officers_list_every_template_with_its_events_and_variables(
    stack: InProcessStack,
) -> None:
    r = await stack.notify.get("/api/v1/templates", headers=stack.auth("county_officer", COUNTY))
    assert r.status_code == 200, r.text
    by_code = {t["code"]: t for t in r.json()}
    assert set(by_code) == set(routed_codes())
    paid = by_code["payment_disbursed"]
    assert paid["events"] == ["lingju.benefits.payment.disbursed"]
    assert {"amount_fen", "program_name", "recipient_name", "person_name"} <= set(paid["variables"])
    assert paid["current"]["version"] == 1 and paid["current"]["created_by"] == "seed"
    assert paid["current"]["title"] == "待遇已发放"
    assert by_code["digest_due_visits"]["events"] == []
    assert set(by_code["digest_due_visits"]["variables"]) == DIGEST_ALLOWED
    # Listing twice seeds nothing twice.
    r = await stack.notify.get("/api/v1/templates", headers=admin(stack))
    assert {t["current"]["version"] for t in r.json()} == {1}


async def test_a_save_is_the_next_version_and_the_one_sent(stack: InProcessStack) -> None:
    r = await stack.notify.put(
        "/api/v1/templates/payment_disbursed", json=edited(1), headers=admin(stack)
    )
    assert r.status_code == 200, r.text
    saved = r.json()
    assert (saved["version"], saved["created_by"], saved["title"]) == (2, "admin-1", "待遇已到账")
    assert saved["wechat"] == {"template_id": "TPL-1", "fields": {"first": "待遇已到账"}}
    async with stack.rt("notify").db.session() as s:
        current = await templates.current(s, "payment_disbursed")
    assert (current.version, current.title, current.note) == (2, "待遇已到账", "改为“到账”")

    r = await stack.notify.get(
        "/api/v1/templates/payment_disbursed", headers=stack.auth("county_officer", COUNTY)
    )
    assert r.status_code == 200, r.text
    detail = r.json()
    assert detail["current"]["version"] == 2
    assert [(v["version"], v["created_by"]) for v in detail["versions"]] == [
        (2, "admin-1"),
        (1, "seed"),
    ]
    assert detail["filters"] == ["yuan", "names", "cn_date", "local_time"]


async def test_a_stale_version_is_a_conflict(stack: InProcessStack) -> None:
    url = "/api/v1/templates/claim_decided"
    assert (await stack.notify.put(url, json=edited_claim(1), headers=admin(stack))).is_success
    body = problem(
        await stack.notify.put(url, json=edited_claim(1), headers=admin(stack)),
        409,
        "version_conflict",
    )
    assert "已被他人修改" in body["detail"]
    r = await stack.notify.put(url, json=edited_claim(2), headers=admin(stack))
    assert r.status_code == 200 and r.json()["version"] == 3


def edited_claim(version: int) -> dict[str, Any]:
    return {
        "version": version,
        "title": "报销申请有结果了",
        "app_body": "您的“{program_name}”报销申请（{claim_no}）审核结果：{decision_name}。",
        "sms_body": "【零距】您的报销申请{claim_no}已审核，详情请查看零距App消息。",
    }


async def test_two_saves_of_the_same_version_one_wins(stack: InProcessStack) -> None:
    url = "/api/v1/templates/claim_decided"
    await stack.notify.get(url, headers=admin(stack))  # version 1 exists
    a, b = await asyncio.gather(
        stack.notify.put(url, json=edited_claim(1), headers=admin(stack)),
        stack.notify.put(url, json=edited_claim(1), headers=admin(stack)),
    )
    assert sorted([a.status_code, b.status_code]) == [200, 409], (a.text, b.text)
    loser = a if a.status_code == 409 else b
    assert loser.json()["code"] == "version_conflict"
    r = await stack.notify.get(url, headers=admin(stack))
    assert [v["version"] for v in r.json()["versions"]] == [2, 1]


async def test_an_unknown_variable_is_refused_naming_it(stack: InProcessStack) -> None:
    r = await stack.notify.put(
        "/api/v1/templates/payment_disbursed",
        json=edited(1, sms_body="【零距】{id_number}", app_body="{amount_fen|usd}"),
        headers=admin(stack),
    )
    body = problem(r, 422, "validation_failed")
    by_field = {e["field"]: e["message"] for e in body["errors"]}
    assert by_field["sms_body"].startswith("未知变量“id_number”（可用变量：amount_fen、")
    assert by_field["app_body"].startswith("未知过滤器“usd”")
    assert "id_number" in body["detail"]
    # Nothing was saved.
    r = await stack.notify.get("/api/v1/templates/payment_disbursed", headers=admin(stack))
    assert [v["version"] for v in r.json()["versions"]] == [1]


async def test_a_wechat_message_of_the_wrong_shape_is_a_field_error(stack: InProcessStack) -> None:
    r = await stack.notify.put(
        "/api/v1/templates/payment_disbursed",
        json=edited(1, wechat={"template_id": "", "fields": {"first": ["x"]}}),
        headers=admin(stack),
    )
    body = problem(r, 422, "validation_failed")
    assert body["errors"] == [
        {"field": "wechat.fields.first", "message": "微信模板字段“first”应为文字"}
    ]


async def test_an_unknown_code_is_a_404(stack: InProcessStack) -> None:
    for r in (
        await stack.notify.get("/api/v1/templates/no_such_code", headers=admin(stack)),
        await stack.notify.put(
            "/api/v1/templates/no_such_code", json=edited(1), headers=admin(stack)
        ),
        await stack.notify.post(
            "/api/v1/templates/digest_nothing/preview", json={}, headers=admin(stack)
        ),
    ):
        assert problem(r, 404, "not_found")["detail"] == "消息模板不存在"


@pytest.mark.parametrize(
    ("role", "region", "person_id"),
    [("resident", VILLAGE, "p-1"), ("township_officer", TOWNSHIP, None)],
)
async def test_residents_and_township_officers_may_not_read_templates(
    stack: InProcessStack, role: str, region: str, person_id: str | None
) -> None:
    h = stack.auth(role, region, person_id)
    url = "/api/v1/templates/payment_disbursed"
    problem(await stack.notify.get("/api/v1/templates", headers=h), 403, "forbidden")
    problem(await stack.notify.get(url, headers=h), 403, "forbidden")
    problem(await stack.notify.put(url, json=edited(1), headers=h), 403, "forbidden")
    problem(await stack.notify.post(f"{url}/preview", json={}, headers=h), 403, "forbidden")


async def test_a_county_officer_reads_but_does_not_write(stack: InProcessStack) -> None:
    h = stack.auth("county_officer", COUNTY)
    r = await stack.notify.put("/api/v1/templates/payment_disbursed", json=edited(1), headers=h)
    problem(r, 403, "forbidden")
    problem(await stack.notify.get("/api/v1/templates"), 401, "unauthenticated")


async def test_preview_renders_the_current_version_or_a_draft(stack: InProcessStack) -> None:
    url = "/api/v1/templates/payment_disbursed/preview"
    h = stack.auth("county_officer", COUNTY)
    values = {"program_name": "育儿补贴", "amount_fen": 36000, "period_from": "2026-06"}
    r = await stack.notify.post(url, json={"values": values}, headers=h)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["version"] == 1 and out["errors"] == []
    assert out["title"] == "待遇已发放"
    # A missing value renders empty and is listed.
    assert out["app_body"] == "“育儿补贴”2026-06 至  的待遇共 360.00 元已发放至您登记的银行账户。"
    assert out["sms_body"] == "【零距】育儿补贴2026-06至待遇360.00元已发放，请注意查收。"
    assert out["wechat"]["fields"]["keyword3"] == "360.00 元"
    assert out["missing"] == ["period_until"]

    draft = {
        "title": "{program_name}到账",
        "app_body": "{amount_fen|yuan} 元 {nope}",
        "sms_body": "没有签名",
    }
    r = await stack.notify.post(url, json={"values": values, "draft": draft}, headers=h)
    assert r.status_code == 200, r.text
    out = r.json()
    assert (out["version"], out["title"], out["app_body"]) == (None, "育儿补贴到账", "360.00 元 ")
    assert out["wechat"] is None
    assert {e["field"] for e in out["errors"]} == {"app_body", "sms_body"}
    assert out["missing"] == ["nope"]
