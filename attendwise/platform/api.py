"""The REST API base: flask-smorest ``Api`` and ``Blueprint`` subclassed once.

Every resource lives under ``/api/v1``, is documented in the OpenAPI document served at
``/api/v1/openapi.json`` (interactive docs at ``/api/v1/docs``), and authenticates with a
personal API token (``Authorization: Bearer awpat_...``) or a signed-in session. Blueprints
declare the permission each endpoint needs with :meth:`Blueprint.requires`, which both
enforces it and writes it into the OpenAPI document.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import flask_smorest
from flask import Flask, abort, request
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError
from werkzeug.exceptions import HTTPException
from werkzeug.routing import IntegerConverter

from attendwise.platform import auth, oauth_server
from attendwise.platform.db import db, utcnow
from attendwise.tenants.models import ApiToken, Membership, Organisation, User
from attendwise.tenants.roles import ROLES, Perm

API_PREFIX = "/api/v1"
DB_ID_MAX = 2**63 - 1

SECURITY_SCHEMES = {
    "personalToken": {
        "type": "http",
        "scheme": "bearer",
        "description": "A personal API token created in Account settings (prefix `awpat_`).",
    },
    "session": {"type": "apiKey", "in": "cookie", "name": "aw_session"},
    "clientCredentials": {
        "type": "oauth2",
        "description": "An API client registered by an organisation admin (OAuth 2.0 client credentials).",
        "flows": {
            "clientCredentials": {"tokenUrl": oauth_server.TOKEN_PATH, "scopes": oauth_server.CLIENT_SCOPES}
        },
    },
}


class IdConverter(IntegerConverter):
    """``<int:...>`` in every route: a database id fits in a signed 64-bit integer, so a larger
    number is simply not found (404) instead of overflowing the database driver (500)."""

    def __init__(self, url_map: Any, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max", DB_ID_MAX)
        super().__init__(url_map, *args, **kwargs)


def _id_parameter_schema(converter: IdConverter) -> dict[str, Any]:
    return {"type": "integer", "minimum": 0, "maximum": converter.max}


class Api(flask_smorest.Api):
    def __init__(self, app: Flask | None = None, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)

    def init_app(self, app: Flask, *args: Any, **kwargs: Any) -> None:
        app.config.setdefault("API_TITLE", "Attendwise API")
        app.config.setdefault("API_VERSION", "v1")
        app.config.setdefault("OPENAPI_VERSION", "3.1.0")
        app.config.setdefault("OPENAPI_URL_PREFIX", API_PREFIX)
        app.config.setdefault("OPENAPI_JSON_PATH", "openapi.json")
        app.config.setdefault("OPENAPI_SWAGGER_UI_PATH", None)
        app.config.setdefault("OPENAPI_REDOC_PATH", "docs")
        app.config.setdefault("OPENAPI_REDOC_URL", "/static/vendor/redoc/redoc.standalone.js")
        super().init_app(app, *args, **kwargs)
        app.url_map.converters["int"] = IdConverter
        self.register_converter(IdConverter, _id_parameter_schema)
        for name, scheme in SECURITY_SCHEMES.items():
            self.spec.components.security_scheme(name, scheme)

        @app.errorhandler(IntegrityError)
        def _conflict(exc: IntegrityError) -> Any:
            db.session.rollback()
            return {
                "code": 409,
                "status": "Conflict",
                "message": "that would duplicate or break a record",
            }, 409

        @app.errorhandler(StaleDataError)
        def _stale(exc: StaleDataError) -> Any:
            db.session.rollback()
            return {
                "code": 409,
                "status": "Conflict",
                "message": "someone else changed this record first; reload it and apply your change again",
            }, 409

    def handle_http_exception(self, error: HTTPException) -> Any:
        """JSON errors under /api; the web shell's HTML error pages everywhere else."""
        if request.path.startswith(API_PREFIX):
            return super().handle_http_exception(error)
        from attendwise.platform.web import html_error

        return html_error(error)


class Blueprint(flask_smorest.Blueprint):
    """A feature's API blueprint; ``@blp.requires(Perm.X)`` goes under ``@blp.route``."""

    def requires(self, *perms: Perm) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def decorator(fn: Callable[..., Any]) -> Callable[..., Any]:
            guarded = auth.require_perm(*perms)(fn)
            doc = {
                "security": [
                    {"personalToken": []},
                    {"session": []},
                    {"clientCredentials": [p.value for p in perms]},
                ],
                "description": (fn.__doc__ or "").strip()
                + f"\n\nRequires: {', '.join(p.value for p in perms)}.",
            }
            guarded = self.doc(**doc)(guarded)
            return self.alt_response(401, description="Not signed in")(
                self.alt_response(403, description="Missing permission or scope")(guarded)
            )

        return decorator


def _authenticate_token() -> None:
    """Resolve ``Authorization: Bearer awpat_...`` into a principal for /api requests."""
    if not request.path.startswith(API_PREFIX):
        return
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer "):
        return
    raw = header[len("Bearer ") :].strip()
    if raw.startswith(oauth_server.TOKEN_PREFIX):
        oauth_server.authenticate(raw)
        return
    if not raw.startswith(ApiToken.PREFIX):
        abort(401)
    token = db.session.scalar(
        select(ApiToken).where(ApiToken.token_hash == hashlib.sha256(raw.encode()).hexdigest())
    )
    now = utcnow()
    if token is None or token.revoked_at is not None or auth_aware(token.expires_at) <= now:
        abort(401)
    user = db.session.get(User, token.user_id)
    membership = db.session.scalar(
        select(Membership).where(
            Membership.user_id == token.user_id,
            Membership.org_id == token.org_id,
            Membership.active.is_(True),
        )
    )
    org = db.session.get(Organisation, token.org_id)
    if user is None or not user.active or membership is None or org is None or not org.active:
        abort(401)
    token.last_used_at = now
    auth.establish(
        auth.Principal(
            user=user,
            membership=membership,
            organisation=org,
            perms=ROLES[membership.role].perms,
            api_client=f"token:{token.name}",
            scopes=frozenset(token.scopes.split()),
        )
    )


def auth_aware(value: Any) -> Any:
    import datetime as dt

    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


api = Api()


def init_app(app: Flask) -> None:
    api.init_app(app)
    app.before_request(_authenticate_token)
