"""``/api/v1/account``: who the caller is, and their personal API tokens (never the secrets)."""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask_smorest import abort
from marshmallow import Schema, fields
from sqlalchemy import select

from attendwise.platform import auth
from attendwise.platform.api import Blueprint, api
from attendwise.platform.db import db
from attendwise.tenants.models import ApiToken
from attendwise.tenants.roles import Perm

blp = Blueprint("account_api", __name__, url_prefix="/api/v1/account", description="The caller's account")


class MeSchema(Schema):
    user_id = fields.Integer(dump_only=True)
    email = fields.String(dump_only=True)
    display_name = fields.String(dump_only=True)
    organisation_id = fields.Integer(dump_only=True)
    organisation_name = fields.String(dump_only=True)
    role = fields.String(dump_only=True)
    permissions = fields.List(
        fields.String(), dump_only=True, metadata={"description": "Effective permissions"}
    )
    via_token = fields.Boolean(dump_only=True)


class ApiTokenSchema(Schema):
    id = fields.Integer(dump_only=True)
    name = fields.String(dump_only=True)
    organisation_id = fields.Integer(dump_only=True, attribute="org_id")
    scopes = fields.Function(lambda t: t.scopes.split(), dump_only=True)
    created_at = fields.DateTime(dump_only=True)
    expires_at = fields.DateTime(dump_only=True)
    last_used_at = fields.DateTime(dump_only=True)
    revoked_at = fields.DateTime(dump_only=True)


@blp.route("/me", methods=["GET"])
@blp.requires()
@blp.response(200, MeSchema)
def me() -> Any:
    """The signed-in user (or token owner), their current organisation and effective permissions."""
    principal = auth.current_principal()
    assert principal is not None
    if principal.user is None:
        abort(403, message="an API client is not a person: it has no user account")
    assert principal.user is not None
    assert principal.organisation is not None
    return {
        "user_id": principal.user.id,
        "email": principal.user.email,
        "display_name": principal.user.display_name,
        "organisation_id": principal.organisation.id,
        "organisation_name": principal.organisation.name,
        "role": principal.role,
        "permissions": sorted(p.value for p in principal.perms if principal.can(p)),
        "via_token": principal.api_client is not None,
    }


@blp.route("/tokens", methods=["GET"])
@blp.requires(Perm.API_TOKENS)
@blp.response(200, ApiTokenSchema(many=True))
def tokens() -> Any:
    """The caller's personal API tokens, newest first."""
    principal = auth.current_principal()
    assert principal is not None
    assert principal.user is not None
    return db.session.scalars(
        select(ApiToken).where(ApiToken.user_id == principal.user.id).order_by(ApiToken.created_at.desc())
    ).all()


def register(app: Flask) -> None:
    api.register_blueprint(blp)
