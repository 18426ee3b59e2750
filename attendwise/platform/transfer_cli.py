"""``attendwise export organisation`` and ``attendwise import organisation`` (see ``transfer.py``).

``import`` is a group shared with the MIS file imports (``attendwise import ctf ...``):
:func:`register` adds ``organisation`` to whichever ``import`` group the app already has.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import IO

import click
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext

from attendwise.platform import transfer
from attendwise.platform.db import AttendwiseSession, db, make_engine

export_cli = AppGroup("export", help="Export data for moving or restoring it.")


@export_cli.command("organisation")
@click.option("--org", "org_id", type=int, required=True, help="The organisation's id.")
@click.argument("file", type=click.Path(dir_okay=False, writable=True, allow_dash=True, path_type=Path))
def export_organisation(org_id: int, file: Path) -> None:
    """Write one organisation's rows (and the users and parents they point to) to FILE."""
    session = db.new_session()
    try:
        if str(file) == "-":
            report = transfer.export_organisation(session, org_id, sys.stdout)
        else:
            with file.open("w", encoding="utf-8") as out:
                report = transfer.export_organisation(session, org_id, out)
    except transfer.TransferError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        session.close()
    click.echo(f"exported organisation {org_id}: {report.total} rows in {len(report.rows)} tables", err=True)


@click.command("organisation")
@click.argument("file", type=click.File("r", encoding="utf-8"))
@with_appcontext
def import_organisation(file: IO[str]) -> None:
    """Import one organisation from FILE (from `attendwise export organisation`), all or nothing.

    Runs as the migration role (ATTENDWISE_MIGRATION_DATABASE_URL): it sets sequences."""
    engine = make_engine(current_app.config["MIGRATION_DATABASE_URL"])
    session = AttendwiseSession(bind=engine)
    try:
        report = transfer.import_organisation(session, file)
        session.commit()
    except transfer.TransferError as exc:
        raise click.ClickException(f"nothing imported: {exc}") from exc
    finally:
        session.close()
        engine.dispose()
    skipped = sum(report.skipped_existing.values())
    click.echo(
        f"imported organisation {report.org_id}: {report.total} rows; "
        f"{skipped} referenced rows (users, parent organisations) were already here and were kept; "
        "audit chain verified"
    )


def register(app: Flask) -> None:
    app.cli.add_command(export_cli)
    group = app.cli.commands.get("import")
    if not isinstance(group, click.Group):
        group = AppGroup("import", help="Import data.")
        app.cli.add_command(group)
    group.add_command(import_organisation)
