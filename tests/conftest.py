"""Test harness.

* The database is PostgreSQL when CI=true (or ATTENDWISE_TEST_DB=postgresql) and SQLite
  otherwise. The schema is built once per run with the real migrations; on PostgreSQL the
  tests connect as the application role, so row-level security is live in every test.
* Each test runs inside a transaction that is rolled back at the end (the session joins it
  with savepoints, so code under test may commit freely).
* Factories take the tenant explicitly; nothing assumes ``org_id=1``.
* No network beyond loopback, no real email.
"""

from __future__ import annotations

import os
import re
import socket
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, g
from flask.testing import FlaskClient
from redis import Redis
from rq import Queue
from sqlalchemy import create_engine, text
from sqlalchemy.orm import scoped_session, sessionmaker

from attendwise.platform import jobs, tenancy
from attendwise.platform.app import create_app
from attendwise.platform.config import Settings
from attendwise.platform.db import AttendwiseSession, _app_ctx_scope, db
from attendwise.tenants import services
from attendwise.tenants.models import Organisation, OrgKind, User

CI = os.environ.get("CI", "").lower() == "true"
USE_POSTGRES = CI or os.environ.get("ATTENDWISE_TEST_DB", "") == "postgresql"
PG_HOST = os.environ.get("ATTENDWISE_TEST_PG_HOST", "127.0.0.1")
PG_PORT = os.environ.get("ATTENDWISE_TEST_PG_PORT", "5432")
PG_ADMIN = f"postgresql+psycopg://postgres@{PG_HOST}:{PG_PORT}/postgres"
APP_ROLE = "attendwise_app"
TEST_PASSWORD = "correct-horse-battery-staple"


def _worker_suffix() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "gw0")


def pg_url(database: str, user: str = "postgres") -> str:
    return f"postgresql+psycopg://{user}@{PG_HOST}:{PG_PORT}/{database}"


def create_pg_database(name: str) -> None:
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()


def drop_pg_database(name: str) -> None:
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def migrate(owner_url: str, data_dir: Path) -> None:
    app = create_app(
        config={"TESTING": True, "DATABASE_URL": owner_url, "MIGRATION_DATABASE_URL": owner_url},
        settings=Settings.from_env({"ATTENDWISE_DATA_DIR": str(data_dir)}),
    )
    from attendwise.platform.cli import upgrade_database

    with app.app_context():
        upgrade_database()
    db.dispose()


@pytest.fixture(scope="session")
def database_urls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Build the schema once: returns the owner (migration) URL and the application URL."""
    data_dir = tmp_path_factory.mktemp("data")
    if USE_POSTGRES:
        # The process id keeps concurrent runs on one server from dropping each other's database.
        name = f"attendwise_test_{_worker_suffix()}_{os.getpid()}"
        create_pg_database(name)
        owner = pg_url(name)
        migrate(owner, data_dir)
        yield {"owner": owner, "app": pg_url(name, APP_ROLE), "data_dir": str(data_dir)}
        db.dispose()
        drop_pg_database(name)
        return
    url = f"sqlite:///{data_dir / 'test.sqlite3'}"
    migrate(url, data_dir)
    yield {"owner": url, "app": url, "data_dir": str(data_dir)}


@pytest.fixture(scope="session")
def app(database_urls: dict[str, str]) -> Iterator[Flask]:
    application = create_app(
        config={
            "TESTING": True,
            "DATABASE_URL": database_urls["app"],
            "MIGRATION_DATABASE_URL": database_urls["owner"],
            "SERVER_NAME": "attendwise.test",
            "MAIL_SERVER": "",
        },
        settings=Settings.from_env({"ATTENDWISE_DATA_DIR": database_urls["data_dir"]}),
    )
    yield application
    db.dispose()


@pytest.fixture
def db_session(app: Flask) -> Iterator[AttendwiseSession]:
    """A session inside a transaction rolled back after the test; code may commit freely."""
    assert db.engine is not None
    connection = db.engine.connect()
    outer = connection.begin()
    factory = sessionmaker(
        bind=connection,
        class_=AttendwiseSession,
        join_transaction_mode="create_savepoint",
        expire_on_commit=False,
    )
    saved = (db.session_factory, db.session)
    db.session_factory = factory
    db.session = scoped_session(factory, scopefunc=_app_ctx_scope)
    ctx = app.app_context()
    ctx.push()
    try:
        yield db.session()
    finally:
        db.session.remove()
        ctx.pop()
        db.session_factory, db.session = saved
        outer.rollback()
        connection.close()


class FreshGlobalsClient(FlaskClient):
    """Each request starts with an empty ``g``, as in production.

    ``db_session`` keeps one app context pushed for the whole test and Flask reuses it for
    every test request, so without this ``g`` (the principal, Flask-WTF's cached CSRF token)
    would leak from one request into the next.
    """

    def open(self, *args: Any, **kwargs: Any) -> Any:
        g._get_current_object().__dict__.clear()
        return super().open(*args, **kwargs)


@pytest.fixture
def client(app: Flask, db_session: AttendwiseSession) -> FlaskClient:
    return FreshGlobalsClient(app, app.response_class, use_cookies=True)


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any connection beyond loopback fails the test."""
    real_connect = socket.socket.connect

    def guarded(self: socket.socket, address: Any) -> Any:
        host = address[0] if isinstance(address, tuple) else address
        inet = self.family in (socket.AF_INET, socket.AF_INET6)
        if inet and isinstance(host, str) and not (host.startswith("127.") or host in ("::1", "localhost")):
            raise RuntimeError(f"test tried to reach the network: {address!r}")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)


# ---- factories: every one takes the tenant explicitly ----------------------------------


@pytest.fixture
def make_la(db_session: AttendwiseSession) -> Callable[..., Organisation]:
    counter = iter(range(800, 999))

    def factory(name: str | None = None, la_code: str | None = None) -> Organisation:
        code = la_code or str(next(counter))
        with tenancy.system_context("test factory"):
            return services.create_organisation(
                db_session, kind=OrgKind.LA, name=name or f"LA {code}", la_code=code
            )

    return factory


@pytest.fixture
def make_trust(db_session: AttendwiseSession) -> Callable[..., Organisation]:
    def factory(name: str = "Test Trust") -> Organisation:
        with tenancy.system_context("test factory"):
            return services.create_organisation(db_session, kind=OrgKind.TRUST, name=name)

    return factory


@pytest.fixture
def make_school(
    db_session: AttendwiseSession, make_la: Callable[..., Organisation]
) -> Callable[..., Organisation]:
    counter = iter(range(100000, 199999, 7))

    def factory(
        la: Organisation | None = None,
        trust: Organisation | None = None,
        name: str | None = None,
        phase: str = "Primary",
    ) -> Organisation:
        urn = str(next(counter))
        with tenancy.system_context("test factory"):
            return services.create_organisation(
                db_session,
                kind=OrgKind.SCHOOL,
                name=name or f"School {urn}",
                urn=urn,
                phase=phase,
                la=la or make_la(),
                trust=trust,
            )

    return factory


@pytest.fixture
def make_user(db_session: AttendwiseSession) -> Callable[..., User]:
    counter = iter(range(1, 100000))

    def factory(
        org: Organisation, role: str, email: str | None = None, password: str = TEST_PASSWORD
    ) -> User:
        with tenancy.system_context("test factory"):
            user = services.create_user(
                db_session,
                email=email or f"user{next(counter)}@example.test",
                display_name="Test User",
                password=password,
            )
            services.add_membership(db_session, user=user, org=org, role_key=role)
        return user

    return factory


def csrf_token(client: FlaskClient, path: str = "/auth/login") -> str:
    page = client.get(path)
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True))
    assert match, f"no CSRF token on {path}"
    return match.group(1)


@pytest.fixture
def login(client: FlaskClient) -> Callable[..., Any]:
    def do_login(user: User, password: str = TEST_PASSWORD) -> Any:
        token = csrf_token(client)
        return client.post(
            "/auth/login", data={"email": user.email, "password": password, "csrf_token": token}
        )

    return do_login


JOBS_REDIS_URL = "redis://127.0.0.1:6379/14"


@pytest.fixture
def redis_jobs(app: Flask, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Redis, str]]:
    """Jobs go to Redis (db 14, under a unique queue prefix) instead of running inline; every
    queue, job and key the test made there is deleted after it. Gives (connection, prefix)."""
    prefix = f"test-{uuid.uuid4().hex[:8]}:"
    monkeypatch.setitem(app.config, "REDIS_URL", JOBS_REDIS_URL)
    monkeypatch.setitem(app.config, "JOBS_QUEUE_PREFIX", prefix)
    monkeypatch.setitem(app.extensions["attendwise_jobs"], "redis", None)
    conn = Redis.from_url(JOBS_REDIS_URL)
    yield conn, prefix
    for name in jobs.QUEUES:
        Queue(prefix + name, connection=conn).delete(delete_jobs=True)
    for key in conn.scan_iter(f"rq:*{prefix[:-1]}*"):
        conn.delete(key)
    conn.close()
