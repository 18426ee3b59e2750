"""Fixtures for the account tests: a real Redis throttle store, a real SMTP server, a clock.

Test modules import what they use: ``from tests.platform.account_fixtures import ...``.
"""

from __future__ import annotations

import datetime as dt
import re
import socket
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from typing import Any

import pyotp
import pytest
from aiosmtpd.controller import Controller
from flask import Flask
from flask.testing import FlaskClient
from redis import Redis

from attendwise.platform import throttle
from attendwise.platform.db import utcnow
from tests.conftest import TEST_PASSWORD

REDIS_TEST_URL = "redis://127.0.0.1:6379/15"


@pytest.fixture(params=["database", "redis"])
def throttle_store(request: pytest.FixtureRequest, app: Flask, db_session: Any) -> Iterator[str]:
    """Run the test once with the database counters and once with real Redis (db 15, own prefix)."""
    saved = app.extensions["attendwise_throttle"]
    client = None
    if request.param == "redis":
        client = Redis.from_url(REDIS_TEST_URL)
        prefix = f"aw-test:{uuid.uuid4().hex}:"
        app.extensions["attendwise_throttle"] = throttle.RedisStore(client, prefix=prefix)
    try:
        yield request.param
    finally:
        app.extensions["attendwise_throttle"] = saved
        if client is not None:
            for key in client.scan_iter(match=f"{prefix}*"):
                client.delete(key)
            client.close()


@dataclass
class Clock:
    """Moves the throttle's clock forward without sleeping."""

    offset: dt.timedelta = field(default_factory=dt.timedelta)

    def now(self) -> dt.datetime:
        return utcnow() + self.offset

    def advance(self, **delta: float) -> None:
        self.offset += dt.timedelta(**delta)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(throttle, "now", c.now)
    return c


class _Collector:
    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.envelopes: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append(envelope)
        self.messages.append(message_from_bytes(envelope.original_content or envelope.content))
        return "250 Message accepted for delivery"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def smtp_server(app: Flask) -> Iterator[_Collector]:
    """A real SMTP server (aiosmtpd) on 127.0.0.1; the app sends its mail there during the test."""
    handler = _Collector()
    controller = Controller(handler, hostname="127.0.0.1", port=_free_port())
    controller.start()
    saved = {k: app.config.get(k) for k in ("MAIL_SERVER", "MAIL_PORT", "MAIL_USE_TLS", "MAIL_USERNAME")}
    app.config.update(
        MAIL_SERVER="127.0.0.1", MAIL_PORT=controller.port, MAIL_USE_TLS=False, MAIL_USERNAME=""
    )
    try:
        yield handler
    finally:
        app.config.update(saved)
        controller.stop()


def body_text(message: Message) -> str:
    """The text/plain part of a delivered message."""
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            return payload.decode(part.get_content_charset() or "utf-8")
    raise AssertionError("no text/plain part")


def page_csrf(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token on the page"
    return match.group(1)


def post_form(client: FlaskClient, path: str, data: dict[str, Any], **kwargs: Any) -> Any:
    """GET the form page for its CSRF token, then POST ``data`` to it."""
    page = client.get(path, **kwargs)
    token = page_csrf(page.get_data(as_text=True))
    return client.post(path, data={**data, "csrf_token": token}, **kwargs)


def session_cookie(client: FlaskClient, app: Flask, domain: str = "attendwise.test") -> str | None:
    cookie = client.get_cookie(app.config["SESSION_COOKIE_NAME"], domain=domain)
    return cookie.value if cookie else None


def manual_key(html: str) -> str:
    match = re.search(r'id="manual-key">([A-Z2-7 ]+)<', html)
    assert match, "no manual key on the MFA set-up page"
    return match.group(1).replace(" ", "")


def enrol_from_setup_page(
    client: FlaskClient, path: str, password: str = TEST_PASSWORD
) -> tuple[str, list[str], Any]:
    """Scan (read) the key on the set-up page, confirm with a code; returns key, recovery codes, page.

    The password is sent only where the page asks for it (enrolment from account settings).
    """
    page = client.get(path)
    html = page.get_data(as_text=True)
    assert 'src="data:image/svg+xml' in html
    key = manual_key(html)
    data = {"code": pyotp.TOTP(key).now(), "csrf_token": page_csrf(html)}
    if 'name="current_password"' in html:
        data["current_password"] = password
    response = client.post(path, data=data)
    codes = re.findall(r"<li><code>([a-z0-9-]+)</code></li>", response.get_data(as_text=True))
    return key, codes, response


def next_step_code(key: str) -> str:
    """The code for the next 30-second step (accepted within the one-step drift window)."""
    totp = pyotp.TOTP(key)
    return totp.at(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=totp.interval))


LoginFn = Callable[..., Any]
