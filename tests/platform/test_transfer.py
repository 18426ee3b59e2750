"""Moving one school: export it, import it into a scratch database, and nothing else moves."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import pytest
from click.testing import CliRunner
from sqlalchemy import func, inspect, select

from attendwise.attendance import services
from attendwise.platform import audit, tenancy, transfer
from attendwise.platform.db import AttendwiseSession, Base, db, make_engine, sync_tenant
from attendwise.platform.transfer_cli import export_organisation
from tests.attendance.records import HALF_TERMS_2026, pupil
from tests.conftest import USE_POSTGRES, create_pg_database, drop_pg_database, migrate, pg_url


def tenant_counts(session, org_id: int) -> dict[str, int]:
    with tenancy.system_context("test counts"):
        sync_tenant(session)
        conn = session.connection()
        counts = {
            t.name: conn.execute(select(func.count()).select_from(t).where(t.c.org_id == org_id)).scalar()
            for t in transfer.tenant_tables(conn)
        }
    return {name: n for name, n in counts.items() if n}


def all_counts(session) -> dict[str, int]:
    with tenancy.system_context("test counts"):
        sync_tenant(session)
        conn = session.connection()
        present = set(inspect(conn).get_table_names())
        return {
            t.name: conn.execute(select(func.count()).select_from(t)).scalar()
            for t in Base.metadata.sorted_tables
            if t.name in present
        }


@pytest.fixture
def scratch(app, tmp_path) -> Iterator[AttendwiseSession]:
    """An empty, migrated database of the same kind as the test database."""
    saved = (db.engine, db.session_factory, db.session)
    name = f"attendwise_transfer_{tmp_path.name[-12:]}".lower().replace("-", "_")
    if USE_POSTGRES:
        create_pg_database(name)
        url = pg_url(name)
    else:
        url = f"sqlite:///{tmp_path / 'scratch.sqlite3'}"
    migrate(url, tmp_path)
    db.engine, db.session_factory, db.session = saved
    engine = make_engine(url)
    session = AttendwiseSession(bind=engine)
    yield session
    session.close()
    engine.dispose()
    if USE_POSTGRES:
        drop_pg_database(name)


@pytest.fixture
def two_schools(db_session, make_school, make_la, make_user):
    la = make_la()
    a, b = make_school(la=la, name="Ash Primary"), make_school(la=la, name="Birch Primary")
    for school, names in ((a, ("Able", "Baker")), (b, ("Cole",))):
        make_user(school, "attendance_officer")
        with tenancy.tenant_context(school.id):
            services.set_school_calendar(db_session, school.id, 2026, HALF_TERMS_2026)
            services.upsert_pupils(
                db_session,
                school.id,
                [pupil(n, surname=s) for n, s in enumerate(names, 1 + 10 * (school is b))],
            )
            db_session.flush()
    return a, b


def test_a_school_moves_with_its_rows_and_audit_chain_and_nothing_else(db_session, two_schools, scratch):
    a, b = two_schools
    before = all_counts(db_session)
    out = io.StringIO()
    exported = transfer.export_organisation(db_session, a.id, out)
    assert all_counts(db_session) == before  # exporting changes nothing
    assert exported.rows["pupils"] == 2
    assert exported.rows["audit_events"] > 0

    report = transfer.import_organisation(scratch, io.StringIO(out.getvalue()))
    scratch.commit()

    assert tenant_counts(scratch, a.id) == tenant_counts(db_session, a.id)
    assert tenant_counts(scratch, b.id) == {}
    assert report.rows["pupils"] == 2
    with tenancy.system_context("test"):
        sync_tenant(scratch)
        assert list(audit.verify(scratch, [a.id])) == []
        names = set(
            scratch.connection().execute(select(Base.metadata.tables["pupils"].c.legal_surname)).scalars()
        )
        orgs = set(
            scratch.connection().execute(select(Base.metadata.tables["organisations"].c.name)).scalars()
        )
    assert names == {"Able", "Baker"}
    assert "Ash Primary" in orgs
    assert "Birch Primary" not in orgs  # the sibling school stays behind; its LA comes along


def test_importing_over_an_existing_school_is_refused_and_writes_nothing(db_session, two_schools, scratch):
    a, _b = two_schools
    out = io.StringIO()
    transfer.export_organisation(db_session, a.id, out)
    transfer.import_organisation(scratch, io.StringIO(out.getvalue()))
    scratch.commit()
    before = all_counts(scratch)
    with pytest.raises(transfer.TransferError, match=f"organisation {a.id} already has rows in"):
        transfer.import_organisation(scratch, io.StringIO(out.getvalue()))
    assert all_counts(scratch) == before


def test_a_tampered_audit_row_fails_the_import_and_nothing_is_written(db_session, two_schools, scratch):
    a, _b = two_schools
    out = io.StringIO()
    transfer.export_organisation(db_session, a.id, out)
    lines = out.getvalue().splitlines()
    for i, line in enumerate(lines):
        item = json.loads(line)
        if item.get("t") == "audit_events":
            item["r"]["actor_label"] = "someone else"
            lines[i] = json.dumps(item)
            break
    before = all_counts(scratch)
    with pytest.raises(transfer.TransferError, match=r"audit chain .* does not verify"):
        transfer.import_organisation(scratch, io.StringIO("\n".join(lines)))
    assert all_counts(scratch) == before


def test_a_file_from_another_schema_revision_is_refused(db_session, two_schools, scratch):
    a, _b = two_schools
    out = io.StringIO()
    transfer.export_organisation(db_session, a.id, out)
    header, *rest = out.getvalue().splitlines()
    old = json.loads(header) | {"schema": ["20200101_0000"]}
    with pytest.raises(transfer.TransferError, match="the file is from schema 20200101_0000"):
        transfer.import_organisation(scratch, io.StringIO("\n".join([json.dumps(old), *rest])))


def test_export_command_names_a_missing_organisation(app, db_session, tmp_path):
    result = CliRunner().invoke(export_organisation, ["--org", "987654", str(tmp_path / "x.jsonl")], obj=None)
    assert result.exit_code == 1
    assert "organisation 987654 does not exist" in result.output
