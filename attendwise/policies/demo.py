"""Demo policies: each demo school runs its seed's preset, published from the first day of its
marks (1 September 2026; last summer term for the pilot school).

Dormston's two threshold tables become two published versions (the launch table from
1 September, the later table from the first day after autumn half-term), so the demo has a
version history and a diff to show.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from attendwise.attendance.demo import marks_from
from attendwise.platform import tenancy
from attendwise.platform.demo import DemoOrgs
from attendwise.policies import document, services, simulate

AFTER_HALF_TERM = dt.date(2026, 11, 2)


def seed(session: Session, demo: DemoOrgs) -> None:
    for school in demo.schools:
        preset = demo.presets[school.id]
        versions = document.load(simulate.preset_text(preset))
        with tenancy.tenant_context(school.id):
            first_day = marks_from(preset)
            policy = services.create_from_preset(session, preset=preset, effective_from=first_day)
            if len(versions) > 1:
                services.save_draft(session, policy, services.set_version(versions[0].text, 1, first_day))
            services.publish(session, policy)
            for number, later in enumerate(versions[1:], start=2):
                start = AFTER_HALF_TERM + dt.timedelta(weeks=number - 2)
                services.save_draft(session, policy, services.set_version(later.text, number, start))
                services.publish(session, policy)
