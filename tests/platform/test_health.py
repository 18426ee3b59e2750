"""/healthz, /readyz and /metrics as the orchestrator and Prometheus see them.

The outage test runs its own app against a scratch PostgreSQL database reached through a
loopback TCP relay (closing the relay is PostgreSQL going away for this app; the shared
server on 5432 is never touched) and a throwaway ``redis-server`` on a free port that is
really stopped and started again.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis
from rq import Queue

from attendwise.platform import jobs
from attendwise.platform.app import create_app
from attendwise.platform.config import Settings
from attendwise.platform.db import db
from tests.conftest import PG_HOST, PG_PORT, create_pg_database, drop_pg_database, migrate, pg_url


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Relay:
    """A loopback TCP relay to ``target``; ``stop()`` drops the listener and every connection."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def stop(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None
        with self._lock:
            for sock in self._open:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self._open.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            with self._lock:
                self._open += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)


class ThrowawayRedis:
    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                shutil.which("redis-server") or "redis-server",
                *("--port", str(self.port), "--bind", "127.0.0.1", "--save", ""),
                *("--appendonly", "no", "--dir", str(self.workdir)),
            ],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception):
                if Redis(port=self.port, socket_connect_timeout=0.2).ping():
                    return
            time.sleep(0.05)
        raise RuntimeError("throwaway redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None


@pytest.fixture
def restore_database(app) -> Iterator[None]:
    saved = (db.engine, db.session_factory, db.session)
    yield
    db.dispose()
    db.engine, db.session_factory, db.session = saved


def test_healthz_answers_anonymously_without_touching_anything(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_readyz_reports_a_current_schema_and_no_redis_in_the_embedded_mode(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "ok"
    assert body["checks"] == {"database": "ok", "redis": "not configured (jobs run inline)"}


def test_readyz_is_unavailable_when_the_schema_is_behind_the_code(app, client, monkeypatch):
    state = app.extensions["attendwise_health"]
    monkeypatch.setitem(state, "heads", frozenset({"29990101_0000"}))
    response = client.get("/readyz")
    assert response.status_code == 503
    detail = response.get_json()["checks"]["database"]
    assert "code expects 29990101_0000" in detail
    assert "attendwise db upgrade" in detail


def test_metrics_show_request_latency_by_route_and_pending_letters(client):
    client.get("/healthz")
    client.get("/no-such-page")
    text = client.get("/metrics").get_data(as_text=True)
    assert (
        'attendwise_http_request_duration_seconds_count{method="GET",route="/healthz",status="200"}' in text
    )
    assert 'route="unmatched",status="404"' in text
    assert "# TYPE attendwise_letters_pending gauge" in text
    assert "# TYPE attendwise_sync_runs_last_24h gauge" in text
    assert "attendwise_job_duration_seconds" in text


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")
def test_readyz_follows_postgresql_and_redis_going_away_and_coming_back(tmp_path, restore_database):
    name = f"attendwise_health_{os.getpid()}"
    create_pg_database(name)
    relay = Relay((PG_HOST, int(PG_PORT)))
    redis = ThrowawayRedis(tmp_path)
    try:
        migrate(pg_url(name), tmp_path)
        relay.start()
        redis.start()
        app = create_app(
            config={
                "TESTING": True,
                "DATABASE_URL": f"postgresql+psycopg://postgres@127.0.0.1:{relay.port}/{name}",
                "DATABASE_ENGINE_OPTIONS": {"connect_args": {"connect_timeout": 2}},
                "REDIS_URL": f"redis://127.0.0.1:{redis.port}/0",
                "JOBS_QUEUE_PREFIX": "health-test:",
            },
            settings=Settings.from_env({"ATTENDWISE_DATA_DIR": str(tmp_path)}),
        )
        client = app.test_client()

        def readyz() -> tuple[int, dict[str, str]]:
            response = client.get("/readyz")
            return response.status_code, response.get_json()["checks"]

        assert readyz() == (200, {"database": "ok", "redis": "ok"})

        relay.stop()
        status, checks = readyz()
        assert status == 503
        assert checks["database"].startswith("unreachable")
        assert checks["redis"] == "ok"
        assert client.get("/healthz").status_code == 200  # liveness does not follow the database

        relay.start()
        assert readyz() == (200, {"database": "ok", "redis": "ok"})

        redis.stop()
        status, checks = readyz()
        assert status == 503
        assert checks == {"database": "ok", "redis": "unreachable (ConnectionError)"}

        redis.start()
        assert readyz() == (200, {"database": "ok", "redis": "ok"})

        Queue(jobs.queue_name(app, "letters"), connection=Redis(port=redis.port)).enqueue("os.getcwd")
        text = client.get("/metrics").get_data(as_text=True)
        assert 'attendwise_queue_length{queue="letters"} 1.0' in text
        assert 'attendwise_queue_length{queue="default"} 0.0' in text
    finally:
        relay.stop()
        redis.stop()
        db.dispose()
        drop_pg_database(name)
