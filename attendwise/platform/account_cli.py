"""``attendwise keys``: make encryption keys and re-encrypt stored secrets under the newest one.

Rotating a key: put a new key first in ATTENDWISE_ENCRYPTION_KEYS (keeping the old one after
it), restart, run ``attendwise keys rotate``, then remove the old key.
"""

from __future__ import annotations

import click
from flask.cli import AppGroup, with_appcontext
from sqlalchemy import select

from attendwise.platform import crypto
from attendwise.platform.db import db
from attendwise.tenants.models import User

keys_cli = AppGroup("keys", help="Encryption keys for secrets stored in the database.")


@keys_cli.command("generate")
def generate() -> None:
    """Print a new key for ATTENDWISE_ENCRYPTION_KEYS."""
    click.echo(crypto.generate_key())


@keys_cli.command("rotate")
@with_appcontext
def rotate() -> None:
    """Re-encrypt every stored secret under the first configured key."""
    session = db.session()
    users = session.scalars(select(User).where(User.totp_secret.is_not(None))).all()
    failed = []
    for user in users:
        assert user.totp_secret is not None
        try:
            user.totp_secret = crypto.rotate(user.totp_secret)
        except crypto.CryptoError:
            failed.append(user.id)
    if failed:
        session.rollback()
        raise click.ClickException(
            f"no configured key decrypts the TOTP secret of user(s) {', '.join(map(str, failed))}; "
            "nothing was changed: add the key they were encrypted with and run this again"
        )
    session.commit()
    click.echo(f"re-encrypted {len(users)} TOTP secret(s) under the current key")
