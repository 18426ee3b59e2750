"""The ORM layer of tenant isolation fails closed."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import delete, select, update

from attendwise.platform import tenancy
from attendwise.platform.db import utcnow
from attendwise.tenants.models import Invitation


def _invite(session, org_id: int, email: str) -> Invitation:
    inv = Invitation(
        email=email,
        role="school_staff",
        token_hash=email.ljust(64, "x")[:64],
        expires_at=utcnow() + dt.timedelta(days=1),
    )
    with tenancy.tenant_context(org_id):
        session.add(inv)
        session.flush()
    return inv


def test_query_without_tenant_context_raises(db_session, make_school):
    school = make_school()
    _invite(db_session, school.id, "a@example.test")
    with pytest.raises(tenancy.TenantContextMissing):
        db_session.scalars(select(Invitation)).all()


def test_reads_see_only_own_tenant(db_session, make_school):
    a, b = make_school(), make_school()
    _invite(db_session, a.id, "a@example.test")
    _invite(db_session, b.id, "b@example.test")
    db_session.expunge_all()
    with tenancy.tenant_context(a.id):
        emails = db_session.scalars(select(Invitation.email)).all()
    assert emails == ["a@example.test"]


def test_bulk_update_and_delete_touch_only_own_tenant(db_session, make_school):
    a, b = make_school(), make_school()
    _invite(db_session, a.id, "a@example.test")
    _invite(db_session, b.id, "b@example.test")
    with tenancy.tenant_context(a.id):
        changed = db_session.execute(update(Invitation).values(role="school_admin")).rowcount
        deleted = db_session.execute(delete(Invitation).where(Invitation.email == "b@example.test")).rowcount
    assert (changed, deleted) == (1, 0)
    with tenancy.system_context("test inspection"):
        remaining = {i.email: i.role for i in db_session.scalars(select(Invitation))}
    assert remaining == {"a@example.test": "school_admin", "b@example.test": "school_staff"}


def test_new_rows_are_stamped_and_foreign_rows_refused(db_session, make_school):
    a, b = make_school(), make_school()
    inv = _invite(db_session, a.id, "a@example.test")
    assert inv.org_id == a.id
    with tenancy.tenant_context(a.id):
        db_session.add(
            Invitation(
                org_id=b.id,
                email="x@example.test",
                role="school_staff",
                token_hash="y" * 64,
                expires_at=utcnow(),
            )
        )
        with pytest.raises(tenancy.TenantViolation):
            db_session.flush()
