"""The county's monthly report (月报): every service's indicators for one region and month.

Registry serves it because the bureau already calls it; it reads no other service's tables. It
fans in over HTTP: each service's ``GET /api/v1/reports/indicators`` is called with the
caller's own token, so every service checks the caller's role and region itself, and a figure
is computed only by the service that owns its data. If any service does not answer, the report
is refused (503) rather than handed over with figures missing.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel

from services.registry.api.access import Caller
from shared.config import SERVICES
from shared.db import utcnow
from shared.errors import Problem
from shared.reports import (
    FormatQuery,
    IndicatorReport,
    MonthQuery,
    RegionQuery,
    report_csv,
    report_scope,
)
from shared.service import Runtime, RuntimeDep

log = logging.getLogger("lingju.registry.reports")

router = APIRouter(prefix="/reports", tags=["reports"])


class MonthlyReport(BaseModel):
    region: str
    level: str
    month: str
    generated_at: datetime
    services: list[IndicatorReport]


async def _indicators_of(
    rt: Runtime, service: str, params: dict[str, str], authorization: str
) -> IndicatorReport:
    async with rt.peer(service) as client:
        r = await client.get(
            "/api/v1/reports/indicators",
            params=params,
            headers={"Authorization": authorization, "Accept-Language": "zh"},
        )
    if r.status_code != 200:
        raise _Unanswered(service, f"HTTP {r.status_code}: {r.text[:200]}", r.status_code)
    return IndicatorReport.model_validate(r.json())


class _Unanswered(Exception):
    def __init__(self, service: str, why: str, status: int | None = None) -> None:
        super().__init__(f"{service}: {why}")
        self.service = service
        self.status = status


@router.get(
    "/monthly",
    response_model=MonthlyReport,
    summary="Every service's indicators for a region and month (JSON or CSV)",
    responses={200: {"content": {"text/csv": {}}}},
)
async def monthly_report(
    request: Request,
    rt: RuntimeDep,
    principal: Caller,
    region: RegionQuery = None,
    month: MonthQuery = None,
    format: FormatQuery = "json",
) -> Response:
    # Checked here first, so a bad request is answered once, not four times.
    scope = report_scope(principal.region_scope(), region, month, rt.clock.today())
    params = {"region": scope.region, "month": str(scope.month)}
    authorization = request.headers.get("authorization", "")
    results = await asyncio.gather(
        *(_indicators_of(rt, s, params, authorization) for s in SERVICES),
        return_exceptions=True,
    )
    missing = []
    for service, result in zip(SERVICES, results, strict=True):
        if isinstance(result, BaseException):
            log.warning("monthly report: %s did not answer: %s", service, result)
            missing.append(service)
    if missing:
        raise Problem(
            503,
            "report_incomplete",
            f"以下服务暂未返回统计：{'、'.join(missing)}，请稍后重试",
            f"These services did not answer: {', '.join(missing)}; retry later",
            headers={"Retry-After": "30"},
        )
    reports = [r for r in results if isinstance(r, IndicatorReport)]
    if format == "csv":
        return PlainTextResponse(report_csv(reports), media_type="text/csv; charset=utf-8")
    report = MonthlyReport(
        region=scope.region,
        level=scope.level,
        month=str(scope.month),
        generated_at=utcnow(),
        services=reports,
    )
    return JSONResponse(report.model_dump(mode="json"))
