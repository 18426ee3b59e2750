"""Demo data: the demo LA's referral kinds and code of conduct, with its team mailbox."""

from __future__ import annotations

from sqlalchemy.orm import Session

from attendwise.platform import tenancy
from attendwise.platform.demo import DemoOrgs
from attendwise.referrals import services


def seed(session: Session, demo: DemoOrgs) -> None:
    with tenancy.tenant_context(demo.la.id):
        profile = services.ensure_la_setup(session, demo.la.id)
        profile.team_email = "attendance.team@dorset.test"
        session.flush()
