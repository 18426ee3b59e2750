"""Accounts: sign-in (throttled, with MFA), sign-out, password reset, switching organisation,
and account settings (password, MFA, recovery codes, personal API tokens).

Every authentication decision is logged to ``attendwise.auth`` with the user id (or a hash
of the email typed) and the client address; never a password, code or token.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import secrets
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from sqlalchemy import func, select, update
from werkzeug.exceptions import TooManyRequests

from attendwise.platform import (
    audit,
    auth,
    crypto,
    jobs,
    mfa,
    oauth_server,
    password_reset,
    sso,
    tenancy,
    throttle,
)
from attendwise.platform.db import db, utcnow
from attendwise.platform.models import PasswordResetToken
from attendwise.platform.passwords import hash_password, needs_rehash, password_problem, verify_password
from attendwise.platform.sessions import WebSession, revoke_user_sessions
from attendwise.tenants.models import ApiToken, Identity, Organisation, User
from attendwise.tenants.roles import ROLES, Perm

log = logging.getLogger("attendwise.auth")

bp = Blueprint("auth", __name__, url_prefix="/auth", template_folder="templates")
account_bp = Blueprint("account", __name__, url_prefix="/account", template_folder="templates")

GENERIC_LOGIN_ERROR = "The email address or password is not right"
MESSAGES = {
    "enter_password": "Enter your password",
    "wrong_current": "Your current password is not right",
}
RESETS_PER_HOUR_PER_ACCOUNT = 3
RESETS_PER_HOUR_PER_IP = 20
TOKEN_EXPIRY_DAYS = (7, 30, 90, 365)

# Session keys for a sign-in that has passed the password but not yet the second factor.
STAGE = "mfa_stage"  # "verify" (enter a code) or "enrol" (set MFA up first)
NEXT = "mfa_next"
SETUP_SECRET = "mfa_setup_secret"  # noqa: S105 - a session key; the value is encrypted, while the user scans the QR code


def safe_next(target: str | None) -> str:
    """Only same-site relative paths are followed after sign-in."""
    if not target:
        return url_for("tenants.home")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return url_for("tenants.home")
    return target


def _log_auth(event: str, *, user_id: int | None = None, **extra: Any) -> None:
    log.info(
        event,
        extra={"event": event, "user_id": user_id, "ip": request.remote_addr}
        | {"request_id": g.get("request_id")}
        | extra,
    )


def _too_many(retry_after: int) -> Response:
    minutes = max(1, -(-retry_after // 60))
    error = TooManyRequests(
        description=f"Too many attempts. Wait {minutes} minute{'s' if minutes != 1 else ''} and try again."
    )
    response = current_app.make_response((render_template("platform/errors/429.html", error=error), 429))
    response.headers["Retry-After"] = str(retry_after)
    return response


# ---- sign in and out ----------------------------------------------------------------------


@bp.route("/login", methods=["GET", "POST"])
@auth.public
def login() -> Any:
    errors: dict[str, str] = {}
    email = ""
    if request.method == "GET" and _pending_user() is not None:
        return redirect(url_for("auth.mfa_setup" if session.get(STAGE) == "enrol" else "auth.mfa_verify"))
    if request.method == "POST":
        email = request.form.get("email", "").strip().lower()
        password = request.form.get("password", "")
        if not email:
            errors["email"] = "Enter your email address"
        if not password:
            errors["password"] = MESSAGES["enter_password"]
        if not errors:
            return _attempt_login(email, password)
        return render_template("platform/login.html", errors=errors, email=email), 400
    return render_template("platform/login.html", errors=errors, email=email)


def _attempt_login(email: str, password: str) -> Any:
    account = throttle.account_key(email)
    wait = throttle.retry_after(account, throttle.ip_key(request.remote_addr))
    if wait is not None:
        _log_auth("login.throttled", account=account[5:17], retry_after=wait)
        return _too_many(wait)
    user = db.session.scalar(select(User).where(User.email == email))
    ok = verify_password(user.password_hash if user else None, password)
    if user is None or not ok or not user.active:
        state = throttle.record_failure(account)
        throttle.record_ip_failure(request.remote_addr)
        if user is not None:
            user.failed_logins = state.consecutive
            user.locked_until = state.locked_until
        db.session.commit()  # the counters must outlive this failed (rolled-back) request
        reason = "unknown account" if user is None else ("inactive account" if ok else "wrong password")
        _log_auth(
            "login.failure",
            user_id=user.id if user else None,
            account=account[5:17],
            reason=reason,
            consecutive=state.consecutive,
        )
        errors = {"email": GENERIC_LOGIN_ERROR}
        return render_template("platform/login.html", errors=errors, email=email), 400
    if sso.password_refused(user):
        _log_auth("login.sso_required", user_id=user.id)
        errors = {"email": sso.SIGN_IN_WITH_SSO}
        return render_template("platform/login.html", errors=errors, email=email), 400
    throttle.record_success(account)
    user.failed_logins = 0
    user.locked_until = None
    if user.password_hash and needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    target = safe_next(request.args.get("next"))
    session.clear()  # nothing from before sign-in (another person's half-finished sign-in) carries over
    if user.totp_enabled or mfa.required_for(user):
        auth.login_user(user, mfa_ok=False)
        session[STAGE] = "verify" if user.totp_enabled else "enrol"
        session[NEXT] = target
        db.session.commit()
        _log_auth("login.password_ok", user_id=user.id, next_step=session[STAGE])
        return redirect(url_for("auth.mfa_verify" if user.totp_enabled else "auth.mfa_setup"))
    _complete_login(user)
    return redirect(target)


def _complete_login(user: User) -> None:
    _record_sign_in(user)
    auth.login_user(user)
    db.session.commit()
    _log_auth("login.success", user_id=user.id)


def _record_sign_in(user: User) -> None:
    now = utcnow()
    user.last_login_at = now
    db.session.execute(
        update(Identity)
        .where(Identity.user_id == user.id, Identity.issuer == Identity.LOCAL_ISSUER)
        .values(last_used_at=now)
    )


def _pending_user() -> User | None:
    """The user part-way through signing in (password accepted, second factor not yet)."""
    user_id = session.get("_user_id")
    if not user_id or session.get("mfa_ok", True) or session.get(STAGE) not in ("verify", "enrol"):
        return None
    user = db.session.get(User, user_id)
    if user is None or not user.active:
        return None
    return user


@bp.post("/logout")
@auth.public
def logout() -> Any:
    user_id = session.get("_user_id")
    provider_logout = sso.end_session_url()
    auth.logout_user()
    if user_id:
        _log_auth("logout", user_id=user_id, provider_logout=provider_logout is not None)
    flash("You have signed out.")
    return redirect(sso.continue_sign_out(provider_logout) or url_for("auth.login"))


@bp.post("/switch")
@auth.login_required
def switch_organisation() -> Any:
    principal = auth.current_principal()
    assert principal is not None
    assert principal.user is not None
    try:
        org_id = int(request.form.get("org_id", ""))
    except ValueError:
        abort(400)
    if not any(m.org_id == org_id for m in auth.active_memberships(principal.user)):
        abort(404)
    session["org_id"] = org_id
    session.regenerate()  # type: ignore[attr-defined]
    return redirect(url_for("tenants.home"))


# ---- the second factor at sign-in -----------------------------------------------------------


@bp.route("/mfa", methods=["GET", "POST"])
@auth.public
def mfa_verify() -> Any:
    user = _pending_user()
    if user is None or session.get(STAGE) != "verify":
        return redirect(url_for("auth.login"))
    errors: dict[str, str] = {}
    if request.method == "POST":
        key = throttle.mfa_key(user.id)
        wait = throttle.retry_after(key)
        if wait is not None:
            _log_auth("mfa.throttled", user_id=user.id, retry_after=wait)
            return _too_many(wait)
        code = request.form.get("code", "").strip()
        if not code:
            errors["code"] = "Enter the 6-digit code from your authenticator app, or a recovery code"
        elif _second_factor_ok(user, code):
            throttle.record_success(key)
            return _finish_second_factor(user)
        else:
            throttle.record_failure(key)
            db.session.commit()
            _log_auth("mfa.failure", user_id=user.id)
            errors["code"] = "The code is not right, or it has already been used"
        return render_template("platform/mfa_verify.html", errors=errors), 400
    return render_template("platform/mfa_verify.html", errors=errors)


def _second_factor_ok(user: User, code: str) -> bool:
    if any(ch.isalpha() for ch in code):
        return mfa.use_recovery_code(user, code)
    return mfa.verify_totp(user, code)


def _finish_second_factor(user: User) -> Any:
    target = safe_next(session.get(NEXT))
    for key in (STAGE, NEXT, SETUP_SECRET):
        session.pop(key, None)
    session["mfa_ok"] = True
    session.regenerate()  # type: ignore[attr-defined]
    _record_sign_in(user)
    db.session.commit()
    _log_auth("login.success", user_id=user.id, second_factor=True)
    return redirect(target)


@bp.route("/mfa/setup", methods=["GET", "POST"])
@auth.public
def mfa_setup() -> Any:
    """Forced enrolment: the user's role or organisation requires MFA and they have none yet."""
    user = _pending_user()
    if user is None or session.get(STAGE) != "enrol":
        return redirect(url_for("auth.login"))
    return _enrolment(user, forced=True)


def _enrolment(user: User, *, forced: bool) -> Any:
    encrypted = session.get(SETUP_SECRET)
    if not encrypted:
        encrypted = session[SETUP_SECRET] = crypto.encrypt(mfa.new_secret())
    secret = crypto.decrypt(encrypted)
    errors: dict[str, str] = {}
    if request.method == "POST":
        key = throttle.mfa_key(user.id)
        wait = throttle.retry_after(key)
        if wait is not None:
            return _too_many(wait)
        if not forced:
            # From account settings: a borrowed session must not swap in someone else's app.
            checked = _current_password_ok(user)
            if isinstance(checked, Response):
                return checked
            if not checked:
                errors["current_password"] = MESSAGES["wrong_current"]
        step = mfa.matching_step(secret, request.form.get("code", ""))
        if step is None:
            throttle.record_failure(key)
            db.session.commit()
            errors["code"] = "Enter the 6-digit code your authenticator app shows now"
        elif not errors:
            throttle.record_success(key)
            codes = mfa.enable(user, secret, step)
            _log_auth("mfa.enrolled", user_id=user.id, forced=forced)
            if forced:
                target = safe_next(session.get(NEXT))
                _finish_second_factor(user)
            else:
                session.pop(SETUP_SECRET, None)
                revoke_user_sessions(user.id)
                session.regenerate()  # type: ignore[attr-defined]
                target = url_for("account.settings")
            return render_template("platform/mfa_recovery_codes.html", codes=codes, next_url=target)
    uri = mfa.provisioning_uri(secret, user.email)
    return render_template(
        "platform/mfa_setup.html",
        errors=errors,
        forced=forced,
        qr=mfa.qr_data_uri(uri),
        manual_key=mfa.grouped(secret),
        replacing=user.totp_enabled,
    ), (400 if errors else 200)


@bp.post("/mfa/cancel")
@auth.public
def mfa_cancel() -> Any:
    auth.logout_user()
    return redirect(url_for("auth.login"))


# ---- password reset -------------------------------------------------------------------------


@bp.route("/reset", methods=["GET", "POST"])
@auth.public
def reset_request() -> Any:
    errors: dict[str, str] = {}
    email = ""
    if request.method == "POST":
        email = request.form.get("email", "").strip().lower()
        if "@" not in email:
            errors["email"] = "Enter your email address, like name@school.org.uk"
            return render_template("platform/reset_request.html", errors=errors, email=email), 400
        _send_reset_link(email)
        return render_template("platform/reset_sent.html", email=email)
    return render_template("platform/reset_request.html", errors=errors, email=email)


def _send_reset_link(email: str) -> None:
    """Email a reset link if the account exists; the page says the same either way."""
    store = current_app.extensions["attendwise_throttle"]
    at = throttle.now()
    per_account = store.fail("reset:" + throttle.account_key(email)[5:], at, throttle.HOUR).window_count
    per_ip = store.fail("reset-ip:" + (request.remote_addr or "unknown"), at, throttle.HOUR).window_count
    db.session.commit()
    if per_account > RESETS_PER_HOUR_PER_ACCOUNT or per_ip > RESETS_PER_HOUR_PER_IP:
        _log_auth("password_reset.throttled", account=throttle.account_key(email)[5:17])
        return
    user = db.session.scalar(select(User).where(User.email == email))
    if user is None or not user.active:
        _log_auth("password_reset.unknown", account=throttle.account_key(email)[5:17])
        return
    jobs.enqueue(password_reset.send_reset_email, user.id, org_id=None)
    _log_auth("password_reset.requested", user_id=user.id)


@bp.route("/reset/<token>", methods=["GET", "POST"])
@auth.public
def reset_password(token: str) -> Any:
    record = password_reset.valid_token(token)
    user = db.session.get(User, record.user_id) if record else None
    if record is None or user is None or not user.active:
        return render_template("platform/reset_invalid.html"), 400
    errors: dict[str, str] = {}
    if request.method == "POST":
        errors = _new_password_errors()
        if not errors:
            now = utcnow()
            claimed = db.session.execute(
                update(PasswordResetToken)
                .where(PasswordResetToken.id == record.id, PasswordResetToken.used_at.is_(None))
                .values(used_at=now)
                .execution_options(synchronize_session=False)
            )
            if getattr(claimed, "rowcount", 0) != 1:
                return render_template("platform/reset_invalid.html"), 400
            db.session.execute(
                update(PasswordResetToken)
                .where(PasswordResetToken.user_id == user.id, PasswordResetToken.used_at.is_(None))
                .values(used_at=now)
                .execution_options(synchronize_session=False)
            )
            _set_password(user, request.form["new_password"])
            throttle.record_success(throttle.account_key(user.email))
            auth.logout_user()
            _log_auth("password_reset.completed", user_id=user.id)
            flash("Your password has been changed. Sign in with your new password.", "success")
            return redirect(url_for("auth.login"))
    return render_template("platform/reset_password.html", errors=errors), (400 if errors else 200)


def _new_password_errors() -> dict[str, str]:
    new = request.form.get("new_password", "")
    confirm = request.form.get("confirm_password", "")
    problem = password_problem(new)
    if problem:
        return {"new_password": problem}
    if new != confirm:
        return {"confirm_password": "The passwords do not match"}
    return {}


def _set_password(user: User, password: str) -> None:
    """New password; every session of the user ends (the caller issues a new one if needed)."""
    user.password_hash = hash_password(password)
    user.password_changed_at = utcnow()
    user.failed_logins = 0
    user.locked_until = None
    revoke_user_sessions(user.id)


# ---- account settings -----------------------------------------------------------------------


def _me() -> User:
    principal = auth.current_principal()
    assert principal is not None
    assert principal.user is not None
    return principal.user


@account_bp.get("")
@auth.login_required
def settings() -> Any:
    user = _me()
    principal = auth.current_principal()
    assert principal is not None
    tokens = db.session.scalars(
        select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.created_at.desc())
    ).all()
    org_names = {
        o.id: o.name
        for o in db.session.scalars(
            select(Organisation).where(Organisation.id.in_({t.org_id for t in tokens}))
        ).all()
    }
    return render_template(
        "platform/account.html",
        user=user,
        mfa_required=mfa.required_for(user),
        recovery_left=mfa.recovery_codes_left(user),
        tokens=tokens,
        org_names=org_names,
        can_tokens=principal.can(Perm.API_TOKENS),
        other_sessions=_other_session_count(user),
        now=utcnow(),
    )


def _other_session_count(user: User) -> int:
    """The user's live sessions other than this one (other browsers and devices)."""
    now = utcnow()
    idle = dt.timedelta(minutes=current_app.config["SESSION_IDLE_MINUTES"])
    query = select(func.count(WebSession.id)).where(
        WebSession.user_id == user.id,
        WebSession.revoked_at.is_(None),
        WebSession.expires_at > now,
        WebSession.last_seen_at > now - idle,
    )
    token = getattr(session, "token", None)
    if token:
        query = query.where(WebSession.id != hashlib.sha256(token.encode()).hexdigest())
    return db.session.scalar(query) or 0


@account_bp.post("/sessions/end-others")
@auth.login_required
def end_other_sessions() -> Any:
    user = _me()
    revoke_user_sessions(user.id)
    session.regenerate()  # type: ignore[attr-defined]
    _log_auth("sessions.ended_others", user_id=user.id)
    flash("You have been signed out on every other browser and device.", "success")
    return redirect(url_for("account.settings"))


def _current_password_ok(user: User) -> Response | bool:
    """Check the current password (re-authentication), throttled like sign-in."""
    account = throttle.account_key(user.email)
    wait = throttle.retry_after(account)
    if wait is not None:
        return _too_many(wait)
    if verify_password(user.password_hash, request.form.get("current_password", "")):
        return True
    throttle.record_failure(account)
    db.session.commit()
    _log_auth("reauth.failure", user_id=user.id)
    return False


@account_bp.route("/password", methods=["GET", "POST"])
@auth.login_required
def change_password() -> Any:
    user = _me()
    errors: dict[str, str] = {}
    if request.method == "POST":
        checked = _current_password_ok(user)
        if isinstance(checked, Response):
            return checked
        if not checked:
            errors["current_password"] = MESSAGES["wrong_current"]
        else:
            errors = _new_password_errors()
        if not errors:
            _set_password(user, request.form["new_password"])
            session.regenerate()  # type: ignore[attr-defined]
            _log_auth("password.changed", user_id=user.id)
            flash("Your password has been changed. You have been signed out everywhere else.", "success")
            return redirect(url_for("account.settings"))
    return render_template("platform/account_password.html", errors=errors), (400 if errors else 200)


@account_bp.route("/mfa/setup", methods=["GET", "POST"])
@auth.login_required
def account_mfa_setup() -> Any:
    return _enrolment(_me(), forced=False)


@account_bp.route("/mfa/recovery-codes", methods=["GET", "POST"])
@auth.login_required
def regenerate_recovery_codes() -> Any:
    user = _me()
    if not user.totp_enabled:
        return redirect(url_for("account.settings"))
    errors: dict[str, str] = {}
    if request.method == "POST":
        checked = _current_password_ok(user)
        if isinstance(checked, Response):
            return checked
        if checked:
            codes = mfa.new_recovery_codes(user)
            _log_auth("mfa.recovery_regenerated", user_id=user.id)
            return render_template(
                "platform/mfa_recovery_codes.html", codes=codes, next_url=url_for("account.settings")
            )
        errors["current_password"] = MESSAGES["wrong_current"]
    return render_template(
        "platform/account_confirm.html",
        errors=errors,
        title="Get new recovery codes",
        explanation="Your old recovery codes will stop working.",
        button="Get new recovery codes",
    ), (400 if errors else 200)


@account_bp.route("/mfa/disable", methods=["GET", "POST"])
@auth.login_required
def disable_mfa() -> Any:
    user = _me()
    if not user.totp_enabled:
        return redirect(url_for("account.settings"))
    if mfa.required_for(user):
        abort(403, description="Your role or organisation requires two-factor authentication.")
    errors: dict[str, str] = {}
    if request.method == "POST":
        checked = _current_password_ok(user)
        if isinstance(checked, Response):
            return checked
        if checked:
            mfa.disable(user)
            revoke_user_sessions(user.id)
            session.regenerate()  # type: ignore[attr-defined]
            flash("Two-factor authentication is off.", "success")
            return redirect(url_for("account.settings"))
        errors["current_password"] = MESSAGES["wrong_current"]
    return render_template(
        "platform/account_confirm.html",
        errors=errors,
        title="Turn off two-factor authentication",
        explanation="Signing in will then need only your password.",
        button="Turn off two-factor authentication",
    ), (400 if errors else 200)


# ---- personal API tokens --------------------------------------------------------------------


def _token_scopes() -> list[Perm]:
    principal = auth.current_principal()
    assert principal is not None
    return sorted((p for p in principal.perms), key=lambda p: p.value)


@account_bp.route("/tokens/new", methods=["GET", "POST"])
@auth.require_perm(Perm.API_TOKENS)
def new_token() -> Any:
    principal = auth.current_principal()
    assert principal is not None
    assert principal.organisation is not None
    user = _me()
    available = _token_scopes()
    errors: dict[str, str] = {}
    form = {"name": "", "scopes": [], "expiry_days": "90"}
    if request.method == "POST":
        form = {
            "name": request.form.get("name", "").strip(),
            "scopes": request.form.getlist("scopes"),
            "expiry_days": request.form.get("expiry_days", ""),
        }
        if not form["name"]:
            errors["name"] = "Enter a name that says what the token is for"
        elif len(form["name"]) > 100:
            errors["name"] = "The name must be 100 characters or fewer"
        allowed = {p.value for p in available}
        chosen = [s for s in form["scopes"] if s in allowed]
        if not chosen or len(chosen) != len(form["scopes"]):
            errors["scopes"] = "Choose at least one permission your role has"
        if form["expiry_days"] not in {str(d) for d in TOKEN_EXPIRY_DAYS}:
            errors["expiry_days"] = "Choose when the token expires"
        if not errors:
            raw = ApiToken.PREFIX + secrets.token_urlsafe(32)
            token = ApiToken(
                user_id=user.id,
                org_id=principal.organisation.id,
                name=str(form["name"]),
                token_hash=hashlib.sha256(raw.encode()).hexdigest(),
                scopes=" ".join(sorted(chosen)),
                expires_at=utcnow() + dt.timedelta(days=int(str(form["expiry_days"]))),
            )
            db.session.add(token)
            db.session.flush()
            _audit_token(token, "api_token.create")
            _log_auth("api_token.created", user_id=user.id, token_id=token.id, org_id=token.org_id)
            return render_template("platform/account_token_created.html", token=token, raw=raw)
    return render_template(
        "platform/account_token_new.html",
        errors=errors,
        form=form,
        available=available,
        expiry_choices=TOKEN_EXPIRY_DAYS,
        organisation=principal.organisation,
        role_label=ROLES[principal.role].label if principal.role else "",
    ), (400 if errors else 200)


def _audit_token(token: ApiToken, action: str) -> None:
    """Tokens reach an organisation's data, so their creation and revocation go in its audit log."""
    with tenancy.tenant_context(token.org_id):
        audit.record(
            db.session(),
            org_id=token.org_id,
            action=action,
            object_type="api_token",
            object_id=token.id,
            detail={
                "name": token.name,
                "scopes": token.scopes.split(),
                "expires_at": token.expires_at.isoformat(),
            },
        )


@account_bp.post("/tokens/<int:token_id>/revoke")
@auth.login_required
def revoke_token(token_id: int) -> Any:
    user = _me()
    token = db.session.scalar(select(ApiToken).where(ApiToken.id == token_id, ApiToken.user_id == user.id))
    if token is None:
        abort(404)
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        _audit_token(token, "api_token.revoke")
        _log_auth("api_token.revoked", user_id=user.id, token_id=token.id)
    flash(f"The token “{token.name}” has been revoked.", "success")
    return redirect(url_for("account.settings"))


# ---- MFA required before anything else ------------------------------------------------------

_ENROLMENT_ENDPOINTS = {"auth.logout", "auth.mfa_cancel", "auth.mfa_setup", "platform.static"}


def _enforce_mfa_enrolment() -> Any:
    """A signed-in user whose role or organisation now requires MFA must set it up first."""
    principal = auth.current_principal()
    if principal is None or principal.user is None or principal.api_client is not None:
        return None
    user = principal.user
    if user.totp_enabled or session.get(sso.MFA_KEY) or request.endpoint in _ENROLMENT_ENDPOINTS:
        return None
    if not mfa.required_for(user):
        return None
    session["mfa_ok"] = False
    session[STAGE] = "enrol"
    session[NEXT] = request.full_path.rstrip("?") if request.method == "GET" else url_for("tenants.home")
    _log_auth("mfa.enrolment_forced", user_id=user.id)
    if request.path.startswith("/api/"):
        abort(401)
    return redirect(url_for("auth.mfa_setup"))


def register(app: Flask) -> None:
    from attendwise.platform import account_api
    from attendwise.platform.account_cli import keys_cli

    throttle.init_app(app)
    app.register_blueprint(bp)
    app.register_blueprint(account_bp)
    sso.register(app)
    oauth_server.register(app)
    app.before_request(_enforce_mfa_enrolment)
    account_api.register(app)
    app.cli.add_command(keys_cli)
