"""Demo: one school shows how it would connect its MIS through Wonde.

Spetisbury has an example Wonde connection, switched off: the settings page shows the school's
Wonde ID, that a token was saved (never the token) and the daily sync time, and the MIS data
page shows the connection beside the files the demo imported. The token is a placeholder, so
"Sync now" records a failed run (Wonde refuses the token, or cannot be reached from the demo),
as a school with a wrong token would see it, with its reason and a Retry button.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from attendwise.integrations import connectors
from attendwise.platform import tenancy
from attendwise.platform.demo import DemoOrgs

EXAMPLE_WONDE_SCHOOL = "A1930499544"  # Wonde's own test school id, from its public fixtures
EXAMPLE_TOKEN = "demo-placeholder-token-not-for-wonde"  # noqa: S105 - a placeholder, not a secret


def seed(session: Session, demo: DemoOrgs) -> None:
    school = demo.schools[0]
    with tenancy.tenant_context(school.id):
        connectors.save_settings(
            session,
            school.id,
            connectors.SettingsForm(
                connector="wonde",
                mis_school_id=EXAMPLE_WONDE_SCHOOL,
                token=EXAMPLE_TOKEN,
                sync_at="18:00",
                enabled=False,
            ),
        )
