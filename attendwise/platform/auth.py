"""Who is asking, for which organisation, with which permissions.

Each request resolves a :class:`Principal` (a signed-in user with their current
membership, or an API token) and from it the tenant context. Views declare what they need
with :func:`login_required` or :func:`require_perm`; everything fails closed: no principal
means 401/redirect to sign-in, a missing permission means 403, and objects of another
organisation are simply not found (404) because queries never see them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from flask import Flask, abort, g, redirect, request, session, url_for
from sqlalchemy import select

from attendwise.platform import tenancy
from attendwise.platform.audit import Actor, set_actor
from attendwise.platform.db import db
from attendwise.platform.sessions import ServerSessionInterface
from attendwise.tenants.models import Membership, Organisation, OrgKind, User
from attendwise.tenants.roles import ROLES, Perm

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class Principal:
    user: User | None
    membership: Membership | None
    organisation: Organisation | None
    perms: frozenset[Perm] = field(default_factory=frozenset)
    api_client: str | None = None  # set for API tokens and OAuth clients
    scopes: frozenset[str] | None = None  # None: the role's permissions apply in full

    @property
    def role(self) -> str | None:
        return self.membership.role if self.membership else None

    def can(self, perm: Perm) -> bool:
        if perm not in self.perms:
            return False
        return self.scopes is None or perm.value in self.scopes


def read_scope(org: Organisation, role_key: str) -> frozenset[int]:
    """The organisations a role in ``org`` may read (its own, plus a trust's schools)."""
    ids = {org.id}
    if ROLES[role_key].reads_member_schools and org.kind == OrgKind.TRUST:
        ids.update(db.session.scalars(select(Organisation.id).where(Organisation.trust_id == org.id)).all())
    return frozenset(ids)


def context_for(org: Organisation, role_key: str) -> tenancy.TenantContext:
    return tenancy.TenantContext(org_id=org.id, read_org_ids=read_scope(org, role_key))


def active_memberships(user: User) -> list[Membership]:
    return [m for m in user.memberships if m.active and m.organisation.active]


def establish(principal: Principal) -> None:
    """Make ``principal`` the request's identity and set its tenant context."""
    g.principal = principal
    if principal.organisation is not None and principal.role is not None:
        tenancy.set_for_request(context_for(principal.organisation, principal.role))
    label = principal.user.email if principal.user else (principal.api_client or "anonymous")
    if principal.api_client and principal.user:
        label = f"{principal.api_client} (API, for {principal.user.email})"
    set_actor(
        Actor(
            user_id=principal.user.id if principal.user else None,
            label=label,
            ip=request.remote_addr,
            request_id=g.get("request_id"),
        )
    )


def _load_session_principal() -> None:
    g.pop("principal", None)
    user_id = session.get("_user_id")
    if not user_id or not session.get("mfa_ok", True):
        return
    user = db.session.get(User, user_id)
    if user is None or not user.active:
        session.destroy()  # type: ignore[attr-defined]
        return
    memberships = active_memberships(user)
    chosen = next((m for m in memberships if m.org_id == session.get("org_id")), None)
    if chosen is None and memberships:
        chosen = memberships[0]
        session["org_id"] = chosen.org_id
    role = ROLES.get(chosen.role) if chosen else None
    establish(
        Principal(
            user=user,
            membership=chosen,
            organisation=chosen.organisation if chosen else None,
            perms=role.perms if role else frozenset(),
        )
    )


def current_principal() -> Principal | None:
    return g.get("principal")


def login_user(user: User, *, mfa_ok: bool = True) -> None:
    session.regenerate()  # type: ignore[attr-defined]
    session["_user_id"] = user.id
    session["mfa_ok"] = mfa_ok
    memberships = active_memberships(user)
    if memberships:
        session["org_id"] = memberships[0].org_id


def logout_user() -> None:
    session.destroy()  # type: ignore[attr-defined]


def _wants_json() -> bool:
    return request.path.startswith("/api/")


def login_required(fn: F) -> F:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        principal = current_principal()
        if principal is None or (principal.user is None and principal.api_client is None):
            if _wants_json():
                abort(401)
            return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
        if principal.organisation is None:
            abort(403)
        return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def _refusal(principal: Principal) -> int:
    """403 for a missing permission, except on a route naming an object for a user outside any
    school: an LA or trust user is not told whether a school's pupil, case or document exists."""
    outside_school = principal.organisation is None or principal.organisation.kind != OrgKind.SCHOOL
    return 404 if outside_school and request.view_args else 403


def require_perm(*perms: Perm) -> Callable[[F], F]:
    def decorator(fn: F) -> F:
        @functools.wraps(fn)
        def inner(*args: Any, **kwargs: Any) -> Any:
            principal = current_principal()
            assert principal is not None
            if not all(principal.can(p) for p in perms):
                abort(_refusal(principal))
            return fn(*args, **kwargs)

        marked = login_required(inner)
        marked.__dict__["required_perms"] = perms
        return marked  # type: ignore[return-value]

    return decorator


def public(fn: F) -> F:
    """Mark a view as open to anonymous users (the route matrix test reads this)."""
    fn.__dict__["public"] = True
    return fn


def init_app(app: Flask) -> None:
    from attendwise.platform import csrf

    app.session_interface = ServerSessionInterface()
    app.before_request(_load_session_principal)
    csrf.init_app(app)
