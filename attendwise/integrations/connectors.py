"""A school's MIS API connector: its settings, its daily sync, "sync now" and retry.

* **Settings.** One :class:`~attendwise.integrations.models.ConnectorSettings` row per school:
  the connector (Wonde), the school's id in it, the bearer token, the time of day to sync (the
  school's local time) and whether scheduled syncs are on. The token is encrypted with the
  deployment's keys (``platform/crypto.py``; rotate with ``attendwise connectors rotate-keys``),
  decrypted only to make the HTTP client, never shown again and never logged or audited: the
  audit event of a change names the fields changed and says only that the token was replaced.
* **Scheduled syncs.** :func:`queue_due_syncs` (a periodic job, every few minutes) queues one
  sync per enabled school whose local sync time has passed today, once a day: the row's
  ``last_scheduled_on`` is the record of that, in the database, so a scheduler restart or a
  second look in the same day queues nothing twice, and a school whose time passed while the
  scheduler was down is synced when it next looks.
* **A sync** runs through :func:`services.run_import` like every import: the school's lock (one
  sync at a time), the run with its counts and rejections, and the casework evaluation queued
  when marks changed. It pulls changes since the last successful Wonde run, marks from the
  start of the academic year to today.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import Session

from attendwise.attendance.calendar import academic_year_of
from attendwise.integrations import services, wonde
from attendwise.integrations.models import ConnectorSettings, RunStatus, SyncRun
from attendwise.platform import audit, crypto, jobs, tenancy
from attendwise.platform.db import utcnow
from attendwise.tenants.models import Organisation

log = logging.getLogger(__name__)

CONNECTORS = {"wonde": "Wonde"}
"""Connectors a school can choose on the settings page: name -> label."""

DEFAULT_SYNC_AT = dt.time(18, 0)
SYNC_TIMEOUT = 3600  # seconds: a school's first sync reads every session of the year so far
_MIS_SCHOOL_ID = re.compile(r"[A-Za-z0-9_-]{1,100}")
_SYNC_AT = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)")
TOKEN_LENGTHS = (8, 500)


class SettingsInvalid(ValueError):
    """The settings form has problems: ``errors`` maps each field to what is wrong with it."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


class NotConnected(RuntimeError):
    """The school has no connector with a saved token, so there is nothing to sync from."""


@dataclass(frozen=True)
class SettingsForm:
    connector: str
    mis_school_id: str
    token: str  # empty: keep the saved token
    sync_at: str  # HH:MM, the school's local time
    enabled: bool


def settings_for(session: Session, org_id: int) -> ConnectorSettings | None:
    return session.scalar(select(ConnectorSettings).where(ConnectorSettings.org_id == org_id))


def _validate(form: SettingsForm, current: ConnectorSettings | None) -> tuple[dt.time | None, dict[str, str]]:
    errors: dict[str, str] = {}
    if form.connector not in CONNECTORS:
        errors["connector"] = f"Choose a connector ({', '.join(CONNECTORS.values())})"
    if not form.mis_school_id:
        errors["mis_school_id"] = "Enter the school's Wonde ID, like A1930499544"
    elif not _MIS_SCHOOL_ID.fullmatch(form.mis_school_id):
        errors["mis_school_id"] = "The Wonde ID has only letters, digits, hyphens and underscores"
    token = form.token
    if not token and (current is None or current.token_encrypted is None):
        errors["token"] = "Enter the bearer token Wonde gave you for this school"  # noqa: S105
    elif token and not TOKEN_LENGTHS[0] <= len(token) <= TOKEN_LENGTHS[1]:
        errors["token"] = f"The token must be {TOKEN_LENGTHS[0]} to {TOKEN_LENGTHS[1]} characters long"
    elif token and any(c.isspace() for c in token):
        errors["token"] = "The token has a space or line break in it: paste only the token"  # noqa: S105
    sync_at = None
    match = _SYNC_AT.fullmatch(form.sync_at)
    if match is None:
        errors["sync_at"] = "Enter the sync time as hours and minutes on the 24-hour clock, like 18:00"
    else:
        sync_at = dt.time(int(match.group(1)), int(match.group(2)))
    return sync_at, errors


def save_settings(session: Session, org_id: int, form: SettingsForm) -> ConnectorSettings:
    """Create or change the school's connector settings, or raise :class:`SettingsInvalid`.

    An empty token keeps the saved one; a new token replaces it (encrypted, with the time it
    was saved). The change is audited without the token.
    """
    if not tenancy.require().can_write(org_id):
        raise tenancy.TenantViolation("changing another organisation's connector")
    current = settings_for(session, org_id)
    sync_at, errors = _validate(form, current)
    if errors:
        raise SettingsInvalid(errors)
    assert sync_at is not None
    created = current is None
    settings = current or ConnectorSettings(org_id=org_id, connector=form.connector, mis_school_id="")
    wanted = {
        "connector": form.connector,
        "mis_school_id": form.mis_school_id,
        "sync_at": sync_at,
        "enabled": form.enabled,
    }
    changed = sorted(name for name, value in wanted.items() if created or getattr(settings, name) != value)
    for name, value in wanted.items():
        setattr(settings, name, value)
    if form.token:
        settings.token_encrypted = crypto.encrypt(form.token)
        settings.token_saved_at = utcnow()
        changed.append("token")
    if created:
        session.add(settings)
    session.flush()
    audit.record(
        session,
        org_id=org_id,
        action="integrations.connector_created" if created else "integrations.connector_changed",
        object_type="connector_settings",
        object_id=settings.id,
        detail={
            "changed": changed,
            "connector": settings.connector,
            "mis_school_id": settings.mis_school_id,
            "sync_at": settings.sync_at.strftime("%H:%M"),
            "enabled": settings.enabled,
            "token": "replaced" if form.token else "kept",
        },
    )
    return settings


def rotate_tokens(session: Session) -> int:
    """Re-encrypt every school's saved token under the current key (system context).

    Raises :class:`crypto.CryptoError` naming the schools whose token no configured key opens;
    the caller then rolls back, so either every token is rotated or none is.
    """
    rows = session.scalars(
        select(ConnectorSettings).where(ConnectorSettings.token_encrypted.is_not(None))
    ).all()
    unreadable = []
    for row in rows:
        assert row.token_encrypted is not None
        try:
            row.token_encrypted = crypto.rotate(row.token_encrypted)
        except crypto.CryptoError:
            unreadable.append(row.org_id)
    if unreadable:
        raise crypto.CryptoError(
            "no configured key decrypts the connector token of organisation(s) "
            f"{', '.join(map(str, unreadable))}"
        )
    session.flush()
    return len(rows)


# ---- syncing -------------------------------------------------------------------------------


def running_run(session: Session, org_id: int) -> SyncRun | None:
    return session.scalar(
        select(SyncRun).where(SyncRun.org_id == org_id, SyncRun.status == RunStatus.RUNNING).limit(1)
    )


def local_now(school: Organisation, now: dt.datetime | None = None) -> dt.datetime:
    return (now or utcnow()).astimezone(ZoneInfo(school.timezone or "Europe/London"))


def client_for(settings: ConnectorSettings) -> wonde.WondeClient:
    if settings.token_encrypted is None:
        raise NotConnected("no Wonde token is saved for this school")
    base_url = current_app.config.get("WONDE_BASE_URL") or wonde.DEFAULT_BASE_URL
    return wonde.WondeClient(crypto.decrypt(settings.token_encrypted), base_url=base_url)


def sync(session: Session, school: Organisation, *, user_id: int | None = None) -> SyncRun:
    """Pull the school's changes from its connector now, as one recorded run.

    Raises :class:`NotConnected` or :class:`services.SyncInProgress` before any run starts;
    a token no key opens or a Wonde that refuses or fails is recorded as a failed run and
    raised (:class:`crypto.CryptoError`, :class:`wonde.WondeError`).
    """
    with tenancy.tenant_context(school.id):
        settings = settings_for(session, school.id)
        if settings is None or settings.token_encrypted is None:
            raise NotConnected("the school has not set up its Wonde connection")
        today = local_now(school).date()
        start = dt.date(academic_year_of(today), 9, 1)
        since = services.last_success(session, school.id, settings.connector)
        mis_school, connector = settings.mis_school_id, settings.connector

    def work() -> services.Outcome:
        with client_for(settings) as client:
            return wonde.sync_school(
                session, school, client, mis_school, start=start, end=today, updated_after=since
            )

    return services.run_import(
        session, school, connector=connector, source=mis_school, work=work, user_id=user_id
    )


def request_sync(
    session: Session, school: Organisation, *, user_id: int | None, retry_of: int | None = None
) -> None:
    """Queue a sync of the school now ("Sync now", or Retry of a failed run).

    Refuses at once, with the reason, when nothing is connected or a sync is already running.
    """
    settings = settings_for(session, school.id)
    if settings is None or settings.token_encrypted is None:
        raise NotConnected("Set up the school's Wonde connection first")
    busy = running_run(session, school.id)
    if busy is not None and busy.started_at.replace(tzinfo=busy.started_at.tzinfo or dt.UTC) > (
        utcnow() - services.STALE_AFTER
    ):
        raise services.SyncInProgress(services.in_progress(busy))
    audit.record(
        session,
        org_id=school.id,
        action="integrations.sync_requested",
        object_type="sync_run" if retry_of else "connector_settings",
        object_id=retry_of or settings.id,
        detail={"retry_of": retry_of} if retry_of else {},
    )
    jobs.enqueue(
        "attendwise.integrations.jobs.sync_school",
        school.id,
        user_id=user_id,
        org_id=school.id,
        queue="sync",
        job_timeout=SYNC_TIMEOUT,
        session=session,
    )


def queue_due_syncs(session: Session, now: dt.datetime | None = None) -> list[int]:
    """Queue today's sync of every enabled school whose local sync time has passed (system context).

    Returns the schools queued. Each school is queued at most once per local day.
    """
    due = []
    rows = session.execute(
        select(ConnectorSettings, Organisation)
        .join(Organisation, Organisation.id == ConnectorSettings.org_id)
        .where(
            ConnectorSettings.enabled.is_(True),
            ConnectorSettings.token_encrypted.is_not(None),
            Organisation.active.is_(True),
        )
        .order_by(ConnectorSettings.org_id)
    ).all()
    for settings, school in rows:
        local = local_now(school, now)
        if local.time() < settings.sync_at or settings.last_scheduled_on == local.date():
            continue
        settings.last_scheduled_on = local.date()
        due.append(school.id)
        jobs.enqueue(
            "attendwise.integrations.jobs.sync_school",
            school.id,
            org_id=school.id,
            queue="sync",
            job_timeout=SYNC_TIMEOUT,
            session=session,
        )
    session.flush()
    if due:
        log.info("queued the scheduled MIS sync of %d school(s)", len(due))
    return due


@dataclass(frozen=True)
class DailySync:
    """A school's scheduled MIS sync as seen on one school-local day."""

    at: dt.time  # the school-local time of day the sync is scheduled for
    finished: bool  # a run started at or after today's time has finished (succeeded or failed)


def daily_sync(session: Session, school: Organisation, now: dt.datetime | None = None) -> DailySync | None:
    """Where the school's scheduled sync stands on its local day at ``now``; None when it has none.

    Read by the casework scheduler, which evaluates a school's pupils after its day's sync.
    """
    settings = settings_for(session, school.id)
    if settings is None or not settings.enabled or settings.token_encrypted is None:
        return None
    local = local_now(school, now)
    due = dt.datetime.combine(local.date(), settings.sync_at, tzinfo=local.tzinfo).astimezone(dt.UTC)
    finished = session.scalar(
        select(SyncRun.id)
        .where(
            SyncRun.org_id == school.id,
            SyncRun.connector == settings.connector,
            SyncRun.status != RunStatus.RUNNING,
            SyncRun.started_at >= due,
        )
        .limit(1)
    )
    return DailySync(at=settings.sync_at, finished=finished is not None)
