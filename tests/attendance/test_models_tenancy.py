"""Pupils and their marks belong to one school: other schools neither read nor write them."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError, ProgrammingError

from attendwise.attendance.models import Pupil, PupilMarkYear
from attendwise.platform import tenancy
from attendwise.platform.db import sync_tenant


def _pupil(session, org_id: int, upn: str, surname: str = "Smith") -> Pupil:
    with tenancy.tenant_context(org_id):
        pupil = Pupil(
            upn=upn,
            legal_forename="Sam",
            legal_surname=surname,
            date_of_birth=dt.date(2016, 3, 4),
            year_group="5",
        )
        session.add(pupil)
        session.flush()
        session.add(PupilMarkYear(pupil_id=pupil.id, academic_year=2026, codes=b"\x01\x01"))
        session.flush()
    return pupil


def test_a_school_sees_only_its_own_pupils_and_marks(db_session, make_school):
    a, b = make_school(), make_school()
    _pupil(db_session, a.id, "A835200026001", "Ashby")
    _pupil(db_session, b.id, "B835200026002", "Brook")
    db_session.expunge_all()
    with tenancy.tenant_context(a.id):
        assert db_session.scalars(select(Pupil.legal_surname)).all() == ["Ashby"]
        assert len(db_session.scalars(select(PupilMarkYear)).all()) == 1


def test_the_same_upn_may_be_on_two_schools_rolls_but_not_twice_on_one(db_session, make_school):
    a, b = make_school(), make_school()
    _pupil(db_session, a.id, "A835200026001")
    _pupil(db_session, b.id, "A835200026001")
    with pytest.raises(IntegrityError), db_session.begin_nested():
        _pupil(db_session, a.id, "A835200026001")


def test_raw_sql_under_another_tenant_finds_nothing_on_postgres(db_session, make_school):
    a, b = make_school(), make_school()
    _pupil(db_session, a.id, "A835200026001")
    if db_session.get_bind().dialect.name != "postgresql":
        pytest.skip("row-level security exists only on PostgreSQL")
    with tenancy.tenant_context(b.id):
        sync_tenant(db_session)
        rows = db_session.connection().execute(text("SELECT count(*) FROM pupil_mark_years")).scalar()
    assert rows == 0


def test_raw_sql_with_no_tenant_fails_on_postgres(db_session, make_school):
    a = make_school()
    _pupil(db_session, a.id, "A835200026001")
    if db_session.get_bind().dialect.name != "postgresql":
        pytest.skip("row-level security exists only on PostgreSQL")
    db_session.commit()
    nested = db_session.begin_nested()
    sync_tenant(db_session)
    with pytest.raises(ProgrammingError, match="no tenant"):
        db_session.connection().execute(text("SELECT count(*) FROM pupils")).scalar()
    nested.rollback()
