"""The demo: every school runs its seed's preset; Dormston shows both tables as two versions."""

from __future__ import annotations

import datetime as dt

from attendwise.platform import demo, tenancy
from attendwise.policies import services


def test_each_demo_school_has_its_preset_published(db_session) -> None:
    built = demo.build(db_session)
    for school in built.schools:
        with tenancy.tenant_context(school.id):
            policy = services.get_policy(db_session)
            assert policy is not None
            assert policy.preset == built.presets[school.id]
            in_effect = services.policy_on(policy, dt.date(2026, 11, 20))
            assert in_effect is not None
            if policy.preset == "dormston":
                assert [v.number for v in services.published(policy)] == [1, 2]
                assert in_effect.stage(2).enter.when.cmp.at_least == 13
                assert services.policy_on(policy, dt.date(2026, 10, 1)).stage(2).enter.when.cmp.at_least == 15
