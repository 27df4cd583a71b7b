"""RFC 9457 problem+json for every error, zh-CN by default, English on ``Accept-Language: en``.

Every problem carries a stable machine ``code``; clients branch on it, never on the text.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("lingju.errors")

PROBLEM_JSON = "application/problem+json"

# code -> (zh-CN title, English title). Codes are stable; titles may be reworded.
TITLES: dict[str, tuple[str, str]] = {
    "validation_failed": ("请求参数有误", "Invalid request"),
    "body_not_json": ("请求体不是有效的 JSON", "Request body is not valid JSON"),
    "unauthenticated": ("未登录或登录已失效", "Authentication required"),
    "token_invalid": ("访问令牌无效", "Invalid access token"),
    "forbidden": ("无权执行此操作", "Not allowed"),
    "out_of_region": ("超出您负责的辖区", "Outside your region"),
    "not_found": ("资源不存在", "Not found"),
    "duplicate_id_number": ("该身份证号已登记", "ID number already registered"),
    "unknown_person": ("居民不存在", "Person not found"),
    "unknown_certificate_type": ("不受理的证件类型", "Certificate type not offered"),
    "invalid_transition": ("当前状态不允许此操作", "Not allowed in the current status"),
    "wrong_review_level": ("不在您的审核层级", "Not your review level"),
    "level_not_in_catalogue": (
        "审核层级已从证件目录中删除",
        "Review level no longer in the catalogue",
    ),
    "route_not_found": ("接口不存在", "No such endpoint"),
    "method_not_allowed": ("不支持该请求方法", "Method not allowed"),
    "conflict": ("与现有数据冲突", "Conflict"),
    "version_conflict": ("数据已被他人修改，请刷新后重试", "Modified by someone else; reload"),
    "precondition_failed": ("数据已被他人修改（If-Match 不符）", "If-Match does not match"),
    "version_required": ("缺少版本号", "Version required"),
    "comment_required": ("请填写理由", "A reason is required"),
    "materials_not_expected": ("当前状态不需要补充材料", "No materials are awaited now"),
    "certificate_revoked": ("证件已注销", "Certificate already revoked"),
    "rate_limited": ("请求过于频繁", "Too many requests"),
    "locked_out": ("查询失败次数过多，已暂时锁定", "Too many failed attempts; locked for now"),
    "payload_too_large": ("请求体过大", "Request body too large"),
    "integration_client_unknown": ("未登记的对接方", "Unknown integration client"),
    "audit_unavailable": ("审计日志暂不可写", "The audit trail cannot be written"),
    "report_incomplete": ("统计报表暂不完整", "The report is incomplete"),
    "no_webhook": ("未登记回调地址", "No webhook registered"),
    "webhook_url_forbidden": ("不允许的回调地址", "Webhook URL not allowed"),
    "webhook_url_unresolvable": ("回调地址无法解析", "Webhook host does not resolve"),
    "unknown_event_type": ("未知的事件类型", "Unknown event type"),
    "family_exists": ("这对夫妻已登记为家庭", "Couple already registered as a family"),
    "child_already_linked": ("该子女已在此家庭中", "Child already linked to this family"),
    "duplicate_birth": ("该出生已登记", "Birth already registered"),
    "already_dead": ("该居民的死亡已登记", "Death already recorded"),
    "external_ref_conflict": (
        "外部编号已用于内容不同的报告",
        "External reference used for a different report",
    ),
    "signature_invalid": ("请求签名无效", "Invalid request signature"),
    "signature_expired": ("请求签名已过期", "Request signature expired"),
    "idempotency_key_reused": (
        "同一幂等键已用于不同的请求",
        "Idempotency-Key was used for a different request",
    ),
    "not_eligible": ("不符合待遇条件", "Not eligible"),
    "already_enrolled": ("已有未终止的同类待遇资格", "Already enrolled in this program"),
    "maker_checker": ("审核人不能与经办人为同一人", "The checker must not be the maker"),
    "payee_deceased": ("收款人已去世，请变更收款人", "The payee has died; name a new payee"),
    "not_a_claim_program": ("该项目不受理报销申请", "The program takes no claims"),
    "cap_reached": ("已达累计补助上限", "Cumulative cap reached"),
    "cap_contended": ("补助额度正被同时审核，请稍后重试", "The cap is busy; retry shortly"),
    "period_in_future": ("发放期间尚未到来", "The period has not begun yet"),
    "not_pay_month": ("该项目本月不发放", "The program does not pay in this month"),
    "run_open": ("同一项目有未完成的发放批次", "Another payment run of the program is open"),
    "return_file_invalid": ("银行回盘文件格式有误", "Invalid bank return file"),
    "unknown_references": ("回盘文件含有未知的流水号", "Unknown references in the return file"),
    "reconciliation_conflict": ("与已对账的结果不一致", "Conflicts with a reconciled result"),
    "slot_full": ("该时段号源已约满", "The slot is fully booked"),
    "slot_in_past": ("该时段已开始或已过去", "The slot has started or is over"),
    "slot_not_started": ("该时段尚未开始", "The slot has not started yet"),
    "already_booked": ("已预约此时段", "Already booked in this slot"),
    "unknown_station": ("站点不存在", "No such station"),
    "task_changed": ("任务已变更，请同步后重试", "The task changed; sync and retry"),
    "visit_id_reused": ("记录编号已用于另一任务", "Record id already used for another task"),
    "consent_required": ("须取得本人知情同意", "Informed consent is required"),
    "database_unavailable": ("服务暂时不可用，请稍后重试", "Temporarily unavailable; retry later"),
    "not_ready": ("服务尚未就绪", "Not ready"),
    "replay_failed": ("死信重放失败", "Replay failed"),
    "internal_error": ("服务器内部错误", "Internal server error"),
}

# Pydantic error types -> zh-CN field messages (the English comes from pydantic itself).
_FIELD_MESSAGES_ZH: dict[str, str] = {
    "missing": "必填字段缺失",
    "string_too_short": "长度不足",
    "string_too_long": "长度超出限制",
    "string_pattern_mismatch": "格式不正确",
    "string_type": "应为字符串",
    "int_type": "应为整数",
    "int_parsing": "应为整数",
    "bool_type": "应为布尔值",
    "date_from_datetime_parsing": "应为日期（YYYY-MM-DD）",
    "date_parsing": "应为日期（YYYY-MM-DD）",
    "datetime_parsing": "应为日期时间（ISO 8601）",
    "literal_error": "取值不在允许范围内",
    "enum": "取值不在允许范围内",
    "list_type": "应为列表",
    "dict_type": "应为对象",
    "model_type": "应为对象",
    "uuid_parsing": "应为 UUID",
    "extra_forbidden": "不允许的字段",
    "greater_than_equal": "数值过小",
    "less_than_equal": "数值过大",
    "json_invalid": "不是有效的 JSON",
}


class ProblemDetails(BaseModel):
    """The body of every error answer (RFC 9457), as published in OpenAPI."""

    type: str = Field(examples=["urn:lingju:problem:validation_failed"])
    title: str = Field(examples=["请求参数有误"])
    status: int = Field(examples=[422])
    code: str = Field(description="Stable machine code; branch on it, not on the text")
    detail: str
    instance: str | None = None
    errors: list[dict[str, str]] | None = Field(
        default=None,
        description="Per field: {field, message}",
        examples=[[{"field": "id_number", "message": "身份证号校验码错误"}]],
    )


def problem_responses() -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the errors any route may answer."""
    schema = {"schema": ProblemDetails.model_json_schema()}
    described = {
        401: "No or invalid token (unauthenticated, token_invalid)",
        403: "Role or region not allowed (forbidden, out_of_region)",
        404: "Not found",
        409: "Conflict (e.g. version_conflict, duplicate_id_number)",
        412: "If-Match names a version no longer current (precondition_failed)",
        413: "Request body over the route's limit (payload_too_large)",
        422: "Invalid input (validation_failed, body_not_json, ...)",
        428: "A change that needs the version read sent neither If-Match nor version "
        "(version_required)",
        503: "Database or broker unavailable; retry after Retry-After",
    }
    return {
        status: {"description": text, "content": {PROBLEM_JSON: schema}}
        for status, text in described.items()
    }


def wants_english(request: Request | None) -> bool:
    if request is None:
        return False
    return request.headers.get("accept-language", "").strip().lower().startswith("en")


class LocalizedValueError(ValueError):
    """A validation failure with a zh-CN message (``str(e)``) and an English one."""

    def __init__(self, zh: str, en: str) -> None:
        super().__init__(zh)
        self.english = en


class Problem(Exception):
    """Raise anywhere in a request to answer with problem+json."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str | None = None,
        detail_en: str | None = None,
        *,
        errors: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {detail_en or detail}")
        self.status = status
        self.code = code
        self.detail = detail
        self.detail_en = detail_en
        self.errors = errors
        self.headers = headers

    def body(self, english: bool, instance: str | None = None) -> dict[str, Any]:
        zh_title, en_title = TITLES.get(self.code, (HTTPStatus(self.status).phrase,) * 2)
        detail = (self.detail_en or self.detail) if english else (self.detail or self.detail_en)
        body: dict[str, Any] = {
            "type": f"urn:lingju:problem:{self.code}",
            "title": en_title if english else zh_title,
            "status": self.status,
            "code": self.code,
            "detail": detail or (en_title if english else zh_title),
        }
        if instance:
            body["instance"] = instance
        if self.errors is not None:
            body["errors"] = self.errors
        return body


def not_found(what_zh: str, what_en: str) -> Problem:
    return Problem(404, "not_found", f"{what_zh}不存在", f"{what_en} not found")


def problem_response(request: Request | None, problem: Problem) -> JSONResponse:
    english = wants_english(request)
    instance = request.url.path if request is not None else None
    return JSONResponse(
        problem.body(english, instance),
        status_code=problem.status,
        media_type=PROBLEM_JSON,
        headers=problem.headers,
    )


def field_errors(
    exc: RequestValidationError | ValidationError, english: bool
) -> tuple[str, list[dict[str, str]]]:
    """The code and the per-field messages of a validation failure: a request's, or one item's
    of a batch validated by hand (so each item of a phone's batch is refused on its own)."""
    code = "validation_failed"
    out: list[dict[str, str]] = []
    for err in exc.errors():
        kind = err.get("type", "")
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path", "header")]
        if kind == "json_invalid":
            loc = []
        if kind == "json_invalid":
            code = "body_not_json"
        msg = err.get("msg", "")
        if not english:
            ctx_error = (err.get("ctx") or {}).get("error")
            if kind == "value_error" and ctx_error is not None:
                msg = str(ctx_error)  # our validators speak Chinese already
            else:
                msg = _FIELD_MESSAGES_ZH.get(kind, "字段值无效")
        elif kind == "value_error":
            ctx_error = (err.get("ctx") or {}).get("error")
            msg = getattr(ctx_error, "english", None) or msg
        out.append({"field": ".".join(loc) or "body", "message": msg})
    return code, out


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(request, exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        english = wants_english(request)
        code, errors = field_errors(exc, english)
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        return problem_response(request, Problem(422, code, detail, detail, errors=errors))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        carried = getattr(exc, "problem", None)  # e.g. shared.limits' 413 raised mid-body
        if isinstance(carried, Problem):
            return problem_response(request, carried)
        if exc.status_code == 400 and isinstance(exc.__cause__, UnicodeDecodeError):
            # FastAPI's answer to a JSON body that is not UTF-8: as unparsable as bad JSON.
            problem = Problem(
                422,
                "body_not_json",
                "请求体不是 UTF-8 编码的 JSON",
                "The request body is not UTF-8 encoded JSON",
            )
            return problem_response(request, problem)
        code = {
            401: "unauthenticated",
            403: "forbidden",
            404: "route_not_found",
            405: "method_not_allowed",
            413: "payload_too_large",
        }.get(exc.status_code, "conflict" if exc.status_code == 409 else "validation_failed")
        if exc.status_code >= 500:
            code = "internal_error"
        return problem_response(
            request, Problem(exc.status_code, code, headers=getattr(exc, "headers", None))
        )

    @app.exception_handler(IntegrityError)
    async def _integrity(request: Request, exc: IntegrityError) -> JSONResponse:
        log.info("integrity error answered as 409: %s", exc.orig)
        return problem_response(request, Problem(409, "conflict"))

    async def _db_down(request: Request, exc: Exception) -> JSONResponse:
        log.warning("database unavailable: %s", getattr(exc, "orig", exc))
        return problem_response(
            request, Problem(503, "database_unavailable", headers={"Retry-After": "5"})
        )

    @app.exception_handler(DBAPIError)
    async def _data(request: Request, exc: DBAPIError) -> JSONResponse:
        # SQLSTATE class 22 (data exception): a value from the request the database refuses,
        # e.g. a NUL character in a string on PostgreSQL. The caller's input, not our fault.
        if str(getattr(exc.orig, "sqlstate", None) or "").startswith("22"):
            log.info("data exception answered as 422: %s", exc.orig)
            return problem_response(
                request,
                Problem(
                    422,
                    "validation_failed",
                    "请求中含有无法保存的值（如 NUL 字符）",
                    "The request holds a value that cannot be stored (e.g. a NUL character)",
                ),
            )
        log.error("unhandled database error", exc_info=exc)
        return problem_response(request, Problem(500, "internal_error"))

    # Connection lost, server restarting, database locked, pool exhausted: retry later.
    for error in (OperationalError, InterfaceError, PoolTimeoutError):
        app.add_exception_handler(error, _db_down)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return problem_response(request, Problem(500, "internal_error"))
