"""``attendwise policy ...``: the policy format, validation, presets and simulation, with no database."""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from attendwise.attendance.calendar import CalendarError, SchoolCalendar, academic_year_of
from attendwise.attendance.marks_file import MarksFileError, parse_marks
from attendwise.policies import document, simulate, versions
from attendwise.policies.schema import schema_json


def _read(path: str, what: str, limit: int | None = None) -> str:
    try:
        with Path(path).open("rb") as fh:
            data = fh.read(limit + 1 if limit else -1)
    except OSError as exc:
        raise click.ClickException(f"{what} {path}: {exc.strerror or exc}") from None
    if limit is not None and len(data) > limit:
        _fail([f"{path}: line 1, column 1: the document is larger than {limit // 1024} KiB"])
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise click.ClickException(f"{what} {path}: not UTF-8 text") from None


def _fail(lines: Sequence[str], *, err: bool = True) -> None:
    for line in lines:
        click.echo(line, err=err)
    sys.exit(1)


def _load_policy_file(path: str, *, errors_to_stdout: bool = False) -> list[document.Policy]:
    result = document.parse(_read(path, "policy file", document.MAX_BYTES))
    if result.errors:
        _fail([f"{path}: {e}" for e in result.errors], err=not errors_to_stdout)
    return result.policies


def _policies(preset: str | None, policy_path: str | None) -> tuple[list[document.Policy], int | None]:
    if bool(preset) == bool(policy_path):
        raise click.UsageError("give exactly one of --preset NAME[@VERSION] or --policy FILE")
    if preset:
        try:
            return simulate.load_preset(preset)
        except simulate.SimulationError as exc:
            _fail(exc.problems)
    assert policy_path is not None
    path, _, version = policy_path.partition("@") if not Path(policy_path).exists() else (policy_path, "", "")
    policies = _load_policy_file(path)
    try:
        return policies, simulate.pin_version(policies, version, f"policy {path}")
    except simulate.SimulationError as exc:
        _fail(exc.problems)
    raise AssertionError("unreachable")


def _replay(
    marks_path: str, events_path: str | None, calendar_path: str | None, start: dt.date, end: dt.date
) -> simulate.Replay:
    try:
        calendar = SchoolCalendar.from_csv(_read(calendar_path, "calendar file")) if calendar_path else None
    except CalendarError as exc:
        _fail(str(exc).splitlines())
        raise AssertionError("unreachable") from None
    try:
        marks = parse_marks(_read(marks_path, "marks file"), calendar)
    except MarksFileError as exc:
        _fail([f"marks file {marks_path}: {p}" for p in exc.problems])
        raise AssertionError("unreachable") from None
    try:
        events = simulate.parse_events(_read(events_path, "events file")) if events_path else []
        return simulate.Replay.from_marks(marks, calendar, events, start, end)
    except simulate.SimulationError as exc:
        _fail(exc.problems)
        raise AssertionError("unreachable") from None


_DATE = click.DateTime(["%Y-%m-%d"])


@click.group("policy", help="Escalation policies: the document format, validation, presets and simulation.")
def policy() -> None:
    """The policy command group."""


@policy.command("schema")
def schema_command() -> None:
    """Print the JSON Schema (draft 2020-12) of a policy document."""
    click.echo(schema_json())


@policy.command("validate")
@click.argument("file", type=click.Path(dir_okay=False))
def validate_command(file: str) -> None:
    """Check a policy FILE; print every error with its line and column and exit 1, or exit 0."""
    policies = _load_policy_file(file, errors_to_stdout=True)
    described = ", ".join(f"version {p.version} from {p.effective_from.isoformat()}" for p in policies)
    click.echo(f"{file}: valid ({policies[0].id}: {described})")


@policy.command("presets")
def presets_command() -> None:
    """List the shipped presets and their versions."""
    for name in simulate.preset_names():
        policies, _ = simulate.load_preset(name)
        for p in policies:
            click.echo(f"{name}@{p.version}\t{p.effective_from.isoformat()}\t{p.name} ({p.version_label})")


@policy.command("show")
@click.argument("spec")
def show_command(spec: str) -> None:
    """Print a preset (NAME or NAME@VERSION) as YAML, to start a school's own policy from it."""
    try:
        policies, pinned = simulate.load_preset(spec)
    except simulate.SimulationError as exc:
        _fail(exc.problems)
        return
    chosen = [p for p in policies if pinned is None or p.version == pinned]
    click.echo("---\n".join(p.text for p in chosen), nl=False)


@policy.command("diff")
@click.argument("old")
@click.argument("new")
def diff_command(old: str, new: str) -> None:
    """Describe in plain words what changed between two versions (NAME@N or FILE[@N] each)."""
    try:
        before = _one_version(old)
        after = _one_version(new)
    except simulate.SimulationError as exc:
        _fail(exc.problems)
        return
    for line in versions.diff(before, after):
        click.echo(line)


def _one_version(spec: str) -> document.Policy:
    if Path(spec).exists():
        policies, pinned = _load_policy_file(spec), None
    elif spec.partition("@")[0] in simulate.preset_names():
        policies, pinned = simulate.load_preset(spec)
    else:
        path, _, version = spec.rpartition("@")
        policies = _load_policy_file(path or spec)
        pinned = simulate.pin_version(policies, version, f"policy {path}")
    return versions.version_on(policies, dt.date.max, pinned)


@policy.command("simulate")
@click.option("--preset", help="A shipped preset: NAME or NAME@VERSION.")
@click.option("--policy", "policy_path", help="A policy file (YAML).")
@click.option("--marks", "marks_path", required=True, help="Marks CSV: upn,date,session,code[,minutes_late].")
@click.option("--events", "events_path", help="Events CSV: upn,date,event.")
@click.option("--calendar", "calendar_path", help="Calendar CSV of half-terms: name,start,end.")
@click.option("--from", "start", type=_DATE, required=True, help="First day replayed.")
@click.option("--to", "end", type=_DATE, required=True, help="Last day replayed.")
@click.option("--with-recurring", is_flag=True, help="Also list recurring actions (e.g. weekly calls).")
def simulate_command(
    *,
    preset: str | None,
    policy_path: str | None,
    marks_path: str,
    events_path: str | None,
    calendar_path: str | None,
    start: Any,
    end: Any,
    with_recurring: bool,
) -> None:
    """Replay a period on the policy's own cadence and print each pupil's stages as JSON.

    Every step needing sign-off is taken as approved and every support-first gate as met.
    """
    policies, pinned = _policies(preset, policy_path)
    replay = _replay(marks_path, events_path, calendar_path, start.date(), end.date())
    result = simulate.run(policies, replay, start.date(), end.date(), pinned=pinned)
    click.echo(json.dumps(result.as_dict(with_recurring), indent=2, ensure_ascii=False))


@policy.command("dry-run")
@click.option("--preset", help="A shipped preset: NAME or NAME@VERSION.")
@click.option("--policy", "policy_path", help="A policy file (YAML).")
@click.option("--marks", "marks_path", required=True, help="Marks CSV: upn,date,session,code[,minutes_late].")
@click.option("--events", "events_path", help="Events CSV: upn,date,event.")
@click.option("--calendar", "calendar_path", help="Calendar CSV of half-terms: name,start,end.")
@click.option("--on", "on", type=_DATE, required=True, help="The day to look at (this week ends on it).")
def dry_run_command(
    *,
    preset: str | None,
    policy_path: str | None,
    marks_path: str,
    events_path: str | None,
    calendar_path: str | None,
    on: Any,
) -> None:
    """What a policy would do on current data: pupils per stage, this week's actions, stage changes."""
    policies, pinned = _policies(preset, policy_path)
    day = on.date()
    replay = _replay(marks_path, events_path, calendar_path, dt.date(academic_year_of(day), 8, 1), day)
    report = simulate.dry_run(policies, replay, day, pinned=pinned)
    click.echo(json.dumps(report, indent=2, ensure_ascii=False))


COMMANDS = (policy,)
