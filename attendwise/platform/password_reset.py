"""Password-reset links: issued and emailed by a background job, so the page that asks for one
answers equally fast whether or not the account exists."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import secrets

from flask import current_app, render_template
from sqlalchemy import delete, select

from attendwise.platform import mail
from attendwise.platform.db import db, utcnow
from attendwise.platform.models import PasswordResetToken
from attendwise.tenants.models import User

log = logging.getLogger("attendwise.auth")

LINK_MINUTES = 60


def token_hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def send_reset_email(user_id: int) -> None:
    """Job: create a one-time link for the user and email it (only the link's hash is stored)."""
    user = db.session.get(User, user_id)
    if user is None or not user.active:
        return
    raw = secrets.token_urlsafe(32)
    now = utcnow()
    db.session.execute(
        delete(PasswordResetToken).where(PasswordResetToken.expires_at < now - dt.timedelta(days=1))
    )
    db.session.add(
        PasswordResetToken(
            user_id=user.id,
            token_hash=token_hash(raw),
            created_at=now,
            expires_at=now + dt.timedelta(minutes=LINK_MINUTES),
        )
    )
    db.session.flush()
    path = current_app.url_map.bind("localhost").build("auth.reset_password", {"token": raw})
    link = current_app.config["BASE_URL"].rstrip("/") + path
    context = {"user": user, "link": link, "minutes": LINK_MINUTES}
    try:
        message_id = mail.send_email(
            user.email,
            "Reset your Attendwise password",
            render_template("platform/email/reset_password.txt", **context),
            html=render_template("platform/email/reset_password.html", **context),
        )
    except mail.MailError:
        # Raising would, in the inline (no Redis) mode, fail the page for real accounts only and
        # so reveal which accounts exist; the person can ask again.
        log.exception(
            "password reset email failed", extra={"event": "password_reset.mail_failed", "user_id": user.id}
        )
        return
    log.info(
        "password_reset.sent",
        extra={"event": "password_reset.sent", "user_id": user.id, "message_id": message_id},
    )


def valid_token(raw: str) -> PasswordResetToken | None:
    """The unexpired, unused token for a link, or None."""
    token = db.session.scalar(
        select(PasswordResetToken).where(PasswordResetToken.token_hash == token_hash(raw))
    )
    if token is None or token.used_at is not None:
        return None
    expires = token.expires_at if token.expires_at.tzinfo else token.expires_at.replace(tzinfo=dt.UTC)
    if expires <= utcnow():
        return None
    return token
