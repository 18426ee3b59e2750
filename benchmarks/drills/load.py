"""Load drill: simulated staff sessions over the main pages and API against gunicorn +
PostgreSQL + Redis on this machine (loopback only), for a bounded time.

    .venv/bin/python -m benchmarks.drills.load --sessions 2000 --seconds 60

Each simulated member of staff has a real server-side session (inserted directly, so the
drill measures pages, not 2,000 Argon2 sign-ins) and loops: pick a page at the mix below,
request it, then think (15-45 s by default, ``--think``): between two page views a member of
staff reads the page, makes the call or writes the note, so about one view every 30 s is a busy
officer, and 2,000 of them ask ~67 requests/s of the server. Latency is measured from the
client's side, including waiting for a connection. Prints requests/s, p50/p95/p99, errors,
and the worklist's p95 against /healthz's p95 in the same run (target: p95 < 300 ms, errors
< 0.1 %, worklist p95 within 3 x healthz p95). The client runs on the same two cores as
the server: read the figures as a lower bound of what the server alone would do.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import hashlib
import http.cookiejar
import json
import os
import random
import secrets
import statistics
import time
from collections import defaultdict

import httpx
from sqlalchemy import insert, select

from benchmarks.drills.common import gunicorn, scratch_database

MIX = (  # (name, weight)
    ("worklist", 30),
    ("pupils", 20),
    ("pupil", 15),
    ("api_pupils", 15),
    ("healthz", 20),
)


def seed(owner_url: str, sessions: int) -> tuple[list[tuple[str, int]], dict[int, list[int]]]:
    """Demo data, then ``sessions`` signed-in school staff sessions: [(cookie token, school id)]."""
    from attendwise.attendance.models import Pupil
    from attendwise.platform import tenancy
    from attendwise.platform.app import create_app
    from attendwise.platform.db import db
    from attendwise.platform.demo import build
    from attendwise.platform.sessions import WebSession
    from attendwise.tenants.models import Membership, Organisation, OrgKind

    app = create_app(config={"DATABASE_URL": owner_url, "MIGRATION_DATABASE_URL": owner_url})
    with app.app_context():
        session = db.session()
        build(session)
        session.commit()
        with tenancy.system_context("load drill"):
            staff = session.execute(
                select(Membership.user_id, Membership.org_id)
                .join(Organisation, Organisation.id == Membership.org_id)
                .where(Organisation.kind == OrgKind.SCHOOL, Membership.role != "school_admin")
            ).all()
            pupils: dict[int, list[int]] = defaultdict(list)
            for pupil_id, org_id in session.execute(select(Pupil.id, Pupil.org_id)):
                pupils[org_id].append(pupil_id)
            now = dt.datetime.now(dt.UTC)
            out, rows = [], []
            for i in range(sessions):
                user_id, org_id = staff[i % len(staff)]
                token = secrets.token_urlsafe(32)
                data = {"csrf_token": secrets.token_hex(20), "org_id": org_id, "mfa_ok": True}
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
                out.append((token, org_id))
            session.execute(insert(WebSession), rows)
            session.commit()
    db.dispose()
    return out, dict(pupils)


async def staff_member(
    client: httpx.AsyncClient,
    token: str,
    pupil_ids: list[int],
    deadline: float,
    results: dict[str, list[float]],
    errors: dict[str, int],
    think: tuple[float, float],
) -> None:
    names, weights = zip(*MIX, strict=True)
    headers = {"Cookie": f"aw_session={token}"}
    await asyncio.sleep(random.uniform(0, think[1]))
    while time.monotonic() < deadline:
        page = random.choices(names, weights)[0]
        pupil = random.choice(pupil_ids) if pupil_ids else 0
        path = {
            "worklist": "/worklist",
            "pupils": "/pupils",
            "pupil": f"/pupils/{pupil}",
            "api_pupils": "/api/v1/pupils?page_size=50",
            "healthz": "/healthz",
        }[page]
        started = time.perf_counter()
        try:
            response = await client.get(path, headers=headers)
            ok = response.status_code == 200
            why = f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            ok = False
            why = type(exc).__name__
        elapsed = time.perf_counter() - started
        if ok:
            results[page].append(elapsed)
        else:
            errors[page] += 1
            errors[f"{page}: {why}"] += 1
        await asyncio.sleep(random.uniform(*think))


class _KeepNoCookies(http.cookiejar.DefaultCookiePolicy):
    """The 2,000 sessions share one client: a cookie it kept from one session's response would
    be sent with every other session's requests (each page then seen as someone else)."""

    def set_ok(self, cookie: http.cookiejar.Cookie, request: object) -> bool:
        return False


def pct(values: list[float], p: float) -> float:
    if len(values) < 2:
        return values[0] * 1000 if values else float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[int(p) - 1] * 1000


async def drive(base: str, staff, pupils, seconds: int, connections: int, think: tuple[float, float]):
    results: dict[str, list[float]] = defaultdict(list)
    errors: dict[str, int] = defaultdict(int)
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    jar = http.cookiejar.CookieJar(policy=_KeepNoCookies())
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30, cookies=jar) as client:
        deadline = time.monotonic() + seconds
        started = time.monotonic()
        await asyncio.gather(
            *(
                staff_member(client, t, pupils.get(org, []), deadline, results, errors, think)
                for t, org in staff
            )
        )
        wall = time.monotonic() - started
    return results, errors, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=2000)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--connections", type=int, default=100)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--think", default="15-45", help="seconds between a session's requests, MIN-MAX")
    args = parser.parse_args()
    low, _, high = args.think.partition("-")
    think = (float(low), float(high or low))
    name = f"attendwise_drill_load_{os.getpid()}"
    with scratch_database(name) as (owner, app_url):
        staff, pupils = seed(owner, args.sessions)
        with gunicorn(app_url, owner, f"drill-load-{os.getpid()}:", args.workers, args.threads) as base:
            results, errors, wall = asyncio.run(
                drive(base, staff, pupils, args.seconds, args.connections, think)
            )
    every = [v for vs in results.values() for v in vs]
    total_errors = sum(errors[page] for page, _w in MIX)
    total = len(every) + total_errors
    print(
        f"load drill: {args.sessions} staff sessions, {args.seconds} s, "
        f"gunicorn {args.workers}x{args.threads}, {args.connections} client connections, "
        f"{len(pupils)} schools, think {args.think} s"
    )
    print(
        f"requests: {total}  ({total / wall:.1f}/s)   "
        f"errors: {total_errors} ({100 * total_errors / max(total, 1):.2f}%)"
    )
    print(f"all pages: p50 {pct(every, 50):.0f} ms  p95 {pct(every, 95):.0f} ms  p99 {pct(every, 99):.0f} ms")
    for page, _w in MIX:
        vs = results[page]
        print(
            f"  {page:<11} n={len(vs):<6} p50 {pct(vs, 50):6.0f} ms  p95 {pct(vs, 95):6.0f} ms  "
            f"p99 {pct(vs, 99):6.0f} ms  errors {errors[page]}"
        )
    for kind in sorted(k for k in errors if ":" in k):
        print(f"  error {kind}: {errors[kind]}")
    ratio = pct(results["worklist"], 95) / pct(results["healthz"], 95)
    print(f"worklist p95 / healthz p95 = {ratio:.2f} (target <= 3)")
    print(f"p95 target < 300 ms: {'met' if pct(every, 95) < 300 else 'NOT met'}")


if __name__ == "__main__":
    main()
