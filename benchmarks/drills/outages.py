"""Outage drills: Redis restarted, or PostgreSQL connections cut, while letter jobs are being sent.

    .venv/bin/python -m benchmarks.drills.outages redis --jobs 200
    .venv/bin/python -m benchmarks.drills.outages postgres --jobs 200

The jobs follow the letters' protocol as the worker-kill drill does (``worker_kill.deliver``):
the row in an outbox table is the record, claimed with a conditional UPDATE, the "send" is
committed the way a provider would see it, the receiver applies it once per idempotency key,
and a sweeper re-queues rows still queued, or stuck in "sending", after 10 s.

``redis``: the drill runs its own ``redis-server`` on a free loopback port (the shared one is
never touched), with no persistence, and restarts it every ``--every`` seconds while the batch
is sent: each restart loses every queued job, and the worker loses its connection. A worker
that exits is started again, as Kubernetes would. ``postgres``: every ``--every`` seconds the
drill calls ``pg_terminate_backend`` on the worker's connections to the scratch database (and
only those), so jobs die between claiming and sending, or between sending and marking sent.

Prints: jobs, outages, worker restarts, rows re-queued by the sweeper, lost (never sent), rows
left in "sending", effects applied twice, keys sent more than once (absorbed by the
idempotency key), and the longest delay from enqueue to sent.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from redis import Redis
from redis.exceptions import RedisError
from rq import Queue
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

from benchmarks.drills.common import BIN, ROOT, free_port, scratch_database
from benchmarks.drills.worker_kill import STUCK_AFTER, fill_outbox, sweep, worker_env

SWEEP_EVERY = 5  # seconds between the drill sweeper's passes


class RedisServer:
    """A private redis-server on loopback that can be restarted (losing what it held)."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.directory = directory
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--maxmemory-policy",
                "noeviction",
                "--dir",
                str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with contextlib.suppress(RedisError):
                if Redis.from_url(self.url).ping():
                    return
            time.sleep(0.1)
        raise RuntimeError("redis-server did not start in 20 s")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None


@contextlib.contextmanager
def worker(env: dict[str, str]) -> Iterator[list[subprocess.Popen[bytes]]]:
    """The letters worker; the list holds the current process (the drill replaces it if it exits)."""
    current = [start_worker(env)]
    try:
        yield current
    finally:
        current[0].send_signal(signal.SIGTERM)
        try:
            current[0].wait(30)
        except subprocess.TimeoutExpired:
            current[0].kill()


def start_worker(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [str(BIN / "attendwise"), "worker", "letters"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def cut_worker_connections(owner: Engine, database: str, within: float) -> int:
    """Terminate the worker's backends the moment one is seen (a job holds one for ~0.2 s)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        with owner.begin() as conn:
            cut = len(
                conn.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = :db AND usename = 'attendwise_app' AND pid <> pg_backend_pid()"
                    ),
                    {"db": database},
                ).all()
            )
        if cut:
            return cut
        time.sleep(0.02)
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenario", choices=("redis", "postgres"))
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--every", type=float, default=4.0, help="seconds between outages")
    parser.add_argument("--outages", type=int, default=5)
    parser.add_argument("--drain", type=int, default=240, help="longest wait for the rest to be sent")
    args = parser.parse_args()
    pid = os.getpid()
    name = f"attendwise_drill_{args.scenario}_{pid}"
    prefix = f"drill-{args.scenario}-{pid}:"
    redis_server = RedisServer(Path(f"/tmp/{name}-redis"))
    redis_server.start()
    queue = Queue(f"{prefix}letters", connection=Redis.from_url(redis_server.url))
    outages = restarts = sweeps = cut = 0
    try:
        with scratch_database(name) as (owner_url, app_url):
            engine = create_engine(owner_url)
            fill_outbox(engine, queue, args.jobs)
            env = worker_env(name, prefix, owner_url, app_url, redis_server.url)
            started = time.monotonic()
            with worker(env) as current:
                next_outage = started + args.every
                next_sweep = started + STUCK_AFTER
                deadline = started + args.outages * args.every + args.drain
                while time.monotonic() < deadline:
                    now = time.monotonic()
                    if now >= next_outage and outages < args.outages:
                        if args.scenario == "redis":
                            redis_server.stop()
                            time.sleep(1.0)  # down long enough for the worker and sweeper to notice
                            redis_server.start()
                        else:
                            cut += cut_worker_connections(engine, name, args.every)
                        outages += 1
                        next_outage = time.monotonic() + args.every
                    if current[0].poll() is not None:
                        current[0] = start_worker(env)
                        restarts += 1
                    if now >= next_sweep:
                        with contextlib.suppress(RedisError):
                            sweeps += sweep(engine, queue)
                        next_sweep = now + SWEEP_EVERY
                    with engine.connect() as conn:
                        left = conn.execute(
                            text("SELECT count(*) FROM drill_outbox WHERE status <> 'sent'")
                        ).scalar()
                    if left == 0 and outages >= args.outages:
                        break
                    time.sleep(0.1)
            elapsed = time.monotonic() - started
            with engine.connect() as conn:
                lost = conn.execute(text("SELECT count(*) FROM drill_outbox WHERE status <> 'sent'")).scalar()
                sending = conn.execute(
                    text("SELECT count(*) FROM drill_outbox WHERE status = 'sending'")
                ).scalar()
                repeated = conn.execute(
                    text(
                        "SELECT count(*) FROM "
                        "(SELECT key FROM drill_sends GROUP BY key HAVING count(*) > 1) s"
                    )
                ).scalar()
                sends = conn.execute(text("SELECT count(*) FROM drill_sends")).scalar()
                effects = conn.execute(
                    text("SELECT count(*), coalesce(max(applied), 0) FROM drill_effects")
                ).one()
                longest = conn.execute(text("SELECT max(sent_at - created_at) FROM drill_outbox")).scalar()
            engine.dispose()
    finally:
        redis_server.stop()
        shutil.rmtree(redis_server.directory, ignore_errors=True)
    what = (
        f"redis-server restarted (no persistence: every queued job lost) {outages} times"
        if args.scenario == "redis"
        else f"the worker's PostgreSQL connections terminated {outages} times ({cut} backends cut mid-job)"
    )
    print(
        f"{args.scenario} outage drill: {args.jobs} jobs; {what}, every {args.every} s; "
        f"{elapsed:.0f} s in all"
    )
    print(f"worker restarts: {restarts}   rows re-queued by the sweeper: {sweeps}")
    print(f"lost (never sent): {lost}   left in 'sending': {sending}")
    print(f"effects applied: {effects[0]} (any applied twice: {effects[1] > 1})")
    print(f"provider sends: {sends}; keys sent more than once (absorbed by the idempotency key): {repeated}")
    print(f"longest delay from enqueue to sent: {longest}")


if __name__ == "__main__":
    main()
