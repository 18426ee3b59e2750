"""Demo insights: every demo school's figures, refreshed as of the last day of demo marks."""

from __future__ import annotations

from sqlalchemy.orm import Session

from attendwise.attendance.demo import MARKS_TO
from attendwise.insights import services
from attendwise.platform.demo import DemoOrgs


def seed(session: Session, demo: DemoOrgs) -> None:
    for school in demo.schools:
        services.refresh(session, school.id, on=MARKS_TO)
