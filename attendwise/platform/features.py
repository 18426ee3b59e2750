"""Register each feature package's page views and API resources with the app."""

from __future__ import annotations

from flask import Flask

from attendwise.platform.discovery import modules


def register_all(app: Flask) -> None:
    for module in (*modules("views"), *modules("api")):
        register = getattr(module, "register", None)
        if register is not None:
            register(app)
