"""Prometheus metrics: the collectors feature packages record into, and the ``/metrics`` page.

Recorded as things happen (import the collector and record):

* ``REQUEST_LATENCY`` (route template, method, status) by the web request hooks here;
* ``JOB_DURATION`` and ``JOB_FAILURES`` (queue, job function) by the worker;
* ``SYNC_RUNS`` and ``EVALUATION_RUNS`` (outcome) by the MIS sync and policy evaluation code,
  e.g. ``metrics.EVALUATION_RUNS.labels(outcome="succeeded").inc()``.

Read from the source of truth at scrape time (so every web process reports the same figure):
queue lengths from Redis, sync runs of the last 24 hours by status, and letters and referrals
not yet finished, by status, from PostgreSQL. The tables are found in the metadata by name,
so a feature package adds nothing here.

Under gunicorn set ``PROMETHEUS_MULTIPROC_DIR`` (``infra/gunicorn.conf.py`` does): each
worker process writes its samples there and ``/metrics`` merges them. A worker process
serves its own job metrics on ``ATTENDWISE_WORKER_METRICS_PORT`` when that is set.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import time
from collections.abc import Iterator
from typing import Any

from flask import Flask, Response, current_app, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import REGISTRY, Collector
from sqlalchemy import func, select

from attendwise.platform import tenancy
from attendwise.platform.db import Base, db, sync_tenant, utcnow

log = logging.getLogger(__name__)

WORKER_PORT_ENV = "ATTENDWISE_WORKER_METRICS_PORT"
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.5, 5.0, 10.0)
_JOB_BUCKETS = (0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 600.0)

REQUEST_LATENCY = Histogram(
    "attendwise_http_request_duration_seconds",
    "Time to answer a web or API request, by route template.",
    ("route", "method", "status"),
    buckets=_LATENCY_BUCKETS,
)
JOB_DURATION = Histogram(
    "attendwise_job_duration_seconds",
    "Time a background job ran, by queue and job function.",
    ("queue", "job"),
    buckets=_JOB_BUCKETS,
)
JOB_FAILURES = Counter(
    "attendwise_job_failures",
    "Background jobs that ended in failure, by queue and job function.",
    ("queue", "job"),
)
SYNC_RUNS = Counter(
    "attendwise_sync_runs", "MIS sync runs finished in this process, by outcome.", ("outcome",)
)
EVALUATION_RUNS = Counter(
    "attendwise_evaluation_runs", "Policy evaluation runs finished in this process, by outcome.", ("outcome",)
)

# Statuses after which a letter or referral needs nothing more from the platform.
FINISHED = {
    "letters": ("sent", "posted", "failed", "cancelled"),
    "referrals": ("closed", "withdrawn", "rejected", "accepted", "cancelled"),
}


class ScrapeTimeCollector(Collector):
    """Figures read from Redis and the database when Prometheus scrapes."""

    def __init__(self, app: Flask) -> None:
        self.app = app

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield from self._queues()
        yield from self._database()

    def _queues(self) -> Iterator[GaugeMetricFamily]:
        if not self.app.config.get("REDIS_URL"):
            return
        from rq import Queue

        from attendwise.platform import jobs

        family = GaugeMetricFamily(
            "attendwise_queue_length", "Jobs waiting in each RQ queue.", labels=["queue"]
        )
        try:
            conn = jobs.redis_for(self.app)
            for name in jobs.QUEUES:
                family.add_metric([name], Queue(jobs.queue_name(self.app, name), connection=conn).count)
        except Exception:
            log.warning("metrics: Redis could not be read for queue lengths")
            return
        yield family

    def _database(self) -> Iterator[GaugeMetricFamily]:
        tables = Base.metadata.tables
        try:
            with self.app.app_context(), tenancy.system_context("metrics scrape"):
                session = db.session()
                try:
                    sync_tenant(session)
                    conn = session.connection()
                    if "sync_runs" in tables:
                        since = utcnow() - dt.timedelta(hours=24)
                        runs = tables["sync_runs"]
                        family = GaugeMetricFamily(
                            "attendwise_sync_runs_last_24h",
                            "MIS sync runs started in the last 24 hours, by status.",
                            labels=["status"],
                        )
                        rows = conn.execute(
                            select(runs.c.status, func.count())
                            .where(runs.c.started_at >= since)
                            .group_by(runs.c.status)
                        )
                        for status, count in rows:
                            family.add_metric([str(status)], count)
                        yield family
                    for name, finished in FINISHED.items():
                        table = tables.get(name)
                        if table is None or "status" not in table.c:
                            continue
                        family = GaugeMetricFamily(
                            f"attendwise_{name}_pending",
                            f"{name.capitalize()} not yet finished, by status.",
                            labels=["status"],
                        )
                        rows = conn.execute(
                            select(table.c.status, func.count())
                            .where(table.c.status.not_in(finished))
                            .group_by(table.c.status)
                        )
                        for status, count in rows:
                            family.add_metric([str(status)], count)
                        yield family
                finally:
                    session.rollback()
                    db.session.remove()
        except Exception:
            log.warning("metrics: the database could not be read for pending work")


def _route_label() -> str:
    return request.url_rule.rule if request.url_rule is not None else "unmatched"


def _start_timer() -> None:
    g.metrics_started = time.perf_counter()


def _observe(response: Response) -> Response:
    started = g.pop("metrics_started", None)
    if started is not None:
        elapsed = time.perf_counter() - started
        route = _route_label()
        REQUEST_LATENCY.labels(route, request.method, str(response.status_code)).observe(elapsed)
        log.info(
            "%s %s %s %.1fms",
            request.method,
            route,
            response.status_code,
            elapsed * 1000,
            extra={
                "route": route,
                "method": request.method,
                "status": response.status_code,
                "duration_ms": round(elapsed * 1000, 1),
            },
        )
    return response


def record_job(queue: str, job: str, seconds: float, failed: bool) -> None:
    JOB_DURATION.labels(queue, job).observe(seconds)
    if failed:
        JOB_FAILURES.labels(queue, job).inc()


def exposition() -> bytes:
    """This process's metrics, or every gunicorn worker's under PROMETHEUS_MULTIPROC_DIR."""
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    scrape = app.extensions["attendwise_metrics"]
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        registry.register(scrape)
        return generate_latest(registry)
    return generate_latest(REGISTRY) + generate_latest(scrape)


def metrics_response() -> Response:
    return Response(exposition(), content_type=CONTENT_TYPE_LATEST)


def serve_worker_metrics() -> Any:
    """Start the worker process's metrics endpoint if ATTENDWISE_WORKER_METRICS_PORT is set."""
    port = os.environ.get(WORKER_PORT_ENV)
    if not port:
        return None
    log.info("serving job metrics on port %s", port)
    return start_http_server(int(port))


def init_app(app: Flask) -> None:
    app.extensions["attendwise_metrics"] = ScrapeTimeCollector(app)
    app.before_request(_start_timer)
    app.after_request(_observe)
