"""Outbound webhooks against a real HTTP server on loopback that checks every signature and
refuses the first two attempts: retried with backoff and jitter, every attempt recorded."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from attendwise.platform import crypto, tenancy
from attendwise.referrals import jobs, services, webhooks
from attendwise.referrals.models import (
    DeliveryStatus,
    KindKey,
    ReceivedReferral,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)
from attendwise.tenants.models import User
from tests.referrals.conftest import SUBMIT_ON, World, sign_in_officer


@dataclass
class Receiver:
    """What the LA's system saw: one entry per request, with whether its signature verified."""

    secret: str = ""
    fail_first: int = 2
    seen: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            timestamp = self.headers["Attendwise-Timestamp"]
            expected = hmac.new(state.secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
            valid = hmac.compare_digest(
                self.headers["Attendwise-Signature"], f"sha256={expected.hexdigest()}"
            )
            state.seen.append(
                {
                    "valid": valid,
                    "event": self.headers["Attendwise-Event"],
                    "delivery": self.headers["Attendwise-Delivery"],
                    "body": json.loads(body),
                }
            )
            code = 500 if len(state.seen) <= state.fail_first else (200 if valid else 401)
            self.send_response(code)
            self.end_headers()
            self.wfile.write(b"ok" if code == 200 else b"try later")

        def log_message(self, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/attendwise"
    yield state
    server.shutdown()
    server.server_close()
    thread.join(5)


def _submit(session: Session, world: World) -> int:
    with tenancy.tenant_context(world.school.id):
        referral = services.start(session, pupil_id=world.pupil.id, kind=KindKey.PENALTY_NOTICE, user_id=None)
        services.supply(session, referral, "warning_letter", "Letter posted 12 October")
        services.supply(session, referral, "support", "Mentoring")
        services.sign_off(session, referral, user_id=world.champion.id, role_key="senior_attendance_champion")
        return services.submit(session, referral, user_id=world.champion.id, on=SUBMIT_ON).id


def test_backoff_doubles_with_jitter_and_is_capped() -> None:
    for attempts in range(1, 12):
        ceiling = min(webhooks.MAX_DELAY, webhooks.BASE_DELAY * 2 ** (attempts - 1))
        waits = {webhooks.backoff(attempts) for _ in range(20)}
        assert all(ceiling / 2 <= w <= ceiling for w in waits)
        assert len(waits) > 1  # jittered, not lockstep
    assert webhooks.backoff(30) <= dt.timedelta(hours=6)


def test_delivery_is_signed_retried_with_backoff_and_every_attempt_recorded(
    db_session: Session, world: World, receiver: Receiver
) -> None:
    with tenancy.tenant_context(world.la.id):
        endpoint, secret = webhooks.create_endpoint(
            db_session,
            world.la.id,
            url=receiver.url,
            events=[WebhookEvent.REFERRAL_SUBMITTED.value, WebhookEvent.REFERRAL_STATUS_CHANGED.value],
            description="Case system",
            user_id=None,
        )
        assert secret not in endpoint.secret_encrypted
        assert crypto.decrypt(endpoint.secret_encrypted) == secret
    receiver.secret = secret
    received_id = _submit(db_session, world)

    with tenancy.tenant_context(world.la.id):
        delivery = db_session.scalars(select(WebhookDelivery)).one()
        assert delivery.event == "referral.submitted"
        t0 = dt.datetime.now(dt.UTC)

        assert webhooks.deliver_due(db_session, t0) == {"delivered": 0, "retrying": 1, "failed": 0}
        assert delivery.next_attempt_at is not None
        first_wait = delivery.next_attempt_at - t0
        assert dt.timedelta(seconds=15) <= first_wait <= dt.timedelta(seconds=30)
        # Not due yet: nothing is sent.
        assert webhooks.deliver_due(db_session, t0 + dt.timedelta(seconds=14)) == {
            "delivered": 0,
            "retrying": 0,
            "failed": 0,
        }
        t1 = delivery.next_attempt_at
        assert webhooks.deliver_due(db_session, t1)["retrying"] == 1
        assert delivery.next_attempt_at is not None
        assert dt.timedelta(seconds=30) <= delivery.next_attempt_at - t1 <= dt.timedelta(seconds=60)
        t2 = delivery.next_attempt_at
    # The third attempt is the periodic sweeper's: a system job over every LA's due deliveries.
    with tenancy.system_context("test: the webhook sweeper"):
        assert jobs.deliver_webhooks(t2.isoformat())["delivered"] == 1
    with tenancy.tenant_context(world.la.id):
        assert delivery.status is DeliveryStatus.DELIVERED
        assert delivery.attempts == 3
        assert [a.status_code for a in delivery.attempt_rows] == [500, 500, 200]
        assert [a.attempted_at for a in delivery.attempt_rows] == [t0, t1, t2]
        assert all(a.duration_ms >= 0 for a in delivery.attempt_rows)
        assert delivery.attempt_rows[0].error.startswith("HTTP 500")
        assert delivery.attempt_rows[2].error == ""

    assert [s["valid"] for s in receiver.seen] == [True, True, True]
    assert {s["delivery"] for s in receiver.seen} == {delivery.event_id}
    body = receiver.seen[0]["body"]
    assert body["event"] == "referral.submitted"
    assert body["data"]["referral_id"] == received_id
    assert body["data"]["status"] == "submitted"
    assert "Ada" not in json.dumps(body)  # references only, never the pupil's name


def test_status_changes_reach_only_subscribed_active_endpoints_and_give_up_after_max_attempts(
    db_session: Session, world: World, receiver: Receiver
) -> None:
    received_id = _submit(db_session, world)
    receiver.fail_first = 100
    with tenancy.tenant_context(world.la.id):
        status_hook, secret = webhooks.create_endpoint(
            db_session,
            world.la.id,
            url=receiver.url,
            events=["referral.status_changed"],
            description="",
            user_id=None,
        )
        receiver.secret = secret
        notices_only, _ = webhooks.create_endpoint(
            db_session,
            world.la.id,
            url=receiver.url,
            events=["penalty_notice.changed"],
            description="",
            user_id=None,
        )
        received = db_session.get_one(ReceivedReferral, received_id)
        services.acknowledge(db_session, received)
        deliveries = db_session.scalars(select(WebhookDelivery)).all()
        assert [(d.endpoint_id, d.event) for d in deliveries] == [(status_hook.id, "referral.status_changed")]
        now = dt.datetime.now(dt.UTC)
        for _ in range(webhooks.MAX_ATTEMPTS):
            webhooks.deliver_due(db_session, now)
            now = deliveries[0].next_attempt_at or now
        assert deliveries[0].status is DeliveryStatus.FAILED
        assert len(deliveries[0].attempt_rows) == webhooks.MAX_ATTEMPTS
        webhooks.set_active(db_session, status_hook, False)
        services.accept(db_session, received)
        assert webhooks.deliver_due(db_session, now + dt.timedelta(days=1)) == {
            "delivered": 0,
            "retrying": 0,
            "failed": 0,
        }
        assert notices_only.id not in {d.endpoint_id for d in db_session.scalars(select(WebhookDelivery))}
    assert len(receiver.seen) == webhooks.MAX_ATTEMPTS
    assert receiver.seen[0]["body"]["data"]["status"] == "acknowledged"


def test_la_admin_adds_an_endpoint_and_sees_each_attempt(
    client: FlaskClient,
    login: Callable[..., Any],
    db_session: Session,
    world: World,
    receiver: Receiver,
    make_user: Callable[..., User],
) -> None:
    admin = make_user(world.la, "la_admin")
    sign_in_officer(client, login, admin)
    page = client.get("/referrals/webhooks")
    assert page.status_code == 200
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True))
    assert token
    bad = client.post(
        "/referrals/webhooks",
        data={"csrf_token": token.group(1), "url": "ftp://example", "events": ["referral.submitted"]},
    )
    assert bad.status_code == 400
    assert "url: enter the full address" in bad.get_data(as_text=True)
    none = client.post("/referrals/webhooks", data={"csrf_token": token.group(1), "url": receiver.url})
    assert none.status_code == 400
    assert "events: choose at least one event" in none.get_data(as_text=True)
    created = client.post(
        "/referrals/webhooks",
        data={"csrf_token": token.group(1), "url": receiver.url, "events": ["referral.submitted"]},
    )
    assert created.status_code == 201
    shown = re.search(r'data-testid="webhook-secret">(whsec_[^<]+)<', created.get_data(as_text=True))
    assert shown
    receiver.secret = shown.group(1)
    _submit(db_session, world)
    with tenancy.tenant_context(world.la.id):
        endpoint = db_session.scalars(select(WebhookEndpoint)).one()
        now = dt.datetime.now(dt.UTC)
        for _ in range(3):
            webhooks.deliver_due(db_session, now)
            now = db_session.scalars(select(WebhookDelivery)).one().next_attempt_at or now
    detail = client.get(f"/referrals/webhooks/{endpoint.id}").get_data(as_text=True)
    assert detail.count('data-testid="attempt"') == 3
    assert 'data-testid="delivery-status">Delivered' in detail
    assert [s["valid"] for s in receiver.seen] == [True, True, True]

    # An officer triages referrals but does not configure the LA's systems.
    sign_in_officer(client, login, world.officer)
    assert client.get(f"/referrals/webhooks/{endpoint.id}").status_code in (403, 404)
    assert client.get("/referrals/webhooks").status_code == 403
