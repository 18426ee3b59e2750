"""``attendwise worker`` and ``attendwise scheduler`` as real processes on real Redis.

These run the commands in subprocesses against their own database (built with the real
migrations: SQLite locally, PostgreSQL as the application role in CI), Redis db 14 under a
unique queue prefix, and, for
the refusals, a throwaway ``redis-server`` on a free loopback port, so the shared Redis
configuration is never changed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from redis import Redis
from rq import Queue
from rq.job import Job, JobStatus
from sqlalchemy import create_engine, select, text
from sqlalchemy.orm import Session

from attendwise.platform import jobs
from attendwise.platform.audit import AuditEvent
from attendwise.platform.db import db, utcnow
from attendwise.platform.worker import scheduler_command, worker_command
from attendwise.tenants.models import Invitation, Organisation, OrgKind
from tests.conftest import APP_ROLE, PG_ADMIN, USE_POSTGRES, _worker_suffix, create_pg_database, pg_url

ROOT = Path(__file__).resolve().parents[2]
ATTENDWISE = str(Path(sys.executable).with_name("attendwise"))
REDIS_URL = "redis://127.0.0.1:6379/14"


# ---- jobs the worker runs (imported by the work horse from this module) --------------


def invite(email: str, pause: float = 0.0) -> None:
    time.sleep(pause)
    db.session.add(
        Invitation(
            email=email,
            role="school_staff",
            token_hash=uuid.uuid4().hex * 2,
            expires_at=utcnow() + dt.timedelta(days=1),
        )
    )


# ---- fixtures --------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkerDb:
    owner_url: str  # the migration owner (a superuser on PostgreSQL): for setting up and checking
    env: dict[str, str]  # what the worker process is given


@pytest.fixture(scope="module")
def worker_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerDb]:
    """A database of the worker's own, migrated by the real command: on PostgreSQL (CI) the
    worker connects as the application role, so row-level security applies to its jobs."""
    data_dir = tmp_path_factory.mktemp("worker")
    env = {"ATTENDWISE_DATA_DIR": str(data_dir)}
    owner = f"sqlite:///{data_dir / 'attendwise.sqlite3'}"
    name = f"attendwise_worker_{_worker_suffix()}"
    if USE_POSTGRES:
        create_pg_database(name)
        owner = pg_url(name)
        env |= {
            "ATTENDWISE_DATABASE_URL": pg_url(name, APP_ROLE),
            "ATTENDWISE_MIGRATION_DATABASE_URL": owner,
            "ATTENDWISE_APP_DB_ROLE": APP_ROLE,
        }
    subprocess.run(
        [ATTENDWISE, "db", "upgrade"], env={**os.environ, **env}, check=True, capture_output=True, cwd=ROOT
    )
    yield WorkerDb(owner_url=owner, env=env)
    if USE_POSTGRES:
        admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def env(worker_db: WorkerDb) -> Iterator[dict[str, str]]:
    prefix = f"test-{uuid.uuid4().hex[:8]}:"
    environ = {k: v for k, v in os.environ.items() if not k.startswith("ATTENDWISE_")}
    environ |= {
        **worker_db.env,
        "ATTENDWISE_REDIS_URL": REDIS_URL,
        "ATTENDWISE_JOBS_QUEUE_PREFIX": prefix,
        "PYTHONPATH": str(ROOT),
    }
    yield environ
    conn = Redis.from_url(REDIS_URL)
    for name in jobs.QUEUES:
        queue = Queue(prefix + name, connection=conn)
        for registry in (queue.finished_job_registry, queue.failed_job_registry):
            for job_id in registry.get_job_ids():
                conn.delete(f"rq:job:{job_id}")
        queue.delete(delete_jobs=True)
    for key in conn.scan_iter(f"rq:cron_job:{prefix}*"):
        conn.delete(key)
    conn.close()


@pytest.fixture
def school_id(worker_db: WorkerDb) -> int:
    engine = create_engine(worker_db.owner_url)
    with Session(engine) as session:
        la = Organisation(kind=OrgKind.LA, name="LA", la_code=str(uuid.uuid4().int % 900 + 100))
        session.add(la)
        session.flush()
        school = Organisation(kind=OrgKind.SCHOOL, name="Worker School", la_id=la.id)
        session.add(school)
        session.commit()
        ident = school.id
    engine.dispose()
    return ident


def enqueue_raw(prefix: str, org_id: int, email: str, pause: float = 0.0) -> Job:
    """What ``jobs.enqueue`` puts on Redis after a commit."""
    return Queue(prefix + "default", connection=Redis.from_url(REDIS_URL)).enqueue(
        jobs.run_job,
        args=(
            "tests.platform.test_worker.invite",
            org_id,
            {"user_id": None, "label": "admin@example.test"},
            (email,),
            {"pause": pause},
        ),
    )


def rows(worker_db: WorkerDb, org_id: int) -> tuple[list[str], list[str]]:
    engine = create_engine(worker_db.owner_url)
    with engine.connect() as conn:
        emails = conn.scalars(select(Invitation.email).where(Invitation.org_id == org_id)).all()
        actors = conn.scalars(
            select(AuditEvent.actor_label).where(
                AuditEvent.org_id == org_id, AuditEvent.object_type == "invitations"
            )
        ).all()
    engine.dispose()
    return list(emails), list(actors)


def run(args: list[str], env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ATTENDWISE, *args], env=env, capture_output=True, text=True, timeout=timeout, cwd=ROOT, check=False
    )


# ---- tests -----------------------------------------------------------------------------


def test_burst_worker_runs_jobs_in_their_tenant_logs_ids_and_keeps_failures(env, worker_db, school_id):
    prefix = env["ATTENDWISE_JOBS_QUEUE_PREFIX"]
    good = enqueue_raw(prefix, school_id, "teacher@example.test")
    bad = enqueue_raw(prefix, school_id + 999_999, "ghost@example.test")  # no such organisation
    done = run(["worker", "--burst"], env)
    assert done.returncode == 0, done.stderr
    assert f"job {good.id} started" in done.stderr
    assert f"job {good.id} finished" in done.stderr, done.stderr
    assert f"job {bad.id} failed" in done.stderr, done.stderr
    emails, actors = rows(worker_db, school_id)
    assert emails == ["teacher@example.test"]
    assert actors == ["job invite for admin@example.test"]
    assert bad.get_status(refresh=True) == JobStatus.FAILED
    assert bad.id in Queue(prefix + "default", connection=bad.connection).failed_job_registry
    assert rows(worker_db, school_id + 999_999) == ([], [])


@contextlib.contextmanager
def background(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Run an ``attendwise`` command in the background, its log in a file; always reaped."""
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [ATTENDWISE, *args], env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=sink
        )
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=30)


def test_sigterm_lets_the_current_job_finish(env, worker_db, school_id, tmp_path):
    job = enqueue_raw(env["ATTENDWISE_JOBS_QUEUE_PREFIX"], school_id, "slow@example.test", pause=3)
    log = tmp_path / "worker.log"
    with background(["worker"], env, log) as proc:
        deadline = time.monotonic() + 90
        while job.get_status(refresh=True) != JobStatus.STARTED:
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "the worker never started the job"
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    err = log.read_text()
    assert proc.returncode == 0, err
    assert job.get_status(refresh=True) == JobStatus.FINISHED
    assert f"finishing job {job.id} first" in err
    assert rows(worker_db, school_id)[0] == ["slow@example.test"]


def test_unknown_queue_and_missing_redis_are_refused(app):
    runner = app.test_cli_runner()
    bad = runner.invoke(worker_command, ["--burst", "bulk"])
    assert bad.exit_code == 2
    assert "unknown queue(s) bulk" in bad.output
    no_redis = runner.invoke(scheduler_command, [])
    assert no_redis.exit_code == 2
    assert "ATTENDWISE_REDIS_URL is not set" in no_redis.output
    listed = runner.invoke(scheduler_command, ["--list"])
    assert "platform.purge_expired_sessions\tdefault\tevery 3600s" in listed.output


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def throwaway_redis(*options: str) -> Iterator[str]:
    server = shutil.which("redis-server")
    assert server, "redis-server is needed for this test"
    port = _free_port()
    proc = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", *options],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        conn = Redis(port=port)
        deadline = time.monotonic() + 10
        while True:
            try:
                conn.ping()
                break
            except Exception:
                assert time.monotonic() < deadline, "throwaway redis-server did not start"
                time.sleep(0.05)
        conn.close()
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_worker_refuses_a_redis_that_evicts_keys(env):
    with throwaway_redis("--appendonly", "no", "--maxmemory-policy", "allkeys-lru") as url:
        refused = run(["worker", "--burst"], {**env, "ATTENDWISE_REDIS_URL": url})
        conn = Redis.from_url(url)
        with pytest.raises(jobs.RedisMisconfigured, match="maxmemory-policy is 'allkeys-lru'"):
            jobs.check_redis_for_jobs(conn, production=False)
        conn.close()
    assert refused.returncode == 1, refused.stderr
    assert "refusing to start: Redis maxmemory-policy is 'allkeys-lru'" in refused.stderr
    assert "noeviction" in refused.stderr


def test_no_append_only_file_is_refused_in_production_and_warned_in_development():
    with throwaway_redis("--appendonly", "no", "--maxmemory-policy", "noeviction") as url:
        conn = Redis.from_url(url)
        with pytest.raises(jobs.RedisMisconfigured, match="Refusing to run in production"):
            jobs.check_redis_for_jobs(conn, production=True)
        warnings = jobs.check_redis_for_jobs(conn, production=False)
        conn.close()
    assert len(warnings) == 1
    assert "no append-only file" in warnings[0]
    with throwaway_redis("--appendonly", "yes", "--maxmemory-policy", "noeviction") as url:
        conn = Redis.from_url(url)
        assert jobs.check_redis_for_jobs(conn, production=True) == []
        conn.close()


def test_scheduler_enqueues_periodic_jobs_with_rq_cron_and_a_worker_runs_them(env, tmp_path):
    prefix = env["ATTENDWISE_JOBS_QUEUE_PREFIX"]
    conn = Redis.from_url(REDIS_URL)
    queue = Queue(prefix + "default", connection=conn)
    log = tmp_path / "scheduler.log"
    with background(["scheduler"], env, log) as proc:
        deadline = time.monotonic() + 90
        while queue.count == 0:
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "the scheduler enqueued nothing"
            time.sleep(0.1)
        second = run(["scheduler"], env)
        assert second.returncode == 1
        assert "is already running" in second.stderr
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert proc.returncode == 0, log.read_text()
    job = queue.fetch_job(queue.job_ids[0])
    assert job is not None
    assert job.args[0] == "attendwise.platform.jobs.purge_expired_sessions"
    assert job.args[1] is None, "periodic jobs run in the system context"
    done = run(["worker", "--burst"], env)
    assert done.returncode == 0, done.stderr
    assert job.get_status(refresh=True) == JobStatus.FINISHED
    conn.close()
