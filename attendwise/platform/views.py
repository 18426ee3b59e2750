"""Sign-in, sign-out and switching organisation."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Flask, abort, flash, redirect, render_template, request, session, url_for
from sqlalchemy import select

from attendwise.platform import auth
from attendwise.platform.db import db, utcnow
from attendwise.platform.passwords import hash_password, needs_rehash, verify_password
from attendwise.tenants.models import User

bp = Blueprint("auth", __name__, url_prefix="/auth", template_folder="templates")


def safe_next(target: str | None) -> str:
    """Only same-site relative paths are followed after sign-in."""
    if not target:
        return url_for("tenants.home")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return url_for("tenants.home")
    return target


@bp.route("/login", methods=["GET", "POST"])
@auth.public
def login() -> Any:
    errors: dict[str, str] = {}
    email = ""
    if request.method == "POST":
        email = request.form.get("email", "").strip().lower()
        password = request.form.get("password", "")
        if not email:
            errors["email"] = "Enter your email address"
        if not password:
            errors["password"] = "Enter your password"
        if not errors:
            user = db.session.scalar(select(User).where(User.email == email))
            ok = verify_password(user.password_hash if user else None, password)
            if user is None or not ok or not user.active:
                errors["email"] = "The email address or password is not right"
            else:
                if user.password_hash and needs_rehash(user.password_hash):
                    user.password_hash = hash_password(password)
                user.last_login_at = utcnow()
                auth.login_user(user)
                db.session.commit()
                return redirect(safe_next(request.args.get("next")))
        return render_template("platform/login.html", errors=errors, email=email), 400 if errors else 200
    return render_template("platform/login.html", errors=errors, email=email)


@bp.post("/logout")
@auth.public
def logout() -> Any:
    auth.logout_user()
    flash("You have signed out.")
    return redirect(url_for("auth.login"))


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


def register(app: Flask) -> None:
    app.register_blueprint(bp)
