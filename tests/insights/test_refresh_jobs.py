"""The refresh as a command and as a job: figures replaced, the refresh audited."""

from __future__ import annotations

from sqlalchemy import delete, func, select

from attendwise.insights import jobs
from attendwise.insights.models import SchoolFigures
from attendwise.platform import tenancy
from attendwise.platform.audit import AuditEvent
from tests.insights.conftest import ON


def _figures(db_session, school_id):
    with tenancy.tenant_context(school_id):
        return db_session.scalar(select(func.count()).select_from(SchoolFigures))


def test_the_command_refreshes_one_school_by_urn(app, db_session, world):
    with tenancy.tenant_context(world.solo.id):
        db_session.execute(delete(SchoolFigures))
    assert _figures(db_session, world.solo.id) == 0
    result = app.test_cli_runner().invoke(
        args=["insights", "refresh", "--school", world.solo.urn, "--on", ON.isoformat()]
    )
    assert result.exit_code == 0, result.output
    assert "Solo Secondary: 20 pupils" in result.output
    assert "refreshed 1 school(s)" in result.output
    assert _figures(db_session, world.solo.id) > 20


def test_the_command_names_an_unknown_school(app, db_session):
    result = app.test_cli_runner().invoke(args=["insights", "refresh", "--school", "000000"])
    assert result.exit_code != 0
    assert "--school: no school with URN 000000" in result.output


def test_the_job_refreshes_and_the_refresh_is_audited(db_session, world):
    with tenancy.tenant_context(world.big.id):
        outcome = jobs.refresh_school(world.big.id, ON.isoformat())
        actions = db_session.scalars(
            select(AuditEvent.action).where(
                AuditEvent.org_id == world.big.id, AuditEvent.action == "insights.refresh"
            )
        ).all()
    assert outcome["school"] == world.big.id
    assert outcome["figure_rows"] == 0  # nothing changed since the world's refresh: every part kept
    assert "figures:ytd" in outcome["kept"]
    assert len(actions) == 2  # the world's refresh and this one
