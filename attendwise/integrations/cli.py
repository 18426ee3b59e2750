"""``attendwise import ...``: CTF and CSV files, checked with no database (``--dry-run``) or imported.

``--dry-run --format json`` is a contract for tools outside this repository (see ``docs/cli.md``):
it prints ``{"pupils": [...], "errors": [...]}`` and exits 1 when any error was found.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
from flask import current_app

from attendwise.attendance.cli import summary_records
from attendwise.attendance.marks_file import MarkRow
from attendwise.integrations import csv_import, ctf
from attendwise.integrations.ctf import Problem

FILE = click.Path(exists=True, dir_okay=False, path_type=Path)

# The figures of ``attendwise attendance summary`` for a pupil with no marks in the file.
NO_MARKS = {
    "possible_sessions": 0,
    "present": 0,
    "approved_activity": 0,
    "authorised": 0,
    "unauthorised": 0,
    "attendance_pct": None,
    "persistent_absence": False,
    "severe_absence": False,
    "late_before_close": 0,
    "late_after_close": 0,
    "max_unauthorised_in_10_school_weeks": 0,
}


def _no_marks(example: dict[str, Any] | None) -> dict[str, Any]:
    """The figures for a pupil with no marks: the fields of ``example`` (another pupil's record)
    with no sessions counted, percentages and dates unknown."""
    if example is None:
        return dict(NO_MARKS)

    def empty(value: Any) -> Any:
        if isinstance(value, bool):
            return False
        if isinstance(value, int):
            return 0
        if isinstance(value, dict):
            return {}
        return None

    return {**{key: empty(value) for key, value in example.items()}, **NO_MARKS}


def _max_bytes(option: int | None) -> int:
    if option is not None:
        return option
    return int(current_app.config.get("MAX_CONTENT_LENGTH") or ctf.DEFAULT_MAX_BYTES)


def _read(path: Path, max_bytes: int) -> tuple[bytes | None, list[Problem]]:
    try:
        return ctf.read_limited(path, max_bytes), []
    except ctf.CtfRefused as refused:
        return None, [Problem(refused.location, refused.reason)]


def ctf_report(parsed: ctf.CtfFile) -> dict[str, Any]:
    """The dry run's JSON: each pupil's figures as ``attendance summary`` gives them, plus the
    file's own totals and where they disagree with the marks."""
    rows = [
        MarkRow(0, pupil.upn, mark.date, mark.session, mark.code, temporary_upn=pupil.upn_temporary)
        for pupil in parsed.pupils
        for mark in pupil.marks
    ]
    figures = {record["upn"]: record for record in summary_records(rows)}
    pupils = []
    for pupil in parsed.pupils:
        record = figures.get(pupil.upn) or {
            "upn": pupil.upn,
            "temporary_upn": pupil.upn_temporary,
            **NO_MARKS,
        }
        pupils.append(
            {
                **record,
                "surname": pupil.surname,
                "forename": pupil.forename,
                "date_of_birth": pupil.date_of_birth.isoformat(),
                "sex": pupil.sex,
                "year_group": pupil.nc_year,
                "file_totals": ctf.file_totals(pupil),
                "disagreements": ctf.disagreements(pupil),
            }
        )
    return {"pupils": pupils, "errors": [p.as_dict() for p in parsed.problems]}


def _print_problems(problems: list[dict[str, str]]) -> None:
    for problem in problems:
        click.echo(f"{problem['location']}: {problem['reason']}", err=True)


def _emit_report(report: dict[str, Any], fmt: str) -> None:
    if fmt == "json":
        click.echo(json.dumps(report, indent=2, default=str))
    else:
        click.echo(f"{len(report['pupils'])} pupil(s) read, {len(report['errors'])} problem(s)")
        for pupil in report["pupils"]:
            for found in pupil.get("disagreements", []):
                click.echo(
                    f"{pupil['upn']}: the file states {found['total']} = {found['file']} "
                    f"for {found['year']}, its marks give {found['marks']} ({found['location']})"
                )
        _print_problems(report["errors"])
    if report["errors"]:
        sys.exit(1)


def _import(school_urn: str, connector: str, source: str, fmt: str, work: Any) -> None:
    from attendwise.integrations import services
    from attendwise.platform import audit, tenancy
    from attendwise.platform.db import db

    session = db.session()
    with tenancy.system_context("attendwise import: find the school by URN"):
        school = services.school_by_urn(session, school_urn)
    if school is None:
        raise click.ClickException(f"no school with URN {school_urn}")
    audit.set_actor(audit.Actor(label=f"attendwise import {connector}"))
    try:
        run = services.run_import(
            session, school, connector=connector, source=source, work=lambda: work(session, school)
        )
    except services.SyncInProgress as busy:
        raise click.ClickException(str(busy)) from None
    with tenancy.tenant_context(school.id):
        errors = [{"location": r.location, "reason": r.reason} for r in run.rejections]
    summary = {
        "run": run.id,
        "school": school.urn,
        "status": run.status.value,
        "created": run.created,
        "updated": run.updated,
        "unchanged": run.unchanged,
        "deleted": run.deleted,
        "rejected": run.rejected,
        "detail": run.detail,
        "errors": errors,
    }
    if fmt == "json":
        click.echo(json.dumps(summary, indent=2, default=str))
    else:
        click.echo(
            f"run {run.id} for {school.name}: {run.created} created, {run.updated} updated, "
            f"{run.unchanged} unchanged, {run.rejected} record(s) rejected"
        )
        _print_problems(errors)
    if errors:
        sys.exit(1)


@click.group("import", help="Import pupils, contacts and marks from MIS files (CTF, CSV).")
def import_group() -> None:
    """The import command group."""


@import_group.command("ctf")
@click.argument("path", metavar="FILE", type=FILE)
@click.option("--school", "school_urn", help="URN of the school to import into (not with --dry-run).")
@click.option("--dry-run", is_flag=True, help="Check the file and show its figures; no database needed.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option(
    "--max-bytes", type=click.IntRange(min=1), help="Refuse larger files (default: the upload limit)."
)
def import_ctf(*, path: Path, school_urn: str | None, dry_run: bool, fmt: str, max_bytes: int | None) -> None:
    """Read a DfE Common Transfer File (CTF 24 or 25)."""
    if not dry_run and not school_urn:
        raise click.UsageError("give --school URN to import, or --dry-run to check the file only")
    data, problems = _read(path, _max_bytes(max_bytes))
    if data is None:
        _emit_report({"pupils": [], "errors": [p.as_dict() for p in problems]}, fmt)
        return
    if dry_run:
        _emit_report(ctf_report(ctf.parse(data)), fmt)
        return
    from attendwise.integrations import services

    assert school_urn is not None
    _import(
        school_urn,
        "ctf",
        path.name,
        fmt,
        lambda session, school: services.import_ctf_bytes(session, school, data),
    )


@import_group.command("csv")
@click.argument("path", metavar="FILE", type=FILE)
@click.option("--kind", type=click.Choice(csv_import.KINDS), required=True, help="What the file holds.")
@click.option(
    "--column",
    "columns",
    multiple=True,
    metavar="FIELD=HEADER",
    help="Which column holds a field, e.g. --column code=Mark (repeatable).",
)
@click.option("--school", "school_urn", help="URN of the school to import into (not with --dry-run).")
@click.option("--save-mapping", is_flag=True, help="Keep these --column choices as the school's mapping.")
@click.option("--dry-run", is_flag=True, help="Check the file and show what it holds; no database needed.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option(
    "--max-bytes", type=click.IntRange(min=1), help="Refuse larger files (default: the upload limit)."
)
def import_csv(
    *,
    path: Path,
    kind: str,
    columns: tuple[str, ...],
    school_urn: str | None,
    save_mapping: bool,
    dry_run: bool,
    fmt: str,
    max_bytes: int | None,
) -> None:
    """Read marks or pupils from a CSV export, through a column mapping."""
    if not dry_run and not school_urn:
        raise click.UsageError("give --school URN to import, or --dry-run to check the file only")
    if save_mapping and dry_run:
        raise click.UsageError("--save-mapping needs --school (it is kept per school)")
    try:
        mapping = csv_import.parse_mapping(columns, kind)
    except csv_import.MappingError as exc:
        raise click.BadParameter(str(exc), param_hint="--column") from None
    data, problems = _read(path, _max_bytes(max_bytes))
    if data is None:
        _emit_report({"pupils": [], "errors": [p.as_dict() for p in problems]}, fmt)
        return
    if dry_run:
        parsed = csv_import.parse(data, kind, mapping)
        _emit_report(csv_report(parsed), fmt)
        return
    from attendwise.integrations import services

    def work(session: Any, school: Any) -> services.Outcome:
        chosen = mapping or services.saved_mapping(session, school.id, kind)
        if save_mapping:
            services.save_mapping(session, school.id, kind, mapping)
        return services.import_csv(session, school, csv_import.parse(data, kind, chosen))

    assert school_urn is not None
    _import(school_urn, f"csv-{kind}", path.name, fmt, work)


def csv_report(parsed: csv_import.CsvFile) -> dict[str, Any]:
    """Marks: each pupil's figures as ``attendance summary`` gives them; pupils: the records."""
    if parsed.kind == "marks":
        pupils = summary_records(parsed.marks)
    else:
        pupils = [
            {
                "upn": p.upn,
                "legal_forename": p.legal_forename,
                "legal_surname": p.legal_surname,
                "date_of_birth": p.date_of_birth.isoformat(),
                "year_group": p.year_group,
                "sex": p.sex,
                "sen_status": p.sen_status,
                "fsm": p.fsm,
                "eal": p.eal,
                "looked_after": p.looked_after,
                "child_in_need": p.child_in_need,
                "row": p.row,
            }
            for p in parsed.pupils
        ]
    return {"pupils": pupils, "errors": [p.as_dict() for p in parsed.problems]}


@click.group("connectors", help="Schools' MIS API connections (Wonde).")
def connectors_group() -> None:
    """The connectors command group."""


@connectors_group.command("rotate-keys")
def rotate_keys() -> None:
    """Re-encrypt every school's saved connector token under the first configured key.

    Rotating a key: put the new key first in ATTENDWISE_ENCRYPTION_KEYS (keep the old one after
    it), restart, run this (and ``attendwise keys rotate``), then remove the old key.
    """
    from attendwise.integrations import connectors
    from attendwise.platform import crypto, tenancy
    from attendwise.platform.db import db

    session = db.session()
    with tenancy.system_context("attendwise connectors rotate-keys: re-encrypt connector tokens"):
        try:
            count = connectors.rotate_tokens(session)
        except crypto.CryptoError as exc:
            session.rollback()
            raise click.ClickException(
                f"{exc}; nothing was changed: add the key they were encrypted with and run this again"
            ) from None
        session.commit()
    click.echo(f"re-encrypted {count} connector token(s) under the current key")


COMMANDS = (import_group, connectors_group)
