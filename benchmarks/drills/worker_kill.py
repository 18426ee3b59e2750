"""Worker-kill drill: the real letters pipeline sends a batch while its work horse is killed
(``kill -9``) every ~2 s.

    .venv/bin/python -m benchmarks.drills.worker_kill --jobs 1000 --kill-every 2 --seconds 900

The batch, the mail server and the sweeper are :mod:`benchmarks.drills.letter_batch`'s: real
letter rows, send jobs run by ``attendwise worker letters`` through SMTP. The drill kills the
horse running a job every ``--kill-every`` seconds for at most ``--seconds`` (or until the
batch is done), so jobs die before claiming their letter, between the claim and the mail
server, or after the mail server accepted and before the letter was marked sent. With
``--kill worker`` the worker process dies with its horse, as when its pod is killed, and is
started again. Loopback PostgreSQL and Redis only; the scratch database and the queue
prefix are removed afterwards.

Prints: letters, kills, emails received once and more than once (duplicated), never received
(lost), left in "sending", what the sweeper did, and the longest delay from queued to received.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import time

from redis import Redis

from benchmarks.drills.common import REDIS, scratch_database
from benchmarks.drills.letter_batch import letter_drill


def horses(worker_pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(worker_pid)], check=False, capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--kill-every", type=float, default=2.0)
    parser.add_argument("--seconds", type=int, default=900, help="longest time to keep killing")
    parser.add_argument("--drain", type=int, default=600, help="longest wait for the rest to be sent")
    parser.add_argument(
        "--kill",
        choices=("horse", "worker"),
        default="horse",
        help="the work horse running a job, or the worker with it (as when its pod is killed)",
    )
    args = parser.parse_args()
    name = f"attendwise_drill_kill_{os.getpid()}"
    prefix = f"drill-kill-{os.getpid()}:"
    kills = 0
    with (
        scratch_database(name) as (owner, app_url),
        letter_drill(name, prefix, owner, app_url, REDIS, args.jobs) as drill,
    ):
        started = time.monotonic()
        next_kill = started + args.kill_every

        def kill_mid_job() -> None:
            nonlocal kills, next_kill
            now = time.monotonic()
            if now < next_kill or now - started > args.seconds:
                return
            # Only while a horse runs a job; between jobs there is none, so look again soon.
            for pid in horses(drill.worker.proc.pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    continue  # its job finished between the look and the kill
                if args.kill == "worker":
                    drill.worker.proc.kill()  # the drill starts it again, as Kubernetes would
                kills += 1
                next_kill = now + args.kill_every

        drill.run(kill_mid_job, started + args.seconds + args.drain)
        elapsed = time.monotonic() - started
        figures = drill.report()
        restarts = drill.worker.restarts
    redis = Redis.from_url(REDIS)
    for key in redis.scan_iter(f"rq:*{prefix}*"):
        redis.delete(key)
    what = "work horse" if args.kill == "horse" else "worker and its work horse"
    print(
        f"worker-kill drill: {args.jobs} letter send jobs, kill -9 of the {what} mid-job every "
        f"{args.kill_every} s for up to {args.seconds} s ({elapsed:.0f} s in all)"
    )
    print(f"kills: {kills}   worker restarts: {restarts}")
    for line in figures:
        print(line)


if __name__ == "__main__":
    main()
