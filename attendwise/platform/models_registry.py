"""Import every package's models so SQLAlchemy's metadata is complete (app, Alembic, tests)."""

from __future__ import annotations

import importlib

MODEL_MODULES = (
    "attendwise.tenants.models",
    "attendwise.platform.sessions",
    "attendwise.platform.audit",
)


def import_all() -> None:
    for name in MODEL_MODULES:
        importlib.import_module(name)
