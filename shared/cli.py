"""``lingju``: the developer and operator command line."""

from __future__ import annotations

from typing import Annotated

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
def run() -> None:
    """Start nats-server (unless LINGJU_NATS_URL is set) and the four services; Ctrl-C stops all."""
    from shared.devstack import run_forever

    run_forever()


if __name__ == "__main__":
    app()
