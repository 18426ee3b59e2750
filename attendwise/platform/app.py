"""The application factory, built from small named steps. Nothing here runs at import."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from flask import Flask

from attendwise.platform.config import Settings

log = logging.getLogger(__name__)

Step = Callable[[Flask], None]


def load_config(app: Flask, settings: Settings, overrides: dict[str, Any] | None) -> None:
    settings.validate()
    app.config.update(settings.flask_config())
    if overrides:
        app.config.update(overrides)
    app.extensions["attendwise_settings"] = settings


def init_logging(_app: Flask) -> None:
    from attendwise.platform import logging_setup

    logging_setup.configure(default_level="WARNING")


def init_observability(app: Flask) -> None:
    from attendwise.platform import health

    health.register(app)


def init_database(app: Flask) -> None:
    from attendwise.platform.db import db

    db.init_app(app)


def init_models(_app: Flask) -> None:
    """Import every feature package's models so the metadata and relationships are complete."""
    from attendwise.platform import models_registry

    models_registry.import_all()


def init_request_lifecycle(app: Flask) -> None:
    from attendwise.platform import web_request

    web_request.init_app(app)


def init_auth(app: Flask) -> None:
    from attendwise.platform.auth import init_app

    init_app(app)


def init_web(app: Flask) -> None:
    from attendwise.platform.web import init_app

    init_app(app)


def init_api(app: Flask) -> None:
    from attendwise.platform.api import init_app

    init_app(app)


def init_jobs(app: Flask) -> None:
    from attendwise.platform.jobs import init_app

    init_app(app)


def register_features(app: Flask) -> None:
    from attendwise.platform.features import register_all

    register_all(app)


def init_cli(app: Flask) -> None:
    from attendwise.platform.cli import register_cli

    register_cli(app)


STEPS: tuple[Step, ...] = (
    init_logging,
    init_database,
    init_models,
    init_request_lifecycle,
    init_observability,
    init_auth,
    init_web,
    init_api,
    init_jobs,
    register_features,
    init_cli,
)


def create_app(config: dict[str, Any] | None = None, settings: Settings | None = None) -> Flask:
    app = Flask("attendwise", instance_relative_config=False)
    load_config(app, settings or Settings.from_env(), config)
    for step in STEPS:
        step(app)
    return app
