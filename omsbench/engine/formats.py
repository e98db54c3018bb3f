"""The change model <-> the message formats consumers already parse: Canal JSON, Debezium JSON, plain JSON.

Field for field as those tools write them, so a consumer written for Canal's flat messages or
for Debezium's MySQL connector reads omsbench's messages unchanged:

- **Canal** (flat message): every value a string (binary as ISO-8859-1 text, as Canal does),
  ``old`` holding only the columns an update changed, ``mysqlType`` and ``sqlType``
  (java.sql.Types codes) per column.
- **Debezium** (MySQL connector defaults): ``before``/``after``/``source``/``op``/``ts_ms``;
  DECIMAL precise (base64 of the unscaled value), DATE as days, DATETIME as epoch milli- or
  microseconds by precision, TIMESTAMP as an ISO string in UTC, TIME as microseconds, BIT(1)
  as a boolean and wider BITs as little-endian bytes, binary as base64. ``debezium-schema``
  wraps key and value in Kafka Connect's ``{"schema", "payload"}`` envelope.

Each message also carries its source position in headers (``omsbench.position``,
``omsbench.index``), so any consumer can drop a duplicate. An update that changes the primary
key becomes a delete of the old key and an insert of the new one, as Debezium does: each
key's changes then stay in its own partition, in order.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import Context, Decimal
from typing import Any

import orjson

from omsbench import __version__
from omsbench.changes import Ddl, Op, RowChange, Transaction
from omsbench.endpoints.catalog import BINARY_TYPES, SPATIAL_TYPES, Column, Table
from omsbench.endpoints.position import BinlogPosition
from omsbench.endpoints.queue import QueueEndpoint
from omsbench.exceptions import SyncError

POSITION_HEADER = "omsbench.position"
INDEX_HEADER = "omsbench.index"
_EPOCH = datetime(1970, 1, 1)
_EXACT = Context(prec=100)
"""DECIMAL has up to 65 digits; the default context keeps 28 and would round them."""
_PRECISION = re.compile(r"\((\d+)")
_BIT_WIDTH = re.compile(r"bit\((\d+)\)")

# java.sql.Types, as Canal's sqlType reports them
_SQL_TYPES = {
    "bit": -7, "tinyint": -6, "smallint": 5, "mediumint": 4, "int": 4, "integer": 4, "bigint": -5,
    "float": 7, "double": 8, "real": 8, "decimal": 3, "numeric": 3,
    "char": 1, "varchar": 12, "tinytext": 2005, "text": 2005, "mediumtext": 2005, "longtext": 2005,
    "binary": -2, "varbinary": -3, "tinyblob": 2004, "blob": 2004, "mediumblob": 2004, "longblob": 2004,
    "date": 91, "time": 92, "datetime": 93, "timestamp": 93, "year": 12, "enum": 4, "set": -7, "json": 12,
}  # fmt: skip
_INTEGERS = frozenset({"bit", "tinyint", "smallint", "mediumint", "int", "integer", "bigint", "year"})
_DDL_TYPES = {"CREATE": "CREATE", "ALTER": "ALTER", "DROP": "ERASE", "RENAME": "RENAME", "TRUNCATE": "TRUNCATE"}


@dataclass(frozen=True)
class Message:
    topic: str
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]
    database: str | None = None
    table: str | None = None
    """What the message is about (the table of a row change, the database of a DDL), for tags."""


def messages(txn: Transaction, tables: dict[tuple[str, str], Table], endpoint: QueueEndpoint, prefix: str):
    """The messages of one source transaction, in its order."""
    now = int(time.time() * 1000)
    position = f"{txn.position.file}:{txn.position.pos}".encode()
    if txn.ddl is not None:
        yield _ddl_message(txn, endpoint, prefix, now, position)
        return
    index = 0
    for change in txn.changes:
        table = tables.get((change.schema, change.table))
        if table is None:
            continue
        for part in _split_key_change(change, table):
            headers = [(POSITION_HEADER, position), (INDEX_HEADER, str(index).encode())]
            key, value = _ENCODERS[endpoint.format](part, table, txn, index, now, prefix)
            topic = endpoint.topic_for(prefix, change.schema, change.table)
            yield Message(topic, _json(key), _json(value), headers, change.schema, change.table)
            index += 1


def _split_key_change(change: RowChange, table: Table) -> list[RowChange]:
    key = _static(table, _key_of)
    if change.op is not Op.UPDATE or not key or all(change.before[c] == change.after[c] for c in key):
        return [change]
    old_key = tuple(change.before[c] for c in key)
    return [
        RowChange(change.schema, change.table, Op.DELETE, change.before, None, old_key),
        RowChange(change.schema, change.table, Op.INSERT, None, change.after, change.key),
    ]


def _json(value) -> bytes | None:
    """Compact UTF-8 JSON, as ``json.dumps(ensure_ascii=False, separators=(",", ":"))`` writes it;
    orjson renders it in a fifth of the time, and rendering was a third of the Kafka sink's time."""
    return None if value is None else orjson.dumps(value)


_STATIC: dict[tuple[int, Callable], tuple[Table, Any]] = {}
"""Per table, what ``make`` derives from it and every message repeats (key columns, column types),
derived once. Keyed by the table object (held here, so its id is not reused while cached); the
tracker makes a new one after a DDL."""


def _static(table: Table, make: Callable[[Table], Any]) -> Any:
    found = _STATIC.get((id(table), make))
    if found is None or found[0] is not table:
        if len(_STATIC) > 10_000:
            _STATIC.clear()
        found = _STATIC[(id(table), make)] = (table, make(table))
    return found[1]


def _key_of(table: Table) -> tuple[str, ...]:
    return tuple(table.key)  # a property that searches the indexes each time it is read


def _row_key(change: RowChange, table: Table) -> dict:
    """The primary key as a JSON object; a keyless table's changes are keyed by the table, so they stay in order."""
    key = _static(table, _key_of)
    if not key:
        return {"table": table.qualified}
    image = change.after if change.after is not None else change.before
    return {c: image[c] for c in key}


def _precision(column: Column) -> int:
    found = _PRECISION.search(column.column_type)
    return int(found.group(1)) if found and column.data_type in ("datetime", "timestamp", "time") else 0


# Canal --------------------------------------------------------------------------------------------
def _canal_text(value, column: Column) -> str | None:
    if type(value) is str:  # most values: first
        return value
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S") + _fraction(value.microsecond, _precision(column))
    if isinstance(value, timedelta):
        return _time_text(value, _precision(column))
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _fraction(micros: int, digits: int) -> str:
    return f".{micros:06d}"[: digits + 1] if digits else ""


def _time_text(value: timedelta, digits: int) -> str:
    micros = abs(value) // timedelta(microseconds=1)
    seconds, micro = divmod(micros, 1_000_000)
    hours, rest = divmod(seconds, 3600)
    sign = "-" if value < timedelta(0) else ""
    return f"{sign}{hours:02d}:{rest // 60:02d}:{rest % 60:02d}{_fraction(micro, digits)}"


def _canal_types(table: Table) -> tuple:
    columns = table.columns
    return (
        orjson.Fragment(orjson.dumps({c.name: c.column_type for c in columns})),
        list(_static(table, _key_of)) or None,
        orjson.Fragment(orjson.dumps({c.name: _SQL_TYPES.get(c.data_type, 1111) for c in columns})),
    )


def _canal(change: RowChange, table: Table, txn: Transaction, index: int, now: int, prefix: str):
    columns = table.columns
    mysql_types, pk_names, sql_types = _static(table, _canal_types)
    image = change.after if change.op is not Op.DELETE else change.before
    old = None
    if change.op is Op.UPDATE:
        old = [
            {c.name: _canal_text(change.before[c.name], c) for c in columns if change.before[c.name] != image[c.name]}
        ]
    value = {
        "data": [{c.name: _canal_text(image[c.name], c) for c in columns}],
        "database": change.schema,
        "es": int(txn.commit_ts * 1000),
        "id": txn.position.pos,
        "isDdl": False,
        "mysqlType": mysql_types,
        "old": old,
        "pkNames": pk_names,
        "sql": "",
        "sqlType": sql_types,
        "table": change.table,
        "ts": now,
        "type": change.op.name,
    }
    return _row_key(change, table), value


# Debezium -----------------------------------------------------------------------------------------
def _bit_width(column: Column) -> int:
    found = _BIT_WIDTH.search(column.column_type)
    return int(found.group(1)) if found else 1


def _debezium_value(value, column: Column):
    if value is None:
        return None
    kind = column.data_type
    if kind == "bit":
        width = _bit_width(column)
        return bool(value) if width == 1 else _b64(int(value).to_bytes((width + 7) // 8, "little"))
    if kind in ("decimal", "numeric"):
        unscaled = int(Decimal(value).scaleb(_scale(column), _EXACT))
        return _b64(unscaled.to_bytes(max(1, (unscaled.bit_length() + 8) // 8), "big", signed=True))
    if kind == "date":
        return (value - date(1970, 1, 1)).days
    if kind == "time":
        return value // timedelta(microseconds=1)
    if kind == "datetime":
        micros = (value - _EPOCH) // timedelta(microseconds=1)
        return micros if _precision(column) > 3 else micros // 1000
    if kind == "timestamp":
        text = value.replace(tzinfo=None).strftime("%Y-%m-%dT%H:%M:%S")
        return text + _fraction(value.microsecond, _precision(column)) + "Z"
    if kind in SPATIAL_TYPES:
        return {"wkb": _b64(value[4:]), "srid": int.from_bytes(value[:4], "little")}
    if isinstance(value, bytes):
        return _b64(value)
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, Decimal):
        return float(value)
    return value


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _scale(column: Column) -> int:
    found = re.search(r"\(\d+,(\d+)\)", column.column_type)
    return int(found.group(1)) if found else 0


_DEBEZIUM_SCHEMAS = {
    "tinyint": ("int16", None), "smallint": ("int16", None), "mediumint": ("int32", None), "int": ("int32", None),
    "integer": ("int32", None), "bigint": ("int64", None), "float": ("float", None), "double": ("double", None),
    "real": ("double", None), "decimal": ("bytes", "org.apache.kafka.connect.data.Decimal"),
    "numeric": ("bytes", "org.apache.kafka.connect.data.Decimal"), "date": ("int32", "io.debezium.time.Date"),
    "time": ("int64", "io.debezium.time.MicroTime"), "timestamp": ("string", "io.debezium.time.ZonedTimestamp"),
    "year": ("int32", "io.debezium.time.Year"), "json": ("string", "io.debezium.data.Json"),
    "enum": ("string", "io.debezium.data.Enum"), "set": ("string", "io.debezium.data.EnumSet"),
}  # fmt: skip


def _field_schema(column: Column) -> dict:
    kind = column.data_type
    if kind == "datetime":
        found = ("int64", "io.debezium.time.MicroTimestamp" if _precision(column) > 3 else "io.debezium.time.Timestamp")
    elif kind == "bit":
        found = ("boolean", None) if _bit_width(column) == 1 else ("bytes", "io.debezium.data.Bits")
    elif kind in BINARY_TYPES:
        found = ("bytes", None)
    elif kind in SPATIAL_TYPES:
        return {"type": "struct", "name": "io.debezium.data.geometry.Geometry", "optional": column.nullable,
                "field": column.name, "fields": [{"type": "bytes", "optional": False, "field": "wkb"},
                                                 {"type": "int32", "optional": True, "field": "srid"}]}  # fmt: skip
    else:
        found = _DEBEZIUM_SCHEMAS.get(kind, ("string", None))
    schema = {"type": found[0], "optional": column.nullable, "field": column.name}
    if found[1]:
        schema.update(name=found[1], version=1)
    if kind in ("decimal", "numeric"):
        schema["parameters"] = {"scale": str(_scale(column))}
    return schema


def _row_schema(table: Table, name: str, field_name: str | None = None, columns: list[Column] | None = None) -> dict:
    columns = table.columns if columns is None else columns
    schema = {"type": "struct", "fields": [_field_schema(c) for c in columns], "optional": True, "name": name}
    if field_name:
        schema["field"] = field_name
    return schema


def _source(change: RowChange, txn: Transaction, index: int, prefix: str, snapshot: bool = False) -> dict:
    return {
        "version": __version__, "connector": "mysql", "name": prefix, "ts_ms": int(txn.commit_ts * 1000),
        "snapshot": "true" if snapshot else "false", "db": change.schema, "sequence": None, "table": change.table,
        "server_id": 0, "gtid": txn.gtid, "file": txn.position.file, "pos": txn.position.pos, "row": index,
        "thread": None, "query": None,
    }  # fmt: skip


_SOURCE_SCHEMA = {
    "type": "struct", "name": "io.debezium.connector.mysql.Source", "optional": False, "field": "source",
    "fields": [{"type": t, "optional": o, "field": f} for f, t, o in (
        ("version", "string", False), ("connector", "string", False), ("name", "string", False),
        ("ts_ms", "int64", False), ("snapshot", "string", True), ("db", "string", False),
        ("sequence", "string", True), ("table", "string", True), ("server_id", "int64", False),
        ("gtid", "string", True), ("file", "string", False), ("pos", "int64", False), ("row", "int32", False),
        ("thread", "int64", True), ("query", "string", True))],
}  # fmt: skip
_OPS = {Op.INSERT: "c", Op.UPDATE: "u", Op.DELETE: "d"}


def _debezium(change: RowChange, table: Table, txn: Transaction, index: int, now: int, prefix: str, schema=False):
    def image(row):
        return None if row is None else {c.name: _debezium_value(row[c.name], c) for c in table.columns}

    key = _row_key(change, table)
    if table.key:
        key = {c: _debezium_value(v, table.column(c)) for c, v in key.items()}
    value = {
        "before": image(change.before),
        "after": image(change.after),
        "source": _source(change, txn, index, prefix),
        "op": _OPS[change.op],
        "ts_ms": now,
        "transaction": None,
    }
    if not schema:
        return key, value
    topic = f"{prefix}.{change.schema}.{change.table}"
    key_columns = [table.column(c) for c in table.key]
    key_schema = _row_schema(table, f"{topic}.Key", columns=key_columns) if table.key else {"type": "struct"}
    key_schema["optional"] = False
    value_schema = {
        "type": "struct", "optional": False, "name": f"{topic}.Envelope", "version": 1,
        "fields": [_row_schema(table, f"{topic}.Value", "before"), _row_schema(table, f"{topic}.Value", "after"),
                   _SOURCE_SCHEMA, {"type": "string", "optional": False, "field": "op"},
                   {"type": "int64", "optional": True, "field": "ts_ms"},
                   {"type": "struct", "optional": True, "field": "transaction", "fields": []}],
    }  # fmt: skip
    return {"schema": key_schema, "payload": key}, {"schema": value_schema, "payload": value}


# plain JSON ---------------------------------------------------------------------------------------
def _plain(change: RowChange, table: Table, txn: Transaction, index: int, now: int, prefix: str):
    def image(row):
        return None if row is None else {c.name: _canal_text(row[c.name], c) for c in table.columns}

    value = {
        "op": change.op.value,
        "database": change.schema,
        "table": change.table,
        "key": _row_key(change, table) if table.key else None,
        "before": image(change.before),
        "after": image(change.after),
        "position": {"file": txn.position.file, "pos": txn.position.pos, "gtid": txn.gtid, "index": index},
        "commit_ts": txn.commit_ts,
    }
    return _row_key(change, table), value


_ENCODERS = {
    "canal": _canal,
    "debezium": _debezium,
    "debezium-schema": lambda *args: _debezium(*args, schema=True),
    "json": _plain,
}


# DDL ----------------------------------------------------------------------------------------------
def _ddl_message(txn: Transaction, endpoint: QueueEndpoint, prefix: str, now: int, position: bytes) -> Message:
    ddl: Ddl = txn.ddl
    verb = ddl.statement.split(None, 1)[0].upper() if ddl.statement.strip() else "QUERY"
    headers = [(POSITION_HEADER, position), (INDEX_HEADER, b"0")]
    topic = endpoint.ddl_topic_for(prefix, ddl.schema, None)
    if endpoint.format == "canal":
        value = {
            "data": None, "database": ddl.schema or "", "es": int(txn.commit_ts * 1000), "id": txn.position.pos,
            "isDdl": True, "mysqlType": None, "old": None, "pkNames": None, "sql": ddl.statement, "sqlType": None,
            "table": "", "ts": now, "type": _DDL_TYPES.get(verb, "QUERY"),
        }  # fmt: skip
    elif endpoint.format.startswith("debezium"):
        source = _source(RowChange(ddl.schema or "", "", Op.INSERT, None, None, None), txn, 0, prefix)
        value = {"source": source, "ts_ms": now, "databaseName": ddl.schema or "", "schemaName": None,
                 "ddl": ddl.statement, "tableChanges": []}  # fmt: skip
    else:
        value = {"op": "ddl", "database": ddl.schema, "statement": ddl.statement,
                 "position": {"file": txn.position.file, "pos": txn.position.pos, "gtid": txn.gtid},
                 "commit_ts": txn.commit_ts}  # fmt: skip
    return Message(topic, _json({"database": ddl.schema or ""}), _json(value), headers, ddl.schema)


# decoding: messages -> the change model -----------------------------------------------------------
@dataclass(frozen=True)
class Decoded:
    position: BinlogPosition | None
    change: RowChange | None
    ddl: Ddl | None = None
    commit_ts: float = 0.0


def decode(value: bytes, headers: list[tuple[str, bytes]], tables: dict[tuple[str, str], Table]) -> Decoded:
    """One Canal, Debezium (with or without schema) or omsbench JSON message as a change.

    Values are turned back into what the applier writes for the table's column types; a message
    for a table that is not in ``tables`` gives a change of None (the table is not synced).
    """
    try:
        body = json.loads(value)
    except (TypeError, ValueError) as err:
        raise SyncError(
            f"a message is not JSON: {value[:80]!r}", fix="read only Canal or Debezium JSON topics"
        ) from err
    if isinstance(body, dict) and "payload" in body and "schema" in body:
        body = body["payload"]
    position = _header_position(headers)
    if not isinstance(body, dict):
        raise SyncError(f"a message is not a JSON object: {value[:80]!r}", fix="read only Canal or Debezium topics")
    if "isDdl" in body:
        return _from_canal(body, position, tables)
    if "op" in body and "source" in body:
        return _from_debezium(body, position, tables)
    if "ddl" in body and "source" in body:
        return Decoded(
            position, None, Ddl(body.get("databaseName") or None, body["ddl"]), body["source"]["ts_ms"] / 1000
        )
    raise SyncError(
        f"a message is neither Canal nor Debezium JSON: {value[:80]!r}",
        fix="give the topics of a Canal flat-message or Debezium producer",
    )


def _header_position(headers) -> BinlogPosition | None:
    found = dict(headers or []).get(POSITION_HEADER)
    if not found:
        return None
    file, _, pos = found.decode().rpartition(":")
    return BinlogPosition(file, int(pos))


def _from_canal(body: dict, position, tables) -> Decoded:
    commit_ts = body.get("es", 0) / 1000
    if body["isDdl"]:
        return Decoded(position, None, Ddl(body.get("database") or None, body["sql"]), commit_ts)
    table = tables.get((body["database"], body["table"]))
    if table is None:
        return Decoded(position, None, None, commit_ts)
    row = {c.name: _from_text(body["data"][0].get(c.name), c) for c in table.columns}
    op = Op[body["type"]]
    if op is Op.UPDATE:
        before = dict(row)
        before.update({name: _from_text(v, table.column(name)) for name, v in (body.get("old") or [{}])[0].items()})
        return Decoded(position, _change(table, op, before, row), None, commit_ts)
    if op is Op.DELETE:
        return Decoded(position, _change(table, op, row, None), None, commit_ts)
    return Decoded(position, _change(table, op, None, row), None, commit_ts)


def _from_text(value: str | None, column: Column):
    if value is None:
        return None
    if column.data_type in BINARY_TYPES | SPATIAL_TYPES:
        return value.encode("latin-1")
    if column.data_type in _INTEGERS:
        return int(value)
    if column.data_type in ("decimal", "numeric"):
        return Decimal(value)
    if column.data_type in ("float", "double", "real"):
        return float(value)
    return value  # dates, times, text, JSON: the target parses the text as the source printed it


def _from_debezium(body: dict, position, tables) -> Decoded:
    source = body["source"]
    commit_ts = source.get("ts_ms", 0) / 1000
    table = tables.get((source["db"], source["table"]))
    if table is None:
        return Decoded(position, None, None, commit_ts)
    position = position or BinlogPosition(source.get("file") or "", int(source.get("pos") or 0), source.get("gtid"))

    def image(row):
        return None if row is None else {c.name: _from_debezium_value(row.get(c.name), c) for c in table.columns}

    op = {"c": Op.INSERT, "r": Op.INSERT, "u": Op.UPDATE, "d": Op.DELETE}[body["op"]]
    return Decoded(position, _change(table, op, image(body.get("before")), image(body.get("after"))), None, commit_ts)


def _from_debezium_value(value, column: Column):
    if value is None:
        return None
    kind = column.data_type
    if kind == "bit":
        return int(value) if isinstance(value, bool) else int.from_bytes(base64.b64decode(value), "little")
    if kind in ("decimal", "numeric"):
        unscaled = int.from_bytes(base64.b64decode(value), "big", signed=True)
        return Decimal(unscaled).scaleb(-_scale(column), _EXACT)
    if kind == "date":
        return date(1970, 1, 1) + timedelta(days=value)
    if kind == "time":
        return timedelta(microseconds=value)
    if kind == "datetime":
        return _EPOCH + timedelta(microseconds=value if _precision(column) > 3 else value * 1000)
    if kind == "timestamp":
        return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(timezone.utc).replace(tzinfo=None)
    if kind in SPATIAL_TYPES:
        return int(value.get("srid") or 0).to_bytes(4, "little") + base64.b64decode(value["wkb"])
    if kind in BINARY_TYPES:
        return base64.b64decode(value)
    return value


def _change(table: Table, op: Op, before: dict | None, after: dict | None) -> RowChange:
    image = after if after is not None else before
    key = tuple(image[c] for c in table.key) if table.key else None
    return RowChange(table.schema, table.name, op, before, after, key)
