"""Shared set-up for the drills: a scratch PostgreSQL database with the demo data, and
gunicorn serving it with the production settings (infra/gunicorn.conf.py). Loopback only."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PG = os.environ.get("ATTENDWISE_DRILL_PG", "postgresql+psycopg://postgres@127.0.0.1:5432")
REDIS = os.environ.get("ATTENDWISE_DRILL_REDIS", "redis://127.0.0.1:6379/13")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def scratch_database(name: str) -> Iterator[tuple[str, str]]:
    """Create, migrate and yield (owner URL, application-role URL); drop it afterwards."""
    admin = create_engine(f"{PG}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    owner = f"{PG}/{name}"
    app_url = owner.replace("postgres@", "attendwise_app@", 1)
    env = {**os.environ, "ATTENDWISE_DATABASE_URL": owner, "ATTENDWISE_DATA_DIR": f"/tmp/{name}"}
    subprocess.run([str(BIN / "attendwise"), "db", "upgrade"], check=True, env=env, capture_output=True)
    try:
        yield owner, app_url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextlib.contextmanager
def gunicorn(app_url: str, owner_url: str, prefix: str, workers: int, threads: int) -> Iterator[str]:
    port = free_port()
    env = {
        **os.environ,
        "ATTENDWISE_DATABASE_URL": app_url,
        "ATTENDWISE_MIGRATION_DATABASE_URL": owner_url,
        "ATTENDWISE_REDIS_URL": REDIS,
        "ATTENDWISE_JOBS_QUEUE_PREFIX": prefix,
        "ATTENDWISE_DATA_DIR": f"/tmp/{prefix.strip(':')}",
        "ATTENDWISE_LOG_LEVEL": "WARNING",
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "GUNICORN_WORKERS": str(workers),
        "GUNICORN_THREADS": str(threads),
        "PROMETHEUS_MULTIPROC_DIR": f"/tmp/{prefix.strip(':')}-metrics",
    }
    proc = subprocess.Popen(
        [str(BIN / "gunicorn"), "--config", str(ROOT / "infra" / "gunicorn.conf.py")],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180  # a loaded two-core machine starts workers slowly
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            time.sleep(0.5)
        else:
            raise RuntimeError("gunicorn did not become ready in 180 s")
        yield base
    finally:
        proc.terminate()
        proc.wait(60)
