"""Change model -> a MySQL-compatible target, exactly once.

A group of whole source transactions is applied in one target transaction together with the
checkpoint row (``omsbench.sync_checkpoint``): after a crash the target holds either the whole
group and its position, or neither, so a restart from the checkpoint neither loses nor repeats
an effect.

Within a group the changes to keyed tables are merged by key: one ``DELETE ... IN`` for the keys
that end deleted, then one multi-row ``REPLACE`` of every row's final image, with
foreign_key_checks off (the source already enforced them, and REPLACE's own delete must not
cascade). Deletes on a parent with ON DELETE actions, which MySQL never writes to the binlog,
run with foreign_key_checks on so the target performs them (see ``_segments``). Replaying a
change twice leaves the same rows, which is what makes the hand-over from a full load, whose
chunks were read at different moments, safe. Tables without a key cannot be merged: each change
is applied on its own, matching the full before image and touching one row, so duplicates stay
duplicates.

With ``apply_workers`` above one, :class:`ParallelApplier` splits a group's changes to keyed
tables by key over that many target sessions at once; see there for what stays in order.
"""

from __future__ import annotations

import contextlib
import time
import zlib
from collections import defaultdict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import NamedTuple

import pymysql

from omsbench.changes import Op, RowChange, Transaction
from omsbench.endpoints import oceanbase
from omsbench.endpoints.catalog import SPATIAL_TYPES, quote
from omsbench.endpoints.connection import Session
from omsbench.endpoints.position import BinlogPosition
from omsbench.engine import own_tables
from omsbench.engine.mapping import TableMap
from omsbench.engine.tracker import Tracker
from omsbench.exceptions import ChangePaused, SyncError

"""The extra sessions of a parallel apply mark each transaction here, as the checkpoint row marks
the main session's: a reader of the target's binlog knows them as applied, not as new changes."""
APPLIER_MARK = "SET @omsbench_applier = 1"
"""Reverse capture triggers skip sessions that carry this mark, so applied changes never loop."""
_ROW_IS_REFERENCED = 1451
_NO_SUCH_TABLE = 1146
KEYS_PER_STATEMENT = 1000
"""Keys one ``IN`` list names at most: a statement's size stays bounded whatever the number of keys."""


class Relations(NamedTuple):
    """How rows of the tracked tables depend on other rows, by target (schema, table)."""

    cascading: dict[tuple[str, str], list]
    """Parents whose deletes act on other tables (ON DELETE CASCADE / SET NULL): their (child, foreign key)."""
    referenced: set[tuple[str, str]]
    """Every table a foreign key points at."""
    tied: set[tuple[str, str]]
    """Every table at either end of a foreign key or with a unique index besides the primary key:
    where the order of writing matters across rows."""


@dataclass
class TableChanges:
    """The net effect of a group on one keyed table, or the ordered changes of a keyless one."""

    tm: TableMap
    cascading: bool = False
    """Other tables' rows follow this table's deletes (ON DELETE CASCADE / SET NULL)."""
    final: dict[tuple, dict | None] = field(default_factory=dict)
    deleted: dict[tuple, dict] = field(default_factory=dict)
    """Before images of rows deleted at any point, kept only where the delete itself has effects:
    a cascading parent."""
    keyless: list[RowChange] = field(default_factory=list)

    def add(self, change: RowChange, key_of) -> None:
        if change.key is None:
            self.keyless.append(change)
            return
        if change.op is not Op.INSERT:
            before = key_of(change.before)
            if change.op is Op.DELETE or before != change.key:
                if self.cascading:
                    self.deleted[before] = change.before
                self.final[before] = None
        if change.op is not Op.DELETE:
            self.final[change.key] = change.after

    def deletes(self) -> list[tuple]:
        """A key deleted and written again needs no DELETE: REPLACE sets its final row."""
        return sorted(self.deleted.keys() | {k for k, image in self.final.items() if image is None}, key=repr)


def read_checkpoint(target: Session, project: str) -> tuple[BinlogPosition, float | None] | None:
    try:
        rows = target.query(
            "SELECT file, pos, gtid, source_ts FROM `omsbench`.`sync_checkpoint` WHERE project = %s", (project,)
        )
    except pymysql.err.ProgrammingError as err:
        if err.args[0] != _NO_SUCH_TABLE:
            raise
        return None  # no sync has started on this target yet
    if not rows:
        return None
    file, pos, gtid, source_ts = rows[0]
    return BinlogPosition(file, int(pos), gtid), source_ts


class Applier:
    def __init__(self, target: Session, project: str, tracker: Tracker, worker: int = 0) -> None:
        self.target, self.project, self.tracker, self.worker = target, project, tracker, worker
        target.conn.autocommit(False)
        target.execute(APPLIER_MARK)
        own_tables.ensure(target, own_tables.SYNC_WORKERS if worker else own_tables.SYNC_CHECKPOINT)
        self._relations: tuple[int, Relations] = (-1, Relations({}, set(), set()))
        self._checks: bool | None = None
        self._foreign_key_checks(False)

    def _foreign_key_checks(self, on: bool) -> None:
        """Off by default (the source enforced them); on only where the target must run FK actions."""
        if self._checks is not on:
            self.target.execute(f"SET foreign_key_checks = {int(on)}")
            self._checks = on

    def apply(
        self, group: list[Transaction], changes: list[RowChange] | None = None, before_commit=lambda: None
    ) -> float:
        """Apply whole transactions and their checkpoint in one target transaction; return the commit time.

        ``changes`` is this session's share of the group's changes when a :class:`ParallelApplier`
        split them; ``before_commit`` runs last inside the transaction (and rolls it back by raising).
        """
        try:
            with oceanbase.naming_orphans(self.target, SyncError):
                for segment in self._segments(
                    [c for txn in group for c in txn.changes] if changes is None else changes
                ):
                    self._apply_segment(segment)
                self._checkpoint(group)
                before_commit()
                self.target.conn.commit()
        except BaseException:
            self.rollback()
            raise
        return time.time()

    finish = apply
    """The last piece of a large transaction: it commits the pieces with it."""

    def apply_piece(self, changes: list[RowChange]) -> None:
        """A piece of a large transaction, into the open target transaction; nothing commits until ``finish``."""
        for segment in self._segments(changes):
            self._apply_segment(segment)

    def checkpoint_only(self, txn: Transaction, sql: str | None = None) -> None:
        """Move the checkpoint past a transaction that changes nothing on the target (a DDL, a skip),
        or only by ``sql``, the user's statement run in its place, in the same target transaction."""
        if sql:
            self.target.execute(sql)
        self._checkpoint([txn])
        self.target.conn.commit()

    def rollback(self) -> None:
        with contextlib.suppress(pymysql.err.MySQLError):  # a lost connection was rolled back by the server
            self.target.conn.rollback()

    def _segments(self, changes: list[RowChange]) -> list[list[RowChange]]:
        """Cut before every change whose foreign-key actions the binlog does not show.

        MySQL writes neither the child rows an ON DELETE CASCADE/SET NULL removes nor those an ON
        UPDATE CASCADE rewrites. Merged, a child inserted before its parent's delete would be
        written after it and survive; so such a change opens a new segment, and the target's own
        foreign keys perform the action on exactly the rows the source had at that point.
        """
        segments: list[list[RowChange]] = [[]]
        for change in changes:
            if self.has_foreign_key_actions(change):
                segments.append([])
            segments[-1].append(change)
        return [segment for segment in segments if segment]

    def has_foreign_key_actions(self, change: RowChange) -> bool:
        """A delete of a cascading parent's row, or a key change of a referenced row."""
        cascading, referenced, _ = self.relations()
        parent = self.tracker.get(change.schema, change.table)
        target = (parent.schema, parent.name) if parent else None
        return (change.op is Op.DELETE and target in cascading) or (
            change.op is Op.UPDATE and target in referenced and _key_changed(parent, change)
        )

    def relations(self) -> Relations:
        """How the tracked tables' rows depend on other rows; worked out again after each DDL."""
        if self._relations[0] != self.tracker.version:
            cascading: dict[tuple[str, str], list] = defaultdict(list)
            referenced, tied = set(), set()
            for tm in self.tracker.tables.values():
                for fk in tm.source.foreign_keys:
                    referenced.add((fk.ref_schema, fk.ref_table))
                    if fk.on_delete.upper() in ("CASCADE", "SET NULL"):
                        cascading[(fk.ref_schema, fk.ref_table)].append((tm, fk))
                if tm.source.foreign_keys or any(index.unique for index in tm.source.indexes):
                    tied.add((tm.schema, tm.name))
            self._relations = (self.tracker.version, Relations(dict(cascading), referenced, tied | referenced))
        return self._relations[1]

    def _apply_segment(self, changes: list[RowChange]) -> None:
        first = changes[0]
        if first.op is Op.UPDATE and first.key is not None:
            tm = self.tracker.get(first.schema, first.table)
            if tm is not None and _key_changed(tm, first):  # ON UPDATE CASCADE needs a real UPDATE
                self._foreign_key_checks(True)
                self._update(tm, first)
                changes = changes[1:]
        merged = self._merge(changes)
        self._deletes(merged)
        self._foreign_key_checks(False)
        for tc in merged.values():
            self._keyless(tc)
            self._replace(tc.tm, [image for image in tc.final.values() if image is not None])

    def _update(self, tm: TableMap, change: RowChange) -> None:
        """A key change as a real UPDATE, so that the target's ON UPDATE CASCADE moves the children.

        Replayed over rows a full load copied later (the hand-over window, a resumed load), the new
        key may already hold that row's later state and the old key may be gone: the row at the
        new key gives way (without cascading), and a missing old row is written whole.
        """
        columns = tm.source.stored_columns
        sets = ", ".join(f"{quote(tm.columns[c.name])} = %s" for c in columns)
        where = " AND ".join(f"{quote(tm.columns[c])} = %s" for c in tm.source.key)
        self._foreign_key_checks(False)
        self.target.execute(f"DELETE FROM {tm.quoted} WHERE {where}", [change.after[c] for c in tm.source.key])
        self._foreign_key_checks(True)
        moved = self.target.execute(
            f"UPDATE {tm.quoted} SET {sets} WHERE {where}",
            [change.after[c.name] for c in columns] + [change.before[c] for c in tm.source.key],
        )
        if not moved:
            self._replace(tm, [change.after])

    def _merge(self, changes: list[RowChange]) -> dict[tuple[str, str], TableChanges]:
        merged: dict[tuple[str, str], TableChanges] = {}
        for change in changes:
            key = (change.schema, change.table)
            tc = merged.get(key)
            if tc is None:
                tm = self.tracker.get(*key)
                if tm is None:
                    continue
                tc = merged[key] = TableChanges(tm, (tm.schema, tm.name) in self.relations().cascading)
            tc.add(change, _key_getter(tc.tm))
        return merged

    def _deletes(self, merged: dict[tuple[str, str], TableChanges]) -> None:
        """Child tables first; a cascading parent's deletes run with foreign_key_checks on, so the
        target performs the ON DELETE actions as the source did."""
        for tc in _children_first(list(merged.values())):
            keys = tc.deletes()
            self._foreign_key_checks(tc.cascading)
            if tc.deleted:
                self._cascade(tc)
            for start in range(0, len(keys), KEYS_PER_STATEMENT):
                sql = _delete_sql(self.target, tc.tm, keys[start : start + KEYS_PER_STATEMENT])
                try:
                    self.target.execute(sql)
                except pymysql.err.IntegrityError as err:
                    if err.args[0] != _ROW_IS_REFERENCED:
                        raise
                    # the target still holds child rows the source had removed before (a replay after
                    # a full load); they go when their own deletes arrive
                    self._foreign_key_checks(False)
                    self.target.execute(sql)
                    self._foreign_key_checks(tc.cascading)

    def _cascade(self, parent: TableChanges) -> None:
        """Do the ON DELETE actions of a parent's deletes on the child rows themselves.

        The target's foreign keys do it too, but only where the parent row is there: in the
        window a full load hands over, a child chunk copied before the parent was deleted and a
        parent chunk copied after leave children that no delete would reach.
        """
        images = list(parent.deleted.values())
        for child, fk in self.relations().cascading.get((parent.tm.schema, parent.tm.name), []):
            values = {tuple(image[c] for c in fk.ref_columns) for image in images}
            values = sorted((v for v in values if None not in v), key=repr)
            if not values:
                continue
            where = in_list(self.target, [child.columns[c] for c in fk.columns], values)
            if fk.on_delete.upper() == "CASCADE":
                self.target.execute(f"DELETE FROM {child.quoted} WHERE {where}")
            else:
                nulls = ", ".join(f"{quote(child.columns[c])} = NULL" for c in fk.columns)
                self.target.execute(f"UPDATE {child.quoted} SET {nulls} WHERE {where}")

    def _replace(self, tm: TableMap, rows: list[dict]) -> None:
        if not rows:
            return
        columns = tm.source.stored_columns
        names = ", ".join(quote(tm.columns[c.name]) for c in columns)
        marks = ", ".join(["%s"] * len(columns))
        with self.target.cursor() as cur:
            cur.executemany(
                f"REPLACE INTO {tm.quoted} ({names}) VALUES ({marks})",
                [tuple(image[c.name] for c in columns) for image in rows],
            )

    def _keyless(self, tc: TableChanges) -> None:
        tm = tc.tm
        columns = tm.source.stored_columns
        names = ", ".join(quote(tm.columns[c.name]) for c in columns)
        for change in tc.keyless:
            if change.op is Op.INSERT:
                marks = ", ".join(["%s"] * len(columns))
                self.target.execute(
                    f"INSERT INTO {tm.quoted} ({names}) VALUES ({marks})", [change.after[c.name] for c in columns]
                )
                continue
            where, args = _match(tm, change.before)
            if change.op is Op.DELETE:
                found = self.target.execute(f"DELETE FROM {tm.quoted} WHERE {where} LIMIT 1", args)
            else:
                sets = ", ".join(f"{quote(tm.columns[c.name])} = %s" for c in columns)
                values = [change.after[c.name] for c in columns]
                found = self.target.execute(f"UPDATE {tm.quoted} SET {sets} WHERE {where} LIMIT 1", values + args)
            if found != 1:
                raise ChangePaused(
                    f"a {change.op.value} of a row of {tm.source.qualified} (a table without a key) found no equal"
                    f" row on the target {tm.qualified}, so the change would be lost: the row was"
                    f" {_shown(change.before)}",
                    fix="make the target's row equal to the source's (verify shows it, its fix SQL sets it),"
                    " then resume the sync: the change is applied again",
                )

    def _checkpoint(self, group: list[Transaction]) -> None:
        """Where the stream continues: the end of the group's last transaction."""
        position = group[-1].position
        if self.worker:
            self.target.upsert(
                "`omsbench`.`sync_workers`",
                {"project": self.project, "worker": self.worker},
                {"file": position.file, "pos": position.pos, "applied_at": time.time()},
            )
        else:
            write_checkpoint(self.target, self.project, position, group[-1].commit_ts)


class ParallelApplier:
    """Applies each group over several target sessions at once: ``Options.apply_workers``.

    Changes to independent keyed tables are split by key, so all changes to one row stay in one
    session and in order (a row whose key changes counts as one row under both keys). Changes
    that must keep their order across rows stay with the main session: those of keyless tables
    and of tables tied to others by foreign keys or to themselves by another unique index. The other sessions
    commit first, each with its own mark row (``omsbench.sync_workers``); the main session commits
    last, with the checkpoint. A crash between those commits replays the group: the other
    sessions' shares hold only keyed changes merged to final images, which leave the same rows
    when applied again, and the main session's share is applied exactly once with its checkpoint.
    The price, and why it is off by default: while a group commits, a reader of the target can
    see some sessions' share of it before the others'.
    """

    def __init__(self, appliers: list[Applier]) -> None:
        self.main, *self.others = appliers
        self.tracker = self.main.tracker
        self.pool = ThreadPoolExecutor(len(self.others), thread_name_prefix="omsbench-apply")

    def apply(self, group: list[Transaction]) -> float:
        main, *shares = self._split([c for txn in group for c in txn.changes])
        pairs = zip(self.others, shares, strict=True)
        futures = [self.pool.submit(applier.apply, group, share) for applier, share in pairs if share]
        return self.main.apply(group, main, before_commit=lambda: _all_done(futures))

    def apply_piece(self, changes: list[RowChange]) -> None:
        self.main.apply_piece(changes)

    def finish(self, group: list[Transaction]) -> float:
        """In the main session too: its open transaction holds the pieces' rows, which another session would wait on."""
        return self.main.apply(group)

    def checkpoint_only(self, txn: Transaction, sql: str | None = None) -> None:
        self.main.checkpoint_only(txn, sql)

    def rollback(self) -> None:
        for applier in (self.main, *self.others):
            applier.rollback()

    def close(self) -> None:
        self.pool.shutdown()

    def _split(self, changes: list[RowChange]) -> list[list[RowChange]]:
        """The main session's share first, then one per other session."""
        sessions = 1 + len(self.others)
        tied = self.main.relations().tied
        row_of = _rows_by_key_changes(self.tracker, changes)
        shares: list[list[RowChange]] = [[] for _ in range(sessions)]
        for change in changes:
            tm = self.tracker.get(change.schema, change.table)
            if tm is None:
                continue
            independent = change.key is not None and (tm.schema, tm.name) not in tied
            shares[_session_of(row_of(change), sessions) if independent else 0].append(change)
        return shares


def _rows_by_key_changes(tracker: Tracker, changes: list[RowChange]):
    """A function naming the row a change writes, where a row whose key changes in ``changes`` is
    one row under its old and its new key: all that is written under either goes to one session,
    in order (the keys form chains, joined as in a union-find)."""
    joined: dict[tuple, tuple] = {}

    def row(name: tuple) -> tuple:
        while name in joined:
            name = joined[name]
        return name

    for change in changes:
        tm = tracker.get(change.schema, change.table)
        if change.op is Op.UPDATE and change.key is not None and tm is not None and _key_changed(tm, change):
            old, new = (
                row((change.schema, change.table, _key_getter(tm)(change.before))),
                row((change.schema, change.table, change.key)),
            )
            if old != new:
                joined[old] = new
    return lambda change: row((change.schema, change.table, change.key))


def _session_of(row: tuple, sessions: int) -> int:
    return zlib.crc32(repr(row).encode()) % sessions


def _all_done(futures: list[Future]) -> None:
    """Wait for every session's commit; the first failure fails the main session's transaction."""
    errors = [f.exception() for f in futures]
    for error in errors:
        if error is not None:
            raise error


def write_checkpoint(target: Session, project: str, position: BinlogPosition, source_ts: float | None) -> None:
    target.upsert(
        "`omsbench`.`sync_checkpoint`",
        {"project": project},
        {
            "file": position.file,
            "pos": position.pos,
            "gtid": position.gtid,
            "source_ts": source_ts,
            "applied_at": time.time(),
        },
    )


def _key_changed(tm: TableMap, change: RowChange) -> bool:
    return any(change.before[c] != change.after[c] for c in tm.source.key)


def _key_getter(tm: TableMap):
    key = tm.source.key
    return lambda image: tuple(image[c] for c in key)


def _delete_sql(target: Session, tm: TableMap, keys: list[tuple]) -> str:
    return f"DELETE FROM {tm.quoted} WHERE {in_list(target, [tm.columns[c] for c in tm.source.key], keys)}"


def in_list(session: Session, columns: list[str], rows: list[tuple]) -> str:
    """``col IN (...)`` or ``(a, b) IN ((...), ...)``, the values as literals of ``session``'s connection."""
    literal = session.conn.escape
    if len(columns) == 1:
        return f"{quote(columns[0])} IN ({', '.join(literal(row[0]) for row in rows)})"
    names = ", ".join(quote(c) for c in columns)
    return f"({names}) IN ({', '.join('(' + ', '.join(literal(v) for v in row) + ')' for row in rows)})"


_TEXT = frozenset({"char", "varchar", "tinytext", "text", "mediumtext", "longtext", "enum", "set"})


def _match(tm: TableMap, image: dict) -> tuple[str, list]:
    """A NULL-safe match on every stored column of a keyless row (spatial values cannot be compared).

    Text is matched byte for byte: under a case-insensitive or PAD SPACE collation 'a' would match
    'A' or 'a ', and the change would land on another of the table's rows.
    """
    parts, args = [], []
    for column in tm.source.stored_columns:
        name = quote(tm.columns[column.name])
        if column.data_type in SPATIAL_TYPES:
            continue
        if column.data_type == "json":
            parts.append(f"{name} <=> CAST(%s AS JSON)")
        elif column.data_type in _TEXT:
            parts.append(f"CAST({name} AS BINARY) <=> CAST(%s AS BINARY)")
        else:
            parts.append(f"{name} <=> %s")
        args.append(image[column.name])
    return " AND ".join(parts), args


def _shown(image: dict | None) -> str:
    """A row image for a message, each value cut short: a pause names the row, not a megabyte of it."""
    return "{" + ", ".join(f"{k}: {str(v)[:40]!r}" for k, v in (image or {}).items()) + "}"


def _children_first(tables: list[TableChanges]) -> list[TableChanges]:
    """Order so that a table referencing another comes before it (deletes of children go first)."""
    by_target = {(tc.tm.schema, tc.tm.name): tc for tc in tables if tc.deletes()}
    parents = defaultdict(set)
    for name, tc in by_target.items():
        for fk in tc.tm.source.foreign_keys:
            ref = (fk.ref_schema, fk.ref_table)
            if ref in by_target and ref != name:
                parents[name].add(ref)
    ordered: list[TableChanges] = []
    done: set = set()

    def visit(name, trail=()):
        if name in done or name in trail:
            return
        for child, refs in parents.items():
            if name in refs:
                visit(child, (*trail, name))
        done.add(name)
        ordered.append(by_target[name])

    for name in by_target:
        visit(name)
    return ordered
