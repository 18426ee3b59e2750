"""Objects for generated tests: a generic row builder and the route-parameter registry.

:class:`RowBuilder` inserts a valid row into any table from its columns alone (parents
created on the way, every string value carrying the tenant's canary), so the row-level
security tests and the route matrix pick up tables that other packages add without edits.

:data:`FACTORIES` fills URL parameters for the route matrix. A parameter is resolved by
name: first an explicit entry here, then the ``<thing>_id`` convention (a tenant-owned table
named ``<thing>``/``<things>``/``<thingies>``, built with :class:`RowBuilder`). A route
with a parameter neither can fill FAILS the matrix, telling its author to add a factory
here, so route coverage can never silently drop.
"""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import itertools
import re
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from attendwise.platform import tenancy
from attendwise.platform.db import Base, sync_tenant, utcnow
from attendwise.tenants.models import ApiToken, Invitation, Membership, Organisation, User
from attendwise.tenants.roles import Perm, RoleDef

# Column values a table needs that cannot be derived from its type (e.g. a CHECK constraint
# that no IN-list states). Keyed by table name, then column name.
ROW_OVERRIDES: dict[str, dict[str, Any]] = {
    # The MIS data page reads an upload's columns: it holds a CSV the upload form accepted.
    "csv_uploads": {"kind": "marks", "content": b"UPN,Date,Session,Mark\nA,2025-09-03,AM,/\n"},
}

_IN_LIST = r"\b{col}\b\s+IN\s*\(\s*'([^']*)'"
_LOWER_BOUND = r"\b{col}\b\s+(?:BETWEEN\s+(-?\d+)|(>=?)\s*(-?\d+))"


def tenant_tables() -> list[sa.Table]:
    """Every table of a TenantMixin model (the ones row-level security must cover)."""
    from attendwise.platform import models_registry
    from attendwise.platform.db import TenantMixin

    models_registry.import_all()
    tables = {
        m.local_table.name: m.local_table for m in Base.registry.mappers if issubclass(m.class_, TenantMixin)
    }
    return [tables[name] for name in sorted(tables)]  # type: ignore[misc]


def table_by_name(name: str) -> sa.Table | None:
    return Base.metadata.tables.get(name)


class RowBuilder:
    """Insert rows with Core on ``conn``; the caller sets the tenant (or system) context first."""

    def __init__(self, conn: Connection, canary: str = "canary") -> None:
        self.conn = conn
        self.canary = canary
        self._counter = itertools.count(secrets.randbelow(10**6) * 1000 + 1)

    def next_number(self) -> int:
        return next(self._counter)

    def insert(self, table: sa.Table, org_id: int | None, **overrides: Any) -> dict[str, Any]:
        """Insert one row of ``table`` owned by ``org_id`` (ignored for global tables); return its values."""
        values = self.values_for(table, org_id, overrides)
        result = self.conn.execute(sa.insert(table).values(**values))
        pk = result.inserted_primary_key
        if pk is not None:
            for column, value in zip(table.primary_key.columns, pk, strict=True):
                values[column.name] = value
        return values

    def values_for(self, table: sa.Table, org_id: int | None, overrides: dict[str, Any]) -> dict[str, Any]:
        values: dict[str, Any] = {}
        fixed = {**ROW_OVERRIDES.get(table.name, {}), **overrides}
        auto = table.autoincrement_column
        for column in table.columns:
            if column.name in fixed:
                values[column.name] = fixed[column.name]
            elif column.name == "org_id" and org_id is not None:
                values[column.name] = org_id
            elif column is auto or column.default is not None or column.server_default is not None:
                continue
            elif column.foreign_keys:
                if column.nullable:
                    continue
                values[column.name] = self._parent(column, org_id)
            elif column.nullable:
                continue
            else:
                values[column.name] = self._value(table, column)
        return values

    def _parent(self, column: sa.Column[Any], org_id: int | None) -> Any:
        fk = next(iter(column.foreign_keys))
        target = fk.column
        if target.table.name == "organisations" and org_id is not None:
            return org_id
        parent = self.insert(target.table, org_id if "org_id" in target.table.c else None)  # type: ignore[arg-type]
        return parent[target.name]

    def _value(self, table: sa.Table, column: sa.Column[Any]) -> Any:
        kind = column.type
        n = self.next_number()
        if isinstance(kind, sa.Enum):
            return kind.enums[0]
        if isinstance(kind, sa.Boolean):
            return False
        if isinstance(kind, sa.Integer):
            lower = self._check_lower_bound(table, column.name)
            if lower is not None:
                return lower
            if self._is_unique(table, column):
                return n % (30000 if isinstance(kind, sa.SmallInteger) else 2**31 - 1)
            return 1
        if isinstance(kind, sa.Numeric | sa.Float):
            return decimal.Decimal(1) if kind.asdecimal else 1.0
        if isinstance(kind, sa.DateTime):
            return utcnow()
        if isinstance(kind, sa.Date):
            return dt.date.today()
        if isinstance(kind, sa.Time):
            return dt.time(9, 0)
        if isinstance(kind, sa.Interval):
            return dt.timedelta(days=1)
        if isinstance(kind, sa.Uuid):
            return uuid.uuid4()
        if isinstance(kind, sa.JSON):
            return {}
        if isinstance(kind, sa.LargeBinary):
            return b"x"
        if isinstance(kind, sa.String):
            allowed = self._check_in_list(table, column.name)
            if allowed is not None:
                return allowed
            text = f"{self.canary}{n}"
            length = kind.length
            if length is not None and len(text) > length:
                text = str(n)[-length:]
            return text
        raise AssertionError(
            f"tests/platform/route_objects.py cannot make a value for {table.name}.{column.name} "
            f"({kind!r}): add it to ROW_OVERRIDES"
        )

    @staticmethod
    def _is_unique(table: sa.Table, column: sa.Column[Any]) -> bool:
        if column.unique:
            return True
        groups = [c.columns for c in table.constraints if isinstance(c, sa.UniqueConstraint)]
        groups += [i.columns for i in table.indexes if i.unique]
        return any(column.name in group for group in groups)

    @staticmethod
    def _check_lower_bound(table: sa.Table, column: str) -> int | None:
        for constraint in table.constraints:
            if isinstance(constraint, sa.CheckConstraint):
                match = re.search(_LOWER_BOUND.format(col=re.escape(column)), str(constraint.sqltext), re.I)
                if match and match.group(1) is not None:
                    return int(match.group(1))
                if match:
                    return int(match.group(3)) + (1 if match.group(2) == ">" else 0)
        return None

    @staticmethod
    def _check_in_list(table: sa.Table, column: str) -> str | None:
        for constraint in table.constraints:
            if isinstance(constraint, sa.CheckConstraint):
                match = re.search(_IN_LIST.format(col=re.escape(column)), str(constraint.sqltext), re.I)
                if match:
                    return match.group(1)
        return None


# ---- the tenants of the route matrix ----------------------------------------------------


@dataclass
class Side:
    """One tenant's world. Principals act from side A; B is another LA and trust, and C is a
    sibling school (same LA and trust as A)."""

    name: str
    la: Organisation
    trust: Organisation
    school: Organisation
    canary: str  # in every string the row builder writes for this side's objects
    marker: str  # in this side's organisation names


@dataclass
class World:
    builder: RowBuilder
    session: Session
    sides: dict[str, Side]
    cache: dict[tuple[str, str], Any] = field(default_factory=dict)

    @property
    def a(self) -> Side:
        return self.sides["A"]


Make = Callable[[World, Side], Any]


@dataclass(frozen=True)
class ParamFactory:
    """How to fill one URL parameter.

    ``make(world, side)`` creates the object in ``side``'s organisation and returns the URL
    value. ``tenant_object``: the value names an object of an organisation, so the matrix also
    asks for another organisation's object (expecting 404). ``cross_tenant_perm``: holders of
    this permission reach other organisations' objects by design (a platform admin managing
    schools).
    """

    make: Make
    tenant_object: bool = True
    cross_tenant_perm: Perm | None = None


def _school_id(_world: World, side: Side) -> int:
    return side.school.id


def _person(world: World, side: Side, role: str = "school_staff") -> Membership:
    n = world.builder.next_number()
    user = User(email=f"person{n}@{side.name.lower()}.example.test", display_name=f"{side.canary} person")
    world.session.add(user)
    world.session.flush()
    membership = Membership(user_id=user.id, org_id=side.school.id, role=role)
    world.session.add(membership)
    world.session.flush()
    return membership


def _membership_id(world: World, side: Side) -> int:
    return _person(world, side).id


def _user_id(world: World, side: Side) -> int:
    return _person(world, side).user_id


def _invitation_id(world: World, side: Side) -> int:
    n = world.builder.next_number()
    with tenancy.tenant_context(side.school.id):
        invitation = Invitation(
            email=f"{side.canary}{n}@example.test",
            role="school_staff",
            token_hash=hashlib.sha256(f"invite{n}".encode()).hexdigest(),
            expires_at=utcnow() + dt.timedelta(days=7),
        )
        world.session.add(invitation)
        world.session.flush()
    return invitation.id


def _token_id(world: World, side: Side) -> int:
    """A personal API token of someone in the side's school (never the principal's own)."""
    membership = _person(world, side, "attendance_officer")
    n = world.builder.next_number()
    token = ApiToken(
        user_id=membership.user_id,
        org_id=side.school.id,
        name=f"{side.canary} token",
        token_hash=hashlib.sha256(f"token{n}".encode()).hexdigest(),
        scopes="pupils:read",
        expires_at=utcnow() + dt.timedelta(days=30),
    )
    world.session.add(token)
    world.session.flush()
    return token.id


def _api_client_pk(world: World, side: Side) -> int:
    """An OAuth API client registered by the side's school."""
    from attendwise.platform.oauth_server import ApiClient

    n = world.builder.next_number()
    client = ApiClient(
        org_id=side.school.id,
        name=f"{side.canary} client",
        client_id=f"awc_matrix{n}",
        secret_hash=hashlib.sha256(f"client{n}".encode()).hexdigest(),
        scopes="pupils:read",
    )
    world.session.add(client)
    world.session.flush()
    return client.id


def _row_of(table_name: str) -> Make:
    """A generic row of ``table_name`` (looked up when first needed)."""

    def make(world: World, side: Side) -> Any:
        table = table_by_name(table_name)
        assert table is not None, f"route_objects: no table {table_name!r}"
        return _generic(table)(world, side)

    return make


def _first_number(_world: World, _side: Side) -> int:
    return 1


FACTORIES: dict[str, ParamFactory] = {
    "org_id": ParamFactory(_school_id, cross_tenant_perm=Perm.PLATFORM_ADMIN),
    "user_id": ParamFactory(_user_id, cross_tenant_perm=Perm.PLATFORM_ADMIN),
    "membership_id": ParamFactory(_membership_id),
    "invitation_id": ParamFactory(_invitation_id),
    "token_id": ParamFactory(_token_id),
    "client_pk": ParamFactory(_api_client_pk),
    # A case timeline entry (its case is a different one: the own-side answer may be 404).
    "entry_id": ParamFactory(_row_of("case_timeline")),
    # A policy version number, read within the principal's own school: not an object id.
    "number": ParamFactory(_first_number, tenant_object=False),
    # A school whose aggregate figures are shown (insights): its own staff and its trust read it.
    "school_id": ParamFactory(_school_id),
}


def _convention(name: str) -> ParamFactory | None:
    """``<thing>_id`` names a row of the tenant table ``<thing>``, ``<things>`` or ``<thingies>``,
    or of the one tenant table whose name ends in ``_<things>``."""
    if not name.endswith("_id"):
        return None
    stem = name.removesuffix("_id")
    candidates = [stem, f"{stem}s", f"{stem}es"]
    if stem.endswith("y"):
        candidates.append(f"{stem[:-1]}ies")
    tenant = {t.name: t for t in tenant_tables()}
    for candidate in candidates:
        if candidate in tenant:
            return ParamFactory(_generic(tenant[candidate]))
    for candidate in candidates:  # a package prefix: task_id -> case_tasks, if only one table fits
        prefixed = [name for name in tenant if name.endswith(f"_{candidate}")]
        if len(prefixed) == 1:
            return ParamFactory(_generic(tenant[prefixed[0]]))
    return None


def _generic(table: sa.Table) -> Make:
    def make(world: World, side: Side) -> Any:
        with tenancy.system_context("route matrix: build a test object"):
            sync_tenant(world.session)
            row = RowBuilder(world.session.connection(), canary=side.canary).insert(table, side.school.id)
        (pk,) = table.primary_key.columns
        return row[pk.name]

    return make


# Routes that refuse some roles even though they hold every permission the route declares.
# Endpoint -> (which roles are refused, why). The matrix then expects exactly 403 for them.
FORBIDDEN_BY_DESIGN: dict[str, tuple[Callable[[RoleDef], bool], str]] = {
    "account.disable_mfa": (
        lambda role: role.mfa_required,
        "MFA cannot be turned off by someone whose role requires it",
    ),
}


class UnknownRouteParameter(LookupError):
    pass


def factory_for(name: str, endpoint: str) -> ParamFactory:
    found = FACTORIES.get(name) or _convention(name)
    if found is None:
        raise UnknownRouteParameter(
            f"route {endpoint!r} has URL parameter {name!r} that the route matrix cannot fill: add a "
            f"ParamFactory for it to FACTORIES in tests/platform/route_objects.py (it must create the "
            f"object in the organisation of the side it is given)"
        )
    return found


def fill(world: World, side: Side, names: list[str], endpoint: str) -> dict[str, Any]:
    """URL values for ``names``: tenant objects from ``side``, any other value from side A."""
    values = {}
    for name in names:
        factory = factory_for(name, endpoint)
        owner = side if factory.tenant_object else world.a
        key = (name, owner.name)
        if key not in world.cache:
            world.cache[key] = factory.make(world, owner)
            world.session.commit()
        values[name] = world.cache[key]
    return values
