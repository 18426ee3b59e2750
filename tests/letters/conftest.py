"""A school with marks and two parents, a real SMTP server, and a tripwire listener."""

from __future__ import annotations

import datetime as dt
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from flask import Flask
from sqlalchemy.orm import Session

from attendwise.attendance import services as attendance_services
from attendwise.attendance.models import Pupil
from attendwise.platform import tenancy
from attendwise.tenants.models import Organisation
from tests.casework.conftest import build_school

ON = dt.date(2026, 11, 20)


@dataclass
class LetterSchool:
    school: Organisation
    pupil: Pupil
    mother_id: int
    father_id: int


def add_parents(session: Session, school: Organisation, pupil: Pupil, **fields: str) -> tuple[int, int]:
    from attendwise.attendance.models import Contact

    records = [
        attendance_services.ContactRecord(
            forename=fields.get("forename", "Jane"),
            surname=fields.get("surname", "Family1"),
            title="Ms",
            links=(attendance_services.ContactLink(pupil.upn, "Mother", True, True, 1),),
            address_lines=(fields.get("street", "1 High Street"), "Telford"),
            postcode="TF1 1AA",
            emails=("jane@example.test",),
        ),
        attendance_services.ContactRecord(
            forename="John",
            surname="Family1",
            title="Mr",
            links=(attendance_services.ContactLink(pupil.upn, "Father", True, False, 2),),
            address_lines=("9 Low Road", "Wellington"),
            postcode="TF1 2BB",
        ),
    ]
    attendance_services.upsert_contacts(session, school.id, records)
    mother = session.query(Contact).filter_by(forename=records[0].forename).one()
    father = session.query(Contact).filter_by(forename="John").one()
    return mother.id, father.id


@pytest.fixture
def letter_school(db_session: Session, make_school: Callable[..., Organisation]) -> LetterSchool:
    school = make_school(name="Dothill Primary School")
    built = build_school(db_session, school, pupils=8, absent_pupils=2, preset="dothill", marks_to=ON)
    pupil = built.pupils[0]
    with tenancy.tenant_context(school.id):
        mother, father = add_parents(db_session, school, pupil)
    return LetterSchool(school, pupil, mother, father)


@dataclass
class Received:
    messages: list[Message] = field(default_factory=list)


class _Handler:
    def __init__(self, received: Received) -> None:
        self.received = received

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.messages.append(message_from_bytes(envelope.content))
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp_server(app: Flask, monkeypatch: pytest.MonkeyPatch) -> Iterator[Received]:
    """A real SMTP server on 127.0.0.1; the app sends to it for this test."""
    received = Received()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(_Handler(received), hostname="127.0.0.1", port=port)
    controller.start()
    monkeypatch.setitem(app.config, "MAIL_SERVER", "127.0.0.1")
    monkeypatch.setitem(app.config, "MAIL_PORT", controller.port)
    try:
        yield received
    finally:
        controller.stop()


@dataclass
class Tripwire:
    port: int
    contacts: list[str] = field(default_factory=list)


@pytest.fixture
def tripwire() -> Iterator[Tripwire]:
    """A TCP listener on loopback: any connection to it fails the test."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.2)
    wire = Tripwire(listener.getsockname()[1])
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            try:
                conn, peer = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            wire.contacts.append(f"{peer[0]}:{peer[1]}")
            conn.close()

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield wire
    finally:
        stop.set()
        thread.join(2)
        listener.close()
    assert not wire.contacts, f"the renderer connected to the tripwire listener: {wire.contacts}"
