"""Probes and metrics for the orchestrator: ``/healthz``, ``/readyz`` and ``/metrics``.

* ``/healthz`` (liveness): the process answers. It touches nothing else, so a database
  outage never makes Kubernetes restart healthy web pods.
* ``/readyz`` (readiness): the database answers and its schema is at the migrations' head,
  Redis answers when one is configured, and every check a feature package added with
  :func:`add_readiness_check` passes (the S3 document store). 503 with the failing checks
  otherwise, so the pod is taken out of the Service until it recovers.
* ``/metrics``: Prometheus exposition (see ``metrics.py``); keep it off the public ingress.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify
from sqlalchemy import text

from attendwise.platform import metrics
from attendwise.platform.auth import public
from attendwise.platform.db import db

bp = Blueprint("health", __name__)

PROBE_TIMEOUT = 2  # seconds: a probe that hangs is a failed probe

Check = Callable[[Flask], tuple[bool, str]]


def add_readiness_check(app: Flask, name: str, check: Check) -> None:
    """Make ``/readyz`` also depend on ``check`` (it returns ok and a short detail)."""
    app.extensions["attendwise_health"]["checks"][name] = check


def script_heads() -> frozenset[str]:
    """The migration revisions the code expects the database to be at."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).resolve().parent.parent / "migrations"))
    return frozenset(ScriptDirectory.from_config(cfg).get_heads())


def _redis(app: Flask) -> Any:
    state = app.extensions["attendwise_health"]
    if state.get("redis") is None:
        from redis import Redis

        state["redis"] = Redis.from_url(
            app.config["REDIS_URL"], socket_connect_timeout=PROBE_TIMEOUT, socket_timeout=PROBE_TIMEOUT
        )
    return state["redis"]


def check_database(app: Flask) -> tuple[bool, str]:
    state = app.extensions["attendwise_health"]
    if state.get("heads") is None:
        state["heads"] = script_heads()
    expected = state["heads"]
    try:
        current = frozenset(
            db.session.connection().execute(text("SELECT version_num FROM alembic_version")).scalars()
        )
    except Exception as exc:
        db.session.rollback()
        return False, f"unreachable ({type(exc).__name__})"
    if current != expected:
        return False, (
            f"schema at {', '.join(sorted(current)) or 'no revision'}, "
            f"code expects {', '.join(sorted(expected))}: run 'attendwise db upgrade'"
        )
    return True, "ok"


def check_redis(app: Flask) -> tuple[bool, str]:
    if not app.config.get("REDIS_URL"):
        return True, "not configured (jobs run inline)"
    try:
        _redis(app).ping()
    except Exception as exc:
        return False, f"unreachable ({type(exc).__name__})"
    return True, "ok"


@bp.get("/healthz")
@public
def healthz() -> Response:
    return jsonify(status="ok")


@bp.get("/readyz")
@public
def readyz() -> tuple[Response, int]:
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    extra = app.extensions["attendwise_health"]["checks"]
    results = {
        "database": check_database(app),
        "redis": check_redis(app),
        **{name: check(app) for name, check in extra.items()},
    }
    ready = all(ok for ok, _ in results.values())
    body = jsonify(
        status="ok" if ready else "unavailable",
        checks={name: detail for name, (_ok, detail) in results.items()},
    )
    return body, 200 if ready else 503


@bp.get("/metrics")
@public
def metrics_page() -> Response:
    return metrics.metrics_response()


def register(app: Flask) -> None:
    app.extensions["attendwise_health"] = {"heads": None, "redis": None, "checks": {}}
    metrics.init_app(app)
    app.register_blueprint(bp)
