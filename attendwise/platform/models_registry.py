"""Import every package's models so SQLAlchemy's metadata is complete (app, Alembic, tests)."""

from __future__ import annotations

import importlib

from attendwise.platform.discovery import modules

# Platform models that live outside a `models` module.
PLATFORM_MODEL_MODULES = (
    "attendwise.platform.sessions",
    "attendwise.platform.audit",
    "attendwise.platform.sso",
    "attendwise.platform.oauth_server",
)


def import_all() -> None:
    for name in PLATFORM_MODEL_MODULES:
        importlib.import_module(name)
    modules("models")
