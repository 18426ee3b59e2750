"""Settings, read from ATTENDWISE_* environment variables.

The embedded default needs nothing set: a SQLite file under the data directory and jobs
run inline. Production mode (``ATTENDWISE_ENV=production``) refuses a default secret key.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_SECRET_KEY = "attendwise-development-secret-not-for-production"  # noqa: S105 - refused in production


DOCUMENT_STORES = ("file", "s3")
S3_ADDRESSING_STYLES = ("auto", "path", "virtual")
S3_SERVER_SIDE_ENCRYPTION = ("", "AES256")
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_PREFIX = re.compile(r"[A-Za-z0-9._/-]*")


class ConfigError(RuntimeError):
    pass


def _env_bool(value: str | None, default: bool) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


@dataclass
class Settings:
    env: str = "development"
    data_dir: Path = field(default_factory=lambda: Path.cwd() / "instance")
    database_url: str = ""
    migration_database_url: str = ""
    app_db_role: str = "attendwise_app"
    redis_url: str = ""
    jobs_queue_prefix: str = ""
    secret_key: str = DEFAULT_SECRET_KEY
    base_url: str = "http://127.0.0.1:5000"
    mail_server: str = ""
    mail_port: int = 25
    mail_username: str = ""
    mail_password: str = ""
    mail_use_tls: bool = False
    mail_sender: str = "Attendwise <no-reply@attendwise.invalid>"
    encryption_keys: str = ""
    max_upload_bytes: int = 25 * 1024 * 1024
    kept_file_days: int = 30
    csv_upload_hours: int = 24
    document_store: str = "file"
    s3_endpoint_url: str = ""
    s3_bucket: str = ""
    s3_region: str = "us-east-1"
    s3_prefix: str = "documents"
    s3_access_key_id: str = ""
    s3_secret_access_key: str = field(default="", repr=False)
    s3_addressing_style: str = "auto"
    s3_server_side_encryption: str = ""

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if environ is None else environ)

        def get(name: str, default: str = "") -> str:
            return env.get(f"ATTENDWISE_{name}", default)

        data_dir = Path(get("DATA_DIR") or (Path.cwd() / "instance")).resolve()
        database_url = get("DATABASE_URL") or f"sqlite:///{data_dir / 'attendwise.sqlite3'}"
        return cls(
            env=get("ENV", "development"),
            data_dir=data_dir,
            database_url=database_url,
            migration_database_url=get("MIGRATION_DATABASE_URL") or database_url,
            app_db_role=get("APP_DB_ROLE", "attendwise_app"),
            redis_url=get("REDIS_URL"),
            jobs_queue_prefix=get("JOBS_QUEUE_PREFIX"),
            secret_key=get("SECRET_KEY") or DEFAULT_SECRET_KEY,
            base_url=get("BASE_URL", "http://127.0.0.1:5000"),
            mail_server=get("MAIL_SERVER"),
            mail_port=int(get("MAIL_PORT", "25") or 25),
            mail_username=get("MAIL_USERNAME"),
            mail_password=get("MAIL_PASSWORD"),
            mail_use_tls=_env_bool(get("MAIL_USE_TLS"), default=False),
            mail_sender=get("MAIL_SENDER", "Attendwise <no-reply@attendwise.invalid>"),
            encryption_keys=get("ENCRYPTION_KEYS"),
            max_upload_bytes=int(get("MAX_UPLOAD_BYTES", str(25 * 1024 * 1024))),
            kept_file_days=int(get("KEPT_FILE_DAYS") or 30),
            csv_upload_hours=int(get("CSV_UPLOAD_HOURS") or 24),
            document_store=get("DOCUMENT_STORE") or "file",
            s3_endpoint_url=get("S3_ENDPOINT_URL"),
            s3_bucket=get("S3_BUCKET"),
            s3_region=get("S3_REGION") or "us-east-1",
            s3_prefix=get("S3_PREFIX", "documents").strip("/"),
            s3_access_key_id=get("S3_ACCESS_KEY_ID"),
            s3_secret_access_key=get("S3_SECRET_ACCESS_KEY"),
            s3_addressing_style=get("S3_ADDRESSING_STYLE") or "auto",
            s3_server_side_encryption=get("S3_SERVER_SIDE_ENCRYPTION"),
        )

    @property
    def production(self) -> bool:
        return self.env == "production"

    def validate(self) -> None:
        if self.production and self.secret_key == DEFAULT_SECRET_KEY:
            raise ConfigError(
                "ATTENDWISE_SECRET_KEY must be set in production: refusing to start with the default key"
            )
        if self.production and len(self.secret_key) < 32:
            raise ConfigError("ATTENDWISE_SECRET_KEY must be at least 32 characters in production")
        if self.kept_file_days < 1 or self.csv_upload_hours < 1:
            raise ConfigError("ATTENDWISE_KEPT_FILE_DAYS and ATTENDWISE_CSV_UPLOAD_HOURS must be at least 1")
        self._validate_document_store()

    def _validate_document_store(self) -> None:
        if self.document_store not in DOCUMENT_STORES:
            raise ConfigError(
                f"ATTENDWISE_DOCUMENT_STORE must be one of {', '.join(DOCUMENT_STORES)}, "
                f"not {self.document_store!r}"
            )
        if self.document_store != "s3":
            return
        required = {
            "ATTENDWISE_S3_BUCKET": self.s3_bucket,
            "ATTENDWISE_S3_ACCESS_KEY_ID": self.s3_access_key_id,
            "ATTENDWISE_S3_SECRET_ACCESS_KEY": self.s3_secret_access_key,
        }
        missing = [name for name, value in required.items() if not value]
        if missing:
            raise ConfigError(f"the S3 document store needs {', '.join(missing)} to be set")
        if not _BUCKET.fullmatch(self.s3_bucket):
            raise ConfigError(
                f"ATTENDWISE_S3_BUCKET {self.s3_bucket!r} is not a bucket name "
                "(3 to 63 lower-case letters, digits, dots and hyphens)"
            )
        if ".." in self.s3_prefix.split("/") or not _PREFIX.fullmatch(self.s3_prefix):
            raise ConfigError(
                f"ATTENDWISE_S3_PREFIX {self.s3_prefix!r} may hold only letters, digits and - _ . / "
                "and no '..' part"
            )
        if self.s3_addressing_style not in S3_ADDRESSING_STYLES:
            raise ConfigError(
                f"ATTENDWISE_S3_ADDRESSING_STYLE must be one of {', '.join(S3_ADDRESSING_STYLES)}, "
                f"not {self.s3_addressing_style!r}"
            )
        if self.s3_server_side_encryption not in S3_SERVER_SIDE_ENCRYPTION:
            raise ConfigError(
                "ATTENDWISE_S3_SERVER_SIDE_ENCRYPTION must be empty (the bucket's default) or AES256 "
                f"(SSE-S3), not {self.s3_server_side_encryption!r}"
            )

    def flask_config(self) -> dict[str, Any]:
        return {
            "ENV_NAME": self.env,
            "SECRET_KEY": self.secret_key,
            "DATABASE_URL": self.database_url,
            "MIGRATION_DATABASE_URL": self.migration_database_url,
            "APP_DB_ROLE": self.app_db_role,
            "REDIS_URL": self.redis_url,
            "JOBS_QUEUE_PREFIX": self.jobs_queue_prefix,
            "DATA_DIR": str(self.data_dir),
            "BASE_URL": self.base_url,
            "MAIL_SERVER": self.mail_server,
            "MAIL_PORT": self.mail_port,
            "MAIL_USERNAME": self.mail_username,
            "MAIL_PASSWORD": self.mail_password,
            "MAIL_USE_TLS": self.mail_use_tls,
            "MAIL_SENDER": self.mail_sender,
            "ENCRYPTION_KEYS": self.encryption_keys,
            "MAX_CONTENT_LENGTH": self.max_upload_bytes,
            "KEPT_FILE_DAYS": self.kept_file_days,
            "CSV_UPLOAD_HOURS": self.csv_upload_hours,
            "DOCUMENT_STORE": self.document_store,
            "S3_ENDPOINT_URL": self.s3_endpoint_url,
            "S3_BUCKET": self.s3_bucket,
            "S3_REGION": self.s3_region,
            "S3_PREFIX": self.s3_prefix,
            "S3_ACCESS_KEY_ID": self.s3_access_key_id,
            "S3_SECRET_ACCESS_KEY": self.s3_secret_access_key,
            "S3_ADDRESSING_STYLE": self.s3_addressing_style,
            "S3_SERVER_SIDE_ENCRYPTION": self.s3_server_side_encryption,
            "SESSION_COOKIE_SECURE": self.production,
            "SESSION_COOKIE_HTTPONLY": True,
            "SESSION_COOKIE_SAMESITE": "Lax",
            "SESSION_COOKIE_NAME": "__Host-aw_session" if self.production else "aw_session",
            "SESSION_IDLE_MINUTES": 30,
            "SESSION_ABSOLUTE_HOURS": 12,
            "TESTING": False,
        }
