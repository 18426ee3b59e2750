"""Where document bytes live: content-addressed, per organisation.

:class:`DocumentStore` is the interface. :class:`FileStore` is the embedded default
(``<data dir>/documents/<org>/<sha256>.pdf`` with ``<sha256>.html`` beside it);
:class:`S3Store` is the production store, an S3-compatible bucket holding the same two
files under ``<prefix>/<org>/<sha256>.pdf`` and ``.html``. ``ATTENDWISE_DOCUMENT_STORE``
picks one (see ``platform/config.py``). Both raise :class:`DocumentMissing` and
:class:`DocumentDamaged`, so callers never learn which store they talk to.
"""

from __future__ import annotations

import base64
import hashlib
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError
from flask import Flask, current_app

from attendwise.platform import health

_HEX = frozenset("0123456789abcdef")


class DocumentMissing(FileNotFoundError):
    """The store holds no such document for this organisation."""


class DocumentDamaged(ValueError):
    """The stored PDF no longer hashes to the name it was stored under."""


class DocumentStore(Protocol):
    def put(self, org_id: int, pdf: bytes, html: str) -> str:
        """Store both files and return the PDF's SHA-256 (storing the same bytes twice is a no-op)."""

    def get_pdf(self, org_id: int, sha256: str) -> bytes: ...

    def get_html(self, org_id: int, sha256: str) -> str: ...


def _org(org_id: int) -> int:
    if isinstance(org_id, bool) or not isinstance(org_id, int) or org_id <= 0:
        raise ValueError(f"{org_id!r} is not an organisation id")
    return org_id


def _checked(sha256: str) -> str:
    if len(sha256) != 64 or not set(sha256) <= _HEX:
        raise ValueError(f"{sha256!r} is not a SHA-256 hex digest")
    return sha256


def _missing(org_id: int, sha256: str, suffix: str) -> DocumentMissing:
    return DocumentMissing(f"document {sha256}.{suffix} of organisation {org_id} is not in the store")


def _verified(org_id: int, sha256: str, pdf: bytes) -> bytes:
    if hashlib.sha256(pdf).hexdigest() != sha256:
        raise DocumentDamaged(
            f"document {sha256} of organisation {org_id} is damaged: its hash does not match"
        )
    return pdf


class FileStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, org_id: int, sha256: str, suffix: str) -> Path:
        return self.root / str(_org(org_id)) / f"{_checked(sha256)}.{suffix}"

    def _read(self, org_id: int, sha256: str, suffix: str) -> bytes:
        try:
            return self._path(org_id, sha256, suffix).read_bytes()
        except FileNotFoundError:
            raise _missing(org_id, sha256, suffix) from None

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        if path.exists():
            return
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".part-")
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)

    def put(self, org_id: int, pdf: bytes, html: str) -> str:
        sha256 = hashlib.sha256(pdf).hexdigest()
        self._path(org_id, sha256, "pdf").parent.mkdir(parents=True, exist_ok=True)
        self._write(self._path(org_id, sha256, "html"), html.encode("utf-8"))
        self._write(self._path(org_id, sha256, "pdf"), pdf)
        return sha256

    def get_pdf(self, org_id: int, sha256: str) -> bytes:
        return _verified(org_id, sha256, self._read(org_id, sha256, "pdf"))

    def get_html(self, org_id: int, sha256: str) -> str:
        return self._read(org_id, sha256, "html").decode("utf-8")


_NOT_FOUND = frozenset({"404", "NoSuchKey", "NotFound"})
_ALREADY_THERE = frozenset({"PreconditionFailed", "ConditionalRequestConflict"})


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class S3Store:
    """Documents in an S3-compatible bucket, with the FileStore's keys and guarantees.

    ``put`` sends nothing for an object that is already there (HEAD first) and writes with
    ``If-None-Match: *``, so two workers storing the same letter at once cannot replace each
    other's object; the upload carries its SHA-256 for the server to verify. ``get_pdf``
    checks the bytes against the name, like the FileStore.
    """

    def __init__(self, client: Any, bucket: str, prefix: str = "", server_side_encryption: str = "") -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.server_side_encryption = server_side_encryption

    def key(self, org_id: int, sha256: str, suffix: str) -> str:
        name = f"{_org(org_id)}/{_checked(sha256)}.{suffix}"
        return f"{self.prefix}/{name}" if self.prefix else name

    def _exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _code(exc) in _NOT_FOUND:
                return False
            raise
        return True

    def _write(self, key: str, data: bytes, content_type: str) -> None:
        if self._exists(key):
            return
        extra = {"ServerSideEncryption": self.server_side_encryption} if self.server_side_encryption else {}
        try:
            self.client.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=data,
                ContentType=content_type,
                ChecksumSHA256=base64.b64encode(hashlib.sha256(data).digest()).decode("ascii"),
                IfNoneMatch="*",
                **extra,
            )
        except ClientError as exc:
            if _code(exc) not in _ALREADY_THERE:
                raise

    def _read(self, org_id: int, sha256: str, suffix: str) -> bytes:
        key = self.key(org_id, sha256, suffix)
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _code(exc) in _NOT_FOUND:
                raise _missing(org_id, sha256, suffix) from None
            raise
        return bytes(response["Body"].read())

    def put(self, org_id: int, pdf: bytes, html: str) -> str:
        sha256 = hashlib.sha256(pdf).hexdigest()
        self._write(self.key(org_id, sha256, "html"), html.encode("utf-8"), "text/html; charset=utf-8")
        self._write(self.key(org_id, sha256, "pdf"), pdf, "application/pdf")
        return sha256

    def get_pdf(self, org_id: int, sha256: str) -> bytes:
        return _verified(org_id, sha256, self._read(org_id, sha256, "pdf"))

    def get_html(self, org_id: int, sha256: str) -> str:
        return self._read(org_id, sha256, "html").decode("utf-8")

    def check(self) -> tuple[bool, str]:
        """For ``/readyz``: the bucket answers to these credentials."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            return False, f"bucket {self.bucket} answered {_code(exc) or 'an error'}"
        except BotoCoreError as exc:
            return False, f"unreachable ({type(exc).__name__})"
        return True, "ok"


@dataclass(frozen=True)
class S3Settings:
    bucket: str
    access_key_id: str
    secret_access_key: str = field(repr=False)
    endpoint_url: str = ""
    region: str = "us-east-1"
    prefix: str = "documents"
    addressing_style: str = "auto"
    server_side_encryption: str = ""

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> S3Settings:
        """From the Flask config that ``platform.config.Settings`` validated."""
        return cls(
            bucket=config["S3_BUCKET"],
            access_key_id=config["S3_ACCESS_KEY_ID"],
            secret_access_key=config["S3_SECRET_ACCESS_KEY"],
            endpoint_url=config["S3_ENDPOINT_URL"],
            region=config["S3_REGION"],
            prefix=config["S3_PREFIX"],
            addressing_style=config["S3_ADDRESSING_STYLE"],
            server_side_encryption=config["S3_SERVER_SIDE_ENCRYPTION"],
        )

    def store(self, *, timeout: float = 30, attempts: int = 3) -> S3Store:
        import boto3
        from botocore.config import Config

        client = boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint_url or None,
            region_name=self.region,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
            config=Config(
                signature_version="s3v4",
                s3={"addressing_style": self.addressing_style},
                connect_timeout=min(timeout, 5),
                read_timeout=timeout,
                retries={"mode": "standard", "total_max_attempts": attempts},
            ),
        )
        return S3Store(client, self.bucket, self.prefix, self.server_side_encryption)


def _s3(app: Flask, *, probe: bool = False) -> S3Store:
    """One client per app and settings: building a boto3 client costs more than a request."""
    settings = S3Settings.from_config(app.config)
    stores: dict[tuple[S3Settings, bool], S3Store] = app.extensions.setdefault("attendwise_documents", {})
    if (settings, probe) not in stores:
        stores[settings, probe] = (
            settings.store(timeout=health.PROBE_TIMEOUT, attempts=1) if probe else settings.store()
        )
    return stores[settings, probe]


def store() -> DocumentStore:
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    if app.config.get("DOCUMENT_STORE", "file") == "s3":
        return _s3(app)
    return FileStore(Path(app.config["DATA_DIR"]) / "documents")


def check(app: Flask) -> tuple[bool, str]:
    return _s3(app, probe=True).check()


def init_app(app: Flask) -> None:
    """With the S3 store: build its client now and make ``/readyz`` fail while the bucket does
    not answer. Building a client costs ~0.15 s of CPU and opens no connection, so doing it
    here spares every forked RQ work horse that cost on its job."""
    if app.config.get("DOCUMENT_STORE", "file") == "s3":
        _s3(app)
        health.add_readiness_check(app, "documents", check)
