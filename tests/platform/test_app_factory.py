"""The app factory: refuses an unsafe production configuration, and neither importing the
package nor building the app touches the database, the network or the disk."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator

import pytest
from sqlalchemy import event
from sqlalchemy.pool import Pool

from attendwise.platform.app import create_app
from attendwise.platform.config import DEFAULT_SECRET_KEY, ConfigError, Settings
from attendwise.platform.db import db


@pytest.fixture
def restore_database(app) -> Iterator[None]:
    """create_app() rebinds the shared ``db``; put the test app's engine back afterwards."""
    saved = (db.engine, db.session_factory, db.session)
    yield
    db.engine, db.session_factory, db.session = saved


def test_production_refuses_the_default_secret_key(tmp_path):
    settings = Settings.from_env({"ATTENDWISE_ENV": "production", "ATTENDWISE_DATA_DIR": str(tmp_path)})
    assert settings.secret_key == DEFAULT_SECRET_KEY
    with pytest.raises(ConfigError, match="ATTENDWISE_SECRET_KEY must be set in production"):
        create_app(settings=settings)


def test_production_refuses_a_short_secret_key(tmp_path):
    settings = Settings.from_env(
        {
            "ATTENDWISE_ENV": "production",
            "ATTENDWISE_DATA_DIR": str(tmp_path),
            "ATTENDWISE_SECRET_KEY": "short",
        }
    )
    with pytest.raises(ConfigError, match="at least 32 characters"):
        create_app(settings=settings)


@pytest.mark.usefixtures("restore_database")
def test_production_starts_with_a_real_key_and_secure_cookies(tmp_path):
    settings = Settings.from_env(
        {
            "ATTENDWISE_ENV": "production",
            "ATTENDWISE_DATA_DIR": str(tmp_path),
            "ATTENDWISE_SECRET_KEY": "k" * 48,
        }
    )
    app = create_app(settings=settings)
    assert app.config["SESSION_COOKIE_SECURE"] is True
    assert app.config["SESSION_COOKIE_NAME"].startswith("__Host-")
    assert not app.debug


@pytest.mark.usefixtures("restore_database")
def test_create_app_opens_no_database_connection(tmp_path):
    """A guard on every connection pool: start-up must not connect (here it could not)."""
    connections: list[object] = []

    def guard(dbapi_connection: object, _record: object) -> None:
        connections.append(dbapi_connection)

    event.listen(Pool, "connect", guard)
    try:
        create_app(
            settings=Settings.from_env(
                {
                    "ATTENDWISE_DATA_DIR": str(tmp_path / "data"),
                    # Nothing listens on port 9: connecting would fail loudly, not just be recorded.
                    "ATTENDWISE_DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:9/none",
                }
            )
        )
        create_app(settings=Settings.from_env({"ATTENDWISE_DATA_DIR": str(tmp_path / "embedded")}))
    finally:
        event.remove(Pool, "connect", guard)
    assert connections == []
    assert not (tmp_path / "embedded" / "attendwise.sqlite3").exists()


def test_importing_attendwise_does_no_io(tmp_path):
    """Import the package and every feature module with the network and file writes forbidden."""
    script = textwrap.dedent(
        """
        import builtins, io, os, socket, sys

        def no_network(*args, **kwargs):
            raise SystemExit("import opened a network connection")

        real_open = builtins.open

        def no_writes(file, mode="r", *args, **kwargs):
            if any(flag in mode for flag in "wax+"):
                raise SystemExit(f"import opened {file!r} for writing")
            return real_open(file, mode, *args, **kwargs)

        socket.socket.connect = no_network
        socket.create_connection = no_network
        builtins.open = no_writes
        io.open = no_writes

        import attendwise
        from attendwise.platform import discovery, models_registry

        models_registry.import_all()
        for suffix in ("views", "api", "cli", "jobs", "demo"):
            discovery.modules(suffix)
        assert os.listdir(".") == [], os.listdir(".")
        print("ok")
        """
    )
    result = subprocess.run(  # noqa: PLW1510 - the assertion reads returncode
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert (result.returncode, result.stdout.strip()) == (0, "ok"), result.stderr
