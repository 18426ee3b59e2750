"""Server-side web sessions.

The cookie holds only a random token; the session's data lives in ``web_sessions`` under
the token's SHA-256. Logging out, disabling the account, or passing the idle or absolute
limit ends the row, so a replayed cookie finds nothing (Flask's default signed-cookie
session would stay valid after logout).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets
from typing import Any

from flask import Flask, Request, Response
from flask.sessions import SessionInterface, SessionMixin
from sqlalchemy import ForeignKey, String, Text, insert, update
from sqlalchemy.orm import Mapped, mapped_column
from werkzeug.datastructures import CallbackDict

from attendwise.platform.db import Base, db, utcnow


class WebSession(Base):
    __tablename__ = "web_sessions"
    __global_reason__ = "authentication state, looked up by cookie before a tenant is known"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 of the cookie token
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    data: Mapped[str] = mapped_column(Text, default="{}")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column()
    revoked_at: Mapped[dt.datetime | None] = mapped_column()


# How stale ``last_seen_at`` may be before a request writes it again. The idle limit is in
# minutes; writing the row (and a second commit) on every page view was a write per request.
LAST_SEEN_RESOLUTION = dt.timedelta(seconds=60)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class ServerSession(CallbackDict[str, Any], SessionMixin):
    def __init__(self, initial: dict[str, Any] | None = None, token: str | None = None, new: bool = False):
        def on_update(_self: Any) -> None:
            self.modified = True

        super().__init__(initial or {}, on_update)
        self.token = token
        self.new = new
        self.modified = False
        self.rotate = False
        self.destroyed = False
        self.seen_at: dt.datetime | None = None

    def regenerate(self) -> None:
        """Issue a new token (at sign-in and on privilege change) and end the old one."""
        self.rotate = True
        self.modified = True

    def destroy(self) -> None:
        self.clear()
        self.destroyed = True
        self.modified = True


class ServerSessionInterface(SessionInterface):
    def open_session(self, app: Flask, request: Request) -> ServerSession:
        token = request.cookies.get(self.get_cookie_name(app))
        if not token:
            return ServerSession(new=True)
        now = utcnow()
        row = db.session.get(WebSession, _hash(token))
        if row is None or row.revoked_at is not None or _aware(row.expires_at) <= now:
            return ServerSession(new=True)
        idle = dt.timedelta(minutes=app.config["SESSION_IDLE_MINUTES"])
        if now - _aware(row.last_seen_at) > idle:
            return ServerSession(new=True)
        sess = ServerSession(json.loads(row.data), token=token)
        sess.seen_at = _aware(row.last_seen_at)
        db.session.expunge(row)
        sess["_user_id"] = row.user_id
        sess.modified = False
        return sess

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        assert isinstance(session, ServerSession)
        name = self.get_cookie_name(app)
        domain = self.get_cookie_domain(app)
        path = self.get_cookie_path(app)
        now = utcnow()
        conn = db.session()
        if session.destroyed or (session.rotate and session.token):
            if session.token:
                conn.execute(
                    update(WebSession).where(WebSession.id == _hash(session.token)).values(revoked_at=now)
                )
                conn.commit()
            if session.destroyed and not session:
                response.delete_cookie(name, domain=domain, path=path)
                return
            session.token = None
        if session.token is None:
            if not session.modified:
                return
            session.token = secrets.token_urlsafe(32)
            data = {k: v for k, v in session.items() if k != "_user_id"}
            conn.execute(
                insert(WebSession).values(
                    id=_hash(session.token),
                    user_id=session.get("_user_id"),
                    data=json.dumps(data),
                    created_at=now,
                    last_seen_at=now,
                    expires_at=now + dt.timedelta(hours=app.config["SESSION_ABSOLUTE_HOURS"]),
                )
            )
            conn.commit()
        elif session.modified or session.seen_at is None or now - session.seen_at >= LAST_SEEN_RESOLUTION:
            values: dict[str, Any] = {"last_seen_at": now}
            if session.modified:
                values["data"] = json.dumps({k: v for k, v in session.items() if k != "_user_id"})
                values["user_id"] = session.get("_user_id")
            conn.execute(update(WebSession).where(WebSession.id == _hash(session.token)).values(**values))
            conn.commit()
        response.set_cookie(
            name,
            session.token,
            httponly=True,
            secure=app.config["SESSION_COOKIE_SECURE"],
            samesite=app.config["SESSION_COOKIE_SAMESITE"],
            path=path,
            domain=domain,
        )


def revoke_user_sessions(user_id: int) -> None:
    """End every session of a user (on disable, password change, or MFA reset).

    Runs in the caller's transaction.
    """
    db.session.execute(
        update(WebSession)
        .where(WebSession.user_id == user_id, WebSession.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
