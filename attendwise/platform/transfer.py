"""Export one organisation's data to a file and import it elsewhere, without touching others.

The file is JSON lines: a header (format, organisation, schema revision), then one line per
row. What is exported is found in the metadata, so a new tenant table is covered with no
change here:

* every row of every table with an ``org_id`` column where ``org_id`` is the organisation
  (tenant tables, and global tables scoped to an organisation such as memberships);
* the organisation's own row, and every row of a table without ``org_id`` (users, parent
  LA and trust) that an exported row points to through a foreign key, followed transitively.

Import runs in one transaction: it refuses a file from another schema revision, refuses an
organisation that already has rows in the target, inserts tenant rows with their original
keys (so references inside the file stay valid), inserts each referenced global row only
if that key is absent (an existing LA or user is left as it is), moves PostgreSQL sequences
past the imported keys, and verifies the organisation's audit hash chain before committing.
Nothing is deleted, anywhere. The file holds personal data: handle it like a backup.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import enum
import json
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from sqlalchemy import Integer, Table, func, insert, inspect, select, text, tuple_
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from attendwise.platform import audit, tenancy
from attendwise.platform.db import Base, sync_tenant

FORMAT = "attendwise-organisation"
VERSION = 1
BATCH = 1000
ORG_TABLE = "organisations"


class TransferError(RuntimeError):
    """The file cannot be imported here; nothing was written."""


@dataclass
class TransferReport:
    org_id: int
    rows: dict[str, int] = field(default_factory=dict)
    skipped_existing: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.rows.values())


# ---- values <-> JSON --------------------------------------------------------------------


def _encode(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dt.datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, dt.date):
        return {"$date": value.isoformat()}
    if isinstance(value, dt.time):
        return {"$time": value.isoformat()}
    if isinstance(value, decimal.Decimal):
        return {"$decimal": str(value)}
    if isinstance(value, bytes | bytearray | memoryview):
        return {"$bytes": base64.b64encode(bytes(value)).decode()}
    return value


_DECODERS = {
    "$datetime": dt.datetime.fromisoformat,
    "$date": dt.date.fromisoformat,
    "$time": dt.time.fromisoformat,
    "$decimal": decimal.Decimal,
    "$bytes": base64.b64decode,
}


def _decode(value: Any) -> Any:
    if isinstance(value, dict) and len(value) == 1:
        ((key, raw),) = value.items()
        decoder = _DECODERS.get(key)
        if decoder is not None:
            return decoder(raw)
    return value


# ---- the metadata ------------------------------------------------------------------------


def tenant_tables(conn: Connection | None = None) -> list[Table]:
    """Tables whose rows belong to one organisation, parents before children (with ``conn``:
    only those the database has, as a model may be ahead of its migration during development)."""
    present = set(inspect(conn).get_table_names()) if conn is not None else None
    return [
        t
        for t in Base.metadata.sorted_tables
        if "org_id" in t.c and t.name != ORG_TABLE and (present is None or t.name in present)
    ]


def _is_global(table: Table) -> bool:
    return "org_id" not in table.c


def _pk(table: Table) -> list[str]:
    return [c.name for c in table.primary_key.columns]


def _key_in(cols: list[Any], keys: list[tuple[Any, ...]]) -> Any:
    if len(cols) == 1:
        return cols[0].in_([k[0] for k in keys])
    return tuple_(*cols).in_(keys)


def _schema_revision(conn: Connection) -> list[str]:
    return sorted(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())


# ---- export ------------------------------------------------------------------------------


def _global_rows(conn: Connection, seeds: dict[str, set[tuple[Any, ...]]]) -> dict[str, list[dict[str, Any]]]:
    """Rows of global tables named by ``seeds`` (table -> primary keys), with what they point to."""
    tables = Base.metadata.tables
    found: dict[str, dict[tuple[Any, ...], dict[str, Any]]] = defaultdict(dict)
    pending = {name: set(keys) for name, keys in seeds.items()}
    while pending:
        name, keys = pending.popitem()
        table = tables[name]
        keys -= set(found[name])
        if not keys:
            continue
        cols = [table.c[c] for c in _pk(table)]
        rows = conn.execute(select(table).where(_key_in(cols, list(keys)))).mappings().all()
        for row in rows:
            found[name][tuple(row[c.name] for c in cols)] = dict(row)
            for target, pairs in _references(table, row).items():
                pending.setdefault(target, set()).add(pairs)
    order = [t.name for t in Base.metadata.sorted_tables if t.name in found]
    return {name: list(found[name].values()) for name in order}


def _references(table: Table, row: Any) -> dict[str, tuple[Any, ...]]:
    """Global rows that ``row`` points to (table name -> referenced primary key)."""
    out: dict[str, tuple[Any, ...]] = {}
    for fk in table.foreign_key_constraints:
        target = fk.referred_table
        if not _is_global(target):
            continue
        local = [row[c.name] for c in fk.columns]
        if any(v is None for v in local):
            continue
        referred = [e.column.name for e in fk.elements]
        if referred != _pk(target):
            continue
        out[target.name] = tuple(local)
    return out


def export_organisation(session: Session, org_id: int, out: IO[str]) -> TransferReport:
    """Write ``org_id``'s rows to ``out``. Reads only (the caller ends the transaction)."""
    report = TransferReport(org_id)
    with tenancy.system_context(f"export organisation {org_id}"):
        sync_tenant(session)
        conn = session.connection()
        orgs = Base.metadata.tables[ORG_TABLE]
        if conn.execute(select(orgs.c.id).where(orgs.c.id == org_id)).first() is None:
            raise TransferError(f"organisation {org_id} does not exist")
        seeds: dict[str, set[tuple[Any, ...]]] = {ORG_TABLE: {(org_id,)}}
        header = {"format": FORMAT, "version": VERSION, "org_id": org_id, "schema": _schema_revision(conn)}
        out.write(json.dumps(header) + "\n")
        for table in tenant_tables(conn):
            for target, key in _export_table(conn, table, org_id, out, report):
                seeds.setdefault(target, set()).add(key)
        for name, rows in _global_rows(conn, seeds).items():
            for row in rows:
                out.write(
                    json.dumps({"t": name, "g": True, "r": {k: _encode(v) for k, v in row.items()}}) + "\n"
                )
            report.rows[name] = len(rows)
    return report


def _export_table(
    conn: Connection, table: Table, org_id: int, out: IO[str], report: TransferReport
) -> Iterator[tuple[str, tuple[Any, ...]]]:
    query = select(table).where(table.c.org_id == org_id).order_by(*table.primary_key.columns)
    count = 0
    for row in conn.execute(query, execution_options={"yield_per": BATCH}).mappings():
        out.write(json.dumps({"t": table.name, "r": {k: _encode(v) for k, v in row.items()}}) + "\n")
        count += 1
        yield from _references(table, row).items()
    report.rows[table.name] = count


# ---- import ------------------------------------------------------------------------------


def _lines(source: IO[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    for number, line in enumerate(source, 1):
        if line.strip():
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError as exc:
                raise TransferError(f"line {number}: not JSON ({exc.msg})") from exc


def import_organisation(session: Session, source: IO[str]) -> TransferReport:
    """Insert the organisation in ``source`` into ``session``'s database, all or nothing.

    The caller commits. Raises :class:`TransferError` (after rolling back) when the file does
    not fit this database."""
    lines = _lines(source)
    try:
        _number, header = next(lines)
    except StopIteration:
        raise TransferError("the file is empty") from None
    if header.get("format") != FORMAT or header.get("version") != VERSION:
        raise TransferError(f"line 1: not an {FORMAT} file (version {VERSION})")
    org_id = int(header["org_id"])
    report = TransferReport(org_id)
    with tenancy.system_context(f"import organisation {org_id}"):
        try:
            _import(session, header, lines, report)
        except TransferError:
            session.rollback()
            raise
        except Exception as exc:
            session.rollback()
            raise TransferError(f"the database refused the data: {type(exc).__name__}: {exc}") from exc
    return report


def _import(
    session: Session,
    header: dict[str, Any],
    lines: Iterable[tuple[int, dict[str, Any]]],
    report: TransferReport,
) -> None:
    sync_tenant(session)
    conn = session.connection()
    org_id = report.org_id
    schema = _schema_revision(conn)
    if schema != header.get("schema"):
        raise TransferError(
            f"the file is from schema {', '.join(header.get('schema') or [])}, this database is at "
            f"{', '.join(schema)}: upgrade the older side first"
        )
    tables = Base.metadata.tables
    for table in tenant_tables(conn):
        if conn.execute(select(table.c.org_id).where(table.c.org_id == org_id).limit(1)).first():
            raise TransferError(f"organisation {org_id} already has rows in {table.name}: nothing imported")
    tenant_rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
    global_rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for number, item in lines:
        name = item.get("t")
        if not isinstance(name, str) or name not in tables:
            raise TransferError(f"line {number}: table {name!r} does not exist in this database")
        row = {k: _decode(v) for k, v in item["r"].items()}
        if item.get("g"):
            global_rows[name].append(row)
        elif row.get("org_id") != org_id:
            raise TransferError(
                f"line {number}: a {name} row of organisation {row.get('org_id')}, not {org_id}"
            )
        else:
            tenant_rows[name].append(row)
    for table in Base.metadata.sorted_tables:
        if table.name in global_rows:
            _insert_missing(conn, table, global_rows[table.name], report)
        if table.name in tenant_rows:
            rows = tenant_rows[table.name]
            for start in range(0, len(rows), BATCH):
                conn.execute(insert(table), rows[start : start + BATCH])
            report.rows[table.name] = len(rows)
    _advance_sequences(conn, [tables[n] for n in (*tenant_rows, *global_rows)])
    problems = list(audit.verify(session, [org_id]))
    if problems:
        first = problems[0]
        raise TransferError(
            f"the audit chain of organisation {org_id} does not verify after import "
            f"({len(problems)} problem(s); event {first.seq}: {first.reason}): nothing imported"
        )


def _insert_missing(
    conn: Connection, table: Table, rows: list[dict[str, Any]], report: TransferReport
) -> None:
    cols = [table.c[c] for c in _pk(table)]
    keys = [tuple(r[c.name] for c in cols) for r in rows]
    existing: set[tuple[Any, ...]] = set()
    for start in range(0, len(keys), BATCH):
        chunk = keys[start : start + BATCH]
        existing |= {tuple(r) for r in conn.execute(select(*cols).where(_key_in(cols, chunk)))}
    new = _parents_first(table, [r for r, k in zip(rows, keys, strict=True) if k not in existing])
    if new:
        conn.execute(insert(table), new)
    report.rows[table.name] = len(new)
    report.skipped_existing[table.name] = len(rows) - len(new)


def _parents_first(table: Table, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Order rows of a self-referencing table (a school's LA) so each parent comes first."""
    own = [fk for fk in table.foreign_key_constraints if fk.referred_table is table]
    if not own or len(rows) < 2:
        return rows
    pk = _pk(table)
    waiting = {tuple(r[c] for c in pk) for r in rows}
    ordered: list[dict[str, Any]] = []
    remaining = rows
    while remaining:
        ready = [
            r
            for r in remaining
            if all(
                tuple(r[c.name] for c in fk.columns) not in waiting
                or tuple(r[c.name] for c in fk.columns) == tuple(r[c] for c in pk)
                for fk in own
            )
        ]
        if not ready:  # a cycle: let the database judge it
            return ordered + remaining
        ordered += ready
        waiting -= {tuple(r[c] for c in pk) for r in ready}
        remaining = [r for r in remaining if r not in ready]
    return ordered


def _advance_sequences(conn: Connection, tables: list[Table]) -> None:
    """On PostgreSQL, move each serial key's sequence past the largest key now in the table."""
    if conn.dialect.name != "postgresql":
        return
    for table in tables:
        pk = list(table.primary_key.columns)
        if len(pk) != 1 or not isinstance(pk[0].type, Integer):
            continue
        sequence = conn.execute(
            text("SELECT pg_get_serial_sequence(:t, :c)"), {"t": table.name, "c": pk[0].name}
        ).scalar()
        if sequence is None:
            continue
        top = conn.execute(select(func.max(pk[0]))).scalar()
        if top is not None:
            conn.execute(text("SELECT setval(CAST(:s AS regclass), :v)"), {"s": sequence, "v": top})
