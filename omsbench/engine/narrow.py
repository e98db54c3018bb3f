"""Text columns MySQL keeps narrower than OceanBase's utf8mb4, at cut-over.

seekdb has no utf8mb3, latin1 or other narrow set, so the schema step widens such columns to
utf8mb4 (correctly: every source value fits). After switchover the application writes to
OceanBase, which then takes values MySQL cannot store (an emoji in a utf8mb3 column), and the
fallback would stop on the first. The spec chooses (``switchover.narrow_columns``):

- ``widen`` (the default): the switchover converts those MySQL tables to utf8mb4, with MySQL
  read-only and the forward sync stopped, and records the ALTERs. Nothing is lost, the
  application and the fallback keep running; MySQL's columns stay wider after a switch-back.
- ``guard``: a CHECK on each such OceanBase column refuses the application a 4-byte character
  (``HEX(col) NOT REGEXP '^(..)*F[0-4]'``: a UTF-8 lead byte F0-F4; measured on seekdb 1.4, which
  enforces it with error 3819), so what OceanBase holds always fits MySQL; utf8mb3 columns
  only. Switch-back drops the guards.
- ``pause``: nothing changes; the reverse sync pauses on such a value, showing it, until the
  MySQL column is widened by hand.
"""

from __future__ import annotations

import pymysql

from omsbench.endpoints.catalog import Column, quote
from omsbench.endpoints.connection import Session
from omsbench.engine.mapping import Selection, TableMap

WIDE = ("utf8mb4", "binary")
GUARDABLE = ("utf8mb3", "utf8")
_CHECK_EXISTS = {3822, 1826}


def columns(selection: Selection, target: Session) -> list[tuple[TableMap, list[Column]]]:
    """Each migrated table with its text columns that MySQL keeps in a narrower character set than
    the target's utf8mb4 (a MySQL target that has the column's own set keeps it: nothing to do)."""
    found = []
    for tm in selection.tables:
        narrow = [c for c in tm.source.columns if c.charset and c.charset.lower() not in WIDE]
        if narrow:
            there = dict(
                target.query(
                    "SELECT COLUMN_NAME, CHARACTER_SET_NAME FROM information_schema.COLUMNS"
                    " WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
                    (tm.schema, tm.name),
                )
            )
            wider = [c for c in narrow if (there.get(tm.columns[c.name]) or "utf8mb4").lower() == "utf8mb4"]
            if wider:
                found.append((tm, wider))
    return found


def unguardable(found: list[tuple[TableMap, list[Column]]]) -> list[str]:
    """Columns a guard cannot cover: only utf8mb3's limit (no 4-byte character) is one a CHECK can state."""
    return [
        f"{tm.source.qualified}.{c.name} ({c.charset})"
        for tm, cs in found
        for c in cs
        if c.charset.lower() not in GUARDABLE
    ]


def widen(mysql: Session, found: list[tuple[TableMap, list[Column]]]) -> list[str]:
    """Convert the MySQL tables to utf8mb4; the statements run (converting again changes nothing)."""
    statements = [
        f"ALTER TABLE {quote(tm.source.schema)}.{quote(tm.source.name)} CONVERT TO CHARACTER SET utf8mb4"
        for tm, _ in found
    ]
    for statement in statements:
        mysql.execute(statement)
    return statements


def _guard_name(column: Column) -> str:
    return f"omsbench_utf8mb3_{column.name}"[:64]


def guard(target: Session, found: list[tuple[TableMap, list[Column]]]) -> list[dict]:
    """Add a CHECK per utf8mb3 column on OceanBase; the guards, for switch-back to drop."""
    guards = []
    for tm, narrow in found:
        for column in narrow:
            name = quote(tm.columns[column.name])
            guards.append({"schema": tm.schema, "table": tm.name, "name": _guard_name(column)})
            try:
                target.execute(
                    f"ALTER TABLE {tm.quoted} ADD CONSTRAINT {quote(_guard_name(column))}"
                    f" CHECK (HEX({name}) NOT REGEXP '^(..)*F[0-4]')"
                )
            except pymysql.err.MySQLError as err:
                if not (err.args and err.args[0] in _CHECK_EXISTS):  # added by an earlier run of the same switchover
                    raise
    return guards


def unguard(target: Session, guards: list[dict]) -> None:
    for item in guards:
        present = target.query(
            "SELECT 1 FROM information_schema.TABLE_CONSTRAINTS WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s"
            " AND CONSTRAINT_NAME = %s",
            (item["schema"], item["table"], item["name"]),
        )
        if present:
            target.execute(
                f"ALTER TABLE {quote(item['schema'])}.{quote(item['table'])} DROP CHECK {quote(item['name'])}"
            )
