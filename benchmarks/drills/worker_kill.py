"""Worker-kill drill: letter-like jobs while the RQ work horse is killed (``kill -9``) every ~2 s.

    .venv/bin/python -m benchmarks.drills.worker_kill --jobs 300 --seconds 60

PostgreSQL is the record, as in the platform's rule (reliability-and-security.md §4): each
job's row in an outbox table is claimed with a conditional UPDATE (committed), the "send" is
written to a sends table the way a provider would see it (committed on its own: it cannot be
rolled back), the receiver applies it once per idempotency key, and the row is marked sent.
A sweeper re-queues rows that are still queued or stuck in "sending" after 10 s. Loopback
PostgreSQL and Redis only; the scratch database and the queue prefix are removed afterwards.

Prints: jobs, kills, lost (rows never sent), sends repeated to the provider (attempts > 1 for
one key: what the idempotency key absorbs), effects applied twice (must be 0), and the
longest delay from enqueue to sent.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import time

from redis import Redis
from rq import Queue
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

from benchmarks.drills.common import BIN, REDIS, ROOT, scratch_database

STUCK_AFTER = 10  # seconds in "sending" before the sweeper takes a row back
WORK_SECONDS = 0.15  # the "render and send" time of one letter

DDL = (
    "CREATE TABLE drill_outbox (key text PRIMARY KEY, status text NOT NULL DEFAULT 'queued', "
    "created_at timestamptz NOT NULL DEFAULT clock_timestamp(), claimed_at timestamptz, "
    "sent_at timestamptz, enqueued_at timestamptz)",
    "CREATE TABLE drill_sends (id bigserial PRIMARY KEY, key text NOT NULL, "
    "at timestamptz DEFAULT clock_timestamp())",
    "CREATE TABLE drill_effects (key text PRIMARY KEY, applied int NOT NULL DEFAULT 1)",
    "GRANT SELECT, INSERT, UPDATE ON drill_outbox, drill_sends, drill_effects TO attendwise_app",
    "GRANT USAGE ON SEQUENCE drill_sends_id_seq TO attendwise_app",
)


def deliver(key: str) -> None:
    """The job (runs in the work horse through attendwise.platform.jobs.run_job)."""
    from attendwise.platform.db import db

    assert db.engine is not None
    with db.engine.connect() as conn:
        claimed = conn.execute(
            text(
                "UPDATE drill_outbox SET status = 'sending', claimed_at = clock_timestamp() "
                "WHERE key = :k AND (status = 'queued' OR (status = 'sending' AND "
                f"claimed_at < clock_timestamp() - interval '{STUCK_AFTER} seconds'))"
            ),
            {"k": key},
        ).rowcount
        conn.commit()
        if not claimed:
            return
        time.sleep(WORK_SECONDS)
        conn.execute(text("INSERT INTO drill_sends (key) VALUES (:k)"), {"k": key})
        conn.execute(
            text(
                "INSERT INTO drill_effects (key) VALUES (:k) "
                "ON CONFLICT (key) DO UPDATE SET applied = drill_effects.applied"
            ),
            {"k": key},
        )
        conn.commit()
        conn.execute(
            text("UPDATE drill_outbox SET status = 'sent', sent_at = clock_timestamp() WHERE key = :k"),
            {"k": key},
        )
        conn.commit()


def enqueue(queue: Queue, key: str) -> None:
    from attendwise.platform.jobs import run_job

    queue.enqueue(
        run_job,
        args=("benchmarks.drills.worker_kill.deliver", None, {"label": "worker-kill drill"}, (key,), {}),
        job_timeout=60,
        result_ttl=60,
        failure_ttl=600,
    )


def fill_outbox(engine: Engine, queue: Queue, jobs: int) -> None:
    """Create the drill's outbox in the scratch database, one row per letter, and queue each."""
    with engine.begin() as conn:
        for statement in DDL:
            conn.execute(text(statement))
        conn.execute(
            text(
                "INSERT INTO drill_outbox (key, enqueued_at) SELECT 'letter-' || g, clock_timestamp() "
                "FROM generate_series(1, :n) g"
            ),
            {"n": jobs},
        )
    for i in range(1, jobs + 1):
        enqueue(queue, f"letter-{i}")


def worker_env(name: str, prefix: str, owner_url: str, app_url: str, redis_url: str) -> dict[str, str]:
    """The environment of a drill's ``attendwise worker``: the scratch database and its own queues."""
    return {
        **os.environ,
        "ATTENDWISE_DATABASE_URL": app_url,
        "ATTENDWISE_MIGRATION_DATABASE_URL": owner_url,
        "ATTENDWISE_REDIS_URL": redis_url,
        "ATTENDWISE_JOBS_QUEUE_PREFIX": prefix,
        "ATTENDWISE_DATA_DIR": f"/tmp/{name}",
        "ATTENDWISE_LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(ROOT),
    }


def sweep(engine, queue: Queue) -> int:
    """Re-queue rows stuck in 'sending', and rows still 'queued' long after they were queued
    (their job died before claiming), as the platform's sweepers do. A re-queued job whose
    row is already claimed or sent does nothing, so re-queueing too early costs only a job."""
    stuck = f"clock_timestamp() - interval '{STUCK_AFTER} seconds'"
    waiting = f"status = 'queued' AND enqueued_at < clock_timestamp() - interval '{3 * STUCK_AFTER} seconds'"
    with engine.begin() as conn:
        keys = list(
            conn.execute(
                text(
                    "UPDATE drill_outbox SET enqueued_at = clock_timestamp() WHERE "
                    f"((status = 'sending' AND claimed_at < {stuck}) "
                    f"OR ({waiting})) "
                    "RETURNING key"
                )
            ).scalars()
        )
    for key in keys:
        enqueue(queue, key)
    return len(keys)


def horses(worker_pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(worker_pid)], check=False, capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--seconds", type=int, default=60, help="how long to keep killing")
    parser.add_argument("--kill-every", type=float, default=2.0)
    parser.add_argument("--drain", type=int, default=300, help="longest wait for the rest to be sent")
    args = parser.parse_args()
    name = f"attendwise_drill_kill_{os.getpid()}"
    prefix = f"drill-kill-{os.getpid()}:"
    redis = Redis.from_url(REDIS)
    queue = Queue(f"{prefix}letters", connection=redis)
    kills = sweeps = 0
    with scratch_database(name) as (owner, app_url):
        engine = create_engine(owner)
        fill_outbox(engine, queue, args.jobs)
        env = worker_env(name, prefix, owner, app_url, REDIS)
        worker = subprocess.Popen(
            [str(BIN / "attendwise"), "worker", "letters"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        started = time.monotonic()
        try:
            next_kill = started + args.kill_every
            next_sweep = started + STUCK_AFTER
            drain_deadline = started + args.seconds + args.drain
            while time.monotonic() < drain_deadline:
                now = time.monotonic()
                if now >= next_kill and now - started < args.seconds:
                    # Kill the horse running a job; between jobs there is none, so look again soon.
                    for pid in horses(worker.pid):
                        os.kill(pid, signal.SIGKILL)
                        kills += 1
                        next_kill = now + args.kill_every
                if now >= next_sweep:
                    sweeps += sweep(engine, queue)
                    next_sweep = now + 5
                with engine.connect() as conn:
                    left = conn.execute(
                        text("SELECT count(*) FROM drill_outbox WHERE status <> 'sent'")
                    ).scalar()
                if left == 0 and now - started >= args.seconds:
                    break
                time.sleep(0.05)
        finally:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                worker.kill()
        elapsed = time.monotonic() - started
        with engine.connect() as conn:
            lost = conn.execute(text("SELECT count(*) FROM drill_outbox WHERE status <> 'sent'")).scalar()
            repeated = conn.execute(
                text("SELECT count(*) FROM (SELECT key FROM drill_sends GROUP BY key HAVING count(*) > 1) s")
            ).scalar()
            sends = conn.execute(text("SELECT count(*) FROM drill_sends")).scalar()
            effects = conn.execute(
                text("SELECT count(*), coalesce(max(applied), 0) FROM drill_effects")
            ).one()
            longest = conn.execute(text("SELECT max(sent_at - created_at) FROM drill_outbox")).scalar()
        engine.dispose()
    for key in redis.scan_iter(f"rq:*{prefix}*"):
        redis.delete(key)
    print(
        f"worker-kill drill: {args.jobs} jobs, kill -9 of the work horse every {args.kill_every} s "
        f"for {args.seconds} s, then drained ({elapsed:.0f} s in all)"
    )
    print(f"work horses killed: {kills}   rows re-queued by the sweeper: {sweeps}")
    print(f"lost (never sent): {lost}   effects applied: {effects[0]} (any applied twice: {effects[1] > 1})")
    print(f"provider sends: {sends}; keys sent more than once (absorbed by the idempotency key): {repeated}")
    print(f"longest delay from enqueue to sent: {longest}")


if __name__ == "__main__":
    main()
