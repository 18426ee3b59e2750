"""Subscribers told when a letter has gone out (casework records it on the contact log)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.orm import Session


@dataclass(frozen=True)
class LetterDelivered:
    org_id: int
    letter_id: int
    pupil_id: int
    case_id: int | None
    template_key: str
    channel: str  # "email" or "post"
    recipient_name: str
    recipient_contact_id: int | None
    at: dt.datetime


Subscriber = Callable[[Session, LetterDelivered], None]
_subscribers: list[Subscriber] = []


def on_delivered(callback: Subscriber) -> Subscriber:
    """Register ``callback(session, event)``; it runs in the transaction that marks the letter
    sent or posted, so its own writes commit (or roll back) with that change. Use as a decorator."""
    if callback not in _subscribers:
        _subscribers.append(callback)
    return callback


def remove(callback: Subscriber) -> None:
    if callback in _subscribers:
        _subscribers.remove(callback)


def delivered(session: Session, event: LetterDelivered) -> None:
    for callback in list(_subscribers):
        callback(session, event)
