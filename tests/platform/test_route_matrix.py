"""The generated route matrix (T01): every route x every role x {own organisation, a sibling
school in the same trust and LA, another organisation, anonymous}.

Routes come from ``app.url_map`` (pages and API), each with the HTTP methods its rule
declares; state-changing methods carry a valid CSRF token. Roles come from
``attendwise/tenants/roles.py``. Expectations:

* anonymous: API 401, pages 401 or a redirect to sign-in;
* a role without the route's declared permissions: 403 (another organisation's object:
  403 or 404); an LA or trust role on a route naming an object: 404, so that an officer
  learns nothing of a pupil, case or document of a school that has not referred them;
* a role with them, own organisation: never 401/403/5xx, never sent back to sign-in;
* a role with them, another organisation's object: 404, never data;
* no response to a side-A principal contains side B's (or, for school roles, the sibling
  school's) canary strings.

Public routes (``attendwise.platform.auth.public``), static files and the OpenAPI document are
exempt. URL parameters are filled by ``tests/platform/route_objects.py``; an unknown
parameter fails the route's test. The number of combinations is written to
``test-results/route_matrix.txt``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy import insert
from werkzeug.test import TestResponse

from attendwise.platform import tenancy
from attendwise.platform.app import create_app
from attendwise.platform.config import Settings
from attendwise.platform.db import utcnow
from attendwise.platform.sessions import WebSession
from attendwise.tenants import services
from attendwise.tenants.models import Membership, Organisation, OrgKind, User
from attendwise.tenants.roles import ROLES, Perm, RoleDef
from tests.platform.route_objects import (
    FORBIDDEN_BY_DESIGN,
    RowBuilder,
    Side,
    UnknownRouteParameter,
    World,
    factory_for,
    fill,
)

REPORT = Path(__file__).resolve().parents[2] / "test-results" / "route_matrix.txt"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
EXEMPT_PREFIXES = ("api-docs.",)


@dataclass(frozen=True)
class RouteCase:
    endpoint: str
    rule: str
    method: str
    arguments: tuple[str, ...]
    perms: tuple[Perm, ...]

    @property
    def is_api(self) -> bool:
        return self.rule.startswith("/api/")

    def __str__(self) -> str:
        return f"{self.method} {self.rule}"


def _view(app: Flask, endpoint: str, method: str) -> Any:
    view = app.view_functions[endpoint]
    view_class = getattr(view, "view_class", None)
    if view_class is not None:
        return getattr(view_class, method.lower())
    return view


def _exempt(app: Flask, endpoint: str, method: str) -> bool:
    if endpoint == "static" or endpoint.endswith(".static") or endpoint.startswith(EXEMPT_PREFIXES):
        return True
    return bool(getattr(_view(app, endpoint, method), "public", False))


def route_cases(app: Flask) -> tuple[list[RouteCase], list[str]]:
    cases, exempt = [], []
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: (r.rule, r.endpoint)):
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            if _exempt(app, rule.endpoint, method):
                exempt.append(f"{method} {rule.rule}")
                continue
            view = _view(app, rule.endpoint, method)
            cases.append(
                RouteCase(
                    rule.endpoint,
                    rule.rule,
                    method,
                    tuple(sorted(rule.arguments)),
                    tuple(getattr(view, "required_perms", ())),
                )
            )
    return cases, exempt


def _collection_app() -> Flask:
    """An app built only to read its URL map at collection time (it opens no connection)."""
    data_dir = Path(tempfile.gettempdir()) / "attendwise-route-matrix"
    return create_app(
        config={"TESTING": True}, settings=Settings.from_env({"ATTENDWISE_DATA_DIR": str(data_dir)})
    )


CASES, EXEMPT = route_cases(_collection_app())


# ---- the world: three sides, a user and a session for every role -----------------------------


@dataclass
class Principal:
    role: RoleDef
    user_id: int
    org_id: int
    cookie: str
    csrf: str


def _session_cookie(app: Flask, session: Any, user_id: int | None, org_id: int | None) -> tuple[str, str]:
    """A server-side session as sign-in would leave it; returns (cookie value, CSRF token)."""
    token = secrets.token_urlsafe(32)
    raw_csrf = secrets.token_hex(20)
    data: dict[str, Any] = {"csrf_token": raw_csrf}
    if user_id is not None:
        data.update({"org_id": org_id, "mfa_ok": True})
    now = utcnow()
    session.execute(
        insert(WebSession).values(
            id=hashlib.sha256(token.encode()).hexdigest(),
            user_id=user_id,
            data=json.dumps(data),
            created_at=now,
            last_seen_at=now,
            expires_at=now + dt.timedelta(hours=1),
        )
    )
    signed = URLSafeTimedSerializer(app.secret_key, salt="wtf-csrf-token").dumps(raw_csrf)  # type: ignore[arg-type]
    return token, signed


def _side(session: Any, name: str, la: Organisation | None = None, trust: Organisation | None = None) -> Side:
    marker = f"Org{name}{secrets.token_hex(4)}"
    canary = f"cnry{name}{secrets.token_hex(4)}"
    codes = {"A": "901", "B": "902"}
    if la is None:
        la = services.create_organisation(session, kind=OrgKind.LA, name=f"LA {marker}", la_code=codes[name])
    if trust is None:
        trust = services.create_organisation(session, kind=OrgKind.TRUST, name=f"Trust {marker}")
    urn = str(900000 + secrets.randbelow(99999))
    school = services.create_organisation(
        session, kind=OrgKind.SCHOOL, name=f"School {marker}", urn=urn, phase="Primary", la=la, trust=trust
    )
    return Side(name=name, la=la, trust=trust, school=school, canary=canary, marker=marker)


@dataclass
class Matrix:
    app: Flask
    world: World
    principals: list[Principal]
    anonymous: tuple[str, str]


@pytest.fixture
def matrix(app, db_session) -> Matrix:
    with tenancy.system_context("route matrix: build the world"):
        a = _side(db_session, "A")
        b = _side(db_session, "B")
        c = _side(db_session, "C", la=a.la, trust=a.trust)
        platform = services.platform_organisation(db_session)
        home = {
            OrgKind.SCHOOL: a.school,
            OrgKind.TRUST: a.trust,
            OrgKind.LA: a.la,
            OrgKind.PLATFORM: platform,
        }
        principals = []
        for role in ROLES.values():
            user = User(
                email=f"{role.key}@matrix.example.test",
                display_name=f"Matrix {role.label}",
                totp_enabled=True,
            )
            db_session.add(user)
            db_session.flush()
            org = home[role.org_kind]
            db_session.add(Membership(user_id=user.id, org_id=org.id, role=role.key))
            db_session.flush()
            cookie, csrf = _session_cookie(app, db_session, user.id, org.id)
            principals.append(Principal(role, user.id, org.id, cookie, csrf))
        anonymous = _session_cookie(app, db_session, None, None)
        db_session.commit()
    world = World(
        builder=RowBuilder(db_session.connection(), canary=a.canary),
        session=db_session,
        sides={"A": a, "B": b, "C": c},
    )
    return Matrix(app, world, principals, anonymous)


# ---- requests and expectations ------------------------------------------------------------------


def _request(m: Matrix, case: RouteCase, url: str, cookie: str | None, csrf: str) -> TestResponse:
    m.world.session.expunge_all()  # each request starts with an empty identity map, as in production
    client = m.app.test_client(use_cookies=False)
    headers = {}
    if cookie:
        headers["Cookie"] = f"{m.app.config['SESSION_COOKIE_NAME']}={cookie}"
    kwargs: dict[str, Any] = {}
    if case.method not in SAFE_METHODS:
        if case.is_api:
            headers["X-CSRFToken"] = csrf
            kwargs["json"] = {}
        else:
            kwargs["data"] = {"csrf_token": csrf}
    return client.open(url, method=case.method, headers=headers, **kwargs)


def _url(m: Matrix, case: RouteCase, side: Side) -> str:
    values = fill(m.world, side, list(case.arguments), case.endpoint)
    adapter = m.app.url_map.bind(m.app.config.get("SERVER_NAME") or "localhost")
    return adapter.build(case.endpoint, values, method=case.method)


def _to_sign_in(resp: TestResponse) -> bool:
    return resp.status_code in (301, 302, 303, 307) and "/auth/" in (resp.headers.get("Location") or "")


def _anonymous_problem(case: RouteCase, resp: TestResponse) -> str | None:
    if case.is_api:
        return (
            None if resp.status_code == 401 else f"anonymous API call gave {resp.status_code}, expected 401"
        )
    if resp.status_code == 401 or (_to_sign_in(resp) and "/auth/login" in resp.headers["Location"]):
        return None
    return f"anonymous page gave {resp.status_code}, expected 401 or a redirect to sign-in"


def _has_perms(principal: Principal, case: RouteCase) -> bool:
    return all(p in principal.role.perms for p in case.perms)


def _cross_tenant_allowed(principal: Principal, case: RouteCase) -> bool:
    for name in case.arguments:
        factory = factory_for(name, case.endpoint)
        if factory.tenant_object and not (
            factory.cross_tenant_perm and factory.cross_tenant_perm in principal.role.perms
        ):
            return False
    return True


def _expect_access(resp: TestResponse) -> str | None:
    if resp.status_code >= 500:
        return f"server error {resp.status_code}"
    if resp.status_code in (401, 403):
        return f"{resp.status_code} although the role holds the route's permissions"
    if _to_sign_in(resp):
        return f"sent to {resp.headers['Location']} although signed in"
    return None


def _problem(
    principal: Principal, case: RouteCase, scope: str, resp: TestResponse, own_status: int | None = None
) -> str | None:
    if resp.status_code >= 500:
        return f"server error {resp.status_code}"
    if not _has_perms(principal, case):
        hidden = principal.role.org_kind != OrgKind.SCHOOL and bool(case.arguments)
        allowed = {404} if hidden else {403} if scope == "own" else {403, 404}
        ok = resp.status_code in allowed
        missing = [p.value for p in case.perms]
        return None if ok else f"{resp.status_code} without {missing}, expected {sorted(allowed)}"
    school_role = principal.role.org_kind == OrgKind.SCHOOL
    foreign = scope == "other" or (scope == "sibling" and school_role)
    refused = FORBIDDEN_BY_DESIGN.get(case.endpoint)
    if refused and refused[0](principal.role) and not foreign:
        return None if resp.status_code == 403 else f"{resp.status_code}, expected 403: {refused[1]}"
    if foreign and not _cross_tenant_allowed(principal, case):
        # A body rejected before any lookup (the same 400/422 as for one's own object) reveals nothing.
        same_rejection = resp.status_code in (400, 422) and resp.status_code == own_status
        return (
            None
            if resp.status_code == 404 or same_rejection
            else f"{resp.status_code} for another organisation's object, expected 404"
        )
    return _expect_access(resp)


def _leaks(principal: Principal, scope_sides: list[Side], resp: TestResponse) -> list[str]:
    body = resp.get_data().decode("utf-8", errors="replace")  # PDFs and images too
    found = []
    for side in scope_sides:
        if side.name == "A":
            continue
        if side.name == "C" and principal.role.org_kind != OrgKind.SCHOOL:
            continue
        if side.canary in body:
            found.append(f"side {side.name}'s data")
        if side.marker in body and Perm.PLATFORM_ADMIN not in principal.role.perms:
            found.append(f"side {side.name}'s organisation names")
    return found


# Anonymous requests are scanned for leaks like a school role's.
ROLELESS = Principal(
    RoleDef("anonymous", "Anonymous", OrgKind.SCHOOL, frozenset()), user_id=0, org_id=0, cookie="", csrf=""
)


# Per process, not per fixture instance: pytest may tear the module fixture down and set it up
# again when other tests run in between, and the report must count every route.
TALLY: Counter[str] = Counter()


@pytest.fixture(scope="module")
def tally() -> Iterator[Counter[str]]:
    counts = TALLY
    yield counts
    if counts:
        REPORT.parent.mkdir(exist_ok=True)
        lines = [
            "Route matrix (tests/platform/test_route_matrix.py)",
            f"routes x methods tested: {counts['routes']}",
            f"public/static/OpenAPI routes exempt: {len(EXEMPT)}",
            f"roles: {len(ROLES)}",
            f"combinations requested: {counts['combinations']}",
            f"  anonymous: {counts['anonymous']}",
            f"  own organisation: {counts['own']}",
            f"  sibling school (same trust and LA): {counts['sibling']}",
            f"  another organisation: {counts['other']}",
            f"combinations with a problem: {counts['problems']}",
        ]
        REPORT.write_text("\n".join(lines) + "\n")


@pytest.mark.xdist_group("route_matrix")
@pytest.mark.parametrize("case", CASES, ids=str)
def test_route(case: RouteCase, matrix: Matrix, tally: Counter[str]):
    problems: list[str] = []
    tally["routes"] += 1

    def record(who: str, scope: str, problem: str | None, leaks: list[str]) -> None:
        tally["combinations"] += 1
        tally[scope] += 1
        if problem or leaks:
            tally["problems"] += 1
            problems.append(
                f"{who} ({scope}): {problem or ''}{' LEAKED ' + ', '.join(leaks) if leaks else ''}"
            )

    sides = matrix.world.sides
    own_url = _url(matrix, case, sides["A"])
    resp = _request(matrix, case, own_url, matrix.anonymous[0], matrix.anonymous[1])
    record("anonymous", "anonymous", _anonymous_problem(case, resp), _leaks(ROLELESS, [sides["B"]], resp))
    has_objects = any(factory_for(n, case.endpoint).tenant_object for n in case.arguments)
    scopes = [("own", sides["A"])] + ([("sibling", sides["C"]), ("other", sides["B"])] if has_objects else [])
    own_status: dict[str, int] = {}
    for scope, side in scopes:
        url = own_url if scope == "own" else _url(matrix, case, side)
        for principal in matrix.principals:
            resp = _request(matrix, case, url, principal.cookie, principal.csrf)
            if scope == "own":
                own_status[principal.role.key] = resp.status_code
            leaks = _leaks(principal, [sides["B"], sides["C"]], resp)
            problem = _problem(principal, case, scope, resp, own_status.get(principal.role.key))
            record(principal.role.key, scope, problem, leaks)
    assert not problems, f"{case}:\n  " + "\n  ".join(problems)


def test_every_route_in_the_running_app_is_in_the_matrix(app):
    cases, exempt = route_cases(app)
    assert {str(c) for c in cases} == {str(c) for c in CASES}
    assert exempt == EXEMPT
    assert len(CASES) > 0


def test_a_route_parameter_without_a_factory_fails_with_instructions():
    with pytest.raises(
        UnknownRouteParameter, match=r"add a ParamFactory for it to FACTORIES in tests/platform"
    ):
        factory_for("frobnicator_token", "feature.frobnicate")
