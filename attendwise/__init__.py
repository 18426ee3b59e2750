"""Attendwise: school attendance escalation for schools, trusts and local authorities.

``flask --app attendwise`` finds :func:`create_app` here. Importing this package does no I/O.
"""

from attendwise.platform.app import create_app

__all__ = ["create_app"]
