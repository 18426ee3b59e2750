"""Point-in-time restore drill: base backup + WAL archive, restored into a scratch cluster.

    .venv/bin/python -m benchmarks.drills.pitr --pupils 200

Everything runs in a private PostgreSQL 15 cluster under /tmp (``initdb`` as the ``postgres``
user, loopback only, its own ports), never the shared server. It follows docs/operations.md:

1. a "production" cluster with ``wal_level=replica``, ``archive_mode=on`` and an
   ``archive_command`` copying WAL into an archive directory; the real migrations; a school
   whose pupils and marks are stored through the attendance services (audited);
2. ``pg_basebackup`` (checked with ``pg_verifybackup``), then more work after the backup
   (a second school, more marks); the drill notes the time and the row counts;
3. "the mistake": more writes after that moment, then the WAL is switched so the archive
   holds them too;
4. restore: the base backup into a new data directory, ``restore_command`` from the archive,
   ``recovery_target_time`` = the noted moment, ``recovery_target_action = promote``; the time
   from start to accepting connections is the RTO;
5. checks on the restored cluster: row counts per table equal those at the noted moment (so
   the work after the backup is there and the mistake is not), ``attendwise audit verify``
   (every organisation's hash chain intact) and ``attendwise db check``.

Prints each step's time, the counts compared, and the verification output.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg

from benchmarks.drills.common import BIN, ROOT, free_port

PG_BIN = Path("/usr/lib/postgresql/15/bin")
TABLES = ("organisations", "pupils", "enrolments", "pupil_mark_years", "mark_changes", "audit_events")


def as_postgres(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["runuser", "-u", "postgres", "--", *command], check=True, capture_output=True, text=True
    )


class Cluster:
    def __init__(self, data: Path, port: int, sockets: Path) -> None:
        self.data, self.port, self.sockets = data, port, sockets

    def start(self) -> float:
        began = time.monotonic()
        as_postgres(
            str(PG_BIN / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.data.parent / f"{self.data.name}.log"),
            "-w",
            "-t",
            "300",
            "-o",
            f"-p {self.port} -k {self.sockets} -c listen_addresses=127.0.0.1",
            "start",
        )
        return time.monotonic() - began

    def stop(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def url(self, database: str, user: str = "postgres", driver: str = "postgresql+psycopg") -> str:
        return f"{driver}://{user}@127.0.0.1:{self.port}/{database}"

    def counts(self, database: str) -> dict[str, int]:
        with psycopg.connect(self.url(database, driver="postgresql")) as conn:
            return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}  # type: ignore[index]


def attendwise(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "ATTENDWISE_DATABASE_URL": url,
        "ATTENDWISE_MIGRATION_DATABASE_URL": url,
        "ATTENDWISE_DATA_DIR": "/tmp/attendwise-pitr-data",
        "ATTENDWISE_LOG_LEVEL": "WARNING",
    }
    return subprocess.run(
        [str(BIN / "attendwise"), *args], env=env, cwd=ROOT, capture_output=True, text=True, check=False
    )


def add_school(url: str, urn: str, pupils: int, seed: int) -> None:
    """A school, its pupils and a term of marks, through the services (so all of it is audited)."""
    import random

    from attendwise.attendance import services as attendance
    from attendwise.platform import tenancy
    from attendwise.platform.app import create_app
    from attendwise.platform.config import Settings
    from attendwise.platform.db import db
    from attendwise.tenants import services as tenants
    from attendwise.tenants.models import Organisation, OrgKind
    from tests.attendance.records import make_upn, pupil

    rng = random.Random(seed)
    app = create_app(
        config={"DATABASE_URL": url, "MIGRATION_DATABASE_URL": url},
        settings=Settings.from_env({"ATTENDWISE_DATA_DIR": "/tmp/attendwise-pitr-data"}),
    )
    with app.app_context():
        session = db.session()
        with tenancy.system_context("pitr drill"):
            la = session.query(Organisation).filter_by(
                kind=OrgKind.LA
            ).first() or tenants.create_organisation(session, kind=OrgKind.LA, name="Drill LA", la_code="835")
            school = tenants.create_organisation(
                session, kind=OrgKind.SCHOOL, name=f"Drill school {urn}", urn=urn, la=la
            )
        with tenancy.tenant_context(school.id):
            upns = [make_upn(n + 1, year=20 + seed) for n in range(pupils)]
            records = [pupil(n + 1, upn=upn) for n, upn in enumerate(upns)]
            attendance.upsert_pupils(session, school.id, records)
            days = [dt.date(2026, 9, 7) + dt.timedelta(days=d) for d in range(40) if (d % 7) < 5]
            attendance.store_marks(
                session,
                school.id,
                [
                    attendance.MarkRow(
                        upn, day, half, rng.choice("/////N" if half == "AM" else "\\\\\\\\\\N")
                    )
                    for upn in upns
                    for day in days
                    for half in ("AM", "PM")
                ],
                "mis",
            )
            corrections = [attendance.MarkRow(upn, days[0], "AM", "I") for upn in upns[::10]]
            attendance.store_marks(session, school.id, corrections, "manual")  # kept in mark_changes
        session.commit()
    db.dispose()


@contextlib.contextmanager
def workspace() -> Iterator[Path]:
    root = Path(f"/tmp/attendwise-pitr-{os.getpid()}")
    shutil.rmtree(root, ignore_errors=True)
    for sub in ("archive", "sockets"):
        (root / sub).mkdir(parents=True)
    shutil.chown(root, "postgres", "postgres")
    for sub in ("archive", "sockets"):
        shutil.chown(root / sub, "postgres", "postgres")
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pupils", type=int, default=200, choices=range(1, 1000), metavar="1-999")
    args = parser.parse_args()
    with workspace() as root:
        primary = Cluster(root / "primary", free_port(), root / "sockets")
        restored = Cluster(root / "restored", free_port(), root / "sockets")
        try:
            as_postgres(str(PG_BIN / "initdb"), "-D", str(primary.data), "-A", "trust", "-U", "postgres")
            with (primary.data / "postgresql.conf").open("a") as conf:
                conf.write(
                    "\nwal_level = replica\narchive_mode = on\n"
                    f"archive_command = 'test ! -f {root}/archive/%f && cp %p {root}/archive/%f'\n"
                )
            primary.start()
            with psycopg.connect(primary.url("postgres", driver="postgresql"), autocommit=True) as conn:
                conn.execute("CREATE DATABASE attendwise")
            owner = primary.url("attendwise")
            upgraded = attendwise(owner, "db", "upgrade")
            if upgraded.returncode:
                raise SystemExit(f"migrations failed: {upgraded.stderr[-2000:]}")
            schema_on_primary = attendwise(owner, "db", "check")
            began = time.monotonic()
            add_school(owner, "900001", args.pupils, 1)
            print(f"primary: migrated, first school stored ({time.monotonic() - began:.0f} s)")

            began = time.monotonic()
            as_postgres(
                str(PG_BIN / "pg_basebackup"),
                "-h",
                "127.0.0.1",
                "-p",
                str(primary.port),
                "-U",
                "postgres",
                "-D",
                str(root / "base"),
                "-Fp",
                "-Xs",
                "-c",
                "fast",
            )
            verify = as_postgres(str(PG_BIN / "pg_verifybackup"), str(root / "base"))
            print(f"base backup: {time.monotonic() - began:.1f} s; pg_verifybackup: {verify.stdout.strip()}")

            add_school(owner, "900002", args.pupils, 2)
            expected = primary.counts("attendwise")
            time.sleep(1.5)
            with psycopg.connect(primary.url("attendwise", driver="postgresql")) as conn:
                target = conn.execute("SELECT now()").fetchone()[0]  # type: ignore[index]
            time.sleep(1.5)
            add_school(owner, "900003", args.pupils, 3)  # "the mistake": after the restore target
            after = primary.counts("attendwise")
            with psycopg.connect(primary.url("postgres", driver="postgresql"), autocommit=True) as conn:
                conn.execute("SELECT pg_switch_wal()")
                time.sleep(2)  # let the archiver copy the last segment
                last = conn.execute("SELECT last_archived_wal FROM pg_stat_archiver").fetchone()[0]  # type: ignore[index]
            archived = len(list((root / "archive").iterdir()))
            print(f"after the backup: second school stored; target time {target.isoformat()}")
            print(f"after the target: third school stored; WAL archive: {archived} files (last {last})")
            primary.stop()

            shutil.copytree(root / "base", restored.data)
            shutil.chown(restored.data, "postgres", "postgres")
            for path in restored.data.rglob("*"):
                shutil.chown(path, "postgres", "postgres")
            with (restored.data / "postgresql.auto.conf").open("a") as conf:
                conf.write(
                    f"restore_command = 'cp {root}/archive/%f %p'\n"
                    f"recovery_target_time = '{target.isoformat()}'\n"
                    "recovery_target_action = 'promote'\narchive_mode = off\n"
                )
            (restored.data / "recovery.signal").touch()
            shutil.chown(restored.data / "recovery.signal", "postgres", "postgres")
            rto = restored.start()
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                with psycopg.connect(restored.url("postgres", driver="postgresql"), autocommit=True) as conn:
                    if not conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]:  # type: ignore[index]
                        break
                time.sleep(0.2)
            promoted = time.monotonic()
            print(
                f"restore: replayed to the target and accepting connections in {rto:.1f} s (RTO of the drill)"
            )
            got = restored.counts("attendwise")
            audit = attendwise(restored.url("attendwise"), "audit", "verify")
            check = attendwise(restored.url("attendwise"), "db", "check")
            print(f"checks took {time.monotonic() - promoted:.1f} s")
        finally:
            restored.stop()
            primary.stop()
    print(f"{'table':<18} {'at target':>10} {'restored':>10} {'after mistake':>14}")
    for table in TABLES:
        print(f"{table:<18} {expected[table]:>10,} {got[table]:>10,} {after[table]:>14,}")
    matches = got == expected
    print(f"restored counts equal the counts at the target time: {matches}")
    print(
        f"attendwise audit verify (exit {audit.returncode}): {(audit.stdout + audit.stderr).strip()[-400:]}"
    )
    print(
        f"attendwise db check: exit {check.returncode} on the restore, {schema_on_primary.returncode} on the "
        "primary (the same answer: the restore has the primary's schema)"
        if check.returncode == schema_on_primary.returncode
        else f"attendwise db check differs: restore {check.stderr[-300:]}, "
        f"primary {schema_on_primary.stderr[-300:]}"
    )
    if not matches or audit.returncode or check.returncode != schema_on_primary.returncode:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
