"""Outgoing email over SMTP (password resets now; letters and referrals later).

Settings: ``MAIL_SERVER``, ``MAIL_PORT``, ``MAIL_USERNAME``, ``MAIL_PASSWORD``,
``MAIL_USE_TLS`` (STARTTLS) and ``MAIL_SENDER``. With no ``MAIL_SERVER`` outside
production, mail is disabled: each message is written to ``<data dir>/mail/<id>.eml`` for
a developer to open, and the log says so (naming neither the body nor any credential).
Production refuses to send without a server.
"""

from __future__ import annotations

import logging
import re
import smtplib
import ssl
from collections.abc import Iterable
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from pathlib import Path

from flask import current_app

log = logging.getLogger("attendwise.mail")

Attachment = tuple[str, bytes, str]  # (filename, content, MIME type such as "application/pdf")


class MailError(RuntimeError):
    """The message could not be handed to the mail server."""


def build_message(
    to: str,
    subject: str,
    text: str,
    html: str | None = None,
    attachments: Iterable[Attachment] = (),
    message_id: str | None = None,
) -> EmailMessage:
    config = current_app.config
    sender = config.get("MAIL_SENDER") or "Attendwise <no-reply@attendwise.invalid>"
    if "@" not in parseaddr(to)[1]:
        raise MailError(f"{to!r} is not an email address")
    if "\n" in subject or "\r" in subject:
        raise MailError("the subject must be a single line")
    domain = parseaddr(sender)[1].rpartition("@")[2] or "attendwise.invalid"
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = message_id or make_msgid(domain=domain)
    message.set_content(text)
    if html is not None:
        message.add_alternative(html, subtype="html")
    for filename, content, mime_type in attachments:
        maintype, _, subtype = mime_type.partition("/")
        if not subtype:
            raise MailError(f"attachment {filename!r}: MIME type {mime_type!r} needs a type and subtype")
        message.add_attachment(content, maintype=maintype, subtype=subtype, filename=filename)
    return message


def send_email(
    to: str,
    subject: str,
    text: str,
    html: str | None = None,
    attachments: Iterable[Attachment] = (),
    message_id: str | None = None,
) -> str:
    """Send one message and return its Message-ID (``message_id`` if the caller chose one,
    e.g. derived from a letter's idempotency key so a send can be reconciled)."""
    message = build_message(to, subject, text, html, attachments, message_id)
    message_id = str(message["Message-ID"])
    config = current_app.config
    server = config.get("MAIL_SERVER") or ""
    if not server:
        if config.get("ENV_NAME") == "production":
            raise MailError("ATTENDWISE_MAIL_SERVER is not set: cannot send mail in production")
        path = _write_to_outbox(message, message_id)
        log.warning("mail is disabled (no MAIL_SERVER): message %s written to %s", message_id, path)
        return message_id
    port = int(config.get("MAIL_PORT") or 25)
    try:
        with smtplib.SMTP(server, port, timeout=30) as smtp:
            if config.get("MAIL_USE_TLS"):
                smtp.starttls(context=ssl.create_default_context())
            if config.get("MAIL_USERNAME"):
                smtp.login(config["MAIL_USERNAME"], config.get("MAIL_PASSWORD") or "")
            smtp.send_message(message)
    except (OSError, smtplib.SMTPException) as exc:
        reason = type(exc).__name__
        raise MailError(f"could not send message {message_id} via {server}:{port}: {reason}") from exc
    log.info("mail sent", extra={"message_id": message_id, "smtp_server": server})
    return message_id


def _write_to_outbox(message: EmailMessage, message_id: str) -> Path:
    outbox = Path(current_app.config["DATA_DIR"]) / "mail"
    outbox.mkdir(parents=True, exist_ok=True)
    path = outbox / (re.sub(r"[^A-Za-z0-9.-]", "_", message_id.strip("<>")) + ".eml")
    path.write_bytes(bytes(message))
    return path
