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
import itertools
import re
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from attendwise.platform.db import Base, utcnow
from attendwise.tenants.models import Membership, Organisation, User
from attendwise.tenants.roles import Perm

# Column values a table needs that cannot be derived from its type (e.g. a CHECK constraint
# that no IN-list states). Keyed by table name, then column name.
ROW_OVERRIDES: dict[str, dict[str, Any]] = {}

_IN_LIST = r"\b{col}\b\s+IN\s*\(\s*'([^']*)'"
_LOWER_BOUND = r"\b{col}\b\s+(?:BETWEEN\s+(-?\d+)|>=?\s*(-?\d+))"


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
                if match:
                    return int(match.group(1) or match.group(2))
        return None

    @staticmethod
    def _check_in_list(table: sa.Table, column: str) -> str | None:
        for constraint in table.constraints:
            if isinstance(constraint, sa.CheckConstraint):
                match = re.search(_IN_LIST.format(col=re.escape(column)), str(constraint.sqltext), re.I)
                if match:
                    return match.group(1)
        return None


# ---- the two tenants of the route matrix --------------------------------------------------


@dataclass
class Side:
    """One tenant's world. Principals act from side A; side B is "another organisation"."""

    name: str
    platform: Organisation
    la: Organisation
    trust: Organisation
    school: Organisation
    canary: str

    @property
    def orgs_by_kind(self) -> dict[str, Organisation]:
        return {"platform": self.platform, "la": self.la, "trust": self.trust, "school": self.school}


@dataclass
class World:
    builder: RowBuilder
    session: Any
    a: Side
    b: Side
    cache: dict[tuple[str, str], Any] = field(default_factory=dict)


Make = Callable[[World, Side], Any]


@dataclass(frozen=True)
class ParamFactory:
    """How to fill one URL parameter.

    ``tenant_object``: the value names an object of an organisation, so the matrix also asks
    for side B's object (expecting 404). ``cross_tenant_perm``: holders of this permission
    reach other organisations' objects by design (a platform admin managing schools).
    """

    make: Make
    tenant_object: bool = True
    cross_tenant_perm: Perm | None = None


def _school_id(_world: World, side: Side) -> int:
    return side.school.id


def _member_user_id(world: World, side: Side) -> int:
    n = world.builder.next_number()
    user = User(email=f"member{n}@{side.name.lower()}.example.test", display_name=f"{side.canary} member")
    world.session.add(user)
    world.session.flush()
    world.session.add(Membership(user_id=user.id, org_id=side.school.id, role="school_staff"))
    world.session.flush()
    return user.id


FACTORIES: dict[str, ParamFactory] = {
    "org_id": ParamFactory(_school_id, cross_tenant_perm=Perm.PLATFORM_ADMIN),
    "user_id": ParamFactory(_member_user_id, cross_tenant_perm=Perm.PLATFORM_ADMIN),
}


def _convention(name: str) -> ParamFactory | None:
    if not name.endswith("_id"):
        return None
    stem = name.removesuffix("_id")
    candidates = [stem, f"{stem}s", f"{stem}es"]
    if stem.endswith("y"):
        candidates.append(f"{stem[:-1]}ies")
    for candidate in candidates:
        table = table_by_name(candidate)
        if table is not None and "org_id" in table.c:
            return ParamFactory(_generic(table))
    return None


def _generic(table: sa.Table) -> Make:
    def make(world: World, side: Side) -> Any:
        row = world.builder.insert(table, side.school.id)
        (pk,) = table.primary_key.columns
        return row[pk.name]

    return make


class UnknownRouteParameter(LookupError):
    pass


def factory_for(name: str, endpoint: str) -> ParamFactory:
    found = FACTORIES.get(name) or _convention(name)
    if found is None:
        raise UnknownRouteParameter(
            f"route {endpoint!r} has URL parameter {name!r} that the route matrix cannot fill: add a "
            f"factory for it to FACTORIES in tests/platform/route_objects.py (it must create the object "
            f"in the organisation of the side it is given)"
        )
    return found


def fill(world: World, side: Side, names: list[str], endpoint: str) -> dict[str, Any]:
    """URL values for ``names``: tenant objects from ``side``, other values from side A."""
    values = {}
    for name in names:
        factory = factory_for(name, endpoint)
        owner = side if factory.tenant_object else world.a
        key = (name, owner.name)
        if key not in world.cache:
            world.cache[key] = factory.make(world, owner)
        values[name] = world.cache[key]
    return values


def canary_names(side: Side) -> list[str]:
    return [side.school.name, side.trust.name]


def organisation_name(side_name: str, kind: str, canary: str) -> str:
    return f"{kind.title()} {canary}"


__all__ = ["FACTORIES", "ROW_OVERRIDES", "Membership", "Organisation", "ParamFactory", "RowBuilder", "Side"]
