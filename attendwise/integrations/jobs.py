"""Integration jobs: each school's MIS sync, and the sweep that queues the scheduled ones.

``queue_due_syncs`` runs every :data:`SWEEP_EVERY` seconds (RQ's cron scheduler) in the
system context and queues a ``sync_school`` job on the ``sync`` queue for each school whose
daily sync time has passed (see :mod:`attendwise.integrations.connectors`). Without Redis,
"Sync now" runs the sync inline, straight after the request commits.

``purge_files`` runs every :data:`PURGE_EVERY` seconds, also in the system context, and deletes
the uploaded files nobody came back to (see :func:`attendwise.integrations.files.purge`): those
kept for failed runs not retried within ``KEPT_FILE_DAYS`` days and CSV uploads not imported
within ``CSV_UPLOAD_HOURS`` hours (both settings, ``ATTENDWISE_KEPT_FILE_DAYS`` and
``ATTENDWISE_CSV_UPLOAD_HOURS``).
"""

from __future__ import annotations

import datetime as dt
import logging

from flask import current_app

from attendwise.integrations import connectors, files, services, wonde
from attendwise.platform import crypto, jobs
from attendwise.platform.db import db, utcnow
from attendwise.tenants.models import Organisation

log = logging.getLogger(__name__)

SWEEP_EVERY = 300  # seconds: a school's sync starts at most this long after its chosen time
PURGE_EVERY = 3600  # seconds


def sync_school(org_id: int, user_id: int | None = None) -> dict[str, object]:
    """The job: sync one school from its connector, recording the run.

    A sync Wonde refuses or cannot serve is recorded as a failed run (with its reason, and a
    Retry button on the MIS data page) and is not an error of the job; neither is a sync that
    finds another one of the same school running.
    """
    session = db.session()
    school = session.get(Organisation, org_id)
    if school is None:
        return {"skipped": f"organisation {org_id} no longer exists"}
    try:
        run = connectors.sync(session, school, user_id=user_id)
    except (connectors.NotConnected, services.SyncInProgress) as reason:
        log.info("MIS sync of organisation %s skipped: %s", org_id, reason)
        return {"skipped": str(reason)}
    except (wonde.WondeError, crypto.CryptoError) as failure:
        log.warning("MIS sync of organisation %s failed: %s", org_id, failure)
        return {"failed": str(failure)}
    return {"run": run.id, "status": run.status.value, "created": run.created, "updated": run.updated}


def queue_due_syncs() -> int:
    """The periodic sweep (system context): queue the schools whose sync time has come."""
    return len(connectors.queue_due_syncs(db.session()))


def purge_files() -> dict[str, int]:
    """The periodic purge (system context): delete kept files and uploads past their retention."""
    now = utcnow()
    return files.purge(
        db.session(),
        runs_before=now - dt.timedelta(days=current_app.config["KEPT_FILE_DAYS"]),
        uploads_before=now - dt.timedelta(hours=current_app.config["CSV_UPLOAD_HOURS"]),
    )


PERIODIC = (
    jobs.Periodic(
        name="integrations.scheduled_syncs",
        func="attendwise.integrations.jobs.queue_due_syncs",
        queue="sync",
        interval=SWEEP_EVERY,
    ),
    jobs.Periodic(
        name="integrations.purge_files",
        func="attendwise.integrations.jobs.purge_files",
        interval=PURGE_EVERY,
    ),
)
