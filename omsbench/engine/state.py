"""The state store: an embedded SQLite database (via SQLAlchemy) in the workspace.

Any process (CLI, background sync, notebook) reads progress from here. SQLite in WAL mode
with a busy timeout lets several processes write without corrupting it, and a killed writer
loses at most its open transaction.
"""

from __future__ import annotations

import os
import pickle
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    delete,
    event,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from omsbench.actions import named
from omsbench.engine.process import alive
from omsbench.engine.steps import LIVE, State, Step
from omsbench.exceptions import StateError

metadata = MetaData()

projects = Table(
    "projects",
    metadata,
    Column("name", String, primary_key=True),
    Column("spec", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
steps = Table(
    "steps",
    metadata,
    Column("project", String, primary_key=True),
    Column("step", String, primary_key=True),
    Column("state", String, nullable=False),
    Column("started_at", DateTime(timezone=True)),
    Column("ended_at", DateTime(timezone=True)),
    Column("message", Text),
    Column("detail", JSON),
    Column("owner", Integer),
    # the pid that wrote a live state: a reader can tell that state from one whose process died
)
chunks = Table(
    "chunks",
    metadata,
    Column("project", String, primary_key=True),
    Column("source_table", String, primary_key=True),
    Column("chunk_no", Integer, primary_key=True),
    Column("lower", JSON),
    Column("upper", JSON),
    Column("state", String, nullable=False, default="pending"),
    Column("rows", BigInteger, default=0),
    Column("snapshot", JSON),
    Column("seconds", Float),
    Column("updated_at", DateTime(timezone=True)),
)
metrics = Table(
    "metrics",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("project", String, nullable=False, index=True),
    Column("ts", DateTime(timezone=True), nullable=False),
    Column("stage", String, nullable=False),
    Column("name", String, nullable=False),
    Column("value", Float, nullable=False),
)
ddl_log = Table(
    "ddl",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("project", String, nullable=False, index=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("position", String, nullable=False),
    Column("statement", Text, nullable=False),
    Column("action", String, nullable=False),
    Column("reason", Text),
    Column("target_sql", Text),
)
controls = Table(
    "controls",
    metadata,
    Column("project", String, primary_key=True),
    Column("step", String, primary_key=True),
    Column("want", String, nullable=False),
    Column("payload", JSON),
    Column("at", DateTime(timezone=True), nullable=False),
)
"""What a user asked a running step to do (pause, resume, stop, resolve a DDL); the step polls it."""
runs = Table(
    "runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("notebook", String, nullable=False),
    Column("folder", String, nullable=False),
    Column("parameters", JSON),
    Column("state", String, nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("ended_at", DateTime(timezone=True)),
    Column("error", Text),
    Column("outcome", JSON),
)
"""The audit record of executed runbooks: what ran, with which parameters, what came out."""
marks = Table(
    "marks",
    metadata,
    Column("project", String, primary_key=True),
    Column("name", String, primary_key=True),
    Column("value", JSON, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
)
"""Where a stream stands when its target cannot hold a checkpoint itself (a RocketMQ topic)."""
schemas = Table(
    "schemas",
    metadata,
    Column("project", String, primary_key=True),
    Column("file", String, primary_key=True),
    Column("pos", BigInteger, primary_key=True),
    Column("tables", LargeBinary, nullable=False),
)
"""The tracked tables of a queue sync as of a binlog position: a queue has no catalog to read them back from."""


def as_utc(value: datetime | str) -> pd.Timestamp:
    """A time this store handed back, in UTC: it writes UTC, and SQLite hands some back without their zone."""
    stamp = pd.Timestamp(value)
    return stamp.tz_convert("UTC") if stamp.tzinfo else stamp.tz_localize("UTC")


def now() -> datetime:
    return datetime.now(timezone.utc)


def encode_key(values: tuple | list | None) -> list | None:
    """Key values to JSON that decodes to values the source compares the same way."""
    if values is None:
        return None
    out: list[Any] = []
    for v in values:
        if isinstance(v, bytes | bytearray):
            out.append({"$hex": bytes(v).hex()})
        elif isinstance(v, Decimal):
            out.append({"$dec": str(v)})
        elif v is None or isinstance(v, int | float | str):
            out.append(v)
        else:  # date, datetime, time, timedelta: MySQL compares their text form exactly
            out.append({"$str": str(v)})
    return out


def decode_key(values: list | None) -> tuple | None:
    if values is None:
        return None
    out: list[Any] = []
    for v in values:
        if isinstance(v, dict):
            kind, text = next(iter(v.items()))
            out.append(bytes.fromhex(text) if kind == "$hex" else Decimal(text) if kind == "$dec" else text)
        else:
            out.append(v)
    return tuple(out)


_REPLAYED = "replayed_tables"
_ORDER = [step.value for step in Step]


def _step_rank(step: str) -> tuple[int, str]:
    """Steps in the order a migration takes them; steps of other names after, by name."""
    return (_ORDER.index(step) if step in _ORDER else len(_ORDER), step)


def _judged(row: dict) -> dict:
    """A live state whose process is gone (kill -9, a crash, a lost container) reads as "died"."""
    owner = row.get("owner")
    if row["state"] in LIVE and owner and not alive(owner):
        row["message"] = (
            f"the process (pid {owner}) is gone while {row['state']}: {row['message']}; it was killed or"
            " crashed. Run the same command again: it goes on from its checkpoint"
        )
        row["state"] = State.DIED.value
    return row


class StateStore:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.engine = create_engine(f"sqlite:///{self.path}", connect_args={"timeout": 60})
        event.listen(self.engine, "connect", _pragmas)
        metadata.create_all(self.engine)
        self._add_missing_columns()

    def _add_missing_columns(self) -> None:
        """A workspace made by an older omsbench lacks newer columns; SQLite adds them in place."""
        with self.engine.begin() as conn:
            for table in metadata.sorted_tables:
                have = {row[1] for row in conn.exec_driver_sql(f"PRAGMA table_info({table.name})")}
                for column in table.columns:
                    if column.name not in have:
                        kind = column.type.compile(self.engine.dialect)
                        conn.exec_driver_sql(f"ALTER TABLE {table.name} ADD COLUMN {column.name} {kind}")

    # projects -------------------------------------------------------------------------------
    def save_project(self, name: str, spec_yaml: str) -> None:
        stamp = now()
        stmt = sqlite_insert(projects).values(name=name, spec=spec_yaml, created_at=stamp, updated_at=stamp)
        stmt = stmt.on_conflict_do_update(index_elements=["name"], set_={"spec": spec_yaml, "updated_at": stamp})
        with self.engine.begin() as conn:
            conn.execute(stmt)

    def project_spec(self, name: str) -> str:
        with self.engine.connect() as conn:
            spec = conn.execute(select(projects.c.spec).where(projects.c.name == name)).scalar()
        if spec is None:
            raise StateError(
                f"no project named {name!r} in the workspace {self.path.parent}",
                fix=f"create it ({named('init', name)}), pass its spec file, or name the workspace that holds it"
                " (--workspace DIR, or $OMSBENCH_WORKSPACE)",
            )
        return spec

    def projects(self) -> pd.DataFrame:
        with self.engine.connect() as conn:
            return pd.DataFrame(
                conn.execute(select(projects.c.name, projects.c.created_at, projects.c.updated_at)).mappings().all()
            )

    # steps ----------------------------------------------------------------------------------
    def set_step(
        self, project: str, step: str, state: State | str, message: str | None = None, detail: dict | None = None
    ) -> None:
        """Record a step's state (one of State: a typo fails here, not in a reader's comparison)."""
        state, stamp = State(state), now()
        values: dict[str, Any] = {
            "state": state.value,
            "message": message,
            "owner": os.getpid() if state in LIVE else None,
        }
        if detail is not None:
            values["detail"] = detail
        if state is State.RUNNING and (self.step(project, step) or {}).get("state") != State.RUNNING:
            values.update(started_at=stamp, ended_at=None)
        elif state in (State.DONE, State.FAILED):
            values["ended_at"] = stamp
        stmt = sqlite_insert(steps).values(project=project, step=step, **values)
        stmt = stmt.on_conflict_do_update(index_elements=["project", "step"], set_=values)
        with self.engine.begin() as conn:
            conn.execute(stmt)

    def step(self, project: str, step: str) -> dict | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(steps).where(steps.c.project == project, steps.c.step == step)).mappings().first()
        return _judged(dict(row)) if row else None

    def detail(self, project: str, step: str) -> dict:
        """What a step recorded (an empty dict before it ran): the full load's hand-over, the switchover's phases."""
        return (self.step(project, step) or {}).get("detail") or {}

    def steps(self, project: str) -> pd.DataFrame:
        """The project's steps in the order a migration takes them."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(steps).where(steps.c.project == project)).mappings().all()
        found = sorted((_judged(dict(row)) for row in rows), key=lambda r: _step_rank(r["step"]))
        return pd.DataFrame(found, columns=[c.name for c in steps.columns])

    # chunks ---------------------------------------------------------------------------------
    def save_plan(self, project: str, table: str, bounds: list[tuple[tuple | None, tuple | None]]) -> None:
        """Record a table's chunk boundaries once; a resumed load must reuse the same ones."""
        rows = [
            {
                "project": project,
                "source_table": table,
                "chunk_no": i,
                "lower": encode_key(lo),
                "upper": encode_key(hi),
                "state": "pending",
                "rows": 0,
                "updated_at": now(),
            }
            for i, (lo, hi) in enumerate(bounds)
        ]
        with self.engine.begin() as conn:
            conn.execute(delete(chunks).where(chunks.c.project == project, chunks.c.source_table == table))
            if rows:
                conn.execute(insert(chunks), rows)

    def plan(self, project: str, table: str) -> list[dict]:
        with self.engine.connect() as conn:
            rows = (
                conn.execute(
                    select(chunks)
                    .where(chunks.c.project == project, chunks.c.source_table == table)
                    .order_by(chunks.c.chunk_no)
                )
                .mappings()
                .all()
            )
        return [dict(r) | {"lower": decode_key(r["lower"]), "upper": decode_key(r["upper"])} for r in rows]

    def mark_chunk(
        self, project: str, table: str, chunk_no: int, rows: int, snapshot: dict | None, seconds: float
    ) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(chunks)
                .where(chunks.c.project == project, chunks.c.source_table == table, chunks.c.chunk_no == chunk_no)
                .values(state="done", rows=rows, snapshot=snapshot, seconds=seconds, updated_at=now())
            )

    def clear_chunks(self, project: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(chunks).where(chunks.c.project == project))

    def chunk_progress(self, project: str) -> pd.DataFrame:
        """Per table: chunks planned and done, rows copied."""
        done = func.sum((chunks.c.state == "done").cast(Integer))
        query = (
            select(
                chunks.c.source_table.label("table"),
                func.count().label("chunks"),
                done.label("chunks_done"),
                func.sum(chunks.c.rows).label("rows_copied"),
            )
            .where(chunks.c.project == project)
            .group_by(chunks.c.source_table)
        )
        with self.engine.connect() as conn:
            return pd.DataFrame(
                conn.execute(query).mappings().all(), columns=["table", "chunks", "chunks_done", "rows_copied"]
            )

    # metrics --------------------------------------------------------------------------------
    def add_metrics(self, project: str, stage: str, values: dict[str, float]) -> None:
        stamp = now()
        with self.engine.begin() as conn:
            conn.execute(
                insert(metrics),
                [
                    {"project": project, "ts": stamp, "stage": stage, "name": k, "value": float(v)}
                    for k, v in values.items()
                ],
            )

    def metrics(self, project: str, since: datetime | None = None) -> pd.DataFrame:
        """The project's samples, or those taken from ``since`` on (a day of sync is about 10^6 rows)."""
        columns = metrics.c.ts, metrics.c.stage, metrics.c.name, metrics.c.value
        query = select(*columns).where(metrics.c.project == project)
        if since is not None:
            query = query.where(metrics.c.ts >= since)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(metrics.c.id)).mappings().all()
        return pd.DataFrame(rows, columns=["ts", "stage", "name", "value"])

    def metrics_mark(self, project: str) -> int:
        """Changes when a sample is added: what tells a panel to draw again, without reading the samples."""
        with self.engine.connect() as conn:
            return conn.execute(select(func.max(metrics.c.id)).where(metrics.c.project == project)).scalar() or 0

    # DDL decisions and requests --------------------------------------------------------------------
    def record_ddl(
        self, project: str, position: str, statement: str, action: str, reason: str, target_sql: str
    ) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                insert(ddl_log).values(
                    project=project,
                    at=now(),
                    position=position,
                    statement=statement,
                    action=action,
                    reason=reason,
                    target_sql=target_sql,
                )
            )

    def ddl(self, project: str) -> pd.DataFrame:
        query = select(ddl_log).where(ddl_log.c.project == project).order_by(ddl_log.c.id)
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return pd.DataFrame(rows, columns=[c.name for c in ddl_log.columns]).drop(columns=["id", "project"])

    def request(self, project: str, step: str, want: str, payload: dict | None = None) -> None:
        values = {"want": want, "payload": payload, "at": now()}
        stmt = sqlite_insert(controls).values(project=project, step=step, **values)
        stmt = stmt.on_conflict_do_update(index_elements=["project", "step"], set_=values)
        with self.engine.begin() as conn:
            conn.execute(stmt)

    def requested(self, project: str, step: str) -> dict | None:
        query = select(controls.c.want, controls.c.payload, controls.c.at).where(
            controls.c.project == project, controls.c.step == step
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        return dict(row) if row else None

    def settle(self, project: str, step: str, request: dict) -> None:
        """Mark ``request`` (as read by ``requested``) acted on, unless a newer one came since.

        A resume that stayed on file would answer the next pause at once: a sync refused a DDL,
        "resumed", refused it again, and looked running while it went nowhere.
        """
        stmt = (
            controls.update()
            .where(controls.c.project == project, controls.c.step == step, controls.c.at == request["at"])
            .values(want="run", payload=None, at=now())
        )
        with self.engine.begin() as conn:
            conn.execute(stmt)

    def save_mark(self, project: str, name: str, value: dict) -> None:
        values = {"value": value, "at": now()}
        stmt = sqlite_insert(marks).values(project=project, name=name, **values)
        stmt = stmt.on_conflict_do_update(index_elements=["project", "name"], set_=values)
        with self.engine.begin() as conn:
            conn.execute(stmt)

    def note_replayed_tables(self, project: str, created: list[str], renamed: list[tuple[str, str]]) -> None:
        """Source tables (``db.table``) the sync ``created`` on the target by replaying their CREATE
        TABLE; a ``renamed`` one (old, new) stays the sync's under its new name."""
        tables = self.replayed_tables(project) | set(created)
        tables |= {new for old, new in renamed if old in tables}
        if created or renamed:
            self.save_mark(project, _REPLAYED, {"tables": sorted(tables)})

    def forget_replayed_tables(self, project: str) -> None:
        """A restarted full load copies every table again, those the sync created included."""
        self.save_mark(project, _REPLAYED, {"tables": []})

    def replayed_tables(self, project: str) -> set[str]:
        """Tables the project's sync created: theirs, with rows no full load copied, never to be emptied."""
        return set((self.mark(project, _REPLAYED) or {}).get("tables", []))

    def mark(self, project: str, name: str) -> dict | None:
        query = select(marks.c.value).where(marks.c.project == project, marks.c.name == name)
        with self.engine.connect() as conn:
            return conn.execute(query).scalar()

    def save_schema(self, project: str, file: str, pos: int, tables: object) -> None:
        values = {"tables": pickle.dumps(tables)}
        stmt = sqlite_insert(schemas).values(project=project, file=file, pos=pos, **values)
        stmt = stmt.on_conflict_do_update(index_elements=["project", "file", "pos"], set_=values)
        with self.engine.begin() as conn:
            conn.execute(stmt)

    def schema_at(self, project: str, file: str, pos: int) -> object | None:
        """The tables saved at the latest position at or before ``file:pos`` (positions of one binlog series)."""
        query = (
            select(schemas.c.tables)
            .where(
                schemas.c.project == project,
                (schemas.c.file < file) | ((schemas.c.file == file) & (schemas.c.pos <= pos)),
            )
            .order_by(schemas.c.file.desc(), schemas.c.pos.desc())
            .limit(1)
        )
        with self.engine.connect() as conn:
            found = conn.execute(query).scalar()
        return pickle.loads(found) if found is not None else None

    # runbook runs ------------------------------------------------------------------------------
    def start_run(self, notebook: str, folder: str, parameters: dict) -> int:
        values = {"notebook": notebook, "folder": folder, "parameters": parameters, "state": "running"}
        with self.engine.begin() as conn:
            return conn.execute(insert(runs).values(started_at=now(), **values)).inserted_primary_key[0]

    def end_run(self, run_id: int, state: str, error: str | None, outcome: dict | None) -> None:
        values = {"state": state, "error": error, "outcome": outcome, "ended_at": now()}
        with self.engine.begin() as conn:
            conn.execute(update(runs).where(runs.c.id == run_id).values(**values))

    def runs(self) -> pd.DataFrame:
        with self.engine.connect() as conn:
            rows = conn.execute(select(runs).order_by(runs.c.id)).mappings().all()
        return pd.DataFrame(rows, columns=[c.name for c in runs.columns])


def _pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=60000")
    cursor.close()
