"""``lingju``: the developer and operator command line."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console

from shared.config import SERVICES, Settings

app = typer.Typer(help="Lingju (零距) command line", no_args_is_help=True)
console = Console()


@app.command()
def token(
    role: Annotated[
        str,
        typer.Option(
            help="resident, village_agent, village_worker, township_officer, "
            "county_officer, bureau_system or admin"
        ),
    ],
    region: Annotated[
        str, typer.Option(help="division code prefix the caller is responsible for")
    ] = "",
    person_id: Annotated[str | None, typer.Option(help="for residents: their person id")] = None,
    sub: Annotated[str | None, typer.Option(help="subject (user id)")] = None,
    ttl: Annotated[int, typer.Option(help="lifetime in seconds")] = 8 * 3600,
) -> None:
    """Print a development token signed with LINGJU_JWT_SECRET (HS256)."""
    from shared.auth import mint_dev_token

    settings = Settings()
    if settings.env == "production":
        raise typer.BadParameter("development tokens are refused in production")
    print(
        mint_dev_token(
            settings, role=role, region=region, sub=sub, person_id=person_id, ttl_seconds=ttl
        )
    )


@app.command()
def migrate(
    service: Annotated[
        list[str] | None, typer.Argument(help="services to migrate (default: all)")
    ] = None,
) -> None:
    """Apply every service's Alembic migrations to its own database."""
    from shared.migrations import upgrade

    settings = Settings()
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    for name in service or SERVICES:
        if name not in SERVICES:
            raise typer.BadParameter(f"unknown service {name}")
        upgrade(name, settings.database_url(name))
        console.print(f"[green]migrated[/green] {name}")


@app.command()
def revision(
    service: Annotated[str, typer.Argument(help="the service whose models changed")],
    message: Annotated[str, typer.Option("-m", help="what changed")],
) -> None:
    """Autogenerate a migration for a service from its models (review it before committing)."""
    from alembic import command

    from shared.migrations import alembic_config

    settings = Settings()
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    command.revision(
        alembic_config(service, settings.database_url(service)), message=message, autogenerate=True
    )


@app.command()
def reencrypt(
    service: Annotated[
        list[str] | None, typer.Argument(help="services whose columns to rewrite (default: all)")
    ] = None,
    batch_size: Annotated[
        int, typer.Option(min=1, help="rows per transaction (each batch commits on its own)")
    ] = 500,
) -> None:
    """Rewrite every encrypted column's values with the active data key (the first of
    LINGJU_DATA_KEYS). Safe to stop and run again, and while the services run."""
    import asyncio

    names = service or list(SERVICES)
    for name in names:
        if name not in SERVICES:
            raise typer.BadParameter(f"unknown service {name}")
    failed = asyncio.run(_reencrypt(Settings(), names, batch_size))
    if failed:
        console.print(f"[red]{failed} value(s) no configured key decrypts: see above[/red]")
        raise typer.Exit(1)


async def _reencrypt(settings: Settings, services: list[str], batch_size: int) -> int:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    from shared.crypto import FieldCipher
    from shared.db import Database
    from shared.rotation import declared_columns, reencrypt_column

    cipher = FieldCipher(settings.data_keys, settings.blind_index_key)
    failed = 0
    for name in services:
        columns = declared_columns(name)
        if not columns:
            console.print(f"{name}: no encrypted columns")
            continue
        db = Database(settings.database_url(name), pool_size=1)
        try:
            for col in columns:
                with Progress(
                    TextColumn(f"{name} {col.table}.{col.column}"),
                    BarColumn(),
                    MofNCompleteColumn(),
                    TimeRemainingColumn(),
                    console=console,
                    transient=True,
                ) as bar:
                    r = await reencrypt_column(
                        db, cipher, col, batch_size=batch_size, progress=_RichBar(bar)
                    )
                console.print(
                    f"{name} {r.name}: rewritten {r.rewritten}, already current {r.current}, "
                    f"changed meanwhile {r.changed}, failed {r.failed}",
                    soft_wrap=True,  # one line per column, for logs and grep
                )
                if r.failed:
                    more = "" if len(r.failed_ids) == r.failed else " (first ones)"
                    console.print(f"  failed ids{more}: {', '.join(r.failed_ids)}", soft_wrap=True)
                failed += r.failed
        finally:
            await db.dispose()
    return failed


@app.command()
def indicators() -> None:
    """Print the indicator catalogue (docs/indicators.md) from the services' definitions."""
    from shared.reports import catalogue_markdown

    typer.echo(catalogue_markdown(SERVICES), nl=False)


@app.command()
def exports() -> None:
    """Print the export catalogue (docs/exports.md) from the services' column sets and policies."""
    from shared.exports import catalogue_markdown

    typer.echo(catalogue_markdown(SERVICES), nl=False)


@app.command("audit-verify")
def audit_verify(
    service: Annotated[
        list[str] | None, typer.Argument(help="services whose audit trail to check (default: all)")
    ] = None,
) -> None:
    """Recompute every audit trail's hash chain; print each one's entries and head hash (keep
    the head: a trail later cut back to before it is then caught). Exits 1 on any break."""
    import asyncio

    names = service or list(SERVICES)
    for name in names:
        if name not in SERVICES:
            raise typer.BadParameter(f"unknown service {name}")
    if not asyncio.run(_audit_verify(Settings(), names)):
        raise typer.Exit(1)


async def _audit_verify(settings: Settings, services: list[str]) -> bool:
    import importlib

    from shared.audit import verify
    from shared.db import Database

    intact = True
    for name in services:
        tables = importlib.import_module(f"services.{name}.models").KERNEL.audit
        db = Database(settings.database_url(name), pool_size=1)
        try:
            v = await verify(db, tables)
        finally:
            await db.dispose()
        if v.valid:
            console.print(
                f"{name}: intact, {v.entries} entries, head {v.head_seq} {v.head_hash}",
                soft_wrap=True,  # one line per trail, for logs and grep
            )
        else:
            intact = False
            console.print(
                f"[red]{name}: BROKEN at entry {v.first_broken_seq}: {v.reason}[/red] "
                f"({v.entries} entries verified before it)",
                soft_wrap=True,
            )
    return intact


class _RichBar:
    """shared.rotation's progress on a rich bar: total = rows to rewrite, counted first."""

    def __init__(self, bar: Any) -> None:
        self.bar = bar
        self.task = bar.add_task("rewrite", total=None)

    def start(self, column: Any, total: int) -> None:
        self.bar.update(self.task, total=total)

    def advance(self, rows: int) -> None:
        self.bar.advance(self.task, rows)


@app.command()
def run(
    demo: Annotated[
        int,
        typer.Option(
            min=0,
            metavar="RESIDENTS",
            help="seed a demo county of about this many residents through the APIs once the "
            "services are ready (skipped if this data directory already has it)",
        ),
    ] = 0,
) -> None:
    """Start nats-server (unless LINGJU_NATS_URL is set) and the four services; Ctrl-C stops all."""
    from shared.devstack import run_forever

    if demo and Settings().env == "production":
        raise typer.BadParameter("the demo county uses development tokens: refused in production")
    run_forever(demo_residents=demo)


if __name__ == "__main__":
    app()
