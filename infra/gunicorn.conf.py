"""gunicorn settings for the Attendwise web process (``gunicorn --config infra/gunicorn.conf.py``).

Every value can be overridden with an environment variable named in the code. Workers come
from the CPUs this process may use (a container's CPU limit shows up as its affinity when
the kubelet pins CPUs; set GUNICORN_WORKERS where it does not). Each worker runs threads,
and its SQLAlchemy pool is sized to its threads so a process never waits for a connection
it could not use: connections per pod = workers x (threads + overflow).

Graceful reload: ``kill -HUP <master>`` starts new workers with the new code and retires the
old ones after their current requests; SIGTERM stops taking requests and lets running
requests finish within ``graceful_timeout``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any


def _int(name: str, default: int) -> int:
    return int(os.environ.get(name) or default)


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
workers = _int("GUNICORN_WORKERS", 2 * _cpus() + 1)
worker_class = "gthread"
threads = _int("GUNICORN_THREADS", 4)
timeout = _int("GUNICORN_TIMEOUT", 60)  # a request stuck this long is killed and its worker replaced
graceful_timeout = _int("GUNICORN_GRACEFUL_TIMEOUT", 30)
keepalive = _int("GUNICORN_KEEPALIVE", 5)
max_requests = _int("GUNICORN_MAX_REQUESTS", 5000)  # recycle workers: bounds slow memory growth
max_requests_jitter = _int("GUNICORN_MAX_REQUESTS_JITTER", 500)
preload_app = False  # each worker builds its own app and pool; HUP reloads the code
# No gunicornc control socket: reload is `kill -HUP`, and in the image the socket's default
# place ($HOME/.gunicorn, i.e. /app) is not writable, so gunicorn logged an error at start.
control_socket_disable = True
forwarded_allow_ips = os.environ.get("GUNICORN_FORWARDED_ALLOW_IPS", "127.0.0.1")
# The app logs each request as JSON with its route template, never the query string (which
# can hold a pupil's name), so gunicorn's own access log stays off.
accesslog = None
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOGLEVEL", "info")

POOL_OVERFLOW = _int("ATTENDWISE_DB_POOL_OVERFLOW", 2)
_engine = {"pool_size": threads, "max_overflow": POOL_OVERFLOW, "pool_timeout": 10, "pool_recycle": 1800}
wsgi_app = f"attendwise.platform.app:create_app(config={{'DATABASE_ENGINE_OPTIONS': {_engine!r}}})"


def on_starting(_server: Any) -> None:
    """Start each run with an empty Prometheus multi-process directory."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        shutil.rmtree(directory, ignore_errors=True)
        Path(directory).mkdir(parents=True, exist_ok=True)


def child_exit(_server: Any, worker: Any) -> None:
    """Drop a dead worker's live gauges from the merged metrics."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
