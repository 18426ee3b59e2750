"""Concurrent-edits drill: many staff editing the same plan and completing the same tasks at once.

    .venv/bin/python -m benchmarks.drills.concurrent_edits --clients 8 --edits 10

Against gunicorn + PostgreSQL on loopback (the demo data in a scratch database). Each client
is a signed-in attendance officer (a server-side session inserted directly) on its own thread:

* **Plan**: ``--edits`` times, read the plan through the API (``GET /api/v1/casework/plans``),
  add one line of its own to the agreed support and save it through the plan form
  (``POST /plans/<id>``) with the version it read; on 409 (someone saved first) it reads
  again and re-applies its change, as a person reloading the page would.
* **Tasks**: every client tries to complete each of ``--tasks`` open tasks through the API
  (``POST /api/v1/casework/tasks/<id>/complete``) with the version it read.

No lost update means: every line every client saved is in the final plan, the plan's version
went up by exactly the number of saves, and each task was completed exactly once (one 200,
the rest refused). Prints the counts, the conflicts, and the final state.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import json
import os
import re
import secrets
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
from sqlalchemy import insert, select

from benchmarks.drills.common import gunicorn, scratch_database

CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')
ERROR_TEXT = re.compile(r"<[^>]+>|\s+")


def seed(owner_url: str, clients: int, tasks: int) -> dict[str, Any]:
    """Demo data; an active plan and open tasks of one school; ``clients`` officer sessions."""
    from attendwise.casework.models import ActionPlan, PlanStatus, Task, TaskStatus
    from attendwise.platform import tenancy
    from attendwise.platform.app import create_app
    from attendwise.platform.db import db
    from attendwise.platform.demo import build
    from attendwise.platform.sessions import WebSession
    from attendwise.tenants.models import Membership

    app = create_app(config={"DATABASE_URL": owner_url, "MIGRATION_DATABASE_URL": owner_url})
    with app.app_context():
        session = db.session()
        build(session)
        session.commit()
        with tenancy.system_context("concurrent-edits drill"):
            plan = session.scalars(
                select(ActionPlan).where(ActionPlan.status == PlanStatus.ACTIVE).order_by(ActionPlan.id)
            ).first()
            assert plan is not None, "the demo has no active plan"
            open_tasks = session.scalars(
                select(Task)
                .where(
                    Task.org_id == plan.org_id,
                    Task.status == TaskStatus.OPEN,
                    Task.needs_signoff.is_(False),
                )
                .order_by(Task.id)
                .limit(tasks)
            ).all()
            user_id = session.scalar(
                select(Membership.user_id).where(
                    Membership.org_id == plan.org_id, Membership.role == "attendance_officer"
                )
            )
            assert user_id is not None, "the demo school has no attendance officer"
            now = dt.datetime.now(dt.UTC)
            sessions, rows = [], []
            for _ in range(clients):
                token, csrf = secrets.token_urlsafe(32), secrets.token_hex(20)
                data = {"csrf_token": csrf, "org_id": plan.org_id, "mfa_ok": True}
                rows.append(
                    {
                        "id": hashlib.sha256(token.encode()).hexdigest(),
                        "user_id": user_id,
                        "data": json.dumps(data),
                        "created_at": now,
                        "last_seen_at": now,
                        "expires_at": now + dt.timedelta(hours=2),
                    }
                )
                sessions.append((token, csrf))
            session.execute(insert(WebSession), rows)
            seeded = {
                "plan_id": plan.id,
                "case_id": plan.case_id,
                "task_ids": [t.id for t in open_tasks],
                "task_cases": {t.id: t.case_id for t in open_tasks},
                "sessions": sessions,
            }
            session.commit()
    db.dispose()
    return seeded


def read_plan(client: httpx.Client, case_id: int, plan_id: int) -> dict[str, Any]:
    response = client.get("/api/v1/casework/plans", params={"case_id": case_id, "per_page": 50})
    response.raise_for_status()
    return next(p for p in response.json()["items"] if p["id"] == plan_id)


def read_task(client: httpx.Client, task_id: int, case_id: int) -> dict[str, Any]:
    response = client.get("/api/v1/casework/tasks", params={"case_id": case_id, "per_page": 50})
    response.raise_for_status()
    return next(t for t in response.json()["items"] if t["id"] == task_id)


@contextlib.contextmanager
def signed_in(base: str, token: str, case_id: int) -> Iterator[httpx.Client]:
    """A client with the session cookie and the page's signed CSRF token (as a browser has)."""
    with httpx.Client(base_url=base, cookies={"aw_session": token}, timeout=120) as client:
        page = client.get(f"/cases/{case_id}")
        page.raise_for_status()
        found = CSRF_FIELD.search(page.text)
        assert found, "the case page has no CSRF token"
        client.headers["X-CSRFToken"] = found.group(1)
        yield client


def plan_editor(
    base: str,
    token: str,
    number: int,
    edits: int,
    seeded: dict[str, Any],
    tally: Counter[str],
    notes: list[str],
) -> None:
    with signed_in(base, token, seeded["case_id"]) as client:
        csrf = client.headers["X-CSRFToken"]
        for edit in range(edits):
            line = f"client {number} edit {edit}"
            while True:
                plan = read_plan(client, seeded["case_id"], seeded["plan_id"])
                response = client.post(
                    f"/plans/{seeded['plan_id']}",
                    data={
                        "csrf_token": csrf,
                        "support_agreed": [*plan["support_agreed"], line],
                        "owners": ",".join(plan["owners"]),
                        "review_on": plan["review_on"],
                        "version": str(plan["version"]),
                    },
                )
                if response.status_code == 409:
                    tally["plan conflicts (409, re-read and re-applied)"] += 1
                    continue
                if response.status_code in (200, 302, 303):
                    tally["plan saves"] += 1
                    break
                tally[f"plan unexpected {response.status_code}"] += 1
                notes.append(ERROR_TEXT.sub(" ", response.text)[:300])
                break


def task_completer(
    base: str, token: str, seeded: dict[str, Any], tally: Counter[str], notes: list[str]
) -> None:
    with signed_in(base, token, seeded["case_id"]) as client:
        for task_id in seeded["task_ids"]:
            task = read_task(client, task_id, seeded["task_cases"][task_id])
            response = client.post(
                f"/api/v1/casework/tasks/{task_id}/complete",
                json={"version": task["version"], "note": f"done by session {token[:6]}"},
            )
            tally[f"task completions answered {response.status_code}"] += 1
            if response.status_code not in (200, 409, 422):
                notes.append(response.text[:300])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--edits", type=int, default=10, help="plan saves per client")
    parser.add_argument("--tasks", type=int, default=10, help="open tasks every client tries to complete")
    args = parser.parse_args()
    name = f"attendwise_drill_edits_{os.getpid()}"
    prefix = f"drill-edits-{os.getpid()}:"
    with scratch_database(name) as (owner, app_url):
        began = time.monotonic()
        seeded = seed(owner, args.clients, args.tasks)
        print(f"seeded the demo and {args.clients} sessions in {time.monotonic() - began:.0f} s")
        with gunicorn(app_url, owner, prefix, workers=2, threads=4) as base:
            tally: Counter[str] = Counter()
            token, _csrf = seeded["sessions"][0]
            with httpx.Client(base_url=base, cookies={"aw_session": token}, timeout=120) as client:
                before = read_plan(client, seeded["case_id"], seeded["plan_id"])
            notes: list[str] = []
            threads = [
                threading.Thread(target=plan_editor, args=(base, t, n, args.edits, seeded, tally, notes))
                for n, (t, _c) in enumerate(seeded["sessions"])
            ] + [
                threading.Thread(target=task_completer, args=(base, t, seeded, tally, notes))
                for t, _c in seeded["sessions"]
            ]
            began = time.monotonic()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            elapsed = time.monotonic() - began
            with httpx.Client(base_url=base, cookies={"aw_session": token}, timeout=120) as client:
                after = read_plan(client, seeded["case_id"], seeded["plan_id"])
                tasks = [read_task(client, t, seeded["task_cases"][t]) for t in seeded["task_ids"]]
    wanted = {f"client {n} edit {e}" for n in range(args.clients) for e in range(args.edits)}
    missing = wanted - set(after["support_agreed"])
    print(
        f"concurrent-edits drill: {args.clients} clients x {args.edits} plan saves, and "
        f"{args.clients} clients racing to complete each of {len(seeded['task_ids'])} tasks ({elapsed:.0f} s)"
    )
    for what, number in sorted(tally.items()):
        print(f"  {what}: {number}")
    for note in notes[:3]:
        print(f"  an unexpected answer: {note}")
    print(
        f"plan: version {before['version']} -> {after['version']} "
        f"(expected +{len(wanted)}); lines saved {len(wanted)}, missing from the final plan (lost "
        f"updates): {len(missing)}"
    )
    done = sum(1 for t in tasks if t["status"] == "done")
    accepted = tally.get("task completions answered 200", 0)
    print(f"tasks: {done} of {len(tasks)} done; completions accepted: {accepted}")


if __name__ == "__main__":
    main()
