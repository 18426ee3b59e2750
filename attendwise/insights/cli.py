"""``attendwise insights refresh``: recompute the precomputed figures of one school or of all."""

from __future__ import annotations

import datetime as dt
import time

import click
from flask.cli import with_appcontext


@click.group("insights", help="Figures for comparing schools (trusts and local authorities).")
def insights() -> None:
    """Commands for the insights figures."""


@insights.command("refresh")
@click.option("--school", "urn", help="Only the school with this URN (default: every school).")
@click.option(
    "--on", "on", type=click.DateTime(["%Y-%m-%d"]), help="Figures as of this day (default: today)."
)
@with_appcontext
def refresh_command(urn: str | None, on: dt.datetime | None) -> None:
    """Recompute every school's figures (or one school's) from its marks and casework, every part
    of them, whatever the last refresh kept (the refresh job recomputes only what changed)."""
    from sqlalchemy import select

    from attendwise.insights import services
    from attendwise.platform import audit, tenancy
    from attendwise.platform.db import db, session_scope
    from attendwise.tenants.models import Organisation, OrgKind

    audit.set_actor(audit.Actor(label="attendwise insights refresh"))
    day = on.date() if on else None
    with session_scope(db.new_session()) as session:
        with tenancy.system_context("attendwise insights refresh: list the schools"):
            query = select(Organisation.id, Organisation.name).where(Organisation.kind == OrgKind.SCHOOL)
            if urn:
                query = query.where(Organisation.urn == urn)
            schools = session.execute(query.order_by(Organisation.id)).all()
        if urn and not schools:
            raise click.ClickException(f"--school: no school with URN {urn}")
        started = time.perf_counter()
        for school_id, name in schools:
            result = services.refresh(session, school_id, on=day, full=True)
            click.echo(f"{name}: {result.pupils} pupils, {result.figure_rows} figures as of {result.on}")
        click.echo(f"refreshed {len(schools)} school(s) in {time.perf_counter() - started:.1f} s")


COMMANDS = (insights,)
