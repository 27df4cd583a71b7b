"""The county's monthly report: registry fans in every service's indicators over HTTP with the
caller's own token; no service reads another's tables, and a missing service refuses the
report instead of leaving figures out."""

from __future__ import annotations

import csv
import io

from shared.config import SERVICES
from tests.support import InProcessStack, eventually

COUNTY = "330102"
URL = "/api/v1/reports/monthly"


def bureau(stack: InProcessStack) -> dict[str, str]:
    return stack.auth("bureau_system", COUNTY, sub="county-bureau")


async def test_the_monthly_report_holds_every_services_own_figures(stack: InProcessStack) -> None:
    await stack.issue_certificate()
    month = str(stack.rt("registry").clock.today())[:7]

    async def settled() -> dict:
        """The flow's events handled: the report and each service's own answer agree."""
        r = await stack.registry.get(URL, params={"month": month}, headers=bureau(stack))
        assert r.status_code == 200, r.text
        report = r.json()
        assert [s["service"] for s in report["services"]] == list(SERVICES)
        # Each part is exactly what the owning service answers on its own.
        for part in report["services"]:
            own = await stack.clients[part["service"]].get(
                "/api/v1/reports/indicators",
                params={"region": COUNTY, "month": month},
                headers=bureau(stack),
            )
            assert own.status_code == 200
            assert own.json()["indicators"] == part["indicators"], part["service"]
        return report

    report = await eventually(settled)
    assert (report["region"], report["level"], report["month"]) == (COUNTY, "county", month)
    received = next(
        i for i in report["services"][0]["indicators"] if i["code"] == "applications_received"
    )
    assert received["value"] == 1 and received["by_region"][0]["region"] == "330102001"

    r = await stack.registry.get(
        URL, params={"month": month, "format": "csv"}, headers=bureau(stack)
    )
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text.lstrip("\ufeff"))))
    expected = sum(
        1 + len(i["by_region"]) for part in report["services"] for i in part["indicators"]
    )
    assert len(rows) == expected
    assert {row["service"] for row in rows} <= set(SERVICES)


async def test_the_report_is_confined_to_the_callers_region(stack: InProcessStack) -> None:
    r = await stack.registry.get(URL, params={"region": "330103"}, headers=bureau(stack))
    assert r.status_code == 403 and r.json()["code"] == "out_of_region"
    r = await stack.registry.get(URL, headers=stack.auth("village_worker", "330102001001"))
    assert r.status_code == 403 and r.json()["code"] == "forbidden"
    r = await stack.registry.get(URL, params={"month": "2999-01"}, headers=bureau(stack))
    assert r.status_code == 422


async def test_a_service_that_does_not_answer_refuses_the_report(stack: InProcessStack) -> None:
    rt = stack.rt("registry")
    rt.peer_transports.pop("visits")
    stack.settings.visits_url = "http://127.0.0.1:9"  # nothing listens on the discard port
    r = await stack.registry.get(URL, headers=bureau(stack))
    assert r.status_code == 503, r.text
    body = r.json()
    assert body["code"] == "report_incomplete" and "visits" in body["detail"]
    assert r.headers["Retry-After"]
