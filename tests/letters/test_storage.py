"""The document store: one contract, kept by the embedded file store and by the S3 store.

The S3 store is tested against a real S3-compatible server (moto's, on loopback), so the
client's own signing, HTTP and error handling run as they would against a production bucket.
"""

from __future__ import annotations

import hashlib
import socket
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from moto.server import ThreadedMotoServer
from sqlalchemy.orm import Session

from attendwise.letters import storage
from attendwise.letters.models import Document, Letter
from attendwise.platform import tenancy
from attendwise.platform.app import create_app
from attendwise.platform.config import ConfigError, Settings
from attendwise.tenants.models import Organisation
from tests.letters.conftest import LetterSchool
from tests.letters.test_views import _actions, _queue

PDF = b"%PDF-1.7\n% a letter to a parent\n%%EOF\n"
HTML = "<p>Sam has missed 14 sessions this term.</p>"
SHA = hashlib.sha256(PDF).hexdigest()


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A real S3-compatible HTTP server on a free loopback port, for the whole run."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3_settings(s3_endpoint: str) -> storage.S3Settings:
    """Settings for a new, empty bucket of this test's own."""
    settings = storage.S3Settings(
        bucket=f"attendwise-{uuid.uuid4().hex[:12]}",
        access_key_id="test-key-id",
        secret_access_key="test-secret",
        endpoint_url=s3_endpoint,
        region="eu-west-2",
        prefix="documents",
        addressing_style="path",
    )
    settings.store().client.create_bucket(
        Bucket=settings.bucket, CreateBucketConfiguration={"LocationConstraint": settings.region}
    )
    return settings


@dataclass
class Kind:
    """A store under test and a way to reach behind it to its raw bytes."""

    store: storage.DocumentStore
    overwrite: Callable[[int, str, str, bytes], None]


@pytest.fixture(params=["file", "s3"])
def kind(request: pytest.FixtureRequest, tmp_path: Path) -> Kind:
    if request.param == "file":
        files = storage.FileStore(tmp_path / "documents")

        def overwrite_file(org_id: int, sha256: str, suffix: str, data: bytes) -> None:
            (files.root / str(org_id) / f"{sha256}.{suffix}").write_bytes(data)

        return Kind(files, overwrite_file)
    s3 = request.getfixturevalue("s3_settings").store()

    def overwrite_object(org_id: int, sha256: str, suffix: str, data: bytes) -> None:
        s3.client.put_object(Bucket=s3.bucket, Key=s3.key(org_id, sha256, suffix), Body=data)

    return Kind(s3, overwrite_object)


def test_a_document_comes_back_byte_for_byte_with_its_html_beside_it(kind: Kind) -> None:
    assert kind.store.put(1, PDF, HTML) == SHA
    assert kind.store.get_pdf(1, SHA) == PDF
    assert kind.store.get_html(1, SHA) == HTML


def test_storing_the_same_bytes_twice_changes_nothing(kind: Kind) -> None:
    kind.store.put(1, PDF, HTML)
    assert kind.store.put(1, PDF, "<p>a second rendering of the same PDF</p>") == SHA
    assert kind.store.get_html(1, SHA) == HTML
    assert kind.store.get_pdf(1, SHA) == PDF


def test_a_damaged_pdf_is_refused_with_a_clear_error(kind: Kind) -> None:
    kind.store.put(1, PDF, HTML)
    kind.overwrite(1, SHA, "pdf", PDF.replace(b"parent", b"parenT"))
    with pytest.raises(storage.DocumentDamaged, match=f"document {SHA} of organisation 1 is damaged"):
        kind.store.get_pdf(1, SHA)


def test_one_organisation_cannot_read_anothers_document(kind: Kind) -> None:
    kind.store.put(1, PDF, HTML)
    with pytest.raises(storage.DocumentMissing, match=f"{SHA}.pdf of organisation 2 is not in the store"):
        kind.store.get_pdf(2, SHA)
    with pytest.raises(storage.DocumentMissing, match="organisation 2 is not in the store"):
        kind.store.get_html(2, SHA)


@pytest.mark.parametrize(
    ("org_id", "sha256", "message"),
    [
        (1, "../2/" + SHA[5:], "is not a SHA-256 hex digest"),
        (1, SHA.upper(), "is not a SHA-256 hex digest"),
        ("1/../2", SHA, "is not an organisation id"),
        (0, SHA, "is not an organisation id"),
        (True, SHA, "is not an organisation id"),
    ],
)
def test_a_key_cannot_be_bent_to_reach_another_file(
    kind: Kind, org_id: Any, sha256: str, message: str
) -> None:
    kind.store.put(1, PDF, HTML)
    with pytest.raises(ValueError, match=message):
        kind.store.get_pdf(org_id, sha256)


def test_objects_are_named_by_organisation_and_hash_under_the_prefix(s3_settings: storage.S3Settings) -> None:
    s3 = s3_settings.store()
    s3.put(7, PDF, HTML)
    listed = s3.client.list_objects_v2(Bucket=s3.bucket)["Contents"]
    assert sorted(item["Key"] for item in listed) == [f"documents/7/{SHA}.html", f"documents/7/{SHA}.pdf"]
    head = s3.client.head_object(Bucket=s3.bucket, Key=f"documents/7/{SHA}.pdf")
    assert head["ContentType"] == "application/pdf"


def test_a_second_put_of_the_same_document_uploads_nothing(s3_settings: storage.S3Settings) -> None:
    s3 = s3_settings.store()
    uploads: list[str] = []
    s3.client.meta.events.register("before-call.s3.PutObject", lambda params, **_: uploads.append("put"))
    s3.put(1, PDF, HTML)
    assert len(uploads) == 2
    s3.put(1, PDF, HTML)
    assert len(uploads) == 2


def test_a_writer_that_loses_the_race_keeps_the_winners_object(s3_settings: storage.S3Settings) -> None:
    """Two workers store the same letter: both HEADs miss, one PutObject wins, and the other's
    conditional write is refused by the server and taken as done, not as an error."""
    late, early = s3_settings.store(), s3_settings.store()
    statuses: list[int] = []

    def early_writer_wins(params: dict[str, Any], **_: Any) -> None:
        if params["Key"].endswith(".pdf"):
            early.put(1, PDF, "<p>the early worker's copy</p>")

    def record(http_response: Any, **_: Any) -> None:
        statuses.append(http_response.status_code)

    late.client.meta.events.register("before-parameter-build.s3.PutObject", early_writer_wins)
    late.client.meta.events.register("after-call.s3.PutObject", record)
    assert late.put(1, PDF, HTML) == SHA
    assert statuses == [200, 412]  # the late writer's HTML, then its refused PDF
    assert late.get_pdf(1, SHA) == PDF
    assert late.get_html(1, SHA) == HTML


def test_the_bucket_can_be_asked_to_encrypt_each_object(s3_settings: storage.S3Settings) -> None:
    s3 = storage.S3Settings(**{**s3_settings.__dict__, "server_side_encryption": "AES256"}).store()
    s3.put(1, PDF, HTML)
    for suffix in ("pdf", "html"):
        head = s3.client.head_object(Bucket=s3.bucket, Key=s3.key(1, SHA, suffix))
        assert head["ServerSideEncryption"] == "AES256"


# ---- configuration -----------------------------------------------------------------------

S3_ENV = {
    "ATTENDWISE_DOCUMENT_STORE": "s3",
    "ATTENDWISE_S3_BUCKET": "attendwise-documents",
    "ATTENDWISE_S3_ACCESS_KEY_ID": "AKIAEXAMPLE",
    "ATTENDWISE_S3_SECRET_ACCESS_KEY": "do-not-print-this-secret",
}


def test_the_embedded_default_needs_no_store_settings() -> None:
    settings = Settings.from_env({})
    settings.validate()
    assert settings.flask_config()["DOCUMENT_STORE"] == "file"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"ATTENDWISE_S3_BUCKET": ""}, "needs ATTENDWISE_S3_BUCKET to be set"),
        (
            {"ATTENDWISE_S3_ACCESS_KEY_ID": "", "ATTENDWISE_S3_SECRET_ACCESS_KEY": ""},
            "needs ATTENDWISE_S3_ACCESS_KEY_ID, ATTENDWISE_S3_SECRET_ACCESS_KEY to be set",
        ),
        (
            {"ATTENDWISE_DOCUMENT_STORE": "ftp"},
            "ATTENDWISE_DOCUMENT_STORE must be one of file, s3, not 'ftp'",
        ),
        ({"ATTENDWISE_S3_BUCKET": "Bad_Bucket"}, "ATTENDWISE_S3_BUCKET 'Bad_Bucket' is not a bucket name"),
        ({"ATTENDWISE_S3_PREFIX": "docs/../other"}, "ATTENDWISE_S3_PREFIX 'docs/../other'"),
        ({"ATTENDWISE_S3_ADDRESSING_STYLE": "dns"}, "ATTENDWISE_S3_ADDRESSING_STYLE must be one of"),
        ({"ATTENDWISE_S3_SERVER_SIDE_ENCRYPTION": "aws:kms"}, "must be empty .* or AES256"),
    ],
)
def test_a_bad_s3_configuration_stops_the_start_up_naming_the_setting(
    tmp_path: Path, changes: dict[str, str], message: str
) -> None:
    env = {**S3_ENV, "ATTENDWISE_DATA_DIR": str(tmp_path), **changes}
    with pytest.raises(ConfigError, match=message):
        create_app(settings=Settings.from_env(env))


def test_the_secret_key_is_kept_out_of_printed_settings() -> None:
    settings = Settings.from_env(S3_ENV)
    settings.validate()
    s3 = storage.S3Settings.from_config(settings.flask_config())
    assert s3.secret_access_key == "do-not-print-this-secret"
    assert "do-not-print-this-secret" not in repr(settings)
    assert "do-not-print-this-secret" not in repr(s3)


# ---- the app on the S3 store -------------------------------------------------------------


@pytest.fixture
def app_on_s3(
    app: Flask, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, s3_settings: storage.S3Settings
) -> Flask:
    """The test app with ATTENDWISE_DOCUMENT_STORE=s3 pointing at this test's bucket."""
    monkeypatch.setitem(app.config, "DATA_DIR", str(tmp_path))
    config = Settings.from_env(
        {
            **S3_ENV,
            "ATTENDWISE_S3_BUCKET": s3_settings.bucket,
            "ATTENDWISE_S3_ENDPOINT_URL": s3_settings.endpoint_url,
            "ATTENDWISE_S3_REGION": s3_settings.region,
            "ATTENDWISE_S3_ADDRESSING_STYLE": "path",
        }
    ).flask_config()
    for name in ("DOCUMENT_STORE", *(key for key in config if key.startswith("S3_"))):
        monkeypatch.setitem(app.config, name, config[name])
    monkeypatch.setitem(app.extensions["attendwise_health"], "checks", {})
    storage.init_app(app)
    return app


def test_a_rendered_letter_is_kept_in_the_bucket_and_downloads_through_the_page(
    app_on_s3: Flask,
    s3_settings: storage.S3Settings,
    db_session: Session,
    client: FlaskClient,
    letter_school: LetterSchool,
    make_user: Callable,
    login: Callable,
    make_school: Callable[..., Organisation],
) -> None:
    school = letter_school.school
    letter_id = _queue(db_session, letter_school)
    with tenancy.tenant_context(school.id):
        letter = db_session.get(Letter, letter_id)
        assert letter is not None
        document = db_session.get(Document, letter.document_id)
        assert document is not None
        sha256 = document.sha256
    s3 = s3_settings.store()
    keys = sorted(item["Key"] for item in s3.client.list_objects_v2(Bucket=s3.bucket)["Contents"])
    assert keys == [f"documents/{school.id}/{sha256}.html", f"documents/{school.id}/{sha256}.pdf"]
    assert "Pupil1" in s3.get_html(school.id, sha256)
    assert not (Path(app_on_s3.config["DATA_DIR"]) / "documents").exists()

    login(make_user(make_school(name="Other School"), "attendance_officer"))
    assert client.get(f"/letters/{letter_id}/pdf").status_code == 404
    assert "letter.download" not in _actions(db_session, school.id)

    login(make_user(school, "attendance_officer"))
    response = client.get(f"/letters/{letter_id}/pdf")
    assert response.status_code == 200
    assert response.data == s3.get_pdf(school.id, sha256)
    assert "letter.download" in _actions(db_session, school.id)

    s3.client.put_object(Bucket=s3.bucket, Key=s3.key(school.id, sha256, "pdf"), Body=b"%PDF-1.7 tampered")
    assert client.get(f"/letters/{letter_id}/pdf").status_code == 404


def test_readyz_reports_the_bucket_and_fails_while_it_is_missing_or_unreachable(
    app_on_s3: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.get_json()
    assert ready.get_json()["checks"]["documents"] == "ok"
    monkeypatch.setitem(app_on_s3.config, "S3_BUCKET", "attendwise-no-such-bucket")
    unready = client.get("/readyz")
    assert unready.status_code == 503
    assert unready.get_json()["checks"]["documents"] == "bucket attendwise-no-such-bucket answered 404"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    monkeypatch.setitem(app_on_s3.config, "S3_ENDPOINT_URL", f"http://127.0.0.1:{closed}")
    down = client.get("/readyz")
    assert down.status_code == 503
    assert down.get_json()["checks"]["documents"] == "unreachable (EndpointConnectionError)"
