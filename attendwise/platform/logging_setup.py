"""Structured JSON logs, one object a line, each carrying the request or job id.

:func:`configure` is applied by the app factory's ``init_logging`` step and by the worker and
scheduler commands, never at import. Every record gets ``request_id`` (the web request's id,
or for a job the RQ job id, both taken from the audit actor) and ``job_id`` (inside a worker).

No personal data in logs: the request log names the route template (``/pupils/<int:pupil_id>``),
never the path or query string, and the code logs ids, not names. ``tests/platform/test_logs*``
scans the logs of a representative run for the test pupils' names and UPNs.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import sys
from typing import Any

from attendwise.platform.audit import current_actor

LEVEL_ENV = "ATTENDWISE_LOG_LEVEL"
_RESERVED = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "request_id", "job_id"}


def _rq_job_id() -> str | None:
    from rq import get_current_job

    try:
        job = get_current_job()
    except RuntimeError:
        return None
    return job.id if job is not None else None


class ContextFilter(logging.Filter):
    """Stamp each record with the current request id and RQ job id."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = current_actor().request_id
        record.job_id = _rq_job_id()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
            "job_id": getattr(record, "job_id", None),
            "pid": record.process,
        }
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                payload[key] = value
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str, ensure_ascii=False)


class StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time (test runners swap it)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def build_handler() -> logging.Handler:
    handler = StderrHandler()
    handler.setFormatter(JsonFormatter())
    handler.addFilter(ContextFilter())
    return handler


def configure(default_level: str = "INFO") -> None:
    """Send every log record to stderr as JSON (idempotent: one Attendwise handler on the root).

    The level is ``ATTENDWISE_LOG_LEVEL`` when set, else ``default_level``: the app factory
    passes WARNING so command-line use stays quiet, and the image sets INFO for the servers."""
    root = logging.getLogger()
    for existing in list(root.handlers):
        if isinstance(existing, StderrHandler):
            root.removeHandler(existing)
    root.addHandler(build_handler())
    root.setLevel((os.environ.get(LEVEL_ENV) or default_level).upper())
