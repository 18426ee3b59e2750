"""``attendwise worker`` and ``attendwise scheduler``: the two job processes.

The worker is RQ's forking worker with three additions: it refuses a Redis that may lose
jobs (:func:`attendwise.platform.jobs.check_redis_for_jobs`), it disposes the SQLAlchemy
engine before forking each work horse (a pooled connection must never be shared by two
processes), and it logs every job id with its outcome and duration. On SIGTERM or Ctrl+C
RQ's warm shutdown lets the current job finish and then stops; a second signal kills the
work horse.

The scheduler is RQ 3's built-in cron scheduler (:class:`rq.cron.CronScheduler`) loaded with
the ``PERIODIC`` jobs that feature packages declare; it only enqueues, workers run the jobs.
Run exactly one scheduler per deployment: a second refuses to start while the first is alive.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from typing import Any

import click
from flask import Flask, current_app
from flask.cli import with_appcontext
from rq import Queue, Worker
from rq.cron import CronScheduler
from rq.defaults import DEFAULT_CRON_SCHEDULER_TTL
from rq.exceptions import InvalidJobOperation
from rq.job import Job

from attendwise.platform import jobs, logging_setup, metrics
from attendwise.platform.db import db

log = logging.getLogger("attendwise.worker")


class AttendwiseWorker(Worker):
    """RQ's forking worker, made safe for SQLAlchemy and explicit in its logs."""

    def fork_work_horse(self, job: Job, queue: Queue) -> None:
        # The horse inherits the parent's memory: close pooled connections first so the
        # child opens its own and the parent never reuses a socket the child touched.
        db.dispose()
        super().fork_work_horse(job, queue)

    def execute_job(self, job: Job, queue: Queue) -> None:
        log.info("job %s started on queue %s: %s", job.id, queue.name, job.description)
        started = time.monotonic()
        super().execute_job(job, queue)
        try:
            status = job.get_status(refresh=True).value
        except InvalidJobOperation:
            status = "finished (result already expired)"
        elapsed = time.monotonic() - started
        func = str(job.args[0] if job.args else job.func_name)
        queue_label = queue.name.removeprefix(current_app.config.get("JOBS_QUEUE_PREFIX", ""))
        metrics.record_job(queue_label, func, elapsed, failed=status in ("failed", "stopped", "canceled"))
        log.info("job %s %s after %.2fs", job.id, status, elapsed)

    def handle_warm_shutdown_request(self) -> None:
        current = self.get_current_job_id()
        if current:
            log.info("shutdown requested: finishing job %s first (signal again to abort it)", current)
        else:
            log.info("shutdown requested: no job running, stopping")


def _redis_or_fail(app: Flask) -> Any:
    if not app.config.get("REDIS_URL"):
        raise click.UsageError(
            "ATTENDWISE_REDIS_URL is not set: without Redis, jobs run inline in the web process "
            "and there is nothing for a worker or scheduler to do."
        )
    conn = jobs.redis_for(app)
    production = app.config.get("ENV_NAME") == "production"
    try:
        warnings = jobs.check_redis_for_jobs(conn, production=production)
    except jobs.RedisMisconfigured as exc:
        raise click.ClickException(f"refusing to start: {exc}") from exc
    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)
    return conn


def _logging() -> None:
    logging_setup.configure()
    metrics.serve_worker_metrics()


@click.command("worker")
@click.argument("queues", nargs=-1)
@click.option("--burst", is_flag=True, help="Run the jobs already queued, then stop.")
@click.option("--max-jobs", type=int, default=None, help="Stop after this many jobs.")
@with_appcontext
def worker_command(queues: tuple[str, ...], burst: bool, max_jobs: int | None) -> None:
    """Run jobs from QUEUES (default: every queue, in priority order)."""
    _logging()
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    unknown = [q for q in queues if q not in jobs.QUEUES]
    if unknown:
        raise click.UsageError(
            f"unknown queue(s) {', '.join(unknown)}; the queues are {', '.join(jobs.QUEUES)}"
        )
    conn = _redis_or_fail(app)
    names = [jobs.queue_name(app, q) for q in (queues or jobs.QUEUES)]
    worker = AttendwiseWorker(
        [Queue(name, connection=conn) for name in names],
        connection=conn,
        name=f"attendwise:{socket.gethostname()}:{os.getpid()}",
    )
    db.dispose()
    worker.work(burst=burst, max_jobs=max_jobs, logging_level="INFO")


def scheduler_name(app: Flask) -> str:
    return f"attendwise:{app.config.get('JOBS_QUEUE_PREFIX', '')}:{socket.gethostname()}:{os.getpid()}"


def build_scheduler(app: Flask, conn: Any, periodic: list[jobs.Periodic]) -> CronScheduler:
    """RQ's cron scheduler with each periodic job registered to run through ``jobs.run_job``."""
    scheduler = CronScheduler(connection=conn, name=scheduler_name(app))
    prefix = app.config.get("JOBS_QUEUE_PREFIX", "")
    for job in periodic:
        scheduler.register(
            jobs.run_job,
            queue_name=jobs.queue_name(app, job.queue),
            args=(job.func, None, {"label": f"scheduler ({job.name})"}, (), {}),
            cron=job.cron,
            interval=job.interval,
            job_timeout=job.timeout,
            result_ttl=jobs.RESULT_TTL,
            failure_ttl=jobs.FAILURE_TTL,
            name=f"{prefix}{job.name}",
        )
    return scheduler


def live_schedulers(app: Flask, conn: Any) -> list[str]:
    """Names of other live Attendwise schedulers for this deployment (same queue prefix)."""
    mine = f"attendwise:{app.config.get('JOBS_QUEUE_PREFIX', '')}:"
    return [s.name for s in CronScheduler.all(conn) if s.name.startswith(mine)]


@click.command("scheduler")
@click.option("--list", "list_only", is_flag=True, help="Print the periodic jobs and stop.")
@with_appcontext
def scheduler_command(list_only: bool) -> None:
    """Enqueue the feature packages' periodic jobs on time (RQ's built-in cron scheduler)."""
    periodic = jobs.periodic_jobs()
    if list_only:
        for job in periodic:
            when = f"cron {job.cron}" if job.cron else f"every {job.interval}s"
            click.echo(f"{job.name}\t{job.queue}\t{when}\t{job.func}")
        return
    _logging()
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    conn = _redis_or_fail(app)
    others = live_schedulers(app, conn)
    if others:
        raise click.ClickException(
            f"refusing to start: scheduler {others[0]} is already running (or was killed less than "
            f"{DEFAULT_CRON_SCHEDULER_TTL} seconds ago); two would enqueue every job twice"
        )
    scheduler = build_scheduler(app, conn, periodic)
    log.info("scheduler %s: %d periodic job(s)", scheduler.name, len(periodic))
    db.dispose()
    scheduler.start()


COMMANDS = (worker_command, scheduler_command)
