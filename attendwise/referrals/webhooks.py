"""Outbound webhooks: an LA's case-management system hears about referrals as they change.

An LA registers endpoints (URL, events); each gets a random secret, shown once and stored
encrypted (:mod:`attendwise.platform.crypto`). An event becomes one :class:`WebhookDelivery` row
per subscribed endpoint, written in the transaction that made the change, so nothing is lost if
the receiver or Redis is down. A job POSTs due deliveries; every attempt is recorded (status
code, duration, error). A refused or failed attempt is retried with exponential backoff and
jitter (:func:`backoff`) by the periodic sweeper, up to :data:`MAX_ATTEMPTS`.

Signing (documented for receivers on the webhooks page)::

    Attendwise-Timestamp: <unix seconds>
    Attendwise-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>." + body)>
    Attendwise-Event: referral.status_changed
    Attendwise-Delivery: <event id, the same on every retry>

A receiver recomputes the HMAC over the timestamp and the raw body, compares in constant time,
rejects stale timestamps, and drops a delivery id it has already processed. Payloads carry
references and statuses only, never a pupil's name: the receiver pulls details through the API.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import secrets
import time
import uuid
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx
from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import Session

from attendwise.platform import audit, crypto, jobs
from attendwise.platform.db import utcnow
from attendwise.referrals.models import (
    DeliveryStatus,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)

MAX_ATTEMPTS = 8
BASE_DELAY = dt.timedelta(seconds=30)
MAX_DELAY = dt.timedelta(hours=6)
TIMEOUT = 10.0  # seconds per attempt
BATCH = 100
USER_AGENT = "Attendwise-Webhooks/1"
_jitter = secrets.SystemRandom()


class WebhookError(ValueError):
    """An endpoint cannot be saved as given; the message names the field."""


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def backoff(attempts: int) -> dt.timedelta:
    """The wait after ``attempts`` failed attempts: doubling from 30 s, capped at 6 h, the
    second half of each wait random ("equal jitter"), so receivers are not hit in lockstep."""
    ceiling = min(MAX_DELAY, BASE_DELAY * 2 ** (attempts - 1))
    return ceiling / 2 + ceiling / 2 * _jitter.random()


def _check_url(url: str) -> str:
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise WebhookError("url: enter the full address, starting https://")
    production = current_app.config.get("ENV_NAME") == "production"
    if parts.scheme == "http" and production:
        raise WebhookError("url: webhooks are sent only over https")
    if parts.username or parts.password:
        raise WebhookError("url: do not put a user name or password in the address")
    if len(url) > 500:
        raise WebhookError("url: the address is longer than 500 characters")
    return url


def _check_events(events: Iterable[str]) -> list[str]:
    chosen = sorted(set(events))
    known = {e.value for e in WebhookEvent}
    unknown = [e for e in chosen if e not in known]
    if unknown:
        raise WebhookError(f"events: unknown event {unknown[0]!r}")
    if not chosen:
        raise WebhookError("events: choose at least one event to send")
    return chosen


def create_endpoint(
    session: Session, la_id: int, *, url: str, events: Iterable[str], description: str, user_id: int | None
) -> tuple[WebhookEndpoint, str]:
    """A new endpoint and its secret (returned once; only the encrypted form is stored)."""
    secret = "whsec_" + secrets.token_urlsafe(32)
    endpoint = WebhookEndpoint(
        org_id=la_id,
        url=_check_url(url),
        description=description.strip()[:200],
        secret_encrypted=crypto.encrypt(secret),
        events=_check_events(events),
        created_by_user_id=user_id,
    )
    session.add(endpoint)
    session.flush()
    audit.record(
        session,
        org_id=la_id,
        action="referral.webhook.create",
        object_type="webhook_endpoint",
        object_id=endpoint.id,
        detail={"url": endpoint.url, "events": endpoint.events},
    )
    return endpoint, secret


def set_active(session: Session, endpoint: WebhookEndpoint, active: bool) -> None:
    endpoint.active = active
    session.flush()
    audit.record(
        session,
        org_id=endpoint.org_id,
        action="referral.webhook.enable" if active else "referral.webhook.disable",
        object_type="webhook_endpoint",
        object_id=endpoint.id,
    )


def emit(session: Session, la_id: int, event: WebhookEvent, data: Mapping[str, Any]) -> int:
    """Queue ``event`` for every active endpoint of the LA that wants it; returns how many."""
    endpoints = session.scalars(
        select(WebhookEndpoint).where(WebhookEndpoint.org_id == la_id, WebhookEndpoint.active.is_(True))
    ).all()
    wanted = [e for e in endpoints if event.value in e.events]
    if not wanted:
        return 0
    now = utcnow()
    event_id = uuid.uuid4().hex
    body = json.dumps(
        {"id": event_id, "event": event.value, "created_at": now.isoformat(), "data": dict(data)},
        sort_keys=True,
        separators=(",", ":"),
    )
    for endpoint in wanted:
        session.add(
            WebhookDelivery(
                org_id=la_id,
                endpoint_id=endpoint.id,
                event=event.value,
                event_id=event_id,
                body=body,
                next_attempt_at=now,
            )
        )
    session.flush()
    jobs.enqueue(
        "attendwise.referrals.jobs.deliver_webhooks", org_id=la_id, queue="notifications", session=session
    )
    return len(wanted)


def _attempt(endpoint: WebhookEndpoint, delivery: WebhookDelivery) -> tuple[int | None, int, str]:
    """POST one delivery; (status code or None, duration in ms, error text)."""
    body = delivery.body.encode()
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "Attendwise-Event": delivery.event,
        "Attendwise-Delivery": delivery.event_id,
        "Attendwise-Timestamp": str(timestamp),
        "Attendwise-Signature": sign(crypto.decrypt(endpoint.secret_encrypted), timestamp, body),
    }
    started = time.perf_counter()
    try:
        response = httpx.post(
            endpoint.url, content=body, headers=headers, timeout=TIMEOUT, follow_redirects=False
        )
    except httpx.HTTPError as exc:
        return None, round((time.perf_counter() - started) * 1000), f"{type(exc).__name__}: {exc}"[:500]
    duration = round((time.perf_counter() - started) * 1000)
    answer = response.text.strip()[:200]
    error = "" if response.is_success else f"HTTP {response.status_code}" + (f": {answer}" if answer else "")
    return response.status_code, duration, error


def deliver_due(session: Session, now: dt.datetime | None = None) -> dict[str, int]:
    """Attempt every pending delivery that is due (in the current tenant or system context)."""
    now = now or utcnow()
    due = session.scalars(
        select(WebhookDelivery)
        .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
        .where(
            WebhookDelivery.status == DeliveryStatus.PENDING,
            WebhookDelivery.next_attempt_at <= now,
            WebhookEndpoint.active.is_(True),
        )
        .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
        .limit(BATCH)
        .with_for_update(skip_locked=True, of=WebhookDelivery)
    ).all()
    counts = {"delivered": 0, "retrying": 0, "failed": 0}
    for delivery in due:
        endpoint = session.get_one(WebhookEndpoint, delivery.endpoint_id)
        status_code, duration, error = _attempt(endpoint, delivery)
        delivery.attempts += 1
        delivery.attempt_rows.append(
            WebhookAttempt(
                org_id=delivery.org_id,
                attempted_at=now,
                status_code=status_code,
                duration_ms=duration,
                error=error,
            )
        )
        if not error:
            delivery.status = DeliveryStatus.DELIVERED
            delivery.delivered_at = now
            delivery.next_attempt_at = None
            counts["delivered"] += 1
        elif delivery.attempts >= MAX_ATTEMPTS:
            delivery.status = DeliveryStatus.FAILED
            delivery.next_attempt_at = None
            counts["failed"] += 1
        else:
            delivery.next_attempt_at = now + backoff(delivery.attempts)
            counts["retrying"] += 1
        session.flush()
    return counts


def deliveries(session: Session, endpoint: WebhookEndpoint, limit: int = 50) -> list[WebhookDelivery]:
    return list(
        session.scalars(
            select(WebhookDelivery)
            .where(WebhookDelivery.endpoint_id == endpoint.id)
            .order_by(WebhookDelivery.id.desc())
            .limit(limit)
        )
    )
