"""RFC 9457 problem bodies: zh-CN by default, English on ``Accept-Language: en``."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from starlette.requests import Request

from shared.errors import TITLES, LocalizedValueError, Problem, not_found, wants_english


def request_with(accept_language: str | None) -> Request:
    headers = [] if accept_language is None else [(b"accept-language", accept_language.encode())]
    return Request({"type": "http", "method": "GET", "path": "/", "headers": headers})


def test_body_in_chinese() -> None:
    """The default body speaks Chinese, with the stable code and a type URN."""
    p = Problem(409, "version_conflict", "已被修改", "Modified")
    assert p.body(False) == {
        "type": "urn:lingju:problem:version_conflict",
        "title": "数据已被他人修改，请刷新后重试",
        "status": 409,
        "code": "version_conflict",
        "detail": "已被修改",
    }


def test_body_in_english() -> None:
    """The English body has the English title and detail; code and type do not change."""
    p = Problem(409, "version_conflict", "已被修改", "Modified")
    assert p.body(True) == {
        "type": "urn:lingju:problem:version_conflict",
        "title": "Modified by someone else; reload",
        "status": 409,
        "code": "version_conflict",
        "detail": "Modified",
    }


def test_detail_defaults_to_the_title() -> None:
    """A problem raised without a detail repeats the title in the detail."""
    p = Problem(404, "not_found")
    assert p.body(False)["detail"] == "资源不存在"
    assert p.body(True)["detail"] == "Not found"


def test_detail_in_one_language_is_used_for_both() -> None:
    """A detail given in one language only is better than none in the other."""
    assert Problem(400, "conflict", "仅中文").body(True)["detail"] == "仅中文"
    assert Problem(400, "conflict", None, "English only").body(False)["detail"] == "English only"


def test_unknown_code_falls_back_to_the_http_phrase() -> None:
    """A code without a title uses the HTTP status phrase."""
    body = Problem(418, "teapot").body(False)
    assert (body["title"], body["detail"], body["code"]) == (
        "I'm a Teapot",
        "I'm a Teapot",
        "teapot",
    )


def test_instance_and_errors_only_when_given() -> None:
    """``instance`` and ``errors`` appear only when there is something to say."""
    errors = [{"field": "id_number", "message": "身份证号校验码错误"}]
    p = Problem(422, "validation_failed", "x", "x", errors=errors)
    body = p.body(False, "/api/v1/persons")
    assert body["instance"] == "/api/v1/persons"
    assert body["errors"] == errors
    assert "instance" not in Problem(404, "not_found").body(False)
    assert "errors" not in Problem(404, "not_found").body(False)


def test_empty_errors_list_is_kept() -> None:
    """An explicit empty list is still sent (it is not None)."""
    assert Problem(422, "validation_failed", errors=[]).body(False)["errors"] == []


@pytest.mark.parametrize("code", sorted(TITLES))
def test_every_code_has_a_chinese_and_an_english_title(code: str) -> None:
    """Every stable code reads in Chinese by default and in English on request."""
    zh, en = TITLES[code]
    assert re.search(r"[\u4e00-\u9fff]", zh), zh
    assert en and en.isascii()


def _codes_raised_in(root: Path) -> dict[str, str]:
    """Every literal code of a ``Problem(status, "code", ...)`` in the project's source."""
    found: dict[str, str] = {}
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if not isinstance(node, ast.Call) or len(node.args) < 2:
                continue
            name = getattr(node.func, "id", getattr(node.func, "attr", None))
            code = node.args[1]
            if name == "Problem" and isinstance(code, ast.Constant) and isinstance(code.value, str):
                found.setdefault(code.value, str(path.relative_to(root.parent)))
    return found


@pytest.mark.parametrize("package", ["services", "shared"])
def test_every_code_the_services_raise_has_a_title(package: str) -> None:
    """A new code without a TITLES entry would answer with an English HTTP phrase as its
    Chinese title: every code raised anywhere must be listed."""
    root = Path(__file__).resolve().parents[2] / package
    missing = {c: where for c, where in _codes_raised_in(root).items() if c not in TITLES}
    assert missing == {}


def test_not_found_helper() -> None:
    """``not_found("申请", "Application")`` is a 404 naming the thing in both languages."""
    p = not_found("申请", "Application")
    assert (p.status, p.code) == (404, "not_found")
    assert p.body(False)["detail"] == "申请不存在"
    assert p.body(True)["detail"] == "Application not found"


def test_localized_value_error_carries_both_languages() -> None:
    """``str()`` is the Chinese message and ``.english`` the English one."""
    e = LocalizedValueError("身份证号无效", "ID number is invalid")
    assert isinstance(e, ValueError)
    assert (str(e), e.english) == ("身份证号无效", "ID number is invalid")


@pytest.mark.parametrize(
    ("accept_language", "english"),
    [
        (None, False),
        ("", False),
        ("zh-CN,zh;q=0.9,en;q=0.8", False),
        ("en", True),
        ("en-US,en;q=0.9", True),
        ("EN-gb", True),
        (" en", True),
    ],
)
def test_english_only_when_the_client_asks_first_for_it(
    accept_language: str | None, english: bool
) -> None:
    """Chinese unless the first language the client asks for is English."""
    assert wants_english(request_with(accept_language)) is english


def test_no_request_means_chinese() -> None:
    """Outside a request (e.g. a consumer), text is Chinese."""
    assert wants_english(None) is False
