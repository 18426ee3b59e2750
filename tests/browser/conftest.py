"""Browser test harness: a live Attendwise server, Debian's Chromium through Playwright, axe-core.

* ``live_server`` — the app served over real HTTP (Werkzeug, a thread on 127.0.0.1, a free
  port) against its OWN database: a fresh SQLite file locally, or a separate PostgreSQL
  database ``attendwise_live_<worker>`` when CI=true (or ATTENDWISE_TEST_DB=postgresql),
  migrated as the owner and used through the application role, as ``tests/conftest.py`` does.
  ``live_server.setup(fn)`` runs ``fn(session)`` in the live app under a system context and
  commits; ``make_school`` / ``make_user`` build tenants and people. The database lives for
  the whole run, so tests use the factories' unique names instead of relying on cleanup.
* ``browser`` / ``page`` — Playwright's sync API launching /usr/bin/chromium. The browser never
  downloads itself. Without /usr/bin/chromium browser tests skip locally and FAIL when CI=true.
  A ``page`` fails its test on any Content-Security-Policy violation, uncaught script error or
  static asset that did not load.
* ``assert_accessible(page)`` — runs the vendored axe-core (tests/browser/vendor/) and fails on
  serious or critical violations, listing them.
* ``screenshot(page, name)`` — saves test-results/screenshots/<name>.png.

The ``db`` object in ``attendwise.platform.db`` is process-wide, and other tests bind it to
their own app; ``live_server`` therefore binds it to the live database only while a browser
test runs, and restores it afterwards.
"""

from __future__ import annotations

import os
import re
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")

import pytest
from flask import Flask
from sqlalchemy.orm import Session
from werkzeug.serving import BaseWSGIServer, make_server

from attendwise.platform import tenancy
from attendwise.platform.app import create_app
from attendwise.platform.config import Settings
from attendwise.platform.db import db
from attendwise.tenants import services
from attendwise.tenants.models import Organisation, OrgKind, User
from tests.conftest import (
    APP_ROLE,
    CI,
    TEST_PASSWORD,
    USE_POSTGRES,
    _worker_suffix,
    create_pg_database,
    migrate,
    pg_url,
)

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ROOT = Path(__file__).resolve().parents[2]
AXE_JS = Path(__file__).resolve().parent / "vendor" / "axe.min.js"
SCREENSHOTS = ROOT / "test-results" / "screenshots"
BLOCKING_IMPACTS = ("serious", "critical")

T = TypeVar("T")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that drives the browser, so ``-m "not browser"`` can leave them out."""
    for item in items:
        if "browser" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.browser)


# ---- the live server --------------------------------------------------------------------


def _db_bindings() -> tuple[Any, Any, Any]:
    return db.engine, db.session_factory, db.session


def _restore_db(bindings: tuple[Any, Any, Any]) -> None:
    db.engine, db.session_factory, db.session = bindings


class _Requests:
    """The live app as the server runs it: knows how many requests it is serving, so a test's
    end can wait for the browser's last ones (an icon, a script) before the process-wide ``db``
    is bound elsewhere; a request served after that fails and drops its response unclosed.

    Each response body is read whole and closed here: Werkzeug's development server closes a
    body only after draining the socket, which raises when the browser has gone.
    """

    def __init__(self, app: WSGIApplication) -> None:
        self.app = app
        self.serving = 0
        self.changed = threading.Condition()

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> list[bytes]:
        with self.changed:
            self.serving += 1
        try:
            body = self.app(environ, start_response)
            try:
                return [b"".join(body)]
            finally:
                if hasattr(body, "close"):
                    body.close()
        finally:
            with self.changed:
                self.serving -= 1
                self.changed.notify_all()

    def wait_until_idle(self, timeout: float = 10) -> None:
        with self.changed:
            if not self.changed.wait_for(lambda: self.serving == 0, timeout):
                raise AssertionError(f"the live server is still serving {self.serving} request(s)")


@dataclass
class LiveServer:
    """A running Attendwise with its own database; see the module docstring."""

    app: Flask
    url: str
    bindings: tuple[Any, Any, Any]
    requests: _Requests
    _counter: Iterator[int] = field(default_factory=lambda: iter(range(1, 10**9)))

    def next_id(self) -> int:
        return next(self._counter)

    def setup(self, fn: Callable[[Session], T], reason: str = "browser test setup") -> T:
        """Run ``fn(session)`` in the live app under a system context and commit."""
        with self.app.app_context(), tenancy.system_context(reason):
            session = db.session()
            result = fn(session)
            session.commit()
            return result

    def make_school(self, name: str | None = None, phase: str = "Primary") -> Organisation:
        n = self.next_id()

        def build(session: Session) -> Organisation:
            la = services.create_organisation(
                session, kind=OrgKind.LA, name=f"Live LA {n}", la_code=str(100 + n % 800)
            )
            return services.create_organisation(
                session,
                kind=OrgKind.SCHOOL,
                name=name or f"Live School {n}",
                urn=str(500000 + n),
                phase=phase,
                la=la,
                trust=None,
            )

        return self.setup(build)

    def make_user(
        self,
        memberships: list[tuple[Organisation, str]],
        display_name: str = "Sam Taylor",
        password: str = TEST_PASSWORD,
    ) -> User:
        """A user with a membership (organisation, role key) for each pair given."""
        email = f"live{self.next_id()}@example.test"

        def build(session: Session) -> User:
            user = services.create_user(session, email=email, display_name=display_name, password=password)
            for org, role in memberships:
                services.add_membership(session, user=user, org=session.merge(org), role_key=role)
            return user

        return self.setup(build)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def _live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    data_dir = tmp_path_factory.mktemp("live")
    previous = _db_bindings()
    try:
        if USE_POSTGRES:
            name = f"attendwise_live_{_worker_suffix()}"
            create_pg_database(name)
            owner = pg_url(name)
            migrate(owner, data_dir)
            app_url = pg_url(name, APP_ROLE)
        else:
            owner = app_url = f"sqlite:///{data_dir / 'live.sqlite3'}"
            migrate(owner, data_dir)
        port = _free_port()
        app = create_app(
            config={
                "DATABASE_URL": app_url,
                "MIGRATION_DATABASE_URL": owner,
                "BASE_URL": f"http://127.0.0.1:{port}",
                "MAIL_SERVER": "",
            },
            settings=Settings.from_env({"ATTENDWISE_DATA_DIR": str(data_dir)}),
        )
        live_bindings = _db_bindings()
    finally:
        _restore_db(previous)
    requests = _Requests(app)
    server: BaseWSGIServer = make_server("127.0.0.1", port, requests, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    try:
        yield LiveServer(app=app, url=f"http://127.0.0.1:{port}", bindings=live_bindings, requests=requests)
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()
        live_bindings[0].dispose()


@pytest.fixture
def live_server(_live_server: LiveServer) -> Iterator[LiveServer]:
    """The live server, with the process-wide ``db`` bound to its database for this test."""
    previous = _db_bindings()
    _restore_db(_live_server.bindings)
    try:
        yield _live_server
    finally:
        try:
            _live_server.requests.wait_until_idle()
        finally:
            _restore_db(previous)


# ---- the browser --------------------------------------------------------------------------


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: install Debian's chromium package (apt-get install chromium)"
        if CI:
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@dataclass
class PageProblems:
    """Things a user's browser would complain about, collected while a test runs."""

    csp_violations: list[str] = field(default_factory=list)
    script_errors: list[str] = field(default_factory=list)
    broken_assets: list[str] = field(default_factory=list)
    expected: list[re.Pattern[str]] = field(default_factory=list)

    def expect(self, pattern: str) -> None:
        """Tolerate problems matching ``pattern`` (a test must say why)."""
        self.expected.append(re.compile(pattern))

    def all(self) -> list[str]:
        found = self.csp_violations + self.script_errors + self.broken_assets
        return [p for p in found if not any(e.search(p) for e in self.expected)]


@pytest.fixture
def page_problems() -> PageProblems:
    return PageProblems()


@pytest.fixture
def page(browser: Any, live_server: LiveServer, page_problems: PageProblems) -> Iterator[Any]:
    """A fresh browser context (no cookies) with its base URL at the live server."""
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15000)
    new_page = context.new_page()

    def on_console(message: Any) -> None:
        if "Content Security Policy" in message.text:
            page_problems.csp_violations.append(message.text)

    def on_response(response: Any) -> None:
        if "/static/" in response.url and response.status >= 400:
            page_problems.broken_assets.append(f"{response.status} {response.url}")

    new_page.on("console", on_console)
    new_page.on("pageerror", lambda error: page_problems.script_errors.append(str(error)))
    new_page.on("response", on_response)

    def on_request_failed(request: Any) -> None:
        # A navigation cancels the previous page's pending requests; that is not a fault.
        if request.failure != "net::ERR_ABORTED":
            page_problems.broken_assets.append(f"failed ({request.failure}) {request.url}")

    new_page.on("requestfailed", on_request_failed)
    try:
        yield new_page
    finally:
        context.close()
    assert not page_problems.all(), "the browser reported problems:\n" + "\n".join(page_problems.all())


# ---- helpers ---------------------------------------------------------------------------------


def _format_violation(violation: dict[str, Any]) -> str:
    targets = "; ".join(" ".join(node["target"]) for node in violation["nodes"][:5])
    where = f"({violation['helpUrl']}) at {targets}"
    return f"[{violation['impact']}] {violation['id']}: {violation['help']} {where}"


def run_axe(target: Any) -> list[dict[str, Any]]:
    """Run axe-core on the page and return every violation (any impact)."""
    target.evaluate(AXE_JS.read_text(encoding="utf-8"))
    result = target.evaluate(
        "() => axe.run(document, {resultTypes: ['violations'],"
        " runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa',"
        " 'best-practice']}})"
    )
    return list(result["violations"])


@pytest.fixture
def assert_accessible() -> Callable[[Any], None]:
    def check(target: Any) -> None:
        blocking = [v for v in run_axe(target) if v["impact"] in BLOCKING_IMPACTS]
        assert not blocking, f"axe found {len(blocking)} serious/critical accessibility problem(s) on " + (
            f"{target.url}:\n" + "\n".join(_format_violation(v) for v in blocking)
        )

    return check


@pytest.fixture
def screenshot() -> Callable[[Any, str], Path]:
    def save(target: Any, name: str) -> Path:
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-")
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{safe}.png"
        target.screenshot(path=str(path), full_page=True)
        return path

    return save


@pytest.fixture
def sign_in(page: Any) -> Callable[[User, str], None]:
    """Sign in through the real login page."""

    def do(user: User, password: str = TEST_PASSWORD) -> None:
        page.goto("/auth/login")
        page.get_by_label("Email address").fill(user.email)
        page.get_by_label("Password", exact=True).fill(password)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_load_state()

    return do
