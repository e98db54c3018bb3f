"""Full migration: plan chunks, copy them in parallel on an Executor, resume after a crash.

The hand-over point for incremental sync is the binlog position taken before the first chunk
(``start_position``); every chunk also records the position of its own snapshot, so the
sync can tell, for each row, which changes the copy already holds.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from contextlib import ExitStack
from dataclasses import dataclass, field

import pandas as pd
from tqdm.auto import tqdm

from omsbench.actions import named
from omsbench.endpoints.catalog import quote
from omsbench.endpoints.connection import Dsn, Endpoint, Session, connect
from omsbench.endpoints.mysql import master_status
from omsbench.endpoints.position import BinlogPosition
from omsbench.engine import chunking, own_tables, schema
from omsbench.engine.chunk_copy import ChunkJob, ChunkResult, copy_chunk
from omsbench.engine.literals import row_literal
from omsbench.engine.mapping import TableMap
from omsbench.engine.spec import Options
from omsbench.engine.state import StateStore
from omsbench.engine.steps import State, Step
from omsbench.exceptions import CopyError, OmsError

INTERRUPTED = "interrupted by the user; copied chunks are kept: run the same command again to resume"


@dataclass
class FullResult:
    rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    start_position: dict | None = None
    chunks_copied: int = 0
    chunks_skipped: int = 0
    warnings: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    """Objects the source has that the target did not get (post-load), not accepted in the spec."""

    @property
    def rows_per_second(self) -> float:
        return sum(self.rows.values()) / self.seconds if self.seconds else 0.0

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame({"table": list(self.rows), "rows": list(self.rows.values())})


def select_sql(
    tm: TableMap, lower: chunking.Bound, upper: chunking.Bound, group_rows: int, chunk_size: int, numbered: bool = False
) -> str:
    """Rows of one chunk as row literals, grouped on the server into NUL-separated blobs.

    One result row carries about ``group_rows`` rows: the client parses a few large values
    instead of many small rows, which is where a Python driver spends its time. NUL never
    occurs inside a literal (QUOTE escapes it, the rest is hex or digits), so blobs split back
    into rows exactly, and the row count returned beside each blob proves nothing was
    truncated. A key that starts with an integer groups by arithmetic on that column, which
    costs the source a fifth (four narrow columns) to a half (sysbench's rows) of what
    numbering the rows with ROW_NUMBER() does (measured); other keys, or ``numbered``, number
    them. Under a composite key one leading value may hold many rows, so such a group may
    outgrow the source's packet: ``numbered`` is then the chunk's second reading.
    """
    table = tm.source
    conditions = [c for c in (chunking.key_range(table.key, lower, upper), f"({tm.filter})" if tm.filter else "") if c]
    rows = f"{quote(table.schema)}.{quote(table.name)}" + (" WHERE " + " AND ".join(conditions) if conditions else "")
    literal = row_literal(table.stored_columns)
    if table.leading_integer and not numbered:
        width = _key_width(lower, upper, group_rows, chunk_size)
        return (
            f"SELECT COUNT(*), GROUP_CONCAT({literal} SEPARATOR 0x00) FROM {rows}"
            f" GROUP BY {quote(table.key[0])} DIV {width}"
        )
    numbered_rows = f"SELECT {literal} AS l, ROW_NUMBER() OVER () AS rn FROM {rows}"
    return (
        f"SELECT COUNT(*), GROUP_CONCAT(l SEPARATOR 0x00) FROM ({numbered_rows}) AS chunk GROUP BY rn DIV {group_rows}"
    )


def _groups_may_outgrow(tm: TableMap) -> bool:
    """Grouped by a leading integer that is not the whole key: one value may hold any number of rows."""
    return tm.source.leading_integer and not tm.source.integer_key


def _key_width(lower: chunking.Bound, upper: chunking.Bound, group_rows: int, chunk_size: int) -> int:
    """Key span holding about ``group_rows`` rows, from the chunk's span and its planned row count."""
    if lower is None or upper is None:
        return group_rows
    return max(1, (int(upper[0]) - int(lower[0])) * group_rows // chunk_size)


CHUNK_BYTES = 64 << 20
"""A chunk is one target transaction: tables of large rows get fewer rows per chunk, so that
20,000 rows of 1 MB BLOBs do not become one 20 GB transaction (seekdb holds it in memory)."""


def chunk_rows(tm: TableMap, options: Options) -> int:
    """Rows per chunk: the spec's ``chunk_size``, fewer where rows are large."""
    return max(1, min(options.chunk_size, CHUNK_BYTES // max(tm.source.avg_row_length, 1)))


def rows_per_group(tm: TableMap, batch_bytes: int) -> int:
    """Aim for about four groups a batch, from the source's average row length."""
    return max(1, min(50_000, batch_bytes // 4 // max(tm.source.avg_row_length * 2, 64)))


def insert_prefix(tm: TableMap) -> bytes:
    cols = ", ".join(quote(tm.columns[c.name]) for c in tm.source.stored_columns)
    return f"INSERT INTO {tm.quoted} ({cols}) VALUES ".encode()


def default_executor(options: Options) -> Executor:
    if options.executor == "threads":
        return ThreadPoolExecutor(options.parallelism, thread_name_prefix="omsbench-copy")
    # spawn: the parent may hold an embedded seekdb and threads that a fork must not copy
    return ProcessPoolExecutor(options.parallelism, mp_context=multiprocessing.get_context("spawn"))


def ensure_checkpoint_table(target: Session) -> None:
    own_tables.ensure(target, own_tables.FULL_CHUNKS)


def done_chunks(target: Session, project: str) -> dict[tuple[str, int], dict]:
    rows = target.query(
        "SELECT source_table, chunk_no, row_count, snapshot_file, snapshot_pos, snapshot_gtid"
        " FROM `omsbench`.`full_chunks` WHERE project = %s",
        (project,),
    )
    return {
        (t, n): {"rows": r, "snapshot": {"file": f, "pos": p, "gtid": g} if f else None} for t, n, r, f, p, g in rows
    }


def reset(target: Session, state: StateStore, project: str, tables: list[TableMap]) -> None:
    """Forget a previous load of this project: empty its target tables and its checkpoints."""
    ensure_checkpoint_table(target)
    target.execute("SET SESSION foreign_key_checks = 0")  # a parent is emptied with its children
    for tm in tables:
        target.execute(f"TRUNCATE TABLE {tm.quoted}")
    target.execute("DELETE FROM `omsbench`.`full_chunks` WHERE project = %s", (project,))
    state.clear_chunks(project)
    state.forget_replayed_tables(project)
    state.set_step(project, Step.FULL, State.PENDING, "reset")


def handover(state: StateStore, project: str) -> BinlogPosition | None:
    """Where the full load's snapshot ends: incremental sync's first position (None before a load)."""
    found = state.detail(project, Step.FULL).get("start_position")
    return BinlogPosition(**found) if found else None


def _plans(
    source: Session, state: StateStore, project: str, tables: list[TableMap], options: Options
) -> tuple[dict[str, list[dict]], set[str]]:
    """Each table's chunk plan, and the tables planned just now."""
    plans, fresh = {}, set()
    for tm in tables:
        key = tm.source.qualified
        plans[key] = state.plan(project, key)
        if not plans[key]:
            state.save_plan(project, key, chunking.plan(source, tm, chunk_rows(tm, options)))
            plans[key] = state.plan(project, key)
            fresh.add(key)
    return plans, fresh


def _require_known_load(project: str, done: dict, fresh: set[str], known: bool) -> None:
    """Chunks the target recorded for a load this workspace did not plan (another workspace, or a
    lost state.db) cover key ranges of another plan, and the load's hand-over position is unknown:
    resuming would leave ranges uncopied and changes never replayed."""
    foreign = sorted({table for table, _ in done if table in fresh or not known})
    if foreign:
        raise CopyError(
            f"the target holds chunks of a full load of project {project} that this workspace did not plan"
            f" ({', '.join(foreign)}): it was started from another workspace, or this workspace's state.db was"
            " lost, so its chunk boundaries and the binlog position its incremental sync must start from are"
            " not known here",
            fix="run it from the workspace that started it; or start the load over:"
            f" {named('full', project, '--restart')} (empties the project's target tables)",
        )


def run(
    project: str,
    source_ep: Endpoint,
    target_ep: Endpoint,
    tables: list[TableMap],
    options: Options,
    state: StateStore,
    executor: Executor | None = None,
    progress: bool = True,
    on_chunk: Callable[[ChunkResult], None] | None = None,
) -> FullResult:
    """Copy every selected table; chunks already recorded on the target are skipped.

    Whatever stops the load leaves the step ``failed`` with the reason (``stopped`` for Ctrl-C),
    never ``running``; copied chunks stay and the next run resumes.
    """
    result = FullResult()
    previous = state.step(project, Step.FULL)
    # Until the load is reset, its hand-over position stays the one taken before its first chunk,
    # also when a finished load is run again: incremental sync must start there.
    continuing = bool(previous and previous["state"] != "pending" and previous.get("detail"))
    result.start_position = previous["detail"].get("start_position") if continuing else None
    try:
        jobs = _prepare(project, source_ep, target_ep, tables, options, state, result)
        started = time.monotonic()
        _execute(
            jobs, executor or default_executor(options), executor is None, state, project, result, progress, on_chunk
        )
    except KeyboardInterrupt:
        state.set_step(project, Step.FULL, State.STOPPED, INTERRUPTED, {"start_position": result.start_position})
        raise
    except BaseException as err:
        state.set_step(
            project, Step.FULL, State.FAILED, f"{type(err).__name__}: {err}", {"start_position": result.start_position}
        )
        if isinstance(err, Exception) and not isinstance(err, OmsError):
            raise CopyError(
                f"the full migration stopped: {err}",
                fix="fix the cause and run the same command again: copied chunks are kept",
            ) from err
        raise
    result.seconds = time.monotonic() - started
    state.set_step(
        project,
        Step.FULL,
        State.DONE,
        f"{sum(result.rows.values()):,} rows",
        {"start_position": result.start_position, "rows": result.rows, "seconds": result.seconds},
    )
    return result


def _prepare(
    project: str,
    source_ep: Endpoint,
    target_ep: Endpoint,
    tables: list[TableMap],
    options: Options,
    state: StateStore,
    result: FullResult,
) -> list[ChunkJob]:
    """Record the hand-over position, plan chunks, check the target, and list the chunks to copy."""
    source_dsn, target_dsn = source_ep.dsn(), target_ep.dsn()
    with connect(source_dsn) as source, connect(target_dsn) as target:
        target.execute("SET SESSION foreign_key_checks = 0")  # a parent may be emptied before its children
        ensure_checkpoint_table(target)
        previous = state.step(project, Step.FULL)
        known = bool(previous and previous["state"] != "pending")
        if result.start_position is None:
            position = master_status(source)
            result.start_position = position.as_dict() if position else None
        state.set_step(project, Step.FULL, State.RUNNING, "copying", {"start_position": result.start_position})
        replayed = state.replayed_tables(project)
        result.warnings = [
            f"{tm.source.qualified}: not copied: the sync created it by replaying its CREATE TABLE and holds its rows"
            for tm in tables
            if tm.source.qualified in replayed
        ]
        tables = [tm for tm in tables if tm.source.qualified not in replayed]
        plans, fresh = _plans(source, state, project, tables, options)
        done = done_chunks(target, project)
        _require_known_load(project, done, fresh, known)
        _check_existing_rows(target, tables, done, options)
        result.warnings += [
            f"{tm.source.qualified}: no primary or unique key; copied as one chunk in one transaction"
            for tm in tables
            if not tm.source.key
        ]
        return _pending_jobs(project, source_dsn, target_dsn, tables, plans, done, options, state, result)


def _pending_jobs(
    project: str,
    source_dsn: Dsn,
    target_dsn: Dsn,
    tables: list[TableMap],
    plans: dict[str, list[dict]],
    done: dict[tuple[str, int], dict],
    options: Options,
    state: StateStore,
    result: FullResult,
) -> list[ChunkJob]:
    """Jobs for the chunks the target has not recorded; recorded ones count as copied."""
    jobs = []
    for tm in tables:
        key = tm.source.qualified
        result.rows[key] = 0
        for chunk in plans[key]:
            finished = done.get((key, chunk["chunk_no"]))
            if finished:
                result.rows[key] += finished["rows"]
                result.chunks_skipped += 1
                if chunk["state"] != "done":
                    state.mark_chunk(project, key, chunk["chunk_no"], finished["rows"], finished["snapshot"], 0)
                continue
            bounds = (
                tm,
                chunk["lower"],
                chunk["upper"],
                rows_per_group(tm, options.batch_bytes),
                chunk_rows(tm, options),
            )
            jobs.append(
                ChunkJob(
                    project,
                    source_dsn,
                    target_dsn,
                    key,
                    chunk["chunk_no"],
                    select_sql(*bounds),
                    insert_prefix(tm),
                    options.batch_bytes,
                    options.rows_per_second / options.parallelism,
                    numbered_sql=select_sql(*bounds, numbered=True) if _groups_may_outgrow(tm) else "",
                )
            )
    # Round-robin over tables: concurrent workers then write to different tables, which seekdb
    # absorbs with far less CPU than two writers on one table (measured).
    return sorted(jobs, key=lambda job: job.chunk_no)


def _check_existing_rows(target: Session, tables: list[TableMap], done: dict, options: Options) -> None:
    resumed = {t for t, _ in done}
    missing = [tm.qualified for tm in tables if not schema.exists(target, tm.schema, tm.name)]
    if missing:
        raise CopyError(
            f"target table(s) missing: {', '.join(missing)}", fix=f"run the schema step first ({named('schema')})"
        )
    for tm in tables:
        if tm.source.qualified in resumed:
            continue
        if target.query(f"SELECT 1 FROM {tm.quoted} LIMIT 1"):
            if options.on_existing_rows == "truncate":
                target.execute(f"TRUNCATE TABLE {tm.quoted}")
            elif options.on_existing_rows == "refuse":
                raise CopyError(
                    f"target table {tm.qualified} already holds rows that omsbench did not copy",
                    fix="set options.on_existing_rows to truncate (empty it first) or append",
                )


def _execute(
    jobs: list[ChunkJob],
    executor: Executor,
    owned: bool,
    state: StateStore,
    project: str,
    result: FullResult,
    progress: bool,
    on_chunk: Callable[[ChunkResult], None] | None,
) -> None:
    with ExitStack() as stack:
        if owned:
            stack.enter_context(executor)
        bar = stack.enter_context(tqdm(total=len(jobs), unit="chunk", desc="full load", disable=not progress))
        futures: list[Future] = [executor.submit(copy_chunk, job) for job in jobs]
        copied, last_sample, window_rows = 0, time.monotonic(), 0
        try:
            for future in as_completed(futures):
                done: ChunkResult = future.result()
                state.mark_chunk(project, done.source_table, done.chunk_no, done.rows, done.snapshot, done.seconds)
                result.rows[done.source_table] += done.rows
                result.chunks_copied += 1
                copied += done.rows
                window_rows += done.rows
                bar.update(1)
                bar.set_postfix_str(f"rows={copied:,}")
                if on_chunk:
                    on_chunk(done)
                elapsed = time.monotonic() - last_sample
                if elapsed >= 1.0:
                    state.add_metrics(
                        project, Step.FULL, {"rows_per_second": window_rows / elapsed, "rows_copied": copied}
                    )
                    last_sample, window_rows = time.monotonic(), 0
        except BaseException:
            for future in futures:
                future.cancel()
            raise
