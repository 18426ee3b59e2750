"""A local HTTP server that behaves like the Wonde API for one app token, for connector tests.

It implements what the connector relies on, as Wonde documents it: bearer-token auth (401
otherwise), ``schools/{id}/students|contacts|attendance/session|attendance-codes|deletions``,
``page``/``per_page`` pagination with ``meta.pagination.next`` (an absolute URL) and ``more``,
``updated_after`` and ``attendance_date_after``/``_before`` filters, and ``{"date": ...}`` date
objects. Tests script failures: a status (with headers) for the next N requests to a path, or a
delay longer than the client's timeout.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse


def wonde_time(when: dt.datetime) -> dict[str, Any]:
    return {"date": when.strftime("%Y-%m-%d %H:%M:%S.000000"), "timezone_type": 3, "timezone": "UTC"}


@dataclass
class Fault:
    path: str  # a substring of the request path
    status: int = 500
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    times: int = 1


@dataclass
class WondeState:
    token: str
    school: str
    students: dict[str, dict[str, Any]] = field(default_factory=dict)
    contacts: dict[str, dict[str, Any]] = field(default_factory=dict)
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    deletions: dict[str, dict[str, Any]] = field(default_factory=dict)
    max_per_page: int = 3
    clock: dt.datetime = dt.datetime(2025, 9, 1, 18, 0, tzinfo=dt.UTC)
    faults: list[Fault] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def tick(self, minutes: int = 1) -> dt.datetime:
        self.clock += dt.timedelta(minutes=minutes)
        return self.clock

    def put(self, collection: str, record: dict[str, Any]) -> None:
        """Create or change a record now (its updated_at moves on)."""
        stamped = {**record, "updated_at": wonde_time(self.tick())}
        getattr(self, collection)[str(record["id"])] = stamped

    def delete(self, kind: str, record_id: str) -> None:
        getattr(self, f"{kind}s").pop(record_id)
        self.deletions[f"{kind}:{record_id}"] = {
            "id": record_id,
            "type": kind,
            "deleted_at": wonde_time(self.tick()),
            "updated_at": wonde_time(self.clock),
        }


class WondeServer:
    def __init__(self, state: WondeState) -> None:
        self.state = state
        self._lock = threading.Lock()
        handler = self._handler()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}/v1.0/"

    def __enter__(self) -> WondeServer:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)

    def _fault_for(self, path: str) -> Fault | None:
        with self._lock:
            for fault in self.state.faults:
                if fault.path in path and fault.times > 0:
                    fault.times -= 1
                    return fault
        return None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: Any) -> None:
                return

            def reply(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self) -> None:
                state = server.state
                url = urlparse(self.path)
                state.requests.append(self.path)
                if self.headers.get("Authorization") != f"Bearer {state.token}":
                    self.reply(401, {"error": "Unauthenticated."})
                    return
                fault = server._fault_for(url.path)
                if fault is not None:
                    if fault.delay:
                        time.sleep(fault.delay)
                    self.reply(fault.status, {"error": "scripted failure"}, fault.headers)
                    return
                prefix = f"/v1.0/schools/{state.school}/"
                if not url.path.startswith(prefix):
                    self.reply(404, {"error": "Not found"})
                    return
                collection = {
                    "students": "students",
                    "contacts": "contacts",
                    "attendance/session": "sessions",
                    "attendance-codes": "codes",
                    "deletions": "deletions",
                }.get(url.path[len(prefix) :].strip("/"))
                if collection is None:
                    self.reply(404, {"error": "Not found"})
                    return
                query = {k: v[-1] for k, v in parse_qs(url.query).items()}
                records = list(server.select(collection, query))
                per_page = min(int(query.get("per_page", 50)), state.max_per_page)
                page = int(query.get("page", 1))
                chunk = records[(page - 1) * per_page : page * per_page]
                more = page * per_page < len(records)
                following = None
                if more:
                    host, port = server.httpd.server_address[:2]
                    next_query = urlencode({**query, "page": page + 1})
                    following = f"http://{host!s}:{port}{url.path}?{next_query}"
                self.reply(
                    200,
                    {
                        "data": chunk,
                        "meta": {
                            "pagination": {
                                "next": following,
                                "previous": None,
                                "more": more,
                                "per_page": per_page,
                                "current_page": page,
                            }
                        },
                    },
                )

        return Handler

    def select(self, collection: str, query: dict[str, str]) -> Iterator[dict[str, Any]]:
        after = query.get("updated_after")
        since = dt.datetime.strptime(after, "%Y-%m-%d %H:%M:%S").replace(tzinfo=dt.UTC) if after else None
        with self._lock:
            records = sorted(getattr(self.state, collection).values(), key=lambda r: str(r["id"]))
        for record in records:
            stamp = record.get("updated_at")
            if since is not None and stamp is not None:
                changed = dt.datetime.strptime(stamp["date"], "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=dt.UTC)
                if changed <= since:
                    continue
            if collection == "sessions":
                day = record["date"]["date"][:10]
                if day < query.get("attendance_date_after", "0000") or day > query.get(
                    "attendance_date_before", "9999"
                ):
                    continue
            yield record
