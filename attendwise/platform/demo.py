"""``attendwise demo``: a fresh embedded database with one LA, one trust, five schools
(one per seed policy), a user for every role, then the web server on 127.0.0.1.

Feature packages extend the demo with a ``demo`` module whose ``seed(session, demo: DemoOrgs)``
is called, in package order, after the organisations and users exist.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy.orm import Session

from attendwise.platform import tenancy
from attendwise.platform.db import db
from attendwise.platform.discovery import modules
from attendwise.tenants import services
from attendwise.tenants.models import Organisation, OrgKind

DEMO_PASSWORD = "attendwise-demo-2026"  # noqa: S105 - printed on purpose for the local demo

# (URN, name, phase, preset) — one school for each seed policy in shared/seeds/.
DEMO_SCHOOLS = (
    ("113470", "Spetisbury Church of England Primary School", "Primary", "spetisbury"),
    ("145200", "Dormston School", "Secondary", "dormston"),
    ("139880", "Hillside Academy", "Primary", "pa-action-plans"),
    ("123480", "Dothill Primary School", "Primary", "dothill"),
    ("140010", "Meadow Brook Primary School", "Primary", "prevention-tiers"),
)


@dataclass
class DemoOrgs:
    platform: Organisation
    la: Organisation
    trust: Organisation
    schools: list[Organisation]
    presets: dict[int, str] = field(default_factory=dict)  # school id -> preset name
    users: list[tuple[str, str, str]] = field(default_factory=list)  # (email, role, organisation)


def build(session: Session) -> DemoOrgs:
    """Create the demo organisations and users in ``session`` (flushes, does not commit)."""
    with tenancy.system_context("build the demo data"):
        platform = services.platform_organisation(session)
        la = services.create_organisation(session, kind=OrgKind.LA, name="Dorset Council", la_code="835")
        trust = services.create_organisation(session, kind=OrgKind.TRUST, name="Chalk Downs Learning Trust")
        schools = []
        presets = {}
        for urn, name, phase, preset in DEMO_SCHOOLS:
            school = services.create_organisation(
                session,
                kind=OrgKind.SCHOOL,
                name=name,
                urn=urn,
                laestab=f"835{urn[-4:]}",
                phase=phase,
                la=la,
                trust=trust if phase == "Primary" else None,
            )
            schools.append(school)
            presets[school.id] = preset
        demo = DemoOrgs(platform=platform, la=la, trust=trust, schools=schools, presets=presets)

        def person(email: str, name: str, org: Organisation, role_key: str) -> None:
            user = services.create_user(session, email=email, display_name=name, password=DEMO_PASSWORD)
            services.add_membership(session, user=user, org=org, role_key=role_key)
            demo.users.append((email, role_key, org.name))

        person("platform.admin@attendwise.test", "Priya Admin", platform, "platform_admin")
        person("la.officer@dorset.test", "Lee Officer", la, "la_attendance_officer")
        person("la.admin@dorset.test", "Alex Morgan", la, "la_admin")
        person("trust.leader@chalkdowns.test", "Tom Leader", trust, "trust_leader")
        person("trust.admin@chalkdowns.test", "Tara Admin", trust, "trust_admin")
        for school, (_urn, _name, _phase, preset) in zip(schools, DEMO_SCHOOLS, strict=True):
            domain = f"{preset}.test"
            person(
                f"attendance@{domain}", f"Attendance Officer ({school.name})", school, "attendance_officer"
            )
            person(
                f"champion@{domain}",
                f"Senior Attendance Champion ({school.name})",
                school,
                "senior_attendance_champion",
            )
            person(f"staff@{domain}", f"Class Teacher ({school.name})", school, "school_staff")
            person(f"admin@{domain}", f"School Admin ({school.name})", school, "school_admin")
        for module in modules("demo"):
            seed = getattr(module, "seed", None)  # this module is platform's own "demo"
            if seed is not None:
                seed(session, demo)
    return demo


@click.command("demo")
@click.option("--port", default=5000, show_default=True, help="Port to serve on (127.0.0.1 only).")
@click.option("--no-serve", is_flag=True, help="Build the database and print the sign-ins, then stop.")
@with_appcontext
def demo_command(port: int, no_serve: bool) -> None:
    """Build a fresh demo database (under ATTENDWISE_DATA_DIR) and serve it on 127.0.0.1."""
    from attendwise.platform.cli import upgrade_database

    url = current_app.config["DATABASE_URL"]
    if not url.startswith("sqlite:///"):
        raise click.UsageError("the demo runs on the embedded SQLite database: unset ATTENDWISE_DATABASE_URL")
    path = Path(url.removeprefix("sqlite:///"))
    db.dispose()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    upgrade_database()
    session = db.session()
    demo = build(session)
    session.commit()
    base = f"http://127.0.0.1:{port}"
    click.echo(f"\nAttendwise demo database: {path}")
    click.echo(f"Sign in at {base}/auth/login with any of these (password: {DEMO_PASSWORD}):\n")
    width = max(len(e) for e, _r, _o in demo.users)
    for email, role_key, org in demo.users:
        click.echo(f"  {email.ljust(width)}  {role_key:<28} {org}")
    click.echo(
        "\nLA and platform admin accounts require two-factor authentication: at first sign-in, scan the"
        "\nQR code with any authenticator app (or type the key shown) and save the recovery codes.\n"
    )
    if no_serve:
        return
    from werkzeug.serving import run_simple

    os.environ.setdefault("ATTENDWISE_BASE_URL", base)
    run_simple("127.0.0.1", port, current_app._get_current_object(), threaded=True, use_reloader=False)  # type: ignore[attr-defined]
