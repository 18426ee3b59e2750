"""Where document bytes live: content-addressed, per organisation.

:class:`DocumentStore` is the interface; :class:`FileStore` is the embedded default
(``<data dir>/documents/<org>/<sha256>.pdf`` with ``<sha256>.html`` beside it). An
S3-compatible store implements the same three methods with the same keys.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Protocol

from flask import current_app

_HEX = frozenset("0123456789abcdef")


class DocumentStore(Protocol):
    def put(self, org_id: int, pdf: bytes, html: str) -> str:
        """Store both files and return the PDF's SHA-256 (storing the same bytes twice is a no-op)."""

    def get_pdf(self, org_id: int, sha256: str) -> bytes: ...

    def get_html(self, org_id: int, sha256: str) -> str: ...


def _checked(sha256: str) -> str:
    if len(sha256) != 64 or not set(sha256) <= _HEX:
        raise ValueError(f"{sha256!r} is not a SHA-256 hex digest")
    return sha256


class FileStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _dir(self, org_id: int) -> Path:
        return self.root / str(int(org_id))

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
        folder = self._dir(org_id)
        folder.mkdir(parents=True, exist_ok=True)
        self._write(folder / f"{sha256}.html", html.encode("utf-8"))
        self._write(folder / f"{sha256}.pdf", pdf)
        return sha256

    def get_pdf(self, org_id: int, sha256: str) -> bytes:
        data = (self._dir(org_id) / f"{_checked(sha256)}.pdf").read_bytes()
        if hashlib.sha256(data).hexdigest() != sha256:
            raise ValueError(
                f"document {sha256} of organisation {org_id} is damaged: its hash does not match"
            )
        return data

    def get_html(self, org_id: int, sha256: str) -> str:
        return (self._dir(org_id) / f"{_checked(sha256)}.html").read_text(encoding="utf-8")


def store() -> DocumentStore:
    return FileStore(Path(current_app.config["DATA_DIR"]) / "documents")
