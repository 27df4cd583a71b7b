"""Findings forms as data: the shipped file, strict parsing, checking a record's findings, and
GET /visit-forms over HTTP."""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.visits.domain.findings import (
    FIELD_TYPES,
    MAX_FREE_TEXT,
    Form,
    check_findings,
    parse_forms,
)
from services.visits.domain.plans import parse_plans
from services.visits.forms import findings_errors, forms
from tests.support import TOWNSHIP, VILLAGE, InProcessStack

HERE = Path(__file__).resolve().parents[1]
SHIPPED = tomllib.loads((HERE / "findings.toml").read_text("utf-8"))
PLAN_SERVICES = {
    s.service
    for p in parse_plans(tomllib.loads((HERE / "plans.toml").read_text("utf-8"))).values()
    for s in p.steps
}


def _raw_field(**fields: Any) -> dict[str, Any]:
    return {"code": "f", "name": "字段", "type": "boolean", **fields}


def _raw_form(**fields: Any) -> dict[str, Any]:
    return {
        "service": "svc",
        "name": "表单",
        "source": "规范",
        "fields": [_raw_field()],
        **fields,
    }


def _parse(*raw_forms: dict[str, Any], services: set[str] | None = None) -> dict[str, Form]:
    return parse_forms({"forms": list(raw_forms)}, services or {"svc"})


def _form(*raw_fields: dict[str, Any], **form: Any) -> Form:
    return _parse(_raw_form(fields=list(raw_fields), **form))["svc"]


def _refused(raw: object, match: str, services: set[str] | None = None) -> None:
    with pytest.raises(ValueError, match=match):
        parse_forms(raw, services or {"svc"})


# -- the shipped file -----------------------------------------------------------------------


def test_shipped_forms_cover_every_plan_service() -> None:
    shipped = parse_forms(SHIPPED, PLAN_SERVICES)
    assert set(shipped) == PLAN_SERVICES
    assert {
        "postpartum_home_visit",
        "postpartum_42d_check",
        "newborn_home_visit",
        "iud_followup",
        "procedure_review",
    } <= set(shipped)
    for form in shipped.values():
        assert 4 <= len(form.fields) <= 10, form.service
        assert form.name and form.source.strip()
        assert form.free_text
        # Nothing required: a declined visit records no findings, and passes.
        assert not any(f.required for f in form.fields), form.service
        assert check_findings(form, {}) == []
        for f in form.fields:
            if f.type in ("number", "integer"):
                assert f.min is not None and f.max is not None and f.min < f.max
            if f.type == "number":
                assert f.unit, (form.service, f.code)
    # Every type is used by some form, so each has real data behind it.
    assert {f.type for form in shipped.values() for f in form.fields} == set(FIELD_TYPES)
    # The comment at the top says where the fields come from and that the lists are ours.
    header = (HERE / "findings.toml").read_text("utf-8").split("[[forms]]")[0]
    assert "第三版" in header and "本团队" in header


def test_shipped_postpartum_and_newborn_fields() -> None:
    shipped = parse_forms(SHIPPED, PLAN_SERVICES)
    postpartum = {f.code for f in shipped["postpartum_home_visit"].fields}
    assert {"temperature", "bp_systolic", "bp_diastolic", "breasts", "lochia", "uterus"} <= (
        postpartum
    )
    assert {"wound", "mood"} <= postpartum
    newborn = shipped["newborn_home_visit"]
    assert {"weight", "temperature", "jaundice", "feeding", "umbilical_cord"} <= {
        f.code for f in newborn.fields
    }
    weight = newborn.field("weight")
    assert weight is not None and weight.unit == "kg"
    iud = {f.code for f in shipped["iud_followup"].fields}
    assert {"position", "bleeding", "pain", "satisfied"} <= iud


def test_the_loader_reads_the_shipped_file_once() -> None:
    assert forms() is forms()
    assert set(forms()) == PLAN_SERVICES
    good = {"temperature": 36.8, "bp_systolic": 118, "lochia": "normal", "notes": "恢复良好"}
    assert findings_errors("postpartum_home_visit", good) == []
    assert findings_errors("postpartum_home_visit", {"lochia": "bad"})[0]["field"] == (
        "findings.lochia"
    )
    # A task whose step left the plans has no service and no form.
    assert findings_errors("", {"anything": 1}) == []


def test_the_example_of_the_visit_record_passes() -> None:
    # VisitIn's example and the findings test_visits sends: a free-text blood pressure.
    form = forms()["postpartum_home_visit"]
    example = {"blood_pressure": "118/76", "lochia": "normal", "notes": "恢复良好"}
    assert check_findings(form, example) == []


# -- malformed files ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        ({}, r"findings.toml: missing key\(s\) forms"),
        ({"forms": []}, r"findings.toml: no \[\[forms\]\]"),
        ({"forms": [], "extra": 1}, r"findings.toml: unknown key\(s\) extra"),
        ({"forms": ["x"]}, r"forms\[0\]: expected a table"),
        ({"forms": [_raw_form(source="")]}, r"forms\[0\] \(svc\)\.source: expected non-empty"),
        ({"forms": [_raw_form(colour="red")]}, r"forms\[0\]: unknown key\(s\) colour"),
        ({"forms": [_raw_form(service="Svc")]}, r"forms\[0\]\.service: 'Svc' is not a code"),
        (
            {"forms": [_raw_form(fields=[])]},
            r"forms\[0\] \(svc\)\.fields: a form needs at least one field",
        ),
        ({"forms": [_raw_form(free_text="yes")]}, r"forms\[0\] \(svc\)\.free_text: expected"),
        (
            {"forms": [_raw_form(fields=[_raw_field(type="float")])]},
            r"forms\[0\] \(svc\)\.fields\[0\]\.type: 'float' is not one of text, number",
        ),
        (
            {"forms": [_raw_form(fields=[_raw_field(required="yes")])]},
            r"fields\[0\] \(f\)\.required: expected true or false",
        ),
        (
            {"forms": [_raw_form(fields=[_raw_field(), _raw_field()])]},
            r"forms\[0\] \(svc\)\.fields\[1\]: field code 'f' is used twice",
        ),
        (
            {"forms": [_raw_form(fields=[_raw_field(code="notes")])]},
            r"fields\[0\] \(notes\)\.code: 'notes' is free text on every form",
        ),
        (
            {"forms": [_raw_form(fields=[_raw_field(max_length=5)])]},
            r"fields\[0\]: unknown key\(s\) max_length",
        ),
    ],
)
def test_malformed_forms_are_refused_naming_the_place(raw: object, match: str) -> None:
    _refused(raw, match)


@pytest.mark.parametrize(
    ("field", "match"),
    [
        ({"type": "text"}, r"fields\[0\]: missing key\(s\) max_length"),
        ({"type": "text", "max_length": 0}, r"\(f\)\.max_length: expected a whole number in 1\."),
        ({"type": "text", "max_length": 501}, r"\(f\)\.max_length: expected a whole number"),
        ({"type": "number", "min": 0, "max": 1}, r"fields\[0\]: missing key\(s\) unit"),
        (
            {"type": "number", "min": 0, "max": "9", "unit": "kg"},
            r"\(f\)\.max: expected a number, got '9'",
        ),
        ({"type": "number", "min": True, "max": 9, "unit": "kg"}, r"\(f\)\.min: expected a number"),
        (
            {"type": "number", "min": 9, "max": 9, "unit": "kg"},
            r"fields\[0\] \(f\): min 9 must be below max 9",
        ),
        ({"type": "number", "min": 0, "max": 1e9, "unit": "kg"}, r"\(f\)\.max: .* is beyond"),
        ({"type": "number", "min": 0, "max": 9, "unit": ""}, r"\(f\)\.unit: expected non-empty"),
        ({"type": "integer", "min": 0, "max": 9.5}, r"\(f\)\.max: expected a whole number"),
        ({"type": "choice"}, r"fields\[0\]: missing key\(s\) options"),
        (
            {"type": "choice", "options": [{"code": "a", "name": "甲"}]},
            r"\(f\)\.options: a choice needs a list of at least two options",
        ),
        (
            {
                "type": "choice",
                "options": [{"code": "a", "name": "甲"}, {"code": "a", "name": "乙"}],
            },
            r"\(f\)\.options\[1\]: option code 'a' is used twice",
        ),
        (
            {
                "type": "choice",
                "options": [{"code": "a", "name": "甲"}, {"code": "B", "name": "乙"}],
            },
            r"\(f\)\.options\[1\]\.code: 'B' is not a code",
        ),
        (
            {"type": "choice", "options": [{"code": "a", "name": "甲"}, {"code": "b"}]},
            r"\(f\)\.options\[1\]: missing key\(s\) name",
        ),
        ({"type": "boolean", "unit": "kg"}, r"fields\[0\]: unknown key\(s\) unit"),
    ],
)
def test_malformed_fields_are_refused_naming_the_place(field: dict[str, Any], match: str) -> None:
    _refused({"forms": [_raw_form(fields=[_raw_field(**field)])]}, match)


def test_the_forms_must_match_the_plans_services() -> None:
    _refused(
        {"forms": [_raw_form(), _raw_form(service="svcx")]},
        r"forms\[1\] \(svcx\): no plan step uses service 'svcx'",
    )
    _refused({"forms": [_raw_form(), _raw_form()]}, r"forms\[1\]: service 'svc' has a form already")
    _refused(
        {"forms": [_raw_form()]},
        r"findings.toml: no form for service\(s\) other, third",
        services={"svc", "third", "other"},
    )
    # The shipped file, with one form removed or renamed.
    dropped = copy.deepcopy(SHIPPED)
    dropped["forms"] = [f for f in dropped["forms"] if f["service"] != "iud_followup"]
    _refused(dropped, "no form for service\\(s\\) iud_followup", PLAN_SERVICES)
    renamed = copy.deepcopy(SHIPPED)
    renamed["forms"][0]["service"] = "postpartum_visit"
    _refused(renamed, r"forms\[0\] \(postpartum_visit\): no plan step uses", PLAN_SERVICES)


def test_a_typo_deep_in_the_shipped_file_is_refused_naming_the_place() -> None:
    broken = copy.deepcopy(SHIPPED)
    i = next(i for i, f in enumerate(broken["forms"]) if f["service"] == "iud_followup")
    j = next(j for j, f in enumerate(broken["forms"][i]["fields"]) if f["code"] == "position")
    broken["forms"][i]["fields"][j]["options"][2]["code"] = "Expelled"
    _refused(
        broken,
        rf"forms\[{i}\] \(iud_followup\)\.fields\[{j}\] \(position\)\.options\[2\]\.code: "
        r"'Expelled' is not a code",
        PLAN_SERVICES,
    )


# -- checking findings ----------------------------------------------------------------------

FORM = _form(
    {"code": "remark", "name": "说明", "type": "text", "max_length": 10},
    {"code": "temperature", "name": "体温", "type": "number", "min": 35, "max": 42, "unit": "°C"},
    {"code": "feeds", "name": "吃奶次数", "type": "integer", "min": 0, "max": 30},
    {
        "code": "lochia",
        "name": "恶露",
        "type": "choice",
        "options": [{"code": "normal", "name": "未见异常"}, {"code": "heavy", "name": "量多"}],
    },
    {"code": "satisfied", "name": "满意", "type": "boolean"},
    {"code": "lmp", "name": "末次月经", "type": "date"},
    {"code": "weight", "name": "体重", "type": "number", "min": 0.5, "max": 8, "unit": "kg"},
)
REQUIRED = _form(
    {"code": "satisfied", "name": "满意", "type": "boolean", "required": True},
    {"code": "lmp", "name": "末次月经", "type": "date"},
)
CLOSED = _form({"code": "satisfied", "name": "满意", "type": "boolean"}, free_text=False)


def errors(form: Form, findings: dict[str, Any]) -> dict[str, str]:
    found = check_findings(form, findings)
    assert all(set(e) == {"field", "message"} for e in found)
    by_field = {e["field"]: e["message"] for e in found}
    assert len(by_field) == len(found)
    return by_field


def test_good_findings_pass() -> None:
    good = {
        "remark": "一切正常",
        "temperature": 36.8,
        "feeds": 8,
        "lochia": "normal",
        "satisfied": False,
        "lmp": "2025-02-28",
        "weight": 3,  # an int is a number
        "notes": "母乳喂养",
        "blood_pressure": "118/76",  # free text outside the form
    }
    assert check_findings(FORM, good) == []
    assert check_findings(FORM, {}) == []
    # null is "not recorded", like leaving the field out.
    assert check_findings(FORM, dict.fromkeys(("temperature", "lochia", "lmp"))) == []


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("remark", 5, "说明应为文字"),
        ("remark", "一二三四五六七八九十十", "说明不能超过10个字"),
        ("temperature", "36.8", "体温应为数值"),
        ("temperature", True, "体温应为数值"),  # true is not 1
        ("temperature", False, "体温应为数值"),
        ("temperature", float("nan"), "体温应为数值"),
        ("temperature", float("inf"), "体温应为数值"),
        ("temperature", [36.8], "体温应为数值"),
        ("temperature", 34.99, "体温应在35～42 °C之间"),
        ("temperature", 42.01, "体温应在35～42 °C之间"),
        ("weight", 0.4, "体重应在0.5～8 kg之间"),
        ("weight", 10**400, "体重应在0.5～8 kg之间"),  # no overflow on a huge int
        ("feeds", 3.5, "吃奶次数应为整数"),
        ("feeds", True, "吃奶次数应为整数"),
        ("feeds", "3", "吃奶次数应为整数"),
        ("feeds", -1, "吃奶次数应在0～30之间"),
        ("feeds", 31, "吃奶次数应在0～30之间"),
        ("lochia", "abnormal", "恶露不是可选项，可选：normal（未见异常）、heavy（量多）"),
        ("lochia", "Normal", "恶露不是可选项，可选：normal（未见异常）、heavy（量多）"),
        ("lochia", 1, "恶露不是可选项，可选：normal（未见异常）、heavy（量多）"),
        ("satisfied", 1, "满意应为是或否（true / false）"),
        ("satisfied", "true", "满意应为是或否（true / false）"),
        ("lmp", "2025-02-30", "末次月经应为日期（YYYY-MM-DD）"),
        ("lmp", "20250228", "末次月经应为日期（YYYY-MM-DD）"),
        ("lmp", "2025-02-28T08:00:00", "末次月经应为日期（YYYY-MM-DD）"),
        ("lmp", "28/02/2025", "末次月经应为日期（YYYY-MM-DD）"),
        ("lmp", 20250228, "末次月经应为日期（YYYY-MM-DD）"),
    ],
)
def test_a_wrong_value_is_a_field_error(key: str, value: Any, message: str) -> None:
    assert check_findings(FORM, {key: value}) == [{"field": f"findings.{key}", "message": message}]


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("temperature", 35),
        ("temperature", 35.0),
        ("temperature", 42),
        ("temperature", 42.0),
        ("weight", 0.5),
        ("weight", 8),
        ("feeds", 0),
        ("feeds", 30),
        ("feeds", 3.0),  # JSON does not tell 3 from 3.0
        ("lochia", "heavy"),
        ("satisfied", True),
        ("lmp", "2024-02-29"),
        ("remark", "一二三四五六七八九十"),  # exactly max_length
        ("remark", ""),
    ],
)
def test_boundaries_are_inclusive(key: str, value: Any) -> None:
    assert check_findings(FORM, {key: value}) == []


def test_required_fields() -> None:
    assert errors(REQUIRED, {}) == {"findings.satisfied": "满意必须填写"}
    assert errors(REQUIRED, {"satisfied": None}) == {"findings.satisfied": "满意必须填写"}
    assert errors(REQUIRED, {"satisfied": "yes"}) == {
        "findings.satisfied": "满意应为是或否（true / false）"
    }
    assert errors(REQUIRED, {"satisfied": False}) == {}  # false is a recorded answer


def test_keys_outside_the_form_are_short_notes() -> None:
    limit = "字" * MAX_FREE_TEXT
    assert check_findings(FORM, {"notes": limit, "odour": limit}) == []
    assert errors(FORM, {"notes": limit + "字", "odour": limit + "字"}) == {
        "findings.notes": "备注不能超过500个字",
        "findings.odour": "备注不能超过500个字",
    }
    not_text = "表单以外的内容只能是文字（不超过500字）"
    assert errors(FORM, {"odour": 3, "extra": {"a": 1}, "list": ["x"], "flag": True}) == {
        "findings.odour": not_text,
        "findings.extra": not_text,
        "findings.list": not_text,
        "findings.flag": not_text,
    }
    assert check_findings(FORM, {"notes": None, "odour": None}) == []  # null: not recorded


def test_a_closed_form_takes_only_its_fields_and_notes() -> None:
    assert check_findings(CLOSED, {"satisfied": True, "notes": "无"}) == []
    assert errors(CLOSED, {"satisfied": True, "odour": "无", "other": None}) == {
        "findings.odour": "“表单”没有这一项"
    }
    assert errors(CLOSED, {"notes": 5}) == {
        "findings.notes": f"表单以外的内容只能是文字（不超过{MAX_FREE_TEXT}字）"
    }
    assert errors(CLOSED, {"notes": "字" * 501}) == {"findings.notes": "备注不能超过500个字"}


def test_every_mistake_is_reported_in_form_order_then_the_rest() -> None:
    found = check_findings(
        FORM,
        {"zzz": 1, "lochia": "x", "temperature": 50, "remark": 1, "notes": 2, "feeds": 3},
    )
    assert [e["field"] for e in found] == [
        "findings.remark",
        "findings.temperature",
        "findings.lochia",
        "findings.zzz",
        "findings.notes",
    ]


def test_shipped_forms_check_real_findings() -> None:
    shipped = forms()
    newborn = shipped["newborn_home_visit"]
    assert (
        check_findings(
            newborn,
            {
                "weight": 3.25,
                "temperature": 36.7,
                "jaundice": "face",
                "feeding": "exclusive",
                "feeds_per_day": 10,
                "umbilical_cord": "attached",
                "disease_screening_done": True,
            },
        )
        == []
    )
    assert errors(newborn, {"weight": 3250, "jaundice": "yellow"}) == {
        "findings.weight": "体重应在0.5～8 kg之间",
        "findings.jaundice": "黄疸部位不是可选项，可选：none（无）、face（面部）、trunk（躯干）、"
        "limbs（四肢）、palms_soles（手足）",
    }
    iud = shipped["iud_followup"]
    assert check_findings(iud, {"position": "normal", "last_menstrual_period": "2025-03-01"}) == []
    assert errors(iud, {"satisfied": 1}) == {
        "findings.satisfied": "对节育器满意、愿继续使用应为是或否（true / false）"
    }
    postpartum = shipped["postpartum_home_visit"]
    assert errors(postpartum, {"bp_systolic": 300}) == {
        "findings.bp_systolic": "收缩压应在50～260 mmHg之间"
    }


# -- GET /visit-forms over HTTP -------------------------------------------------------------


def visits(stack: InProcessStack) -> httpx.AsyncClient:
    return stack.clients["visits"]


def problem(r: Any, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = r.json()
    assert body["code"] == code
    return body


@pytest.mark.parametrize(
    ("role", "region", "person_id"),
    [
        ("resident", VILLAGE, "p-1"),
        ("village_worker", VILLAGE, None),
        ("township_officer", TOWNSHIP, None),
        ("admin", "", None),
    ],
)
async def test_any_role_lists_the_forms(
    stack: InProcessStack, role: str, region: str, person_id: str | None
) -> None:
    r = await visits(stack).get("/api/v1/visit-forms", headers=stack.auth(role, region, person_id))
    assert r.status_code == 200, r.text
    by_service = {f["service"]: f for f in r.json()}
    assert set(by_service) == PLAN_SERVICES
    # Every service a plan step names in GET /visit-plans has its form.
    r = await visits(stack).get("/api/v1/visit-plans", headers=stack.auth(role, region, person_id))
    assert {s["service"] for p in r.json() for s in p["steps"]} == set(by_service)
    assert all(f["source"] and f["fields"] for f in by_service.values())


async def test_one_form_with_its_fields(stack: InProcessStack) -> None:
    r = await visits(stack).get(
        "/api/v1/visit-forms/postpartum_home_visit", headers=stack.auth("village_worker", VILLAGE)
    )
    assert r.status_code == 200, r.text
    form = r.json()
    assert form["service"] == "postpartum_home_visit" and form["free_text"] is True
    fields = {f["code"]: f for f in form["fields"]}
    assert fields["temperature"] == {
        "code": "temperature",
        "name": "体温",
        "type": "number",
        "required": False,
        "max_length": None,
        "min": 34.0,
        "max": 42.5,
        "unit": "°C",
        "options": [],
        "note": "",
    }
    assert fields["bp_systolic"]["unit"] == "mmHg"
    assert fields["lochia"]["options"][0] == {"code": "normal", "name": "未见异常"}
    assert fields["guidance_given"]["type"] == "boolean"
    r = await visits(stack).get(
        "/api/v1/visit-forms/newborn_home_visit", headers=stack.auth("resident", VILLAGE, "p-1")
    )
    feeds = {f["code"]: f for f in r.json()["fields"]}["feeds_per_day"]
    assert (feeds["type"], feeds["min"], feeds["max"], feeds["unit"]) == ("integer", 0, 30, "次/日")


async def test_unknown_form_is_a_404_in_chinese(stack: InProcessStack) -> None:
    r = await visits(stack).get(
        "/api/v1/visit-forms/no_such_service", headers=stack.auth("county_officer", "330102")
    )
    assert problem(r, 404, "not_found")["detail"] == "随访记录表单不存在"
    r = await visits(stack).get(
        "/api/v1/visit-forms/no_such_service",
        headers={**stack.auth("county_officer", "330102"), "Accept-Language": "en"},
    )
    assert problem(r, 404, "not_found")["detail"] == "Visit form not found"
    # A plan code is not a service.
    r = await visits(stack).get(
        "/api/v1/visit-forms/postpartum", headers=stack.auth("village_worker", VILLAGE)
    )
    problem(r, 404, "not_found")


async def test_forms_need_a_token(stack: InProcessStack) -> None:
    problem(await visits(stack).get("/api/v1/visit-forms"), 401, "unauthenticated")
    problem(await visits(stack).get("/api/v1/visit-forms/iud_followup"), 401, "unauthenticated")
    problem(
        await visits(stack).get(
            "/api/v1/visit-forms", headers={"Authorization": "Bearer not-a-token"}
        ),
        401,
        "token_invalid",
    )


async def test_forms_are_in_the_openapi_with_descriptions(stack: InProcessStack) -> None:
    r = await visits(stack).get("/openapi.json")
    assert r.status_code == 200, r.text
    spec = r.json()
    assert {"/api/v1/visit-forms", "/api/v1/visit-forms/{service}"} <= set(spec["paths"])
    schemas = spec["components"]["schemas"]
    for name in ("FormOut", "FormFieldOut", "OptionOut"):
        assert all(p.get("description") for p in schemas[name]["properties"].values()), name
