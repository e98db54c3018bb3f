"""Copy one chunk: the unit of work that runs on any concurrent.futures.Executor.

A chunk is read from its own consistent snapshot and written in one target transaction that
also records the chunk in ``omsbench.full_chunks`` on the target. The rows and the
checkpoint therefore commit together: after a kill, a chunk is either wholly there and
recorded, or absent and copied again. Jobs are plain picklable values so process pools and
dask workers can run them; connections are kept per worker thread and reused.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass, replace

import pymysql

from omsbench.endpoints import oceanbase
from omsbench.endpoints.connection import Dsn, Session, connect, explain, oversized, raise_packet
from omsbench.endpoints.mysql import start_snapshot
from omsbench.exceptions import CopyError

_PACKET_MARGIN = 1024
"""Bytes of a packet that are not the statement's rows: the command byte, and room to spare."""


@dataclass(frozen=True)
class ChunkJob:
    project: str
    source: Dsn
    target: Dsn
    source_table: str
    chunk_no: int
    select_sql: str
    insert_prefix: bytes
    batch_bytes: int
    rows_per_second: float = 0.0
    numbered_sql: str = ""
    """The chunk's rows grouped by number, read instead when a group of ``select_sql`` outgrew the source's packet."""


@dataclass(frozen=True)
class ChunkResult:
    source_table: str
    chunk_no: int
    rows: int
    snapshot: dict | None
    seconds: float


class _Outgrew(Exception):
    """A group of rows came cut or NULL: larger than the source's max_allowed_packet."""


_local = threading.local()


def _session(dsn: Dsn, autocommit: bool) -> Session:
    cache = _local.__dict__.setdefault("sessions", {})
    key = (dsn, autocommit)
    session = cache.get(key)
    if session is None or not session.conn.open:
        session = cache[key] = connect(dsn, autocommit=autocommit)
        if not autocommit:  # the target's: tables fill in parallel, a child's rows before its parent's
            session.execute("SET SESSION foreign_key_checks = 0")
    return session


def _drop_sessions() -> None:
    for session in _local.__dict__.pop("sessions", {}).values():
        with contextlib.suppress(Exception):  # the connection is already broken: that is why we drop it
            session.close()


def copy_chunk(job: ChunkJob) -> ChunkResult:
    started = time.monotonic()
    try:
        return _copy(job, started)
    except Exception as err:
        _drop_sessions()  # a failed session may hold a half-open transaction
        if isinstance(err, CopyError):
            raise
        raise CopyError(
            f"{job.source_table} chunk {job.chunk_no}: {explain(err)}",
            fix="fix the cause; running the same command again resumes from the copied chunks",
        ) from err


def _copy(job: ChunkJob, started: float) -> ChunkResult:
    source = _session(job.source, autocommit=True)
    target = _session(job.target, autocommit=False)
    position = start_snapshot(source)
    snapshot = position.as_dict() if position else None
    try:
        with oceanbase.naming_orphans(target, CopyError):
            try:
                rows = _stream(source, target, job, started)
            except _Outgrew:  # read again, in the same snapshot, in groups of a bounded row count
                target.conn.rollback()
                rows = _stream(source, target, replace(job, select_sql=job.numbered_sql, numbered_sql=""), started)
            _require_rendered(source, job)
            target.execute(
                "INSERT INTO `omsbench`.`full_chunks` (project, source_table, chunk_no, row_count, snapshot_file,"
                " snapshot_pos, snapshot_gtid) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (job.project, job.source_table, job.chunk_no, rows, *(snapshot.values() if snapshot else (None,) * 3)),
            )
            target.conn.commit()
    except BaseException:
        _rollback(target)
        raise
    finally:
        source.execute("COMMIT")
    return ChunkResult(job.source_table, job.chunk_no, rows, snapshot, time.monotonic() - started)


def _stream(source: Session, target: Session, job: ChunkJob, started: float) -> int:
    """Insert the chunk's rows, as the source renders them, in batches; the rows inserted."""
    rows = 0
    batch: list[bytes] = []
    size = 0
    room = target.packet - len(job.insert_prefix) - _PACKET_MARGIN
    with source.cursor(unbuffered=True) as cur:
        cur.execute(job.select_sql)
        for count, blob in cur.fetchall_unbuffered():
            literals = blob.split(b"\0") if blob is not None else []
            if len(literals) != count:
                if job.numbered_sql:
                    raise _Outgrew
                raise CopyError(
                    f"{job.source_table} chunk {job.chunk_no}: a group of {count} rows arrived as {len(literals)}",
                    fix=f"the group outgrew the source's max_allowed_packet: {raise_packet('source')}",
                )
            if size + len(blob) > room:  # sent alone, the batch stays under the target's packet limit
                rows += _flush(target, job, batch)
                batch, size = [], 0
            if len(blob) > room:  # large rows: as many per INSERT as fit
                rows += _flush_each(target, job, literals, room)
            else:
                batch += literals
                size += len(blob) + 1
            if size >= job.batch_bytes:
                rows += _flush(target, job, batch)
                _throttle(job, rows, started)
                batch, size = [], 0
    rows += _flush(target, job, batch)
    _throttle(job, rows, started)
    return rows


def _flush(target: Session, job: ChunkJob, batch: list[bytes]) -> int:
    if batch:
        target.execute(job.insert_prefix + b",".join(batch))
    return len(batch)


def _flush_each(target: Session, job: ChunkJob, literals: list[bytes], room: int) -> int:
    """Send rows in INSERTs that each fit the target's packet limit; a row that alone exceeds it stops the chunk."""
    batch: list[bytes] = []
    size = 0
    for literal in literals:
        if len(literal) > room:
            raise CopyError(
                f"{job.source_table} chunk {job.chunk_no}: a row needs a {_mb(len(literal))} INSERT, but the target"
                f" takes statements of at most {_mb(target.packet)} (max_allowed_packet; binary values travel as hex)",
                fix=f"{raise_packet('target')}, then run the same command again: copied chunks are kept",
            )
        if size + len(literal) > room:
            _flush(target, job, batch)
            batch, size = [], 0
        batch.append(literal)
        size += len(literal) + 1
    _flush(target, job, batch)
    return len(literals)


def _require_rendered(source: Session, job: ChunkJob) -> None:
    """A value the source could not render came as NULL: stop the chunk (its rows roll back) instead of writing it."""
    found = oversized(source)
    if found:
        raise CopyError(
            f"{job.source_table} chunk {job.chunk_no}: the source rendered a value as NULL because it would outgrow"
            f" its max_allowed_packet of {_mb(source.packet)} ({found}); nothing of the chunk was written",
            fix=f"binary values travel as hex, at twice their size: {raise_packet('source')}, then run the same"
            " command again: copied chunks are kept",
        )


def _mb(size: int) -> str:
    return f"{size / (1 << 20):.1f} MB"


def _throttle(job: ChunkJob, rows: int, started: float) -> None:
    if job.rows_per_second > 0:
        ahead = rows / job.rows_per_second - (time.monotonic() - started)
        if ahead > 0:
            time.sleep(ahead)


def _rollback(target: Session) -> None:
    with contextlib.suppress(pymysql.err.MySQLError):
        target.conn.rollback()
