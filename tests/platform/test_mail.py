"""The SMTP sender, against a real SMTP server (aiosmtpd) on loopback."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from attendwise.platform import mail
from tests.platform.account_fixtures import body_text, smtp_server

__all__ = ["smtp_server"]


def test_a_message_with_html_and_an_attachment_is_delivered(app: Flask, smtp_server: Any) -> None:
    with app.test_request_context():
        message_id = mail.send_email(
            "parent@example.test",
            "Attendance letter",
            "Please see the attached letter.",
            html="<p>Please see the attached letter.</p>",
            attachments=[("letter.pdf", b"%PDF-1.7 test", "application/pdf")],
        )
    [delivered] = smtp_server.messages
    assert delivered["Message-ID"] == message_id
    assert delivered["To"] == "parent@example.test"
    assert delivered["Subject"] == "Attendance letter"
    assert smtp_server.envelopes[0].rcpt_tos == ["parent@example.test"]
    assert body_text(delivered).strip() == "Please see the attached letter."
    parts = {part.get_content_type(): part for part in delivered.walk()}
    assert "text/html" in parts
    assert parts["application/pdf"].get_filename() == "letter.pdf"
    assert parts["application/pdf"].get_payload(decode=True) == b"%PDF-1.7 test"


def test_bad_addresses_and_headers_are_refused_before_sending(app: Flask, smtp_server: Any) -> None:
    with app.test_request_context():
        with pytest.raises(mail.MailError, match="not an email address"):
            mail.send_email("not-an-address", "Hello", "text")
        with pytest.raises(mail.MailError, match="single line"):
            mail.send_email("a@example.test", "Hello\r\nBcc: victim@example.test", "text")
    assert smtp_server.messages == []


def test_an_unreachable_server_is_a_clear_error(app: Flask) -> None:
    saved = app.config["MAIL_SERVER"], app.config["MAIL_PORT"]
    app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=1)
    try:
        with app.test_request_context(), pytest.raises(mail.MailError, match=r"127\.0\.0\.1:1"):
            mail.send_email("a@example.test", "Hello", "text")
    finally:
        app.config["MAIL_SERVER"], app.config["MAIL_PORT"] = saved


def test_without_a_server_development_writes_the_message_to_the_outbox(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="attendwise.mail")
    with app.test_request_context():
        message_id = mail.send_email("a@example.test", "Reset", "secret link https://x.test/reset/abc")
    outbox = Path(app.config["DATA_DIR"]) / "mail"
    written = [p for p in outbox.glob("*.eml") if message_id.strip("<>").split("@")[0] in p.name]
    assert len(written) == 1
    assert b"secret link" in written[0].read_bytes()
    assert "mail is disabled" in caplog.text
    assert "secret link" not in caplog.text


def test_production_refuses_to_run_without_a_server(app: Flask) -> None:
    saved = app.config["ENV_NAME"]
    app.config["ENV_NAME"] = "production"
    try:
        with app.test_request_context(), pytest.raises(mail.MailError, match="MAIL_SERVER is not set"):
            mail.send_email("a@example.test", "Hello", "text")
    finally:
        app.config["ENV_NAME"] = saved
