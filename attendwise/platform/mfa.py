"""TOTP multi-factor authentication and recovery codes.

* The TOTP secret is stored encrypted (``platform/crypto.py``); it is generated at enrolment
  and only saved once the user proves their app works by entering a code.
* Each code works once (OWASP ASVS 2.8.4): the time step last used is stored on the user and
  advanced with a conditional UPDATE, so two requests racing with the same code cannot both
  pass. A reused code is refused and logged (ASVS 2.8.5).
* Ten recovery codes of 80 random bits each are shown once and stored as SHA-256 hashes;
  each works once.
* MFA is required for roles marked ``mfa_required`` (LA roles, platform admin) and for
  members of any organisation that turns ``Organisation.mfa_required`` on.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import time

import pyotp
import segno
from sqlalchemy import or_, update

from attendwise.platform import crypto
from attendwise.platform.db import db
from attendwise.tenants.models import User
from attendwise.tenants.roles import ROLES

log = logging.getLogger("attendwise.auth")

ISSUER = "Attendwise"
RECOVERY_CODE_COUNT = 10
_RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/i/l
_RECOVERY_LENGTH = 16  # 31**16 ≈ 2**79


def new_secret() -> str:
    return pyotp.random_base32(32)


def provisioning_uri(secret: str, email: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=ISSUER)


def qr_data_uri(uri: str) -> str:
    """An inline SVG QR code (the CSP allows ``img-src data:``)."""
    return segno.make(uri, error="m").svg_data_uri(scale=5, border=2)


def grouped(secret: str) -> str:
    """The secret in groups of four, for typing into an app by hand."""
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


def _normalise_code(code: str) -> str:
    return "".join(ch for ch in code if ch.isdigit())


def matching_step(secret: str, code: str, at: float | None = None) -> int | None:
    """The time step (30 s) whose code equals ``code``, allowing one step of clock drift either way."""
    code = _normalise_code(code)
    if len(code) != 6:
        return None
    totp = pyotp.TOTP(secret)
    current = int((time.time() if at is None else at) // totp.interval)
    for step in (current, current - 1, current + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def secret_of(user: User) -> str:
    assert user.totp_secret is not None
    return crypto.decrypt(user.totp_secret)


def _consume_step(user: User, step: int) -> bool:
    """Record ``step`` as used; False when it (or a later step) was already used."""
    result = db.session.execute(
        update(User)
        .where(User.id == user.id, or_(User.totp_last_step.is_(None), User.totp_last_step < step))
        .values(totp_last_step=step)
        .execution_options(synchronize_session=False)
    )
    if getattr(result, "rowcount", 0) != 1:
        return False
    user.totp_last_step = step
    return True


def verify_totp(user: User, code: str) -> bool:
    """Check a code from the user's authenticator app and use it up."""
    if not user.totp_enabled or user.totp_secret is None:
        return False
    step = matching_step(secret_of(user), code)
    if step is None:
        return False
    if not _consume_step(user, step):
        log.warning("TOTP code reused", extra={"event": "mfa.totp_reuse", "user_id": user.id})
        return False
    return True


def _hash_recovery(code: str) -> str:
    normalised = "".join(ch for ch in code.lower() if ch.isalnum())
    return hashlib.sha256(normalised.encode()).hexdigest()


def new_recovery_codes(user: User) -> list[str]:
    """Replace the user's recovery codes; the plain codes are returned once, for display."""
    codes = []
    for _ in range(RECOVERY_CODE_COUNT):
        raw = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(_RECOVERY_LENGTH))
        codes.append("-".join(raw[i : i + 4] for i in range(0, _RECOVERY_LENGTH, 4)))
    user.recovery_codes = json.dumps([_hash_recovery(c) for c in codes])
    db.session.flush()
    return codes


def recovery_codes_left(user: User) -> int:
    return len(json.loads(user.recovery_codes or "[]"))


def use_recovery_code(user: User, code: str) -> bool:
    """Accept one unused recovery code and strike it off (a conditional UPDATE, so only once)."""
    stored = user.recovery_codes or "[]"
    hashes = json.loads(stored)
    wanted = _hash_recovery(code)
    match = next((h for h in hashes if hmac.compare_digest(h, wanted)), None)
    if match is None:
        return False
    remaining = json.dumps([h for h in hashes if h != match])
    result = db.session.execute(
        update(User)
        .where(User.id == user.id, User.recovery_codes == stored)
        .values(recovery_codes=remaining)
        .execution_options(synchronize_session=False)
    )
    if getattr(result, "rowcount", 0) != 1:
        return False
    user.recovery_codes = remaining
    log.info("recovery code used", extra={"event": "mfa.recovery_used", "user_id": user.id})
    return True


def enable(user: User, secret: str, confirmed_step: int) -> list[str]:
    """Save a confirmed secret (replacing any earlier one) and issue fresh recovery codes."""
    user.totp_secret = crypto.encrypt(secret)
    user.totp_enabled = True
    user.totp_last_step = confirmed_step
    log.info("MFA enrolled", extra={"event": "mfa.enrolled", "user_id": user.id})
    return new_recovery_codes(user)


def disable(user: User) -> None:
    user.totp_secret = None
    user.totp_enabled = False
    user.totp_last_step = None
    user.recovery_codes = None
    db.session.flush()
    log.info("MFA turned off", extra={"event": "mfa.disabled", "user_id": user.id})


def required_for(user: User) -> bool:
    """MFA is required if any active membership's role or organisation requires it."""
    for membership in user.memberships:
        if not (membership.active and membership.organisation.active):
            continue
        definition = ROLES.get(membership.role)
        if (definition is not None and definition.mfa_required) or membership.organisation.mfa_required:
            return True
    return False
