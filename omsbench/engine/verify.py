"""Verification: find every differing row, show it as a DataFrame, and write the SQL that fixes it.

A table whose checksums match on both sides is done in one query per side. Otherwise its key
space is cut into ranges; a range whose checksums differ is split again (at keys taken from
whichever side holds more rows in it, so rows that exist only on the target are cut too)
until it holds few rows, and only then are rows fetched and compared column by column, on
the same canonical text the checksums use. The first and last ranges are open-ended, so rows
outside the source's key span are found as well. A table without a key is compared as a
multiset of row hashes.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import random
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

import pandas as pd
import pymysql
from pymysql.converters import escape_item
from tqdm.auto import tqdm

from omsbench.endpoints.catalog import quote
from omsbench.endpoints.connection import Session, packet_too_large, raise_packet
from omsbench.engine import checksum, chunking
from omsbench.engine.checksum import Side, TableCheck, as_hex, canonical, digest, key_span, rendered, rule
from omsbench.engine.literals import value_literal
from omsbench.engine.mapping import TableMap
from omsbench.exceptions import VerifyError

LEAF_ROWS = 1000
LEAF_BYTES = 8 << 20
"""At most about this much row data is fetched at once to compare rows: a fetched row is held as
its canonical text, its values and its literal (binary as hex twice), some five times its size,
so 1,000 rows of 1 MB BLOBs took 3.7 GB; tables of large rows get smaller leaves."""
CHUNK_ROWS = 10_000
"""Rows per checked range: a range that differs is read again to narrow it down, so smaller ranges
waste less on a few scattered differences; below this the per-query cost on seekdb dominates
(measured on 1M rows with ten differences: 1.4 s at 5k and 10k, 1.55 s at 20k, 1.85 s at 50k)."""
SPLIT = 16
MAX_SLICES = 256
MAX_BUCKETS = 4096
MISSING, EXTRA, DIFFERENT = "missing on target", "extra on target", "different"
PERSISTENT, TRANSIENT = "persistent", "transient"
COLUMNS = ["table", "key", "kind", "column", "source_value", "target_value", "rule", "state"]
_IDENTITY = ["table", "key", "kind", "column"]


@dataclass
class Difference:
    table: str
    key: str
    kind: str
    column: str = ""
    source_value: object = None
    target_value: object = None
    rule: str = ""
    state: str = PERSISTENT
    """Online checks: ``transient`` when the difference went away once the sync caught up."""


@dataclass
class TableVerdict:
    check: TableCheck
    differences: list[Difference] = field(default_factory=list)
    fixes: list[str] = field(default_factory=list)
    ranges_compared: int = 1
    sampled: float = 1.0
    """Share of the key ranges compared; below 1 the counts and checksums cover only those."""


def verify_table(
    source: Session,
    target: Session,
    tm: TableMap,
    chunk_size: int = CHUNK_ROWS,
    leaf_rows: int = LEAF_ROWS,
    sample: float = 1.0,
    seed: int | None = None,
    progress: bool = False,
) -> TableVerdict:
    """Compare one table; ``sample`` < 1 compares only that share of its key ranges, chosen at random.

    ``progress`` draws a bar of the table's key ranges (a widget in a notebook): a large table
    takes minutes, which a silent terminal does not explain."""
    leaf_rows = _leaf(tm, leaf_rows)
    with ThreadPoolExecutor(2, thread_name_prefix="omsbench-verify") as pool:
        comparer = _Comparer(source, target, tm, pool, leaf_rows, _ordered_differently(target, tm))
        return comparer.run(chunk_size, sample, random.Random(seed), progress)


def _ordered_differently(target: Session, tm: TableMap) -> bool:
    """Whether a text column of the key has another collation on the target (seekdb has two: a
    source's utf8mb4_unicode_ci or latin1_swedish_ci arrives as utf8mb4_general_ci). Then a key
    range cut on one side holds other rows on the other: ranges would report rows as missing in
    one and extra in another."""
    keyed = {
        tm.columns[c.name].lower(): c.collation.lower()
        for c in tm.source.columns
        if c.name in tm.source.key and c.collation
    }
    if not keyed:
        return False
    there = target.query(
        "SELECT COLUMN_NAME, COLLATION_NAME FROM information_schema.COLUMNS"
        " WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
        (tm.schema, tm.name),
    )
    return any(
        keyed.get(name.lower(), (collation or "").lower()) != (collation or "").lower() for name, collation in there
    )


def _leaf(tm: TableMap, rows: int = LEAF_ROWS) -> int:
    """Rows to fetch at once for a row-by-row comparison: ``rows``, fewer where rows are large."""
    return max(1, min(rows, LEAF_BYTES // max(tm.source.avg_row_length, 1)))


class _Comparer:
    """Compares one table; each question goes to both databases at once."""

    def __init__(
        self, source: Session, target: Session, tm: TableMap, pool: ThreadPoolExecutor, leaf_rows: int, hashed: bool
    ):
        self.source, self.target, self.tm, self.pool, self.leaf_rows = source, target, tm, pool, leaf_rows
        self.hashed = hashed
        """Cut the key space by hash buckets instead of ranges (see ``_ordered_differently``)."""
        self.sides = Side.of(tm, "source"), Side.of(tm, "target")
        self.verdict = TableVerdict(self._check((0, 0), (0, 0)), ranges_compared=0)

    def both(self, fn, *args):
        """``fn(session, tm, side, *args)`` on the source and the target concurrently."""
        futures = [
            self.pool.submit(fn, s, self.tm, name, *args)
            for s, name in ((self.source, "source"), (self.target, "target"))
        ]
        return futures[0].result(), futures[1].result()

    def run(self, chunk_size: int, sample: float, rng: random.Random, progress: bool = False) -> TableVerdict:
        sampling = sample < 1 and bool(self.tm.source.key) and not self.hashed
        if not self.tm.source.integer_key and not sampling:
            # One digest per side first: an equal table (the usual case) costs one scan.
            src, dst = self.both(digest)
            self.verdict = TableVerdict(self._check(src, dst))
            if self.verdict.check.equal:
                return self.verdict
            if not self.tm.source.key:
                _compare_multisets(self.source, self.target, self.tm, self.verdict)
                return self.verdict
            if self.hashed:
                self._by_buckets(max(src[0], dst[0]))
                return self.verdict
        ranges = self._ranges(chunk_size)
        if sampling:
            ranges = sorted(rng.sample(ranges, max(1, math.ceil(len(ranges) * sample))), key=ranges.index)
            self.verdict.sampled = sample
        totals = [0, 0, 0, 0]
        bar = tqdm(ranges, desc=self.tm.source.qualified, unit="range", leave=False, disable=not progress)
        for lower, upper in bar:
            src, dst = self.compare_range(lower, upper)
            totals = [a + b for a, b in zip(totals, (*src, *dst), strict=True)]
        if self.tm.source.integer_key or sampling:
            self.verdict.check = self._check(totals[:2], totals[2:])
        return self.verdict

    def _by_buckets(self, rows: int) -> None:
        """Digest every hash bucket of the key in one scan per side; compare the rows of the buckets
        that differ, a leaf's worth at a time."""
        buckets = min(MAX_BUCKETS, max(1, -(-rows // self.leaf_rows)))
        src, dst = self.both(checksum.digest_buckets, buckets)
        self.verdict.ranges_compared = len(src.keys() | dst.keys())
        batch: list[int] = []
        held = 0
        for n in sorted(src.keys() | dst.keys()):
            if src.get(n) == dst.get(n):
                continue
            batch.append(n)
            held += max(src.get(n, (0, 0))[0], dst.get(n, (0, 0))[0])
            if held >= self.leaf_rows:
                self._compare_buckets(buckets, batch)
                batch, held = [], 0
        if batch:
            self._compare_buckets(buckets, batch)

    def _compare_buckets(self, buckets: int, numbers: list[int]) -> None:
        _compare_rows(
            self.source, self.target, self.tm, self.verdict, lambda side: side.where_buckets(self.tm, buckets, numbers)
        )

    def _check(self, src: tuple[int, int], dst: tuple[int, int]) -> TableCheck:
        return TableCheck(self.tm.source.qualified, self.tm.qualified, src[0], dst[0], as_hex(src[1]), as_hex(dst[1]))

    def _ranges(self, chunk_size: int) -> list[tuple[chunking.Bound, chunking.Bound]]:
        """Key ranges of about ``chunk_size`` rows covering every row of both sides.

        An integer key is cut by arithmetic over both sides' span (no planning queries, and
        extra target rows beyond the source's keys fall in); other keys by the source's index.
        """
        if not self.tm.source.integer_key:
            return chunking.plan(self.source, self.tm, chunk_size)
        spans = [s for s in self.both(key_span) if s[0] is not None]
        if not spans:
            return []
        low, high = min(s[0] for s in spans), max(s[1] for s in spans)
        return _integer_pieces(low - 1, high, max(1, self.tm.source.row_estimate // chunk_size))

    def compare_range(self, lower: chunking.Bound, upper: chunking.Bound) -> tuple[tuple, tuple]:
        """Digest a key range on both sides; where they differ, descend to the rows."""
        self.verdict.ranges_compared += 1
        src, dst = self.both(digest, lower, upper)
        if src != dst:
            self._descend(lower, upper, max(src[0], dst[0]), src[0] >= dst[0])
        return src, dst

    def _descend(self, lower: chunking.Bound, upper: chunking.Bound, rows: int, source_larger: bool) -> None:
        if rows <= self.leaf_rows:
            _compare_rows(self.source, self.target, self.tm, self.verdict, lambda side: side.where(lower, upper))
            return
        if self.tm.source.integer_key:
            self._descend_slices(lower[0], upper[0], rows)
            return
        # cut at keys of the side with more rows, so that rows only the target has are cut too
        session, side = (self.source, self.sides[0]) if source_larger else (self.target, self.sides[1])
        for sub_lower, sub_upper in itertools.pairwise(
            [lower, *_split_points(session, side, lower, upper, rows), upper]
        ):
            self.compare_range(sub_lower, sub_upper)

    def _descend_slices(self, lower: int, upper: int, rows: int) -> None:
        """Digest every slice of an integer key range in one query per side; descend into those that differ.

        Slices hold about half a leaf's rows at the range's density, so most differing slices are
        compared row by row at once.
        """
        pieces = min(MAX_SLICES, max(SPLIT, -(-2 * rows // self.leaf_rows)))
        step = _step(lower, upper, pieces)
        src, dst = self.both(checksum.digest_slices, lower, upper, step)
        self.verdict.ranges_compared += len(src.keys() | dst.keys())
        for n in sorted(src.keys() | dst.keys()):
            mine, theirs = src.get(n, (0, 0)), dst.get(n, (0, 0))
            if mine != theirs:
                sub_lower = lower + n * step
                self._descend(
                    (sub_lower,), (min(sub_lower + step, upper),), max(mine[0], theirs[0]), mine[0] >= theirs[0]
                )


def _integer_pieces(lower: int, upper: int, pieces: int) -> list[tuple[tuple[int], tuple[int]]]:
    """``(lower, upper]`` cut into up to ``pieces`` consecutive integer ranges."""
    edges = [*range(lower, upper, _step(lower, upper, pieces)), upper]
    return [((a,), (b,)) for a, b in itertools.pairwise(edges)]


def _step(lower: int, upper: int, pieces: int) -> int:
    """The width that cuts ``(lower, upper]`` into at most ``pieces`` ranges."""
    return max(1, -(-(upper - lower) // pieces))


def _split_points(
    session: Session, side: Side, lower: chunking.Bound, upper: chunking.Bound, rows: int, pieces: int = SPLIT
) -> list[tuple]:
    key = ", ".join(quote(k) for k in side.key)
    points = []
    for i in range(1, pieces):
        row = session.query(
            f"SELECT {key} FROM {side.table}{side.where(lower, upper)} ORDER BY {key}"
            f" LIMIT 1 OFFSET {rows * i // pieces}"
        )
        if row and (not points or tuple(row[0]) != points[-1]):
            points.append(tuple(row[0]))
    return points


def _values(tm: TableMap, side: Side) -> list[str]:
    """The columns as stored, then (on the source) each rendered as the SQL literal fix SQL needs."""
    shown = [quote(n) for n in side.columns]
    return shown + ([value_literal(c) for c in tm.source.columns] if side.name == "source" else [])


def _fetch(session: Session, tm: TableMap, side: Side, where: str) -> dict[tuple, tuple]:
    """Rows by key: (canonical values, display values, source literals) per row."""
    columns = tm.source.columns
    canon = [canonical(c, n) for c, n in zip(columns, side.columns, strict=True)]
    keys = [quote(k) for k in side.key]
    rows = rendered(
        session, tm, side.name, f"SELECT {', '.join(keys + canon + _values(tm, side))} FROM {side.table}{where}"
    )
    n, m = len(keys), len(columns)
    return {tuple(r[:n]): (r[n : n + m], r[n + m : n + 2 * m], r[n + 2 * m :]) for r in rows}


def verify_keys(source: Session, target: Session, tm: TableMap, keys: set[tuple]) -> TableVerdict:
    """Compare only the rows with these keys: the changed-rows check after a sync.

    The summary's row counts are the number of keys checked on each side.
    """
    verdict = TableVerdict(
        TableCheck(tm.source.qualified, tm.qualified, len(keys), len(keys), "", ""), ranges_compared=0
    )
    ordered, leaf = sorted(keys, key=repr), _leaf(tm)
    for start in range(0, len(ordered), leaf):
        batch = ordered[start : start + leaf]
        verdict.ranges_compared += 1
        _compare_rows(source, target, tm, verdict, lambda side, batch=batch: side.where_keys(batch))
    return verdict


def _compare_rows(
    source: Session,
    target: Session,
    tm: TableMap,
    verdict: TableVerdict,
    where: Callable[[Side], str],
) -> None:
    src_side, dst_side = Side.of(tm, "source"), Side.of(tm, "target")
    src = _fetch(source, tm, src_side, where(src_side))
    dst = _fetch(target, tm, dst_side, where(dst_side))
    table = tm.source.qualified
    for key in sorted(src.keys() | dst.keys(), key=repr):
        shown_key = _show_key(dst_side.key, key)
        if key not in dst:
            verdict.differences.append(Difference(table, shown_key, MISSING, source_value=_row(tm, src[key][1])))
            verdict.fixes.append(_insert(tm, src[key][2]))
        elif key not in src:
            verdict.differences.append(Difference(table, shown_key, EXTRA, target_value=_row(tm, dst[key][1])))
            verdict.fixes.append(f"DELETE FROM {tm.quoted} WHERE {_key_match(dst_side.key, key)}")
        else:
            _compare_columns(tm, shown_key, src[key], dst[key], dst_side, key, verdict)


def _compare_columns(
    tm: TableMap, shown_key: str, src: tuple, dst: tuple, dst_side: Side, key: tuple, verdict: TableVerdict
) -> None:
    sets = []
    for i, column in enumerate(tm.source.columns):
        if src[0][i] == dst[0][i]:
            continue
        name = tm.columns[column.name]
        verdict.differences.append(
            Difference(tm.source.qualified, shown_key, DIFFERENT, name, src[1][i], dst[1][i], rule(column))
        )
        if column.generated is None:
            sets.append(f"{quote(name)} = {src[2][i].decode() if isinstance(src[2][i], bytes) else src[2][i]}")
    if sets:
        verdict.fixes.append(f"UPDATE {tm.quoted} SET {', '.join(sets)} WHERE {_key_match(dst_side.key, key)}")


def _row(tm: TableMap, values: tuple) -> dict:
    return {tm.columns[c.name]: v for c, v in zip(tm.source.columns, values, strict=True)}


def key_label(tm: TableMap, key: tuple) -> str:
    """How a difference names its row: target key columns and values."""
    return _show_key(Side.of(tm, "target").key, key)


def _show_key(names: tuple[str, ...], values: tuple) -> str:
    return ", ".join(f"{n}={v!r}" for n, v in zip(names, values, strict=True))


def _key_match(names: tuple[str, ...], values: tuple) -> str:
    return " AND ".join(f"{quote(n)} = {escape_item(v, 'utf8mb4')}" for n, v in zip(names, values, strict=True))


def _insert(tm: TableMap, literals: tuple) -> str:
    stored = [(c, lit) for c, lit in zip(tm.source.columns, literals, strict=True) if c.generated is None]
    cols = ", ".join(quote(tm.columns[c.name]) for c, _ in stored)
    values = ", ".join(lit.decode() if isinstance(lit, bytes) else str(lit) for _, lit in stored)
    return f"INSERT INTO {tm.quoted} ({cols}) VALUES ({values})"


def _compare_multisets(source: Session, target: Session, tm: TableMap, verdict: TableVerdict) -> None:
    """Tables without a key: rows are equal when each row hash occurs equally often on both sides.

    A row counted and then gone before it is fetched (the table is being written: an online check)
    is still reported, without its values and, when missing on the target, without fix SQL; the
    online check counts again.
    """
    counts = {}
    for name, session in (("source", source), ("target", target)):
        side = Side.of(tm, name)
        sql = (
            f"SELECT h, COUNT(*) FROM (SELECT {side.row_hash(tm)} AS h FROM {side.table}{side.where()}) AS r GROUP BY h"
        )
        counts[name] = dict(rendered(session, tm, name, sql))
    src_side, dst_side = Side.of(tm, "source"), Side.of(tm, "target")
    for digest_hex in sorted(counts["source"].keys() | counts["target"].keys()):
        surplus = counts["source"].get(digest_hex, 0) - counts["target"].get(digest_hex, 0)
        if surplus > 0:
            sample = _fetch_by_hash(source, tm, src_side, digest_hex)
            values = _row(tm, sample[0]) if sample else None
            verdict.differences += [
                Difference(tm.source.qualified, f"row hash {digest_hex}", MISSING, source_value=values)
            ] * surplus
            verdict.fixes += [_insert(tm, sample[1])] * surplus if sample else []
        elif surplus < 0:
            sample = _fetch_by_hash(target, tm, dst_side, digest_hex)
            values = _row(tm, sample[0]) if sample else None
            verdict.differences += [
                Difference(tm.source.qualified, f"row hash {digest_hex}", EXTRA, target_value=values)
            ] * -surplus
            verdict.fixes.append(
                f"DELETE FROM {tm.quoted} WHERE {dst_side.row_hash(tm)} = '{digest_hex}' LIMIT {-surplus}"
            )


def _fetch_by_hash(session: Session, tm: TableMap, side: Side, digest_hex: str) -> tuple[tuple, tuple] | None:
    """One row with the given hash: its display values and (on the source) its literals; None when
    no row has it any more."""
    where = side.where()
    where += (" AND " if where else " WHERE ") + f"{side.row_hash(tm)} = '{digest_hex}'"
    rows = rendered(session, tm, side.name, f"SELECT {', '.join(_values(tm, side))} FROM {side.table}{where} LIMIT 1")
    if not rows:
        return None
    return rows[0][: len(tm.source.columns)], rows[0][len(tm.source.columns) :]


@dataclass
class Verification:
    summary: pd.DataFrame
    differences: pd.DataFrame
    fixes: list[str]

    @property
    def equal(self) -> bool:
        """No difference that stays: transient ones (an online check saw them converge) do not count."""
        persistent = self.differences[self.differences.state == PERSISTENT]
        return persistent.empty and bool(self.summary["equal"].all())


def settle(
    first: Verification, recheck: Callable[[set[str]], Verification], wait: Callable[[], None], rounds: int
) -> Verification:
    """Online check: while a sync runs, re-check the differing tables after it has passed the moment
    they were read, up to ``rounds`` times. A difference that went away is labelled transient (it
    was a change in flight), one that stayed persistent; the result's fixes are the last round's.
    """
    latest = first
    for _ in range(rounds):
        if latest.equal:
            break
        wait()
        latest = _merge_rounds(latest, recheck(set(latest.differences["table"])))
    staying = latest.differences[_IDENTITY].apply(tuple, axis=1).tolist() if len(latest.differences) else []
    went = first.differences[~first.differences[_IDENTITY].apply(tuple, axis=1).isin(staying)].assign(state=TRANSIENT)
    differences = pd.concat([latest.differences, went], ignore_index=True) if len(went) else latest.differences
    return Verification(latest.summary, differences, latest.fixes)


def _merge_rounds(before: Verification, again: Verification) -> Verification:
    """The re-checked tables' results replace theirs; the other tables keep the earlier ones."""
    rechecked = set(again.summary["table"])
    summary = pd.concat([before.summary[~before.summary["table"].isin(rechecked)], again.summary], ignore_index=True)
    return Verification(summary, again.differences, again.fixes)


def combine(verdicts: list[TableVerdict]) -> Verification:
    return Verification(summary_frame(verdicts), differences_frame(verdicts), [f for v in verdicts for f in v.fixes])


def apply_fixes(target: Session, statements: list[str], mark: tuple[str, tuple] | None = None) -> None:
    """Run fix statements in one transaction: all of them take effect, or none. ``mark``, a
    statement with its arguments, runs last in the same transaction (a checkpoint row).

    Foreign key checks are off for this session meanwhile: the statements come in key order,
    not in dependency order, and together they make the target equal to a consistent source.
    """
    target.execute("SET SESSION foreign_key_checks = 0")
    target.execute("BEGIN")
    try:
        for statement in statements:
            target.execute(statement)
        if mark is not None:
            target.execute(*mark)
        target.execute("COMMIT")
    except BaseException as err:
        with contextlib.suppress(pymysql.err.MySQLError):  # a lost connection rolled back already
            target.execute("ROLLBACK")
        if packet_too_large(err):
            raise VerifyError(
                "a fix statement is larger than the target takes (max_allowed_packet); no fix was applied",
                fix=f"{raise_packet('target')}, then apply the fix again",
            ) from err
        raise
    finally:
        with contextlib.suppress(pymysql.err.MySQLError):
            target.execute("SET SESSION foreign_key_checks = 1")


def differences_frame(verdicts: list[TableVerdict]) -> pd.DataFrame:
    return pd.DataFrame([asdict(d) for v in verdicts for d in v.differences], columns=COLUMNS)


def summary_frame(verdicts: list[TableVerdict]) -> pd.DataFrame:
    rows = []
    for v in verdicts:
        kinds = pd.Series([d.kind for d in v.differences], dtype="object")
        rows.append(
            {
                "table": v.check.table,
                "target": v.check.target,
                "source_rows": v.check.source_rows,
                "target_rows": v.check.target_rows,
                "equal": v.check.equal,
                MISSING: int((kinds == MISSING).sum()),
                EXTRA: int((kinds == EXTRA).sum()),
                "different rows": len({d.key for d in v.differences if d.kind == DIFFERENT}),
                "ranges compared": v.ranges_compared,
                "sampled": v.sampled,
            }
        )
    return pd.DataFrame(rows)
