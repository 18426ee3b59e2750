"""One transaction per request, request ids, and security headers on every response."""

from __future__ import annotations

import secrets

from flask import Flask, Response, g, request

from attendwise.platform import tenancy
from attendwise.platform.audit import Actor, defer_until_commit, set_actor, stop_deferring
from attendwise.platform.db import db

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
    "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'"
)


def _begin() -> None:
    g.request_id = request.headers.get("X-Request-Id", "")[:64] or secrets.token_hex(8)
    tenancy.set_for_request(None)
    set_actor(Actor(label="anonymous", ip=request.remote_addr, request_id=g.request_id))
    if request.method in ("GET", "HEAD"):
        defer_until_commit(db.session())


def _finish(response: Response) -> Response:
    if response.status_code < 400:
        db.session.commit()
    else:
        db.session.rollback()
    stop_deferring(db.session())
    response.headers["X-Request-Id"] = g.get("request_id", "")
    nonce = g.get("csp_nonce")
    csp = CSP.replace("script-src 'self'", f"script-src 'self' 'nonce-{nonce}'") if nonce else CSP
    response.headers.setdefault("Content-Security-Policy", csp)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers.setdefault("Cache-Control", "no-store")
    if request.is_secure:
        response.headers["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains"
    return response


def _teardown(exc: BaseException | None) -> None:
    if exc is not None:
        db.session.rollback()
        stop_deferring(db.session())
    tenancy.set_for_request(None)


def init_app(app: Flask) -> None:
    app.before_request(_begin)
    app.after_request(_finish)
    app.teardown_request(_teardown)
