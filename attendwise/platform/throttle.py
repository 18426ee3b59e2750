"""Sign-in throttling: per account (soft lockout with a growing delay) and per IP address.

Per account (the email typed, whether or not such an account exists, so throttling never
reveals which accounts exist): the first ten wrong passwords in a row are processed
normally; from the tenth the account is locked for a delay that doubles with every further
failure (1, 2, 4 ... minutes, at most 30). The lock is soft: once it passes, the right
password works again and clears the run of failures. Independently no account has more
than 100 failed attempts processed in an hour (OWASP ASVS 2.2.1), however often the
owner signs in between an attacker's guesses. MFA codes use the same policy under their
own key.

Per IP address: at most ``LOGIN_IP_MAX_FAILURES`` failures per ``LOGIN_IP_WINDOW_SECONDS``
(50 per 10 minutes by default — loose, because a school's staff share one address).

The counters live in Redis when ``REDIS_URL`` is configured (one atomic script per
failure), otherwise in the ``throttle_buckets`` table; the caller commits that table's
changes even when the request fails.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from dataclasses import dataclass
from typing import Any, Protocol

from flask import Flask, current_app
from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError

from attendwise.platform.db import db, utcnow
from attendwise.platform.models import ThrottleBucket

FREE_FAILURES = 10
BASE_DELAY = dt.timedelta(minutes=1)
MAX_DELAY = dt.timedelta(minutes=30)
HOURLY_LIMIT = 100
HOUR = dt.timedelta(hours=1)
DEFAULT_IP_MAX_FAILURES = 50
DEFAULT_IP_WINDOW_SECONDS = 600
STALE_AFTER = dt.timedelta(days=1)


def now() -> dt.datetime:
    """The throttle's clock (tests move it forward to let a lockout pass)."""
    return utcnow()


@dataclass(frozen=True)
class BucketState:
    consecutive: int = 0
    window_count: int = 0
    window_started_at: dt.datetime | None = None
    locked_until: dt.datetime | None = None


class Store(Protocol):
    def state(self, key: str) -> BucketState: ...

    def fail(self, key: str, at: dt.datetime, window: dt.timedelta) -> BucketState: ...

    def lock(self, key: str, until: dt.datetime) -> None: ...

    def clear(self, key: str) -> None: ...


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


class DatabaseStore:
    """Counters in ``throttle_buckets``, inside the request's session (the caller commits)."""

    def _row(self, key: str) -> ThrottleBucket | None:
        return db.session.get(ThrottleBucket, key, with_for_update=True, populate_existing=True)

    def state(self, key: str) -> BucketState:
        row = db.session.get(ThrottleBucket, key)
        if row is None:
            return BucketState()
        return BucketState(
            row.consecutive, row.window_count, _aware(row.window_started_at), _aware(row.locked_until)
        )

    def fail(self, key: str, at: dt.datetime, window: dt.timedelta) -> BucketState:
        row = self._row(key)
        if row is None:
            # A new key is the moment to drop counters untouched for a day (windows and locks long over).
            db.session.execute(delete(ThrottleBucket).where(ThrottleBucket.updated_at < at - STALE_AFTER))
            try:
                with db.session.begin_nested():
                    db.session.add(
                        ThrottleBucket(key=key, window_started_at=at, window_count=0, consecutive=0)
                    )
            except IntegrityError:
                pass
            row = self._row(key)
            assert row is not None
        started = _aware(row.window_started_at)
        if started is None or at - started >= window:
            row.window_started_at = at
            row.window_count = 0
        row.window_count += 1
        row.consecutive += 1
        row.updated_at = at
        db.session.flush()
        return BucketState(
            row.consecutive, row.window_count, _aware(row.window_started_at), _aware(row.locked_until)
        )

    def lock(self, key: str, until: dt.datetime) -> None:
        row = self._row(key)
        if row is not None:
            row.locked_until = until
            db.session.flush()

    def clear(self, key: str) -> None:
        row = self._row(key)
        if row is not None:
            row.consecutive = 0
            row.locked_until = None
            db.session.flush()


_FAIL_SCRIPT = """
local key = KEYS[1]
local at = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local ttl = tonumber(ARGV[3])
local started = tonumber(redis.call('HGET', key, 'ws'))
if (not started) or (at - started >= window) then
  redis.call('HSET', key, 'ws', ARGV[1], 'wc', 0)
  started = at
end
local wc = redis.call('HINCRBY', key, 'wc', 1)
local c = redis.call('HINCRBY', key, 'c', 1)
redis.call('EXPIRE', key, ttl)
return {c, wc, tostring(started), redis.call('HGET', key, 'lu') or ''}
"""

_TTL_SECONDS = 24 * 3600


def _from_ts(value: Any) -> dt.datetime | None:
    if value in (None, b"", ""):
        return None
    return dt.datetime.fromtimestamp(float(value), tz=dt.UTC)


class RedisStore:
    """Counters in Redis hashes ``<prefix><key>`` that expire a day after the last failure."""

    def __init__(self, client: Any, prefix: str = "aw:throttle:") -> None:
        self.client = client
        self.prefix = prefix
        self._fail = client.register_script(_FAIL_SCRIPT)

    def state(self, key: str) -> BucketState:
        c, wc, ws, lu = self.client.hmget(self.prefix + key, "c", "wc", "ws", "lu")
        return BucketState(int(c or 0), int(wc or 0), _from_ts(ws), _from_ts(lu))

    def fail(self, key: str, at: dt.datetime, window: dt.timedelta) -> BucketState:
        c, wc, ws, lu = self._fail(
            keys=[self.prefix + key], args=[repr(at.timestamp()), window.total_seconds(), _TTL_SECONDS]
        )
        return BucketState(int(c), int(wc), _from_ts(ws), _from_ts(lu))

    def lock(self, key: str, until: dt.datetime) -> None:
        self.client.hset(self.prefix + key, "lu", repr(until.timestamp()))
        self.client.expire(self.prefix + key, _TTL_SECONDS)

    def clear(self, key: str) -> None:
        self.client.hdel(self.prefix + key, "c", "lu")


def account_key(email: str) -> str:
    return "acct:" + hashlib.sha256(email.strip().lower().encode()).hexdigest()[:40]


def ip_key(ip: str | None) -> str:
    return "ip:" + (ip or "unknown")[:64]


def mfa_key(user_id: int) -> str:
    return f"mfa:{user_id}"


def _store() -> Store:
    store: Store = current_app.extensions["attendwise_throttle"]
    return store


def retry_after(*keys: str) -> int | None:
    """Seconds until the longest current lock on any of ``keys`` ends, or None when none is locked."""
    at = now()
    waits = [
        (state.locked_until - at).total_seconds()
        for state in (_store().state(k) for k in keys)
        if state.locked_until is not None and state.locked_until > at
    ]
    return math.ceil(max(waits)) if waits else None


def record_failure(key: str) -> BucketState:
    """Count a wrong password or code for an account-like key; lock it when the policy says so."""
    at = now()
    state = _store().fail(key, at, HOUR)
    until: dt.datetime | None = None
    if state.consecutive >= FREE_FAILURES:
        doublings = min(state.consecutive - FREE_FAILURES, 16)
        until = at + min(BASE_DELAY * (2**doublings), MAX_DELAY)
    if state.window_count >= HOURLY_LIMIT and state.window_started_at is not None:
        until = max(until or at, state.window_started_at + HOUR)
    if until is not None:
        _store().lock(key, until)
        return BucketState(state.consecutive, state.window_count, state.window_started_at, until)
    return state


def record_ip_failure(ip: str | None) -> None:
    config = current_app.config
    limit = int(config.get("LOGIN_IP_MAX_FAILURES", DEFAULT_IP_MAX_FAILURES))
    window = dt.timedelta(seconds=int(config.get("LOGIN_IP_WINDOW_SECONDS", DEFAULT_IP_WINDOW_SECONDS)))
    key = ip_key(ip)
    state = _store().fail(key, now(), window)
    if state.window_count >= limit and state.window_started_at is not None:
        _store().lock(key, state.window_started_at + window)


def record_success(key: str) -> None:
    """The right password or code: the run of failures and its lock end; the hourly cap stays."""
    store = _store()
    state = store.state(key)
    store.clear(key)
    at = now()
    if state.window_count >= HOURLY_LIMIT and state.window_started_at is not None:
        hour_ends = state.window_started_at + HOUR
        if hour_ends > at:
            store.lock(key, hour_ends)


def init_app(app: Flask) -> None:
    url = app.config.get("REDIS_URL") or ""
    if url:
        from redis import Redis

        app.extensions["attendwise_throttle"] = RedisStore(Redis.from_url(url))
    else:
        app.extensions["attendwise_throttle"] = DatabaseStore()
