"""CSRF protection on every state-changing request made with a session cookie.

Requests authenticated by an API token (``Authorization: Bearer``) carry no ambient
credentials, so they are exempt; everything else — forms, htmx calls and cookie-session
API calls — must send the token (form field ``csrf_token`` or header ``X-CSRFToken``).
"""

from __future__ import annotations

from flask import Flask, request
from flask_wtf.csrf import CSRFProtect

csrf = CSRFProtect()


def _protect() -> None:
    if request.method in ("GET", "HEAD", "OPTIONS", "TRACE"):
        return
    if request.headers.get("Authorization", "").startswith("Bearer "):
        return
    if request.endpoint == "oauth.token":  # clients authenticate with their secret; no cookie is used
        return
    csrf.protect()


def init_app(app: Flask) -> None:
    app.config.setdefault("WTF_CSRF_CHECK_DEFAULT", False)
    app.config.setdefault("WTF_CSRF_TIME_LIMIT", None)
    app.config.setdefault("WTF_CSRF_SSL_STRICT", True)
    csrf.init_app(app)
    app.before_request(_protect)
