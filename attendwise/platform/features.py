"""Register each feature package's page views and API resources with the app."""

from __future__ import annotations

import importlib

from flask import Flask

# Each module exposes `register(app)`. Order only affects the navigation order.
FEATURE_MODULES = ("attendwise.platform.auth_views", "attendwise.tenants.views")


def register_all(app: Flask) -> None:
    for name in FEATURE_MODULES:
        importlib.import_module(name).register(app)
