"""The enqueue façade: after commit only, tenant and actor restored, inline and on real Redis."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from rq import Queue
from sqlalchemy import select

from attendwise.platform import jobs, tenancy
from attendwise.platform.audit import Actor, AuditEvent, current_actor, set_actor
from attendwise.platform.db import db, utcnow
from attendwise.tenants.models import Invitation

CALLS: list[dict] = []


def record_call(note: str) -> None:
    ctx = tenancy.current()
    CALLS.append(
        {
            "note": note,
            "org_id": None if ctx is None or ctx.system else ctx.org_id,
            "system": bool(ctx and ctx.system),
            "actor": current_actor().label,
        }
    )


def invite_in_job(email: str) -> None:
    db.session.add(
        Invitation(
            email=email,
            role="school_staff",
            token_hash=uuid.uuid4().hex * 2,
            expires_at=utcnow() + dt.timedelta(days=1),
        )
    )
    db.session.flush()


def count_visible_invitations(note: str) -> None:
    CALLS.append({"note": note, "count": len(db.session.scalars(select(Invitation)).all())})


def failing_job() -> None:
    invite_in_job("never@example.test")
    raise RuntimeError("the job broke")


@pytest.fixture(autouse=True)
def _clear_calls():
    CALLS.clear()
    set_actor(Actor(user_id=None, label="admin@example.test"))
    yield
    CALLS.clear()


def test_job_runs_only_after_commit_with_tenant_and_actor(db_session, make_school):
    school = make_school()
    with tenancy.tenant_context(school.id):
        jobs.enqueue(record_call, "hello", org_id=school.id)
        assert CALLS == []
        db_session.commit()
    assert [
        {
            "note": "hello",
            "org_id": school.id,
            "system": False,
            "actor": "job record_call for admin@example.test",
        }
    ] == CALLS
    assert current_actor().label == "admin@example.test", "the caller's actor must be untouched"


def test_rolled_back_job_never_runs_even_after_a_later_commit(db_session, make_school):
    school = make_school()
    db_session.commit()
    with tenancy.tenant_context(school.id):
        jobs.enqueue(record_call, "doomed", org_id=school.id)
        db_session.rollback()
        jobs.enqueue(record_call, "kept", org_id=school.id)
        db_session.commit()
    assert [c["note"] for c in CALLS] == ["kept"]


def test_savepoint_rollback_drops_only_its_own_jobs(db_session, make_school):
    school = make_school()
    with tenancy.tenant_context(school.id):
        jobs.enqueue(record_call, "outer", org_id=school.id)
        savepoint = db_session.begin_nested()
        jobs.enqueue(record_call, "inside rolled back savepoint", org_id=school.id)
        savepoint.rollback()
        with db_session.begin_nested():
            jobs.enqueue(record_call, "inside released savepoint", org_id=school.id)
        assert CALLS == [], "releasing a savepoint is not a commit"
        db_session.commit()
    assert [c["note"] for c in CALLS] == ["outer", "inside released savepoint"]


def test_system_job_runs_in_system_context(db_session):
    jobs.enqueue(record_call, "sys", org_id=None)
    db_session.commit()
    assert CALLS[0]["system"] is True


def test_job_writes_are_committed_scoped_and_audited_with_the_job_actor(db_session, make_school):
    a, b = make_school(), make_school()
    with tenancy.tenant_context(a.id):
        jobs.enqueue(invite_in_job, "new.teacher@example.test", org_id=a.id)
        jobs.enqueue(count_visible_invitations, "a", org_id=a.id)
    with tenancy.tenant_context(b.id):
        jobs.enqueue(count_visible_invitations, "b", org_id=b.id)
    db_session.commit()
    assert [c["count"] for c in CALLS] == [1, 0], "a job sees only its own organisation's rows"
    with tenancy.tenant_context(a.id):
        invitation = db_session.scalars(select(Invitation)).one()
        event = db_session.scalars(
            select(AuditEvent).where(AuditEvent.object_type == "invitations", AuditEvent.action == "create")
        ).one()
    assert invitation.email == "new.teacher@example.test"
    assert invitation.org_id == a.id
    assert event.actor_label == "job invite_in_job for admin@example.test"


def test_failing_inline_job_rolls_back_its_work_and_raises(db_session, make_school):
    school = make_school()
    jobs.enqueue(failing_job, org_id=school.id)
    with pytest.raises(RuntimeError, match="the job broke"):
        db_session.commit()
    with tenancy.tenant_context(school.id):
        assert db_session.scalars(select(Invitation)).all() == []


def test_orm_objects_and_foreign_tenants_are_refused(db_session, make_school):
    a, b = make_school(), make_school()
    with pytest.raises(TypeError, match="pass the id of Organisation"):
        jobs.enqueue(record_call, a, org_id=a.id)
    with pytest.raises(TypeError, match=r"job keyword arguments\['ids'\]\[1\]"):
        jobs.enqueue(record_call, "x", org_id=a.id, ids=[1, b])
    with tenancy.tenant_context(a.id), pytest.raises(tenancy.TenantViolation):
        jobs.enqueue(record_call, "x", org_id=b.id)
    with pytest.raises(ValueError, match="unknown queue 'bulk'"):
        jobs.enqueue(record_call, "x", org_id=a.id, queue="bulk")
    with pytest.raises(ValueError, match="only letters, digits"):
        jobs.enqueue(record_call, "x", org_id=a.id, job_id="letter:1:1")
    with pytest.raises(ValueError, match="not a module-level function"):
        jobs.enqueue(lambda: None, org_id=a.id)
    db_session.commit()
    assert CALLS == []


def test_periodic_declarations_are_checked():
    names = {p.name for p in jobs.periodic_jobs()}
    assert "platform.purge_expired_sessions" in names
    with pytest.raises(ValueError, match="exactly one of cron= or interval="):
        jobs.Periodic(name="x", func="a.b", cron="0 3 * * *", interval=60)
    with pytest.raises(ValueError, match="unknown queue"):
        jobs.Periodic(name="x", func="a.b", queue="nope", interval=60)


def test_with_redis_the_job_is_queued_after_commit_not_before(db_session, make_school, redis_jobs):
    conn, prefix = redis_jobs
    school = make_school()
    letters = Queue(prefix + "letters", connection=conn)
    job_id = f"letter-{uuid.uuid4().hex}-1"
    with tenancy.tenant_context(school.id):
        jobs.enqueue(record_call, "letter", org_id=school.id, queue="letters", job_id=job_id)
        assert letters.count == 0
        db_session.commit()
    rq_id = f"{prefix[:-1]}_{job_id}"  # RQ's ids are global: the deployment's prefix keeps them apart
    assert letters.job_ids == [rq_id]
    job = letters.fetch_job(rq_id)
    assert job is not None
    assert job.func_name == "attendwise.platform.jobs.run_job"
    func, org_id, actor, args, _kwargs = job.args
    assert (func, org_id, args) == ("tests.platform.test_jobs.record_call", school.id, ("letter",))
    assert actor["label"] == "admin@example.test"
    assert CALLS == [], "nothing runs in the web process when Redis is configured"


def test_with_redis_a_rolled_back_job_is_never_queued(db_session, make_school, redis_jobs):
    conn, prefix = redis_jobs
    school = make_school()
    with tenancy.tenant_context(school.id):
        jobs.enqueue(record_call, "x", org_id=school.id)
        db_session.rollback()
    assert Queue(prefix + "default", connection=conn).count == 0


def test_purge_expired_sessions_removes_only_sessions_that_ended_a_day_ago(db_session):
    from attendwise.platform.sessions import WebSession

    now = utcnow()
    rows = {
        "live": WebSession(id="a" * 64, expires_at=now + dt.timedelta(hours=1)),
        "just-expired": WebSession(id="b" * 64, expires_at=now - dt.timedelta(hours=2)),
        "long-expired": WebSession(id="c" * 64, expires_at=now - dt.timedelta(days=2)),
        "long-revoked": WebSession(
            id="d" * 64, expires_at=now + dt.timedelta(hours=1), revoked_at=now - dt.timedelta(days=3)
        ),
    }
    db_session.add_all(rows.values())
    db_session.commit()
    jobs.enqueue(jobs.purge_expired_sessions, org_id=None)
    db_session.commit()
    left = set(
        db_session.scalars(select(WebSession.id).where(WebSession.id.in_([r.id for r in rows.values()])))
    )
    assert left == {"a" * 64, "b" * 64}


def nightly(note: str) -> None:
    jobs.fan_out(record_call, note, kinds=("school",))


def test_a_system_job_fans_out_one_tenant_job_per_active_school(db_session, make_la, make_school):
    la = make_la()
    a, b, closed = make_school(la=la), make_school(la=la), make_school(la=la)
    closed.active = False
    db_session.commit()
    jobs.enqueue(nightly, "evaluate", org_id=None)
    db_session.commit()
    per_school = {c["org_id"] for c in CALLS if c["note"] == "evaluate"}
    assert {a.id, b.id} <= per_school
    assert la.id not in per_school
    assert closed.id not in per_school
    assert all(not c["system"] for c in CALLS)
    with pytest.raises(tenancy.TenantViolation), tenancy.tenant_context(a.id):
        jobs.fan_out(record_call, "x")
