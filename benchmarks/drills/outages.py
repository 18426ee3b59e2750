"""Outage drills: Redis restarted, or PostgreSQL connections cut, while the real letters
pipeline sends a batch.

    .venv/bin/python -m benchmarks.drills.outages redis --jobs 300 --outages 5 --every 5
    .venv/bin/python -m benchmarks.drills.outages postgres --jobs 300 --outages 6 --every 4

The batch, the mail server and the sweeper are :mod:`benchmarks.drills.letter_batch`'s: real
letter rows, send jobs run by ``attendwise worker letters`` through SMTP. A worker that exits
is started again, as Kubernetes would.

``redis``: the drill runs its own ``redis-server`` on a free loopback port (the shared one is
never touched), with no persistence, and restarts it ``--every`` seconds into a batch being
sent: each restart loses every queued send job, and the worker loses its connection.
``postgres``: ``--every`` seconds into a batch, the drill calls ``pg_terminate_backend`` on
the worker's connections to the scratch database (and only those) the moment one is seen, so
jobs die before their claim, between the claim and the mail server, or between the mail
server and marking the letter sent.

Prints: letters, outages, worker restarts, emails received once and more than once
(duplicated), never received (lost), left in "sending", what the sweeper did, and the longest
delay from queued to received.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from redis import Redis
from redis.exceptions import RedisError
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

from benchmarks.drills.common import free_port, scratch_database
from benchmarks.drills.letter_batch import letter_drill


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
def redis_server(name: str) -> Iterator[RedisServer]:
    server = RedisServer(Path(f"/tmp/{name}-redis"))
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.directory, ignore_errors=True)


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
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--every", type=float, default=4.0, help="seconds into a batch before each outage")
    parser.add_argument("--outages", type=int, default=5)
    parser.add_argument("--deadline", type=int, default=900, help="longest the drill may take, in seconds")
    args = parser.parse_args()
    pid = os.getpid()
    name = f"attendwise_drill_{args.scenario}_{pid}"
    prefix = f"drill-{args.scenario}-{pid}:"
    outages = cut = 0
    with (
        redis_server(name) as redis,
        scratch_database(name) as (owner_url, app_url),
        letter_drill(name, prefix, owner_url, app_url, redis.url, args.jobs) as drill,
    ):
        engine = create_engine(owner_url)
        started = time.monotonic()
        next_outage = started + args.every

        def outage() -> None:
            nonlocal outages, cut, next_outage
            now = time.monotonic()
            if outages >= args.outages or now < next_outage:
                return
            if drill.queue.count == 0:  # only mid-batch: wait for the sweeper's re-queue
                next_outage = now + args.every
                return
            if args.scenario == "redis":
                redis.stop()
                time.sleep(1.0)  # down long enough for the worker to notice
                redis.start()
            else:
                cut += cut_worker_connections(engine, name, args.every)
            outages += 1
            next_outage = time.monotonic() + args.every

        drill.run(outage, started + args.deadline)
        elapsed = time.monotonic() - started
        figures = drill.report()
        restarts = drill.worker.restarts
        engine.dispose()
    what = (
        f"redis-server restarted (no persistence: every queued job lost) {outages} times"
        if args.scenario == "redis"
        else f"the worker's PostgreSQL connections terminated {outages} times ({cut} backends cut mid-job)"
    )
    print(
        f"{args.scenario} outage drill: {args.jobs} letter send jobs; {what}, "
        f"{args.every} s into a batch; {elapsed:.0f} s in all"
    )
    print(f"worker restarts: {restarts}")
    for line in figures:
        print(line)


if __name__ == "__main__":
    main()
