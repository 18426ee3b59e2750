"""The web shell: Jinja with GOV.UK Frontend components, the base layout, error pages."""

from __future__ import annotations

import secrets
from typing import Any

from flask import Blueprint, Flask, g, render_template
from jinja2 import ChoiceLoader, PackageLoader, PrefixLoader
from werkzeug.exceptions import HTTPException

from attendwise.platform.auth import current_principal

bp = Blueprint(
    "platform", __name__, template_folder="templates", static_folder="static", static_url_path="/static"
)


def _csp_nonce() -> str:
    nonce = g.get("csp_nonce")
    if nonce is None:
        nonce = g.csp_nonce = secrets.token_urlsafe(16)
    return nonce


def error_list(errors: dict[str, str]) -> list[dict[str, str]]:
    """GOV.UK error-summary items linking to each field with a problem."""
    return [{"text": message, "href": f"#{field}"} for field, message in errors.items()]


def _template_globals() -> dict[str, Any]:
    return {"principal": current_principal(), "csp_nonce": _csp_nonce, "error_list": error_list}


def _error(exc: HTTPException) -> Any:
    code = exc.code or 500
    from flask import request

    if request.path.startswith("/api/"):
        return {"code": code, "status": exc.name, "message": exc.description}, code
    template = (
        f"platform/errors/{code}.html"
        if code in (400, 401, 403, 404, 409, 413, 429)
        else "platform/errors/500.html"
    )
    return render_template(template, error=exc), code


def _server_error(exc: Exception) -> Any:
    from flask import current_app, request

    current_app.logger.exception("unhandled error", exc_info=exc)
    if request.path.startswith("/api/"):
        return {
            "code": 500,
            "status": "Internal Server Error",
            "message": "something went wrong on our side",
        }, 500
    return render_template("platform/errors/500.html", error=exc), 500


def init_app(app: Flask) -> None:
    app.jinja_loader = ChoiceLoader(
        [PrefixLoader({"govuk_frontend_jinja": PackageLoader("govuk_frontend_jinja")})]
    )
    app.jinja_env.trim_blocks = True
    app.jinja_env.lstrip_blocks = True
    app.context_processor(_template_globals)
    app.register_blueprint(bp)
    app.register_error_handler(HTTPException, _error)
    if not app.testing:
        app.register_error_handler(Exception, _server_error)
