"""The ``attendwise`` command (a click group; the same commands work as ``flask --app attendwise``)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click
from flask import Flask, current_app
from flask.cli import AppGroup, FlaskGroup

from attendwise.platform import tenancy
from attendwise.platform.db import db

if TYPE_CHECKING:
    from alembic.config import Config

db_cli = AppGroup("db", help="Database migrations (Alembic, shipped inside the package).")
audit_cli = AppGroup("audit", help="The audit log.")


def alembic_config(url: str | None = None) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).resolve().parent.parent / "migrations"))
    cfg.set_main_option("sqlalchemy.url", url or current_app.config["MIGRATION_DATABASE_URL"])
    cfg.attributes["app_db_role"] = current_app.config["APP_DB_ROLE"]
    return cfg


def upgrade_database(revision: str = "head") -> None:
    from alembic import command

    url = current_app.config["MIGRATION_DATABASE_URL"]
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(), revision)


@db_cli.command("upgrade")
@click.argument("revision", default="head")
def db_upgrade(revision: str) -> None:
    """Apply migrations up to REVISION (default: head)."""
    upgrade_database(revision)
    click.echo(f"database upgraded to {revision}")


@db_cli.command("downgrade")
@click.argument("revision")
def db_downgrade(revision: str) -> None:
    """Revert migrations down to REVISION (e.g. base)."""
    from alembic import command

    command.downgrade(alembic_config(), revision)
    click.echo(f"database downgraded to {revision}")


@db_cli.command("check")
def db_check() -> None:
    """Fail if the models have changes that no migration captures."""
    from alembic import command

    command.check(alembic_config())


@db_cli.command("revision")
@click.option("-m", "--message", required=True)
@click.option("--autogenerate/--empty", default=True)
def db_revision(message: str, autogenerate: bool) -> None:
    """Write a new migration (developers only)."""
    import datetime as dt

    from alembic import command

    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d_%H%M")
    command.revision(alembic_config(), message=message, autogenerate=autogenerate, rev_id=stamp)


@audit_cli.command("verify")
@click.option("--org", "org_ids", type=int, multiple=True, help="Only these organisation ids.")
def audit_verify(org_ids: tuple[int, ...]) -> None:
    """Recompute every organisation's audit hash chain and report rows that do not fit."""
    from attendwise.platform import audit

    with tenancy.system_context("attendwise audit verify"):
        problems = list(audit.verify(db.session(), list(org_ids) or None))
        db.session.rollback()
    if not problems:
        click.echo("audit chain intact")
        return
    for p in problems:
        click.echo(f"organisation {p.org_id}, event {p.seq} (id {p.event_id}): {p.reason}", err=True)
    sys.exit(1)


@click.command("permissions")
def permissions() -> None:
    """Print the permission matrix as Markdown (docs/permissions.md is generated from this)."""
    from attendwise.tenants.roles import matrix_markdown

    click.echo(matrix_markdown(), nl=False)


def register_cli(app: Flask) -> None:
    app.cli.add_command(db_cli)
    app.cli.add_command(audit_cli)
    app.cli.add_command(permissions)
    from attendwise.platform.demo import demo_command
    from attendwise.platform.discovery import modules

    app.cli.add_command(demo_command)
    from attendwise.platform.worker import COMMANDS as JOB_COMMANDS

    for job_command in JOB_COMMANDS:
        app.cli.add_command(job_command)
    for module in modules("cli"):
        for command in getattr(module, "COMMANDS", ()):
            app.cli.add_command(command)
    from attendwise.platform.transfer_cli import register as register_transfer

    register_transfer(app)


def _create_app() -> Flask:
    from attendwise.platform.app import create_app

    return create_app()


main = FlaskGroup(
    name="attendwise",
    create_app=_create_app,
    add_default_commands=True,
    add_version_option=False,
    help="Attendwise: school attendance escalation for schools, trusts and local authorities.",
)
