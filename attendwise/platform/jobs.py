"""Background jobs: one ``enqueue()`` façade over RQ, or inline when no Redis is configured.

Rules every job follows:

* a job is a plain module-level function taking ids and plain values, never ORM objects
  (``enqueue`` refuses them), and runs for one organisation (``org_id``) or, with
  ``org_id=None``, in an explicit system context;
* it is enqueued only after the surrounding transaction commits: ``enqueue`` parks the job
  on the session and the session's ``after_commit`` hands it to RQ. A rollback (of the whole
  transaction, or of the savepoint it was enqueued in) drops it, so a worker never acts on
  a row that was never committed;
* :func:`run_job` is the one wrapper every job runs through, inline or in a worker: it
  restores the app, a fresh session, the tenant context and the audit actor (who enqueued
  it), and commits or rolls back the job's work as one unit;
* PostgreSQL, not Redis, is the record of anything that must not be lost or done twice
  (letters, referrals): those jobs claim their row with a conditional UPDATE and a sweeper
  re-queues what is stuck (see docs and ``shared/domain/reliability-and-security.md`` §4).
  RQ itself gives at-most-once delivery here: no job is retried automatically.

Inline mode (no ``ATTENDWISE_REDIS_URL``) runs the job right after the commit, in its own
app context and session, in a copy of the caller's context variables, so the caller's
tenant and actor are untouched. A failing inline job raises to the caller: in the
embedded mode nothing would ever retry it, so it must not fail silently.

Feature packages declare periodic work in their ``jobs`` module as ``PERIODIC`` (a tuple of
:class:`Periodic`); ``attendwise scheduler`` registers them with RQ's built-in cron
scheduler (``attendwise/platform/worker.py``). Periodic jobs run in the system context and
fan out per organisation with :func:`fan_out`, which enqueues one tenant job each.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import importlib
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from flask import Flask, current_app
from sqlalchemy import delete, event, or_, select
from sqlalchemy.orm import Session, SessionTransaction

from attendwise.platform import tenancy
from attendwise.platform.audit import Actor, current_actor, set_actor
from attendwise.platform.db import AttendwiseSession, Base, db, utcnow
from attendwise.platform.discovery import modules

log = logging.getLogger(__name__)

# Named queues, in the order a worker listening on all of them takes work.
QUEUES = ("default", "evaluation", "sync", "letters", "pdf", "notifications")

DEFAULT_TIMEOUT = 600  # seconds
RESULT_TTL = 24 * 3600  # keep a finished job's status a day, for support questions
FAILURE_TTL = 30 * 24 * 3600  # keep a failed job a month, so someone can look and re-queue it

_PENDING = "aw_pending_jobs"
_READY = "aw_committed_jobs"
_JOB_ID = re.compile(r"[A-Za-z0-9_-]{1,200}")
_NOT_IN_JOB_ID = re.compile(r"[^A-Za-z0-9_-]")


class RedisMisconfigured(RuntimeError):
    """Redis would lose queued jobs (evicts keys, or keeps no append-only file in production)."""


@dataclass(frozen=True)
class Periodic:
    """A job a feature package wants run on a schedule (exactly one of ``cron``/``interval``)."""

    name: str
    func: str  # dotted path of a module-level function taking no arguments
    queue: str = "default"
    cron: str | None = None  # crontab fields, in the scheduler host's local time
    interval: int | None = None  # seconds
    timeout: int = DEFAULT_TIMEOUT

    def __post_init__(self) -> None:
        if (self.cron is None) == (self.interval is None):
            raise ValueError(f"periodic job {self.name!r}: give exactly one of cron= or interval=")
        if self.queue not in QUEUES:
            raise ValueError(f"periodic job {self.name!r}: unknown queue {self.queue!r}")
        if self.interval is not None and self.interval < 1:
            raise ValueError(f"periodic job {self.name!r}: interval must be at least 1 second")


@dataclass(frozen=True)
class _Job:
    func: str
    org_id: int | None
    actor: dict[str, Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    queue: str
    job_id: str | None
    timeout: int

    def payload(self) -> tuple[Any, ...]:
        return (self.func, self.org_id, self.actor, self.args, self.kwargs)


def _dotted(func: Callable[..., Any] | str) -> str:
    if isinstance(func, str):
        return func
    path = f"{func.__module__}.{func.__qualname__}"
    if "<" in path or _resolve(path) is not func:
        raise ValueError(f"{path} is not a module-level function: a worker could not import it")
    return path


def _resolve(path: str) -> Callable[..., Any]:
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def _refuse_orm_objects(value: Any, where: str) -> None:
    if isinstance(value, Base):
        raise TypeError(f"{where}: pass the id of {type(value).__name__}, not the ORM object")
    if isinstance(value, Mapping):
        for key, item in value.items():
            _refuse_orm_objects(item, f"{where}[{key!r}]")
    elif isinstance(value, list | tuple | set | frozenset):
        for index, item in enumerate(value):
            _refuse_orm_objects(item, f"{where}[{index}]")


def queue_name(app: Flask, name: str) -> str:
    """The Redis-side name of a queue (``ATTENDWISE_JOBS_QUEUE_PREFIX`` keeps deployments apart)."""
    return f"{app.config.get('JOBS_QUEUE_PREFIX', '')}{name}"


def rq_job_id(app: Flask, job_id: str) -> str:
    """The id RQ keeps the job enqueued as ``job_id`` under. RQ's job ids are global in a Redis
    database, so the queue prefix keeps deployments apart here too (a character RQ refuses in
    an id, such as the prefix's ``:``, becomes ``_``)."""
    return _NOT_IN_JOB_ID.sub("_", queue_name(app, job_id))


def pending(job_id: str, *, at: dt.datetime | None = None) -> bool:
    """Whether the job enqueued as ``job_id`` has yet to end: queued, scheduled or deferred, or
    started on a worker that still beat at ``at`` (default now). False for a job that finished,
    failed, was stopped or cancelled, whose worker died (RQ's forking worker beats every
    job-monitoring interval and gives a job up 60 s after a missed beat), or that Redis no
    longer holds (lost in a restart): its id may be enqueued again. Always False inline.

    Enqueueing an id RQ still holds does not replace that job: RQ 3 overwrites the stored job
    and pushes the id onto the queue a second time. Callers that want at most one pending job
    per id ask this first."""
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    if not app.config.get("REDIS_URL"):
        return False
    from rq.defaults import DEFAULT_JOB_MONITORING_INTERVAL
    from rq.exceptions import NoSuchJobError
    from rq.job import Job, JobStatus

    try:
        job = Job.fetch(rq_job_id(app, job_id), connection=redis_for(app))
    except NoSuchJobError:
        return False
    status = job.get_status(refresh=False)
    if status == JobStatus.STARTED:
        beat_lost = (at or utcnow()) - dt.timedelta(seconds=DEFAULT_JOB_MONITORING_INTERVAL + 60)
        return job.last_heartbeat is not None and job.last_heartbeat > beat_lost
    return status in (JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.DEFERRED)


def redis_for(app: Flask) -> Any:
    """This process's explicit Redis connection for jobs (RQ 3 has no implicit connection)."""
    state = app.extensions["attendwise_jobs"]
    if state.get("redis") is None:
        from redis import Redis

        state["redis"] = Redis.from_url(app.config["REDIS_URL"], socket_connect_timeout=5)
    return state["redis"]


def check_redis_for_jobs(conn: Any, *, production: bool) -> list[str]:
    """Refuse a Redis that may lose queued jobs; return warnings for what is merely risky.

    Uses ``INFO`` rather than ``CONFIG GET`` so it also works on managed Redis services that
    disable CONFIG. Eviction is refused everywhere (RQ's maintainers: evicted keys are lost
    jobs). No append-only file is refused in production, where a Redis restart would drop
    every queued job, and only warned about in development.
    """
    policy = conn.info("memory").get("maxmemory_policy")
    if policy != "noeviction":
        raise RedisMisconfigured(
            f"Redis maxmemory-policy is {policy!r}: Redis may evict queued jobs. "
            "Set 'maxmemory-policy noeviction' on the Redis used for jobs."
        )
    warnings = []
    if not int(conn.info("persistence").get("aof_enabled", 0)):
        message = "Redis keeps no append-only file (appendonly no): a Redis restart loses every queued job"
        if production:
            raise RedisMisconfigured(
                f"{message}. Refusing to run in production: set 'appendonly yes' "
                "(appendfsync everysec) on the Redis used for jobs."
            )
        warnings.append(f"{message}; acceptable in development only.")
    return warnings


def enqueue(
    func: Callable[..., Any] | str,
    *args: Any,
    org_id: int | None,
    queue: str = "default",
    job_id: str | None = None,
    job_timeout: int = DEFAULT_TIMEOUT,
    session: Session | None = None,
    **kwargs: Any,
) -> None:
    """Run ``func(*args, **kwargs)`` for ``org_id`` (None: a system job) once the session's
    current (or, if none is open, next) transaction commits. ``job_id`` names the job in RQ
    (:func:`rq_job_id`); an id still :func:`pending` would be queued twice."""
    if queue not in QUEUES:
        raise ValueError(f"unknown queue {queue!r}; the queues are {', '.join(QUEUES)}")
    if job_id is not None and not _JOB_ID.fullmatch(job_id):
        raise ValueError(f"job id {job_id!r}: use only letters, digits, '_' and '-' (RQ's rule)")
    _refuse_orm_objects(args, "job arguments")
    _refuse_orm_objects(kwargs, "job keyword arguments")
    ctx = tenancy.current()
    if org_id is not None and ctx is not None and not ctx.can_read(org_id):
        raise tenancy.TenantViolation(f"cannot enqueue a job for organisation {org_id} from this context")
    actor = current_actor()
    job = _Job(
        func=_dotted(func),
        org_id=org_id,
        actor={"user_id": actor.user_id, "label": actor.label, "request_id": actor.request_id},
        args=tuple(args),
        kwargs=dict(kwargs),
        queue=queue,
        job_id=job_id,
        timeout=job_timeout,
    )
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    sess = session or db.session()
    if not sess.in_transaction():
        sess.begin()
    tx = sess.get_nested_transaction() or sess.get_transaction()
    sess.info.setdefault(_PENDING, []).append((tx, app, job))


def fan_out(
    func: Callable[..., Any] | str,
    *args: Any,
    kinds: tuple[str, ...] = ("school",),
    queue: str = "default",
    job_timeout: int = DEFAULT_TIMEOUT,
    **kwargs: Any,
) -> list[int]:
    """From a system job: enqueue ``func(*args, **kwargs)`` once per active organisation of
    ``kinds``, each in that organisation's own tenant context. Returns the organisation ids."""
    from attendwise.tenants.models import Organisation

    ctx = tenancy.current()
    if ctx is None or not ctx.system:
        raise tenancy.TenantViolation("fan_out runs from a system job (periodic jobs are system jobs)")
    org_ids = list(
        db.session.scalars(
            select(Organisation.id)
            .where(Organisation.kind.in_(kinds), Organisation.active.is_(True))
            .order_by(Organisation.id)
        )
    )
    for org_id in org_ids:
        enqueue(func, *args, org_id=org_id, queue=queue, job_timeout=job_timeout, **kwargs)
    return org_ids


def _dispatch(app: Flask, job: _Job) -> None:
    if not app.config.get("REDIS_URL"):
        log.info("job %s for organisation %s: running inline", job.func, job.org_id)
        contextvars.copy_context().run(_run_in_app, app, job.payload())
        return
    from rq import Queue

    rq_job = Queue(queue_name(app, job.queue), connection=redis_for(app)).enqueue(
        run_job,
        args=job.payload(),
        job_id=None if job.job_id is None else rq_job_id(app, job.job_id),
        job_timeout=job.timeout,
        result_ttl=RESULT_TTL,
        failure_ttl=FAILURE_TTL,
        description=f"{job.func} for organisation {job.org_id}",
    )
    log.info("job %s (%s for organisation %s) queued on %s", rq_job.id, job.func, job.org_id, job.queue)


@event.listens_for(AttendwiseSession, "after_commit")
def _after_commit(session: Session) -> None:
    pending: list[tuple[SessionTransaction, Flask, _Job]] = session.info.get(_PENDING, [])
    if not pending:
        return
    released = session.get_nested_transaction()
    if released is not None:
        # A savepoint was released: its jobs now wait for the enclosing transaction.
        session.info[_PENDING] = [
            (released.parent if tx is released else tx, app, job) for tx, app, job in pending
        ]
        return
    session.info[_READY] = session.info.pop(_PENDING)


@event.listens_for(AttendwiseSession, "after_soft_rollback")
def _after_rollback(session: Session, previous: SessionTransaction) -> None:
    if previous.nested and session.info.get(_PENDING):
        session.info[_PENDING] = [item for item in session.info[_PENDING] if item[0] is not previous]


@event.listens_for(AttendwiseSession, "after_transaction_end")
def _after_transaction_end(session: Session, transaction: SessionTransaction) -> None:
    """Start committed jobs once the transaction is fully closed; drop everything else."""
    if transaction.parent is not None:
        return
    session.info.pop(_PENDING, None)
    ready: list[tuple[SessionTransaction, Flask, _Job]] = session.info.pop(_READY, [])
    failure: BaseException | None = None
    for _tx, app, job in ready:
        try:
            _dispatch(app, job)
        except Exception as exc:
            log.exception("job %s for organisation %s could not be started", job.func, job.org_id)
            failure = failure or exc
    if failure is not None:
        raise failure


def _run_in_app(app: Flask, payload: tuple[Any, ...]) -> Any:
    with app.app_context():
        return run_job(*payload)


def _current_rq_job_id() -> str | None:
    from rq import get_current_job

    job = get_current_job()
    return job.id if job is not None else None


def run_job(
    func_path: str,
    org_id: int | None,
    actor: dict[str, Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Any:
    """The wrapper every job runs through: tenant, actor, session, commit or roll back."""
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    func = _resolve(func_path)
    job_id = _current_rq_job_id()
    short = func_path.rsplit(".", 1)[-1]
    with app.app_context():
        set_actor(
            Actor(
                user_id=actor.get("user_id"),
                label=f"job {short} for {actor.get('label') or 'system'}"[:200],
                request_id=job_id or actor.get("request_id"),
            )
        )
        scope = (
            tenancy.system_context(f"job {func_path}") if org_id is None else tenancy.tenant_context(org_id)
        )
        with scope:
            session = db.session()
            try:
                result = func(*args, **kwargs)
                session.commit()
            except BaseException:
                session.rollback()
                log.warning("job %s (%s, organisation %s) failed", job_id or "inline", func_path, org_id)
                raise
            finally:
                db.session.remove()
    log.info("job %s (%s, organisation %s) done", job_id or "inline", func_path, org_id)
    return result


def purge_expired_sessions() -> int:
    """Delete web sessions that ended more than a day ago (they only slow the cookie lookup)."""
    from attendwise.platform.sessions import WebSession

    cutoff = utcnow() - dt.timedelta(days=1)
    result = db.session.execute(
        delete(WebSession).where(or_(WebSession.expires_at < cutoff, WebSession.revoked_at < cutoff))
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


PERIODIC = (
    Periodic(
        name="platform.purge_expired_sessions",
        func="attendwise.platform.jobs.purge_expired_sessions",
        queue="default",
        interval=3600,
    ),
)


def periodic_jobs() -> list[Periodic]:
    """Every feature package's ``PERIODIC``, checked: unique names, importable functions."""
    found: dict[str, Periodic] = {}
    for module in modules("jobs"):
        for job in getattr(module, "PERIODIC", ()):
            if not isinstance(job, Periodic):
                raise TypeError(f"{module.__name__}.PERIODIC holds {job!r}, not a Periodic")
            if job.name in found:
                raise ValueError(f"periodic job name {job.name!r} is declared twice")
            try:
                _resolve(job.func)
            except (ImportError, AttributeError) as exc:
                raise ValueError(f"periodic job {job.name!r}: cannot import {job.func}: {exc}") from exc
            found[job.name] = job
    return list(found.values())


def init_app(app: Flask) -> None:
    app.extensions["attendwise_jobs"] = {"inline": not app.config.get("REDIS_URL"), "redis": None}
