"""Staff single sign-on with each organisation's own OpenID Connect provider.

* An organisation admin configures one provider (Microsoft Entra ID, Google Workspace or any
  OpenID Connect provider): discovery URL, client id, client secret (encrypted at rest with
  :mod:`attendwise.platform.crypto`), the email domains it signs in, and whether its staff
  must use it instead of a password.
* Sign-in is Authlib's authorization code flow with PKCE (S256); Authlib checks the state,
  the nonce and the ID token (signature from the provider's JWKS, issuer, audience, expiry).
  Only the validated ID token's claims are used; there is no userinfo call.
* People are found by (issuer, subject), never by email. The first sign-in links to an
  invited user only: an existing, active member of the organisation whose email matches and
  who has no identity from this issuer yet. Nobody registers themselves.
* Where the ID token's ``amr`` says the provider did multi-factor authentication, the
  platform's own TOTP is not asked again; otherwise TOTP is asked as for a password sign-in.
* Sign-out goes on to the provider's ``end_session_endpoint`` when it offers one.

Every refusal is logged to ``attendwise.auth`` with its reason and shown as a clear message.
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from authlib.integrations.base_client import MismatchingStateError, OAuthError
from authlib.integrations.flask_client import FlaskOAuth2App
from authlib.integrations.flask_client.integration import FlaskIntegration
from flask import (
    Blueprint,
    Flask,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from joserfc.errors import JoseError
from sqlalchemy import Boolean, ForeignKey, String, Text, select
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.orm import Session as OrmSession

from attendwise.platform import audit, auth, crypto, mfa, tenancy
from attendwise.platform.db import Base, TimestampMixin, db, utcnow
from attendwise.tenants.models import Identity, Organisation, User
from attendwise.tenants.roles import Perm

log = logging.getLogger("attendwise.auth")

bp = Blueprint("sso", __name__, template_folder="templates")

# Session keys: the organisation a sign-in was started for, where to go after it, and (once
# signed in) what sign-out needs to end the provider's session too.
ORG_KEY = "sso_org_id"
NEXT_KEY = "sso_next"
MFA_KEY = "sso_mfa"  # the provider asserted MFA for this session
LOGOUT_KEY = "sso_logout_url"

SIGN_IN_WITH_SSO = (
    "Your organisation signs in with its own account. Use “Sign in with your organisation's account”."
)

# RFC 8176 methods; "mfa"/"mca" assert several factors, otherwise two distinct factors must be named.
_MULTI = {"mfa", "mca"}
_FACTORS = {"pwd", "pin", "otp", "hwk", "swk", "sc", "sms", "tel", "fpt", "face", "iris", "retina", "vbm"}
_LEEWAY_SECONDS = 60
_HTTP_TIMEOUT_SECONDS = 10


@dataclass(frozen=True)
class Preset:
    label: str
    discovery_url: str  # "{tenant}" is replaced by the directory (tenant) id
    hint: str


PRESETS: dict[str, Preset] = {
    "entra": Preset(
        "Microsoft Entra ID",
        "https://login.microsoftonline.com/{tenant}/v2.0/.well-known/openid-configuration",
        "Register an app in Entra ID; enter its directory (tenant) ID, application (client) ID "
        "and a client secret.",
    ),
    "google": Preset(
        "Google Workspace",
        "https://accounts.google.com/.well-known/openid-configuration",
        "Create an OAuth client (web application) in Google Cloud for your Workspace domain.",
    ),
    "custom": Preset("Another OpenID Connect provider", "", "Enter the provider's discovery URL."),
}


class SsoProvider(TimestampMixin, Base):
    """One organisation's OpenID Connect provider."""

    __tablename__ = "sso_providers"
    __global_reason__ = "looked up by email domain and at the sign-in callback, before any tenant is known"

    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), unique=True)
    preset: Mapped[str] = mapped_column(String(20))
    discovery_url: Mapped[str] = mapped_column(String(500))
    client_id: Mapped[str] = mapped_column(String(300))
    client_secret: Mapped[str] = mapped_column(Text)  # encrypted with platform/crypto.py
    allowed_domains: Mapped[str] = mapped_column(String(1000))  # space-separated, lower case
    sso_required: Mapped[bool] = mapped_column(Boolean, default=False)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)

    @property
    def domains(self) -> list[str]:
        return self.allowed_domains.split()


class SignInRefused(Exception):
    """A sign-in the platform refuses; the message is shown to the person and logged."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason


def mfa_asserted(amr: Any) -> bool:
    """Whether an ID token's ``amr`` claim says more than one factor was used."""
    if not isinstance(amr, list):
        return False
    methods = {m for m in amr if isinstance(m, str)}
    return bool(methods & _MULTI) or len(methods & _FACTORS) >= 2


def _log(event: str, **extra: Any) -> None:
    log.info(
        event, extra={"event": event, "ip": request.remote_addr, "request_id": g.get("request_id")} | extra
    )


def _loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def discovery_url_problem(url: str) -> str | None:
    parts = urlsplit(url)
    if not parts.netloc or parts.scheme not in ("https", "http"):
        return "Enter the discovery URL, like https://login.example.com/.well-known/openid-configuration"
    if parts.scheme == "http" and not (_loopback(url) and current_app.config.get("ENV_NAME") != "production"):
        return "The discovery URL must start with https://"
    if not parts.path.endswith("/.well-known/openid-configuration"):
        return "The discovery URL must end with /.well-known/openid-configuration"
    return None


def provider_for_org(org_id: int) -> SsoProvider | None:
    return db.session.scalar(select(SsoProvider).where(SsoProvider.org_id == org_id))


def provider_for_email(email: str) -> SsoProvider | None:
    domain = email.rpartition("@")[2].lower()
    if not domain:
        return None
    for provider in db.session.scalars(select(SsoProvider).where(SsoProvider.enabled.is_(True))):
        if domain in provider.domains:
            return provider
    return None


def password_refused(user: User) -> bool:
    """True when one of the user's organisations requires its staff to sign in with SSO."""
    org_ids = [m.org_id for m in auth.active_memberships(user)]
    if not org_ids:
        return False
    required = db.session.scalar(
        select(SsoProvider.id).where(
            SsoProvider.org_id.in_(org_ids), SsoProvider.enabled.is_(True), SsoProvider.sso_required.is_(True)
        )
    )
    return required is not None


def client_for(provider: SsoProvider) -> FlaskOAuth2App:
    """An Authlib client for the provider: PKCE S256, openid scope (so a nonce is sent and checked)."""
    name = f"org{provider.org_id}"
    return FlaskOAuth2App(
        FlaskIntegration(name),
        name,
        client_id=provider.client_id,
        client_secret=crypto.decrypt(provider.client_secret),
        server_metadata_url=provider.discovery_url,
        client_kwargs={
            "scope": "openid email profile",
            "code_challenge_method": "S256",
            "timeout": _HTTP_TIMEOUT_SECONDS,
        },
    )


def _metadata(client: FlaskOAuth2App) -> dict[str, Any]:
    """The provider's discovery document, with ``none`` never accepted as a signing algorithm."""
    metadata: dict[str, Any] = client.load_server_metadata()
    algs = [a for a in metadata.get("id_token_signing_alg_values_supported") or ["RS256"] if a != "none"]
    metadata["id_token_signing_alg_values_supported"] = algs or ["RS256"]
    return metadata


# ---- sign in ----------------------------------------------------------------------------------


@bp.route("/auth/sso", methods=["GET", "POST"])
@auth.public
def start() -> Any:
    errors: dict[str, str] = {}
    email = ""
    if request.method == "POST":
        email = request.form.get("email", "").strip().lower()
        provider = provider_for_email(email) if "@" in email else None
        if "@" not in email:
            errors["email"] = "Enter your work email address, like name@school.org.uk"
        elif provider is None:
            errors["email"] = (
                "No organisation signs in with its own account for that email address. "
                "Sign in with your email address and password instead."
            )
        if errors:
            return render_template("platform/sso_start.html", errors=errors, email=email), 400
        assert provider is not None
        # The page's CSP (form-action 'self') stops a form from being redirected to another
        # site, so the browser continues to the provider from a same-site page instead.
        begin = url_for("sso.begin", org_id=provider.org_id, next=request.args.get("next"))
        return render_template(
            "platform/sso_continue.html", url=begin, title="Continuing to your sign-in page"
        )
    return render_template("platform/sso_start.html", errors=errors, email=email)


@bp.get("/auth/sso/begin/<int:org_id>")
@auth.public
def begin(org_id: int) -> Any:
    provider = provider_for_org(org_id)
    if provider is None or not provider.enabled:
        return _refused(
            "Your organisation does not sign in with its own account. Sign in with your password."
        )
    return _begin(provider)


def _begin(provider: SsoProvider) -> Any:
    from attendwise.platform.views import safe_next

    target = safe_next(request.args.get("next"))
    client = client_for(provider)
    try:
        _metadata(client)
        session.clear()  # nothing from before sign-in carries over
        session[ORG_KEY] = provider.org_id
        session[NEXT_KEY] = target
        response = client.authorize_redirect(url_for("sso.callback", _external=True))
    except (OSError, ValueError, OAuthError) as exc:
        _log("sso.provider_unreachable", org_id=provider.org_id, error=type(exc).__name__)
        return _refused("Your organisation's sign-in service cannot be reached. Try again in a few minutes.")
    _log("sso.started", org_id=provider.org_id)
    return response


def _refused(message: str, status: int = 400) -> Any:
    return render_template("platform/sso_error.html", message=message), status


@bp.get("/auth/sso/callback")
@auth.public
def callback() -> Any:
    org_id = session.get(ORG_KEY)
    provider = provider_for_org(org_id) if isinstance(org_id, int) else None
    if provider is None or not provider.enabled:
        _log("sso.refused", reason="no sign-in in progress")
        return _refused("This sign-in was not started here, or has already been used. Start again.")
    try:
        claims, id_token = _validated_claims(provider)
        user, identity = _resolve(provider, claims)
    except SignInRefused as refusal:
        _log("sso.refused", org_id=provider.org_id, reason=refusal.reason)
        db.session.commit()
        return _refused(refusal.message)
    return _sign_in(provider, user, identity, claims, id_token)


def _validated_claims(provider: SsoProvider) -> tuple[dict[str, Any], str]:
    client = client_for(provider)
    try:
        metadata = _metadata(client)
        options = {
            "iss": {"essential": True, "values": [metadata["issuer"]]},
            "sub": {"essential": True},
            "aud": {"essential": True},
            "exp": {"essential": True},
        }
        token = client.authorize_access_token(claims_options=options, leeway=_LEEWAY_SECONDS)
    except MismatchingStateError:
        raise SignInRefused(
            "This sign-in link has already been used or has expired. Start again.", "state mismatch or replay"
        ) from None
    except OAuthError as exc:
        raise SignInRefused(
            "Your organisation's sign-in service did not sign you in. "
            "Start again, or ask your administrator.",
            f"provider error: {exc.error}",
        ) from None
    except JoseError as exc:
        raise SignInRefused(
            "The sign-in could not be verified, so you have not been signed in. Start again, or ask your "
            "administrator to check the single sign-on settings.",
            f"ID token rejected: {exc.error}: {exc.description or ''}".strip(),
        ) from None
    except (OSError, ValueError, KeyError) as exc:
        raise SignInRefused(
            "Your organisation's sign-in service cannot be reached. Try again in a few minutes.",
            f"provider unreachable: {type(exc).__name__}",
        ) from None
    claims = token.get("userinfo")
    if not claims or not token.get("id_token"):
        raise SignInRefused(
            "The sign-in could not be verified, so you have not been signed in.",
            "no ID token in the response",
        )
    return dict(claims), str(token["id_token"])


def _resolve(provider: SsoProvider, claims: dict[str, Any]) -> tuple[User, Identity]:
    issuer, subject = str(claims["iss"]), str(claims["sub"])
    if provider.preset == "google" and claims.get("hd") not in provider.domains:
        raise SignInRefused(
            "That Google account is not one of your organisation's accounts.",
            f"hd {claims.get('hd')!r} not allowed",
        )
    identity = db.session.scalar(
        select(Identity).where(Identity.issuer == issuer, Identity.subject == subject)
    )
    if identity is not None:
        user = db.session.get(User, identity.user_id)
        if user is None or not user.active or not _member(user, provider.org_id):
            raise SignInRefused(
                "Your account does not have access to this organisation in Attendwise. "
                "Ask your administrator.",
                "linked user inactive or no longer a member",
            )
        return user, identity
    return _link_invited(provider, claims, issuer, subject)


def _link_invited(
    provider: SsoProvider, claims: dict[str, Any], issuer: str, subject: str
) -> tuple[User, Identity]:
    email = claims.get("email") or (claims.get("preferred_username") if provider.preset == "entra" else None)
    not_invited = SignInRefused(
        "You have not been invited to Attendwise yet. Ask your organisation's administrator to invite you.",
        "no invited user for this account",
    )
    if not isinstance(email, str) or "@" not in email or claims.get("email_verified") is False:
        raise not_invited
    email = email.strip().lower()
    if email.rpartition("@")[2] not in provider.domains:
        raise SignInRefused(
            "That account's email domain is not one your organisation signs in with.",
            "email domain not allowed",
        )
    user = db.session.scalar(select(User).where(User.email == email))
    if user is None or not user.active or not _member(user, provider.org_id):
        raise not_invited
    already = db.session.scalar(
        select(Identity.id).where(Identity.user_id == user.id, Identity.issuer == issuer)
    )
    if already is not None:
        raise SignInRefused(
            "Your Attendwise account is already linked to a different account at your organisation. "
            "Ask your administrator.",
            "user already linked to another subject of this issuer",
        )
    identity = Identity(user_id=user.id, issuer=issuer, subject=subject)
    db.session.add(identity)
    db.session.flush()
    _log("sso.linked", user_id=user.id, org_id=provider.org_id)
    return user, identity


def _member(user: User, org_id: int) -> bool:
    return any(m.org_id == org_id for m in auth.active_memberships(user))


def _sign_in(
    provider: SsoProvider, user: User, identity: Identity, claims: dict[str, Any], id_token: str
) -> Any:
    from attendwise.platform.views import NEXT, STAGE

    target = session.get(NEXT_KEY) or url_for("tenants.home")
    logout_url = _logout_url(provider, id_token)
    asserted = mfa_asserted(claims.get("amr"))
    needs_totp = not asserted and (user.totp_enabled or mfa.required_for(user))
    session.clear()
    auth.login_user(user, mfa_ok=not needs_totp)
    session["org_id"] = provider.org_id
    session[MFA_KEY] = asserted
    if logout_url:
        session[LOGOUT_KEY] = logout_url
    identity.last_used_at = utcnow()
    if needs_totp:
        session[STAGE] = "verify" if user.totp_enabled else "enrol"
        session[NEXT] = target
        db.session.commit()
        _log("sso.ok_totp_next", user_id=user.id, org_id=provider.org_id, next_step=session[STAGE])
        return redirect(url_for("auth.mfa_verify" if user.totp_enabled else "auth.mfa_setup"))
    user.last_login_at = utcnow()
    db.session.commit()
    _log("login.success", user_id=user.id, org_id=provider.org_id, sso=True, mfa_by_provider=asserted)
    return redirect(target)


def _logout_url(provider: SsoProvider, id_token: str) -> str | None:
    client = client_for(provider)
    try:
        if not _metadata(client).get("end_session_endpoint"):
            return None
        result = client.create_logout_url(
            post_logout_redirect_uri=url_for("auth.login", _external=True),
            id_token_hint=id_token,
            client_id=provider.client_id,
        )
    except (OSError, ValueError, OAuthError):
        return None
    url = result.get("url") if isinstance(result, dict) else None
    return str(url) if url else None


def end_session_url() -> str | None:
    """The provider's end-session URL for this session, when it offers one."""
    value = session.get(LOGOUT_KEY)
    return value if isinstance(value, str) else None


def continue_sign_out(provider_logout: str | None) -> str | None:
    """After the session has ended: where to go to end the provider's session too.

    The sign-out form may only go to this site (CSP form-action), so the fresh session holds the
    provider's URL and a same-site page sends the browser on.
    """
    if not provider_logout:
        return None
    session[LOGOUT_KEY] = provider_logout
    return url_for("sso.signed_out")


@bp.get("/auth/sso/signed-out")
@auth.public
def signed_out() -> Any:
    url = session.pop(LOGOUT_KEY, None)
    if not isinstance(url, str):
        return redirect(url_for("auth.login"))
    return render_template(
        "platform/sso_continue.html", url=url, title="Signing you out of your organisation"
    )


# ---- settings for an organisation admin --------------------------------------------------------


@bp.route("/settings/sso", methods=["GET", "POST"])
@auth.require_perm(Perm.ORG_SETTINGS)
def settings() -> Any:
    principal = auth.current_principal()
    assert principal is not None
    assert principal.organisation is not None
    org = principal.organisation
    provider = provider_for_org(org.id)
    form = _form_from(provider)
    errors: dict[str, str] = {}
    if request.method == "POST":
        form = {
            k: request.form.get(k, "").strip() for k in ("preset", "tenant", "discovery_url", "client_id")
        }
        form["client_secret"] = request.form.get("client_secret", "")
        form["allowed_domains"] = " ".join(
            request.form.get("allowed_domains", "").lower().replace(",", " ").split()
        )
        form["sso_required"] = "yes" if request.form.get("sso_required") == "yes" else ""
        form["enabled"] = "yes" if request.form.get("enabled") == "yes" else ""
        errors = _validate(form, provider)
        if not errors:
            _save(org, provider, form)
            flash("Single sign-on settings saved.", "success")
            return redirect(url_for("sso.settings"))
    return render_template(
        "platform/sso_settings.html",
        form=form,
        errors=errors,
        presets=PRESETS,
        has_secret=provider is not None,
        redirect_uri=url_for("sso.callback", _external=True),
        logout_uri=url_for("auth.login", _external=True),
        organisation=org,
    ), (400 if errors else 200)


def _form_from(provider: SsoProvider | None) -> dict[str, str]:
    if provider is None:
        return {"preset": "entra", "tenant": "", "discovery_url": "", "client_id": "", "client_secret": "",
                "allowed_domains": "", "sso_required": "", "enabled": "yes"}  # fmt: skip
    return {
        "preset": provider.preset,
        "tenant": "",
        "discovery_url": provider.discovery_url,
        "client_id": provider.client_id,
        "client_secret": "",
        "allowed_domains": provider.allowed_domains,
        "sso_required": "yes" if provider.sso_required else "",
        "enabled": "yes" if provider.enabled else "",
    }


def _validate(form: dict[str, str], provider: SsoProvider | None) -> dict[str, str]:
    errors: dict[str, str] = {}
    preset = PRESETS.get(form["preset"])
    if preset is None:
        errors["preset"] = "Choose your sign-in provider"
        return errors
    if form["preset"] == "entra" and form["tenant"]:
        form["discovery_url"] = preset.discovery_url.format(tenant=form["tenant"])
    elif form["preset"] == "google" and not form["discovery_url"]:
        form["discovery_url"] = preset.discovery_url
    if form["preset"] == "entra" and not form["discovery_url"]:
        errors["tenant"] = "Enter your Entra ID directory (tenant) ID"
    else:
        problem = discovery_url_problem(form["discovery_url"])
        if problem:
            errors["discovery_url"] = problem
    if not form["client_id"]:
        errors["client_id"] = "Enter the client ID your provider gave you"
    if not form["client_secret"] and provider is None:
        errors["client_secret"] = "Enter the client secret your provider gave you"  # noqa: S105
    domains = form["allowed_domains"].split()
    if not domains:
        errors["allowed_domains"] = "Enter at least one email domain, like school.org.uk"
    elif bad := [d for d in domains if "." not in d or "@" in d or "/" in d]:
        errors["allowed_domains"] = f"These are not email domains: {', '.join(bad)}"
    return errors


def _save(org: Organisation, provider: SsoProvider | None, form: dict[str, str]) -> None:
    created = provider is None
    if provider is None:
        provider = SsoProvider(org_id=org.id, client_secret="")
        db.session.add(provider)
    provider.preset = form["preset"]
    provider.discovery_url = form["discovery_url"]
    provider.client_id = form["client_id"]
    if form["client_secret"]:
        provider.client_secret = crypto.encrypt(form["client_secret"])
    provider.allowed_domains = form["allowed_domains"]
    provider.sso_required = form["sso_required"] == "yes"
    provider.enabled = form["enabled"] == "yes"
    db.session.flush()
    record_change(db.session(), provider, "sso_provider.create" if created else "sso_provider.update",
                  secret_changed=bool(form["client_secret"]))  # fmt: skip


def record_change(session: OrmSession, provider: SsoProvider, action: str, *, secret_changed: bool) -> None:
    """The provider row is global, so its changes go in the organisation's audit log by hand."""
    with tenancy.tenant_context(provider.org_id):
        audit.record(
            session,
            org_id=provider.org_id,
            action=action,
            object_type="sso_provider",
            object_id=provider.id,
            detail={
                "preset": provider.preset,
                "discovery_url": provider.discovery_url,
                "client_id": provider.client_id,
                "client_secret_changed": secret_changed,
                "allowed_domains": provider.domains,
                "sso_required": provider.sso_required,
                "enabled": provider.enabled,
            },
        )


def register(app: Flask) -> None:
    from attendwise.platform.web import register_nav

    app.register_blueprint(bp)
    register_nav(endpoint="sso.settings", label="Single sign-on", perm=Perm.ORG_SETTINGS, order=95)
