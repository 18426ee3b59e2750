"""API clients: OAuth 2.0 client credentials for LA, trust and school systems (Authlib's server).

* An organisation admin registers a client with a name and scopes; the scopes are permission
  names (``pupils:read``, ``cases:read``, ...), limited to what the admin's own role holds and
  never an administrative one. The secret is shown once and stored as a SHA-256 hash.
* ``POST /api/v1/oauth/token`` (HTTP Basic client authentication, ``grant_type=client_credentials``)
  issues a bearer token that lives :data:`TOKEN_MINUTES` minutes; only its hash is stored.
* A request with such a token acts for the client's organisation with exactly the token's
  scopes, as the client: the audit log names the client, not a person.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import secrets
from typing import Any

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import ClientMixin
from authlib.oauth2.rfc6749.grants import ClientCredentialsGrant
from flask import Blueprint, Flask, abort, current_app, flash, redirect, render_template, request, url_for
from sqlalchemy import ForeignKey, String, select
from sqlalchemy.orm import Mapped, mapped_column

from attendwise.platform import audit, auth, tenancy
from attendwise.platform.db import Base, TimestampMixin, db, utcnow
from attendwise.tenants.models import Organisation
from attendwise.tenants.roles import Perm

log = logging.getLogger("attendwise.auth")

TOKEN_MINUTES = 10
TOKEN_PREFIX = "awcat_"  # noqa: S105 - the visible prefix of client access tokens
CLIENT_ID_PREFIX = "awc_"
TOKEN_PATH = "/api/v1/oauth/token"  # noqa: S105 - a URL path

# Permissions a machine may never hold: managing people, settings, tokens, the platform.
NOT_FOR_CLIENTS = frozenset(
    {Perm.USERS_MANAGE, Perm.ORG_SETTINGS, Perm.API_TOKENS, Perm.PLATFORM_ADMIN, Perm.AUDIT_READ}
)
CLIENT_SCOPES = {p.value: f"The {p.value} permission" for p in Perm if p not in NOT_FOR_CLIENTS}

bp = Blueprint("oauth", __name__, template_folder="templates")


def _sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


class ApiClient(TimestampMixin, Base, ClientMixin):
    """A registered machine client of one organisation."""

    __tablename__ = "api_clients"
    __global_reason__ = "looked up by client id at the token endpoint, before any tenant is known"

    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    client_id: Mapped[str] = mapped_column(String(64), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[str] = mapped_column(String(1000))  # space-separated permission names
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    revoked_at: Mapped[dt.datetime | None] = mapped_column()

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        return None

    def get_allowed_scope(self, scope: str | None) -> str:
        allowed = set(self.scopes.split())
        if not scope:
            return self.scopes
        return " ".join(s for s in scope.split() if s in allowed)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return False

    def check_client_secret(self, client_secret: str) -> bool:
        return hmac.compare_digest(self.secret_hash, _sha256(client_secret))

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == "client_secret_basic" and endpoint == "token"

    def check_response_type(self, response_type: str) -> bool:
        return False

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "client_credentials"


class ApiClientToken(Base):
    """A short-lived bearer token issued to an API client; only its SHA-256 is stored."""

    __tablename__ = "api_client_tokens"
    __global_reason__ = "looked up by bearer token before any tenant is known"

    id: Mapped[int] = mapped_column(primary_key=True)
    client_pk: Mapped[int] = mapped_column(ForeignKey("api_clients.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[str] = mapped_column(String(1000))
    issued_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(index=True)


def _query_client(client_id: str) -> ApiClient | None:
    client = db.session.scalar(select(ApiClient).where(ApiClient.client_id == client_id))
    if client is None or client.revoked_at is not None:
        return None
    org = db.session.get(Organisation, client.org_id)
    return client if org is not None and org.active else None


def _save_token(token: dict[str, Any], oauth_request: Any) -> None:
    client: ApiClient = oauth_request.client
    now = utcnow()
    db.session.add(
        ApiClientToken(
            client_pk=client.id,
            token_hash=_sha256(token["access_token"]),
            scopes=token.get("scope") or "",
            issued_at=now,
            expires_at=now + dt.timedelta(seconds=int(token["expires_in"])),
        )
    )
    log.info(
        "api_client.token_issued", extra={"event": "api_client.token_issued", "client_id": client.client_id}
    )


def _generate_token(*_args: Any, **_kwargs: Any) -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


class _ClientCredentials(ClientCredentialsGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic"]


@bp.post(TOKEN_PATH)
@auth.public
def token() -> Any:
    """The token endpoint (RFC 6749 §4.4): client credentials in, a bearer token out."""
    server: AuthorizationServer = current_app.extensions["attendwise_oauth_server"]
    return server.create_token_response()


def authenticate(raw: str) -> None:
    """Make the bearer of a client access token the request's principal, or answer 401."""
    record = db.session.scalar(select(ApiClientToken).where(ApiClientToken.token_hash == _sha256(raw)))
    if record is None or _aware(record.expires_at) <= utcnow():
        abort(401)
    client = db.session.get(ApiClient, record.client_pk)
    org = db.session.get(Organisation, client.org_id) if client else None
    if client is None or client.revoked_at is not None or org is None or not org.active:
        abort(401)
    scopes = frozenset(record.scopes.split())
    auth.establish(
        auth.Principal(
            user=None,
            membership=None,
            organisation=org,
            perms=frozenset(Perm(s) for s in scopes if s in CLIENT_SCOPES),
            api_client=f"client:{client.name} ({client.client_id})",
            scopes=scopes,
        )
    )
    tenancy.set_for_request(tenancy.TenantContext(org_id=org.id))


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


# ---- registering clients ---------------------------------------------------------------------


def _grantable() -> list[str]:
    principal = auth.current_principal()
    assert principal is not None
    return sorted(p.value for p in principal.perms if p.value in CLIENT_SCOPES)


def _org() -> Organisation:
    principal = auth.current_principal()
    assert principal is not None
    assert principal.organisation is not None
    return principal.organisation


@bp.get("/settings/api-clients")
@auth.require_perm(Perm.ORG_SETTINGS)
def clients() -> Any:
    org = _org()
    listed = db.session.scalars(
        select(ApiClient).where(ApiClient.org_id == org.id).order_by(ApiClient.name)
    ).all()
    return render_template("platform/api_clients.html", clients=listed, organisation=org)


@bp.route("/settings/api-clients/new", methods=["GET", "POST"])
@auth.require_perm(Perm.ORG_SETTINGS)
def new_client() -> Any:
    org = _org()
    available = _grantable()
    errors: dict[str, str] = {}
    form: dict[str, Any] = {"name": "", "scopes": []}
    if request.method == "POST":
        form = {"name": request.form.get("name", "").strip(), "scopes": request.form.getlist("scopes")}
        if not form["name"]:
            errors["name"] = "Enter a name that says which system this is"
        elif len(form["name"]) > 100:
            errors["name"] = "The name must be 100 characters or fewer"
        if not form["scopes"] or any(s not in available for s in form["scopes"]):
            errors["scopes"] = "Choose at least one permission your role has"
        if not errors:
            secret = secrets.token_urlsafe(32)
            principal = auth.current_principal()
            client = ApiClient(
                org_id=org.id,
                name=form["name"],
                client_id=CLIENT_ID_PREFIX + secrets.token_hex(12),
                secret_hash=_sha256(secret),
                scopes=" ".join(sorted(set(form["scopes"]))),
                created_by_id=principal.user.id if principal and principal.user else None,
            )
            db.session.add(client)
            db.session.flush()
            _audit(client, "api_client.create")
            return render_template("platform/api_client_created.html", client=client, secret=secret)
    return render_template(
        "platform/api_client_new.html", errors=errors, form=form, available=available, organisation=org
    ), (400 if errors else 200)


@bp.post("/settings/api-clients/<int:client_pk>/revoke")
@auth.require_perm(Perm.ORG_SETTINGS)
def revoke_client(client_pk: int) -> Any:
    org = _org()
    client = db.session.scalar(select(ApiClient).where(ApiClient.id == client_pk, ApiClient.org_id == org.id))
    if client is None:
        abort(404)
    if client.revoked_at is None:
        client.revoked_at = utcnow()
        _audit(client, "api_client.revoke")
    flash(f"The API client “{client.name}” has been revoked; its tokens stop working now.", "success")
    return redirect(url_for("oauth.clients"))


def _audit(client: ApiClient, action: str) -> None:
    """Clients reach the organisation's data, so creating and revoking them is in its audit log."""
    with tenancy.tenant_context(client.org_id):
        audit.record(
            db.session(),
            org_id=client.org_id,
            action=action,
            object_type="api_client",
            object_id=client.id,
            detail={"name": client.name, "client_id": client.client_id, "scopes": client.scopes.split()},
        )


def register(app: Flask) -> None:
    from attendwise.platform.web import register_nav

    register_nav(endpoint="oauth.clients", label="API clients", perm=Perm.ORG_SETTINGS, order=96)
    app.config.setdefault("OAUTH2_ACCESS_TOKEN_GENERATOR", _generate_token)
    app.config.setdefault("OAUTH2_TOKEN_EXPIRES_IN", {"client_credentials": TOKEN_MINUTES * 60})
    server = AuthorizationServer(app, query_client=_query_client, save_token=_save_token)
    server.register_grant(_ClientCredentials)
    app.extensions["attendwise_oauth_server"] = server
    app.register_blueprint(bp)
