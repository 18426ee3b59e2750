"""Ingest speed: a full year of a secondary school's marks through the CTF import, against bare COPY.

One command (PostgreSQL at 127.0.0.1:5432, user postgres, trust auth; Redis at 127.0.0.1:6379)::

    .venv/bin/python benchmarks/ingest.py                 # 1,500 pupils, about 570,000 sessions
    .venv/bin/python benchmarks/ingest.py --pupils 200

It creates a scratch database (``attendwise_bench_ingest``) with the real migrations, one school,
and a CTF 25 file of the school's pupils with a full academic year of marks on the England
default calendar (190 days, 380 sessions each). Then, in one run, it times

(a) the full import, as a school's sync job does it, connected as the application role with
    row-level security live: parsing the XML, validating every pupil and mark, upserting pupils
    and contacts, storing the marks with their change history, auditing, and recording the sync
    run. As in production, the import queues its follow-on jobs (re-evaluating the school's
    pupils against its policy, refreshing its insight figures) on Redis for the workers; they
    are then run by an RQ worker in this process and timed on their own, and the ratio is also
    given with them counted in;
(b) the same import again (nothing has changed);
(c) bare ``COPY`` of the same (upn, date, session, code) rows into an empty table;

and prints each, the import's speed as a share of COPY's (target >= 0.3) and the second sync's
time as a share of the first's (target <= 0.2). Each import also prints the CPU time this
process used, and the XML parse is timed on its own: on a shared machine the wall-clock
figures measure the load as much as the code. The database is dropped at the end unless --keep.

No Python object is made per session: the reader turns each AttendanceMarks string into one
code byte per session through lookup tables, ``attendance.services.store_mark_spans`` lays those
bytes on each pupil's year, checks them in numpy, and writes the changed years through a
``COPY``-filled staging table and one ``INSERT ... ON CONFLICT DO UPDATE`` with a version check,
the history through one more. The second import is of the same bytes: while the school's
pupils are as the first left them, it is answered from the first run without being parsed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
from flask import Flask
from redis import Redis
from redis.exceptions import RedisError
from rq import Queue, SimpleWorker
from rq.registry import FailedJobRegistry, FinishedJobRegistry
from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from attendwise.attendance.calendar import SchoolCalendar
from attendwise.integrations import ctf, services
from attendwise.platform import jobs, tenancy
from attendwise.platform.app import create_app
from attendwise.platform.cli import upgrade_database
from attendwise.platform.config import Settings
from attendwise.platform.db import db
from attendwise.tenants import services as tenants
from attendwise.tenants.models import OrgKind
from tests.integrations import ctf_generator as gen

DATABASE = "attendwise_bench_ingest"
HOST = "postgresql+psycopg://{user}@127.0.0.1:5432/{db}"
YEAR = 2025


def recreate(name: str) -> None:
    admin = create_engine(HOST.format(user="postgres", db="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()


def drop(name: str) -> None:
    admin = create_engine(HOST.format(user="postgres", db="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _letters(number: int) -> str:
    """A distinct lower-case suffix per number (names keep only letters when compared)."""
    out = ""
    while True:
        number, digit = divmod(number, 26)
        out += "abcdefghijklmnopqrstuvwxyz"[digit]
        if not number:
            return out


def make_pupils(pupils: int) -> list[gen.GenPupil]:
    """The school's pupils with a year of marks each, the same every time (a fixed seed)."""
    calendar = SchoolCalendar.england_default(YEAR)
    start, end = calendar.start, calendar.end
    closed = [
        d
        for d in (start + dt.timedelta(days=i) for i in range((end - start).days + 1))
        if not calendar.is_school_day(d)
    ]
    made = gen.random_pupils(pupils, seed=2025, start=start, end=end, closed=closed)
    for number, pupil in enumerate(made):
        # The generator draws surnames from nine and gives contacts no address, so every
        # "Sam Smith" in the school would be one parent of ~170 children. Give each family its
        # own surname, as a real school's register has.
        pupil.surname = f"{pupil.surname}{_letters(number)}"
        for contact in pupil.contacts:
            contact.surname = pupil.surname
    return made


def copy_rows(made: list[gen.GenPupil]) -> list[tuple[str, dt.date, str, str]]:
    """The (upn, date, session, code) rows the CTF of these pupils carries, for bare COPY."""
    return [
        (p.upn or "", day, session, code) for p in made for (day, session), code in sorted(p.marks().items())
    ]


@dataclass
class Timing:
    wall: float  # seconds, the whole import
    cpu: float  # CPU seconds in this process (the database server's work is not included)


def timed_import(app: Flask, school_id: int, data: bytes) -> tuple[Timing, services.SyncRun]:
    with app.app_context():
        session = db.session()
        with tenancy.system_context("benchmark: find the school"):
            from attendwise.tenants.models import Organisation

            school = session.get(Organisation, school_id)
        assert school is not None
        began, cpu = time.perf_counter(), time.process_time()
        checked = ctf.read_limited(io.BytesIO(data), 100 * 1024 * 1024)
        run = services.run_import(
            session,
            school,
            connector="ctf",
            source="bench.xml",
            work=lambda: services.import_ctf_bytes(session, school, checked),
        )
        return Timing(time.perf_counter() - began, time.process_time() - cpu), run


def timed_follow_on_jobs(app: Flask, conn: Redis) -> tuple[Timing, int]:
    """Run what the import queued (and what those jobs queue), as a worker would, and time it:
    (time, jobs run)."""
    queues = [Queue(jobs.queue_name(app, name), connection=conn) for name in jobs.QUEUES]
    finished_before = sum(FinishedJobRegistry(queue=queue).count for queue in queues)
    began, cpu = time.perf_counter(), time.process_time()
    with app.app_context():
        SimpleWorker(queues, connection=conn).work(burst=True, logging_level="WARNING")
    timing = Timing(time.perf_counter() - began, time.process_time() - cpu)
    failed = sum(FailedJobRegistry(queue=queue).count for queue in queues)
    if failed:
        raise SystemExit(f"{failed} follow-on job(s) failed: see the log above")
    return timing, sum(FinishedJobRegistry(queue=queue).count for queue in queues) - finished_before


def forget_queues(app: Flask, conn: Redis) -> None:
    for key in conn.scan_iter(f"rq:*{jobs.queue_name(app, '')}*"):
        conn.delete(key)


def timed_parse(data: bytes) -> float:
    """The XML parse alone (the tree and each Pupil element's digest), outside the imports."""
    began = time.perf_counter()
    ctf.parse(data)
    return time.perf_counter() - began


def timed_copy(owner_dsn: str, rows: list[tuple[str, dt.date, str, str]]) -> float:
    with psycopg.connect(owner_dsn) as conn:
        conn.execute("CREATE TABLE bench_copy (upn text, date date, session text, code text)")
        conn.commit()
        began = time.perf_counter()
        with conn.cursor() as cur, cur.copy("COPY bench_copy (upn, date, session, code) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        conn.commit()
        return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--pupils", type=int, default=1500)
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0", help="where the jobs queue")
    args = parser.parse_args()
    conn = Redis.from_url(args.redis)
    try:
        conn.ping()
    except RedisError as exc:
        raise SystemExit(
            f"Redis at {args.redis} cannot be reached ({exc}): the import queues its jobs there"
        ) from None

    recreate(DATABASE)
    owner = HOST.format(user="postgres", db=DATABASE)
    settings = Settings.from_env({"ATTENDWISE_DATA_DIR": "/tmp/attendwise-bench-ingest"})
    migrator = create_app(config={"DATABASE_URL": owner, "MIGRATION_DATABASE_URL": owner}, settings=settings)
    with migrator.app_context():
        upgrade_database()
        session = db.session()
        with tenancy.system_context("benchmark setup"):
            la = tenants.create_organisation(session, kind=OrgKind.LA, name="Bench LA", la_code="835")
            school = tenants.create_organisation(
                session, kind=OrgKind.SCHOOL, name="Bench Secondary", urn="145200", laestab="8352001", la=la
            )
        session.commit()
        school_id = school.id
    db.dispose()
    app = create_app(
        config={
            "DATABASE_URL": HOST.format(user="attendwise_app", db=DATABASE),
            "MIGRATION_DATABASE_URL": owner,
            "REDIS_URL": args.redis,
            "JOBS_QUEUE_PREFIX": f"bench-ingest-{os.getpid()}:",
        },
        settings=settings,
    )
    try:
        began = time.perf_counter()
        made = make_pupils(args.pupils)
        data, sessions = gen.to_bytes(gen.build(made)), sum(len(p.marks()) for p in made)
        # The COPY rows are made again after the imports: an importing process does not hold
        # half a million tuples, which every full garbage collection in the import would scan.
        del made
        print(
            f"generated {args.pupils:,} pupils, {sessions:,} sessions, {len(data) / 1e6:.1f} MB of CTF "
            f"in {time.perf_counter() - began:.1f} s"
        )
        parse = timed_parse(data)
        first, run = timed_import(app, school_id, data)
        print(
            f"(a) first import:  {first.wall:7.2f} s  {sessions / first.wall:10,.0f} sessions/s  "
            f"(CPU here {first.cpu:.2f} s; created {run.created:,}, "
            f"of them marks {run.detail['marks']['created']:,}; rejected {run.rejected})"
        )
        follow_on, ran = timed_follow_on_jobs(app, conn)
        print(
            f"    then its follow-on jobs on a worker: {follow_on.wall:.2f} s "
            f"(CPU {follow_on.cpu:.2f} s; {ran} jobs: re-evaluation, then the insight figures)"
        )
        second, again = timed_import(app, school_id, data)
        timed_follow_on_jobs(app, conn)
        print(
            f"(b) second import: {second.wall:7.2f} s  (CPU here {second.cpu:.2f} s; "
            f"created {again.created}, updated {again.updated}, unchanged {again.unchanged:,}; "
            f"{'not parsed: byte for byte the last file' if again.detail.get('same_bytes') else 'parsed'})"
        )
        rows = copy_rows(make_pupils(args.pupils))
        assert len(rows) == sessions
        copy = timed_copy(owner.replace("+psycopg", ""), rows)
        print(f"(c) bare COPY:     {copy:7.2f} s  {len(rows) / copy:10,.0f} sessions/s")
        print(f"import speed / COPY speed = {copy / first.wall:.3f}  (target >= 0.3)")
        print(f"    with the follow-on jobs counted in: {copy / (first.wall + follow_on.wall):.3f}")
        print(f"second sync / first sync  = {second.wall / first.wall:.3f}  (target <= 0.2)")
        print(
            f"the XML parse alone takes {parse:.2f} s (part of (a)); without it import / COPY = "
            f"{copy / (first.wall - parse):.3f}; "
            f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
        )
    finally:
        forget_queues(app, conn)
        db.dispose()
        if not args.keep:
            drop(DATABASE)


if __name__ == "__main__":
    main()
