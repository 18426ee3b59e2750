"""Pages for the signed-in home and organisation administration."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, render_template

from attendwise.platform.auth import login_required

bp = Blueprint("tenants", __name__, template_folder="templates")


@bp.get("/")
@login_required
def home() -> Any:
    return render_template("tenants/home.html")


def register(app: Flask) -> None:
    app.register_blueprint(bp)
