"""The web shell: Jinja with GOV.UK Frontend components, the base layout, navigation, error pages.

Feature packages add themselves to the main navigation with :func:`register_nav`; each
visitor sees only the items their role allows and whose endpoint exists in this app.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Flask, Response, current_app, g, render_template, request, url_for
from jinja2 import ChoiceLoader, PackageLoader, PrefixLoader
from werkzeug.exceptions import HTTPException
from werkzeug.routing import BuildError

from attendwise.platform.auth import Principal, active_memberships, current_principal
from attendwise.platform.db import db
from attendwise.tenants.models import Membership
from attendwise.tenants.roles import Perm

bp = Blueprint(
    "platform", __name__, template_folder="templates", static_folder="static", static_url_path="/static"
)

ERROR_PAGES = (400, 401, 403, 404, 405, 409, 413, 429)

# ReDoc renders its styles at runtime (styled-components) and builds its search index in a
# blob: worker, so the API docs page alone allows inline styles and blob: workers. Scripts
# stay 'self' only: the page runs no inline script.
API_DOCS_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; worker-src 'self' blob:; frame-ancestors 'none'; "
    "form-action 'self'; base-uri 'none'; object-src 'none'"
)


@dataclass(frozen=True)
class NavItem:
    endpoint: str
    label: str
    perm: Perm | None = None
    order: int = 100


_nav: dict[str, NavItem] = {}


def register_nav(*, endpoint: str, label: str, perm: Perm | None = None, order: int = 100) -> None:
    """Add a link to the main navigation for users whose role has ``perm``.

    ``perm=None`` shows it to every signed-in user with an organisation. Items sort by
    ``order`` then label; registering the same endpoint again replaces the item, so calling
    this from a feature's ``register(app)`` is safe for every app created.
    """
    _nav[endpoint] = NavItem(endpoint=endpoint, label=label, perm=perm, order=order)


def nav_items() -> list[NavItem]:
    return sorted(_nav.values(), key=lambda item: (item.order, item.label))


register_nav(endpoint="tenants.home", label="Home", order=0)


def _visible(item: NavItem, principal: Principal) -> bool:
    return item.perm is None or principal.can(item.perm)


def navigation() -> list[dict[str, Any]]:
    """Items for ``govukServiceNavigation``: allowed for this principal, linked, current marked."""
    principal = current_principal()
    if principal is None or principal.user is None or principal.organisation is None:
        return []
    items: list[dict[str, Any]] = []
    for item in nav_items():
        if not _visible(item, principal):
            continue
        try:
            href = url_for(item.endpoint)
        except BuildError:
            continue
        current = request.endpoint == item.endpoint
        active = not current and href != "/" and request.path.startswith(href.rstrip("/") + "/")
        items.append({"href": href, "text": item.label, "current": current, "active": active})
    return items


def organisation_choices() -> list[Membership]:
    """The signed-in user's active memberships, for the organisation switcher."""
    principal = current_principal()
    if principal is None or principal.user is None or principal.api_client is not None:
        return []
    return sorted(active_memberships(principal.user), key=lambda m: m.organisation.name.lower())


def url_if_exists(endpoint: str, **values: Any) -> str | None:
    """``url_for`` that returns None for an endpoint this app does not have."""
    try:
        return url_for(endpoint, **values)
    except BuildError:
        return None


def _csp_nonce() -> str:
    nonce = g.get("csp_nonce")
    if nonce is None:
        nonce = g.csp_nonce = secrets.token_urlsafe(16)
    return nonce


def error_list(errors: dict[str, str]) -> list[dict[str, str]]:
    """GOV.UK error-summary items linking to each field with a problem."""
    return [{"text": message, "href": f"#{field}"} for field, message in errors.items()]


def format_datetime(value: dt.datetime | dt.date | None, style: str = "datetime") -> str:
    """UK style: ``3 March 2026`` or ``3 March 2026 at 2:05pm`` (London time)."""
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        from zoneinfo import ZoneInfo

        local = value.astimezone(ZoneInfo("Europe/London")) if value.tzinfo else value
        day = f"{local.day} {local:%B %Y}"
        if style == "date":
            return day
        hour = local.hour % 12 or 12
        return f"{day} at {hour}:{local:%M}{'am' if local.hour < 12 else 'pm'}"
    return f"{value.day} {value:%B %Y}"


def _template_globals() -> dict[str, Any]:
    return {
        "principal": current_principal(),
        "csp_nonce": _csp_nonce,
        "error_list": error_list,
        "navigation": navigation,
        "organisation_choices": organisation_choices,
        "url_if_exists": url_if_exists,
    }


def _render_error(code: int, error: BaseException) -> str:
    template = f"platform/errors/{code}.html" if code in ERROR_PAGES else "platform/errors/500.html"
    return render_template(
        template,
        error=error,
        # Only a description our own code gave (abort(400, "...")) is shown, not Werkzeug's default.
        default_description=getattr(type(error), "description", None),
        request_id=g.get("request_id"),
    )


def html_error(exc: HTTPException) -> Any:
    """The error page for an HTTP error (the API's ``Api`` hands non-API paths here)."""
    code = exc.code or 500
    if request.path.startswith("/api/"):
        return {"code": code, "status": exc.name, "message": exc.description}, code
    response = current_app.make_response((_render_error(code, exc), code))
    for name, value in exc.get_headers():
        if name.lower() != "content-type":
            response.headers[name] = value
    return response


def _server_error(exc: Exception) -> Any:
    current_app.logger.exception("unhandled error", exc_info=exc)
    db.session.rollback()
    if request.path.startswith("/api/"):
        return {
            "code": 500,
            "status": "Internal Server Error",
            "message": "something went wrong on our side",
        }, 500
    return _render_error(500, exc), 500


def _api_docs_csp(response: Response) -> Response:
    if request.endpoint == "api-docs.openapi_redoc":
        response.headers["Content-Security-Policy"] = API_DOCS_CSP
    return response


def init_app(app: Flask) -> None:
    app.jinja_loader = ChoiceLoader(
        [PrefixLoader({"govuk_frontend_jinja": PackageLoader("govuk_frontend_jinja")})]
    )
    app.jinja_env.trim_blocks = True
    app.jinja_env.lstrip_blocks = True
    app.jinja_env.filters["aw_datetime"] = format_datetime
    # The app's own /static route is matched before the blueprint's, so point it at our files.
    app.static_folder = bp.static_folder
    app.context_processor(_template_globals)
    app.register_blueprint(bp)
    app.after_request(_api_docs_csp)
    app.register_error_handler(HTTPException, html_error)
    if not app.testing:
        app.register_error_handler(Exception, _server_error)
