"""docs/exports.md is generated from the exports' column sets and access rules and must stay so."""

from __future__ import annotations

import importlib
from pathlib import Path

from shared.config import SERVICES
from shared.exports import catalogue_markdown

DOC = Path(__file__).resolve().parents[2] / "docs" / "exports.md"


def test_the_catalogue_in_docs_is_what_the_code_defines() -> None:
    assert DOC.read_text("utf-8") == catalogue_markdown(SERVICES), (
        "docs/exports.md is stale: run `.venv/bin/lingju exports > docs/exports.md`"
    )


def test_every_export_is_routed_declared_and_its_columns_named_once() -> None:
    routes: set[str] = set()
    for service in SERVICES:
        try:
            module = importlib.import_module(f"services.{service}.api.exports")
        except ModuleNotFoundError:
            continue
        policy = importlib.import_module(f"services.{service}.api.access").POLICY
        paths = {"/api/v1" + r.path for r in module.router.routes}  # type: ignore[attr-defined]
        for export in module.EXPORTS:
            assert export.route not in routes, export.route
            routes.add(export.route)
            assert export.route in paths, export.route
            assert policy.rule_for("GET", export.route) is not None, export.route
            names = [c.name for c in export.columns]
            assert len(names) == len(set(names)), export.route
            assert all(c.description for c in export.columns), export.route
    assert routes
