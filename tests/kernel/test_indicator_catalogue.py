"""docs/indicators.md is generated from the indicators' definitions and must stay so."""

from __future__ import annotations

import importlib
from pathlib import Path

from shared.config import SERVICES
from shared.reports import catalogue_markdown

DOC = Path(__file__).resolve().parents[2] / "docs" / "indicators.md"


def test_the_catalogue_in_docs_is_what_the_code_defines() -> None:
    assert DOC.read_text("utf-8") == catalogue_markdown(SERVICES), (
        "docs/indicators.md is stale: run `.venv/bin/lingju indicators > docs/indicators.md`"
    )


def test_every_indicator_code_is_unique_and_documented() -> None:
    seen: set[str] = set()
    for service in SERVICES:
        for indicator in importlib.import_module(f"services.{service}.reports").INDICATORS:
            key = f"{service}.{indicator.code}"
            assert key not in seen, key
            seen.add(key)
            assert indicator.name and len(indicator.formula) > 20, key
