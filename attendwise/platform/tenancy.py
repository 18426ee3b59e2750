"""The tenant context: which organisation a unit of work acts for.

Every request and every job runs inside exactly one context:

* a :class:`TenantContext` for one organisation (the *write* tenant), with the set of
  organisations it may *read* (a trust leader reads the trust's schools, for example);
* or the explicit :func:`system_context`, used only by platform operations that must see
  every tenant (migrations, the audit verifier, cross-tenant jobs). Entering it is audited
  by the caller passing a reason, which is logged.

With neither, any query on a tenant-owned table raises :class:`TenantContextMissing`
(in the ORM layer) and fails in PostgreSQL row-level security (the second layer).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field

log = logging.getLogger(__name__)


class TenantContextMissing(RuntimeError):
    """A tenant-owned table was queried with no tenant context set."""


class TenantViolation(RuntimeError):
    """A write tried to touch a row outside the current write tenant."""


@dataclass(frozen=True)
class TenantContext:
    org_id: int
    read_org_ids: frozenset[int] = field(default_factory=frozenset)
    system: bool = False
    reason: str = ""

    def __post_init__(self) -> None:
        if not self.system and self.org_id not in self.read_org_ids:
            object.__setattr__(self, "read_org_ids", self.read_org_ids | {self.org_id})

    def can_read(self, org_id: int) -> bool:
        return self.system or org_id in self.read_org_ids

    def can_write(self, org_id: int) -> bool:
        return self.system or org_id == self.org_id


_current: ContextVar[TenantContext | None] = ContextVar("attendwise_tenant", default=None)


def current() -> TenantContext | None:
    return _current.get()


def require() -> TenantContext:
    ctx = _current.get()
    if ctx is None:
        raise TenantContextMissing("no tenant context is set for this unit of work")
    return ctx


@contextlib.contextmanager
def tenant_context(
    org_id: int, read_org_ids: frozenset[int] | set[int] | None = None
) -> Iterator[TenantContext]:
    ctx = TenantContext(org_id=org_id, read_org_ids=frozenset(read_org_ids or ()))
    token = _current.set(ctx)
    try:
        yield ctx
    finally:
        _current.reset(token)


@contextlib.contextmanager
def using(ctx: TenantContext) -> Iterator[TenantContext]:
    """Work in a context captured earlier (e.g. audit events written at commit time)."""
    token = _current.set(ctx)
    try:
        yield ctx
    finally:
        _current.reset(token)


@contextlib.contextmanager
def system_context(reason: str) -> Iterator[TenantContext]:
    """Lift tenant filtering for platform work. The reason is required and logged."""
    if not reason.strip():
        raise ValueError("a system context needs a reason")
    log.info("system context entered", extra={"reason": reason})
    ctx = TenantContext(org_id=0, system=True, reason=reason)
    token = _current.set(ctx)
    try:
        yield ctx
    finally:
        _current.reset(token)


def set_for_request(ctx: TenantContext | None) -> None:
    """Set the context for the rest of a request (the request teardown resets it)."""
    _current.set(ctx)
