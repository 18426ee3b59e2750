"""Background jobs: one ``enqueue()`` façade over RQ, or inline when no Redis is configured.

Rules every job follows:

* a job is a plain function taking ids and the tenant's organisation id, never ORM objects;
* it is enqueued only after the surrounding transaction commits (``enqueue`` defers itself to
  the session's ``after_commit``), so a worker never sees a row that was rolled back;
* :func:`run_job` restores the app, a fresh session, the tenant context and the audit actor,
  and commits or rolls back as one unit;
* PostgreSQL, not Redis, is the record of anything that must not be lost or done twice
  (letters, referrals): those jobs claim their row with a conditional UPDATE and a sweeper
  re-queues what is stuck.

Periodic work is declared in :data:`PERIODIC` and registered with RQ's built-in cron
scheduler by ``attendwise scheduler``.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Flask, current_app
from sqlalchemy import event
from sqlalchemy.orm import Session

from attendwise.platform import tenancy
from attendwise.platform.audit import Actor, set_actor
from attendwise.platform.db import db

log = logging.getLogger(__name__)

QUEUES = ("default", "evaluation", "sync", "letters", "pdf", "notifications")


class RedisMisconfigured(RuntimeError):
    pass


@dataclass(frozen=True)
class Periodic:
    name: str
    func: str  # dotted path of a job function taking no arguments
    queue: str
    cron: str | None = None
    interval: int | None = None  # seconds


# Feature packages append their periodic jobs here at import (see features.py).
PERIODIC: list[Periodic] = []


def _dotted(func: Callable[..., Any] | str) -> str:
    if isinstance(func, str):
        return func
    return f"{func.__module__}.{func.__qualname__}"


def _resolve(path: str) -> Callable[..., Any]:
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)  # type: ignore[no-any-return]


def run_job(
    func_path: str, org_id: int | None, actor_label: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """The wrapper every job runs through, inline or in a worker."""
    from attendwise.platform.app import create_app

    app = current_app._get_current_object() if _has_app() else create_app()  # type: ignore[attr-defined]
    with app.app_context():
        set_actor(Actor(label=f"job: {actor_label}"))
        func = _resolve(func_path)
        if org_id is None:
            with tenancy.system_context(f"job {func_path}"):
                return _call(func, args, kwargs)
        with tenancy.tenant_context(org_id):
            return _call(func, args, kwargs)


def _call(func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    try:
        result = func(*args, **kwargs)
        db.session.commit()
        return result
    except BaseException:
        db.session.rollback()
        raise
    finally:
        db.session.remove()


def _has_app() -> bool:
    from flask.globals import _cv_app

    return _cv_app.get(None) is not None


def redis_connection(url: str) -> Any:
    from redis import Redis

    return Redis.from_url(url)


def check_redis_for_jobs(conn: Any) -> None:
    """Refuse to run jobs on a Redis that may evict keys or lose everything on restart."""
    policy = conn.config_get("maxmemory-policy").get("maxmemory-policy")
    if policy != "noeviction":
        raise RedisMisconfigured(
            f"Redis maxmemory-policy is {policy!r}: set it to 'noeviction' so queued jobs are never evicted"
        )


def enqueue(
    func: Callable[..., Any] | str,
    *args: Any,
    org_id: int | None,
    queue: str = "default",
    job_id: str | None = None,
    job_timeout: int = 600,
    session: Session | None = None,
    **kwargs: Any,
) -> None:
    """Run ``func(*args, **kwargs)`` for ``org_id`` (None: system job) after the current commit."""
    if queue not in QUEUES:
        raise ValueError(f"unknown queue {queue!r}")
    path = _dotted(func)
    payload = (path, org_id, path.rsplit(".", 1)[-1], args, kwargs)
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    redis_url = app.config.get("REDIS_URL")

    def dispatch() -> None:
        if not redis_url:
            run_inline(*payload)
            return
        from rq import Queue

        Queue(queue, connection=redis_connection(redis_url)).enqueue(
            run_job, *payload, job_id=job_id, job_timeout=job_timeout
        )

    sess = session or db.session()
    if sess.in_transaction():
        event.listen(sess, "after_commit", lambda _s: dispatch(), once=True)
    else:
        dispatch()


def run_inline(
    func_path: str, org_id: int | None, actor_label: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """Run a job now in a separate app context and session, as a worker would."""
    saved = tenancy.current()
    try:
        from attendwise.platform.app import create_app

        app = current_app._get_current_object() if _has_app() else create_app()  # type: ignore[attr-defined]
        with app.app_context():
            return run_job(func_path, org_id, actor_label, args, kwargs)
    finally:
        tenancy.set_for_request(saved)


def register_periodic(job: Periodic) -> None:
    if any(p.name == job.name for p in PERIODIC):
        return
    PERIODIC.append(job)


def init_app(app: Flask) -> None:
    app.extensions["attendwise_jobs"] = {"inline": not app.config.get("REDIS_URL")}
