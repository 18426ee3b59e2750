"""A school's policy in the database: start from a preset, edit drafts, publish versions.

Runs on SQLite locally and on PostgreSQL (as the application role, row-level security live)
with ATTENDWISE_TEST_DB=postgresql.
"""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from attendwise.platform import tenancy
from attendwise.policies import services
from attendwise.policies.models import PolicyVersion, SchoolPolicy


def test_start_from_a_preset_edit_and_publish(db_session, make_school, make_user) -> None:
    school = make_school()
    champion = make_user(school, "senior_attendance_champion")
    with tenancy.tenant_context(school.id):
        policy = services.create_from_preset(
            db_session, preset="dormston", effective_from=dt.date(2025, 9, 1), author_id=champion.id
        )
        (version,) = policy.versions
        assert (version.number, version.effective_from, version.published) == (1, dt.date(2025, 9, 1), False)
        assert "sessions_missed: {at_least: 13}" in version.yaml_text  # the later table
        assert services.policy_on(policy, dt.date(2025, 10, 1)) is None  # nothing published yet

        edited = version.yaml_text.replace(
            "sessions_missed: {at_least: 13}", "sessions_missed: {at_least: 12}"
        )
        services.save_draft(db_session, policy, edited, author_id=champion.id)
        services.publish(db_session, policy, by_user_id=champion.id)
        in_effect = services.policy_on(policy, dt.date(2025, 10, 1))
        assert in_effect is not None
        assert in_effect.stage(2).enter.when.cmp.at_least == 12

        services.start_new_version(db_session, policy, effective_from=dt.date(2026, 1, 5))
        later = services.draft(policy)
        assert (later.number, later.effective_from) == (2, dt.date(2026, 1, 5))
        services.publish(db_session, policy)
        assert [v.number for v in services.published(policy)] == [1, 2]
        assert services.policy_on(policy, dt.date(2025, 12, 1)).version == 1
        assert services.policy_on(policy, dt.date(2026, 2, 1)).version == 2


def test_an_invalid_draft_is_refused_and_nothing_is_lost(db_session, make_school) -> None:
    school = make_school()
    with tenancy.tenant_context(school.id):
        policy = services.create_from_preset(
            db_session, preset="spetisbury", effective_from=dt.date(2025, 9, 1)
        )
        before = services.draft(policy).yaml_text
        broken = before.replace("after_weeks: 5-8", "after_weeks: soon")
        with pytest.raises(services.PolicyEditError) as refused:
            services.save_draft(db_session, policy, broken)
        (error,) = refused.value.errors
        assert "stage 3: `after_weeks` must be a range like 5-8, got 'soon'" in error.message
        assert services.draft(policy).yaml_text == before
        with pytest.raises(services.PolicyEditError, match="already has a policy"):
            services.create_from_preset(db_session, preset="dothill", effective_from=dt.date(2025, 9, 1))


def test_published_versions_take_effect_in_order(db_session, make_school) -> None:
    school = make_school()
    with tenancy.tenant_context(school.id):
        policy = services.create_from_preset(db_session, preset="dothill", effective_from=dt.date(2025, 9, 1))
        services.publish(db_session, policy)
        services.start_new_version(db_session, policy, effective_from=dt.date(2025, 9, 1))
        with pytest.raises(services.PolicyEditError, match="must take effect after version 1"):
            services.publish(db_session, policy)


def test_another_school_cannot_see_the_policy(db_session, make_school) -> None:
    mine, theirs = make_school(), make_school()
    with tenancy.tenant_context(mine.id):
        services.create_from_preset(db_session, preset="prevention-tiers", effective_from=dt.date(2025, 9, 1))
    db_session.expunge_all()
    with tenancy.tenant_context(theirs.id):
        assert services.get_policy(db_session) is None
        assert db_session.scalars(select(PolicyVersion)).all() == []
    with tenancy.tenant_context(mine.id):
        assert db_session.scalars(select(SchoolPolicy)).one().preset == "prevention-tiers"


def test_evaluating_a_school_from_its_stored_marks_is_idempotent(db_session, make_school) -> None:
    """What the scheduled job does: the school's stored marks, the pupils' previous standing, the
    policy in effect; run twice on the same data, the second run decides nothing new."""
    from attendwise.policies import queries, simulate
    from attendwise.policies.engine import LadderState, MemorySink
    from tests.attendance.test_views_pupils import pupil, seed

    school = make_school()
    seed(
        db_session,
        school,
        [pupil(1, surname="Able"), pupil(2, surname="Baker")],
        {1: ["/"] * 20, 2: ["/"] * 15 + ["N"] * 5},
    )
    policy = simulate.load_preset("spetisbury")[0][0]
    with tenancy.tenant_context(school.id):
        _replay, pupils = queries.school_replay(db_session, school.id, dt.date(2026, 10, 2))
        state = LadderState.initial([p.upn for p in pupils], policy.base_stage)
        sink = MemorySink()
        first = queries.evaluate_school(db_session, school.id, policy, state, dt.date(2026, 10, 2))
        first.publish(sink)
        (move,) = first.transitions
        assert (move.upn, move.from_stage, move.to_stage, move.status) == (pupils[1].upn, 0, 1, "applied")
        again = queries.evaluate_school(db_session, school.id, policy, first.state, dt.date(2026, 10, 2))
        assert again.transitions == []
        before = (len(sink.transitions), len(sink.actions))
        again.publish(sink)
        assert (len(sink.transitions), len(sink.actions)) == before
        assert (
            queries.evaluate_school(db_session, school.id, policy, first.state, dt.date(2026, 10, 3)) is None
        )
