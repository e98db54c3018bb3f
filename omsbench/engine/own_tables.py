"""The tables omsbench keeps in an ``omsbench`` database on each side, and their DDL, in one place.

Each row belongs to one project (``project`` leads every key), so projects share the tables and a
release deletes only its own rows. Where each is written and read:

- ``full_chunks`` (target): the chunks a full load has copied, committed with their rows.
- ``sync_checkpoint`` (target of a binlog sync): the position applied, written inside every
  transaction applied; a binlog reader on that server drops the transactions that wrote it.
- ``sync_workers`` (same): a parallel apply's other sessions mark their transactions here.
- ``heartbeat`` (source): a row rewritten every 200 ms whose replay measures the lag.
- ``reverse_checkpoint`` (MySQL, after switchover): the reverse sync's applied transactions, written
  inside each; the forward reader drops those, so nothing loops back to OceanBase.
- ``change_log`` (OceanBase, after switchover): what the capture triggers wrote.
- ``kafka_offsets`` (target of a Kafka source): the offsets applied, committed with the rows.
"""

from __future__ import annotations

from omsbench.endpoints.binlog_reader import Marks
from omsbench.endpoints.connection import Session

SCHEMA = "omsbench"

FULL_CHUNKS = "full_chunks"
SYNC_CHECKPOINT = "sync_checkpoint"
SYNC_WORKERS = "sync_workers"
HEARTBEAT = "heartbeat"
REVERSE_CHECKPOINT = "reverse_checkpoint"
CHANGE_LOG = "change_log"
KAFKA_OFFSETS = "kafka_offsets"

MARKS = Marks(
    heartbeat=(SCHEMA, HEARTBEAT),
    echo=(SCHEMA, REVERSE_CHECKPOINT),
    applied=frozenset({(SCHEMA, SYNC_CHECKPOINT), (SCHEMA, SYNC_WORKERS)}),
)
"""How a binlog reader knows these tables in the stream (``endpoints.binlog_reader.Marks``)."""

_COLUMNS = {
    FULL_CHUNKS: "project VARCHAR(64) NOT NULL, source_table VARCHAR(600) NOT NULL, chunk_no INT NOT NULL,"
    " row_count BIGINT NOT NULL, snapshot_file VARCHAR(255), snapshot_pos BIGINT, snapshot_gtid VARCHAR(2048),"
    " finished_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),"
    " PRIMARY KEY (project, source_table, chunk_no)",
    SYNC_CHECKPOINT: "project VARCHAR(64) NOT NULL PRIMARY KEY, file VARCHAR(255) NOT NULL, pos BIGINT NOT NULL,"
    " gtid VARCHAR(2048), source_ts DOUBLE, applied_at DOUBLE",
    SYNC_WORKERS: "project VARCHAR(64) NOT NULL, worker INT NOT NULL, file VARCHAR(255) NOT NULL, pos BIGINT NOT NULL,"
    " applied_at DOUBLE, PRIMARY KEY (project, worker)",
    HEARTBEAT: "project VARCHAR(64) NOT NULL PRIMARY KEY, ts DOUBLE NOT NULL",
    REVERSE_CHECKPOINT: "project VARCHAR(64) NOT NULL PRIMARY KEY, last_seq BIGINT NOT NULL,"
    " transactions LONGTEXT NOT NULL, source_ts DOUBLE, applied_at DOUBLE",
    CHANGE_LOG: "seq BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, project VARCHAR(64) NOT NULL, trx BIGINT NOT NULL,"
    " schema_name VARCHAR(128) NOT NULL, table_name VARCHAR(128) NOT NULL, op CHAR(1) NOT NULL,"
    " before_image LONGTEXT, after_image LONGTEXT, at DOUBLE NOT NULL, version INT NOT NULL DEFAULT 1,"
    " KEY project_seq (project, seq), KEY project_trx (project, trx)",
    KAFKA_OFFSETS: "project VARCHAR(64) NOT NULL, topic VARCHAR(255) NOT NULL, part INT NOT NULL,"
    " next_offset BIGINT NOT NULL, source_ts DOUBLE, applied_at DOUBLE, PRIMARY KEY (project, topic, part)",
}


def ddl(table: str) -> str:
    return f"CREATE TABLE IF NOT EXISTS `{SCHEMA}`.`{table}` ({_COLUMNS[table]})"


def ensure(session: Session, table: str) -> None:
    """Create the ``omsbench`` database and ``table`` in it where missing: the first writer does."""
    session.execute(f"CREATE DATABASE IF NOT EXISTS `{SCHEMA}`")
    session.execute(ddl(table))
