"""Encryption of secrets at rest (TOTP seeds now; integration and SSO credentials later).

Keys come from ``ATTENDWISE_ENCRYPTION_KEYS``: comma-separated Fernet keys, the first
encrypts and every one decrypts, so a key is rotated by putting a new key first, running
:func:`rotate` over the stored values, then removing the old key. Outside production, with
no keys set, one key is derived from the secret key so the embedded demo needs no setup;
production refuses to run without explicit keys.
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from flask import current_app


class CryptoError(RuntimeError):
    """No usable key, or a value that none of the keys can decrypt."""


def generate_key() -> str:
    """A new random key for ATTENDWISE_ENCRYPTION_KEYS."""
    return Fernet.generate_key().decode()


def _derived_key(secret_key: str) -> bytes:
    digest = hashlib.sha256(b"attendwise-encryption-key-v1:" + secret_key.encode()).digest()
    return base64.urlsafe_b64encode(digest)


def keyring(keys: str, secret_key: str, production: bool) -> MultiFernet:
    """Build the keyring from the configured keys (first encrypts) or, outside production, the secret key."""
    parts = [k.strip() for k in keys.split(",") if k.strip()]
    if not parts:
        if production:
            raise CryptoError("ATTENDWISE_ENCRYPTION_KEYS must be set in production")
        return MultiFernet([Fernet(_derived_key(secret_key))])
    fernets = []
    for position, key in enumerate(parts, start=1):
        try:
            fernets.append(Fernet(key.encode()))
        except ValueError:
            raise CryptoError(
                f"ATTENDWISE_ENCRYPTION_KEYS: key {position} is not a valid Fernet key "
                "(32 url-safe base64-encoded bytes)"
            ) from None
    return MultiFernet(fernets)


def _app_keyring() -> MultiFernet:
    config = current_app.config
    cached = current_app.extensions.get("attendwise_keyring")
    source = (config.get("ENCRYPTION_KEYS", ""), config["SECRET_KEY"])
    if cached is not None and cached[0] == source:
        return cached[1]
    ring = keyring(source[0], source[1], production=config.get("ENV_NAME") == "production")
    current_app.extensions["attendwise_keyring"] = (source, ring)
    return ring


def encrypt(plaintext: str) -> str:
    return _app_keyring().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _app_keyring().decrypt(token.encode()).decode()
    except InvalidToken:
        raise CryptoError("the value cannot be decrypted with any configured key") from None


def rotate(token: str) -> str:
    """Re-encrypt ``token`` under the first (current) key."""
    try:
        return _app_keyring().rotate(token.encode()).decode()
    except InvalidToken:
        raise CryptoError("the value cannot be decrypted with any configured key") from None
