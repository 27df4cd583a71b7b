"""The findings forms (findings.toml), read once and checked against the plans' services."""

from __future__ import annotations

import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Any

from services.visits.domain.findings import Form, check_findings, parse_forms
from services.visits.events import plans

FORMS_FILE = Path(__file__).with_name("findings.toml")


@lru_cache(maxsize=1)
def forms() -> dict[str, Form]:
    """Forms by service; raises ValueError naming the place if findings.toml is malformed or
    does not give every service of plans.toml exactly one form."""
    services = {s.service for p in plans().values() for s in p.steps}
    return parse_forms(tomllib.loads(FORMS_FILE.read_text("utf-8")), services)


def findings_errors(service: str, findings: dict[str, Any]) -> list[dict[str, str]]:
    """The field errors of a visit's findings for a step's ``service`` (see check_findings).
    A task whose step is no longer in the plans (service "") has no form: nothing to check."""
    form = forms().get(service)
    return [] if form is None else check_findings(form, findings)
