"""Precheck: can this project run? Findings as a DataFrame; any ``fail`` means no.

Each finding names what was checked, on which object, what was found and what to do.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import pandas as pd
import pymysql
from kafka.errors import KafkaError

from omsbench.endpoints import catalog, kafka, mysql, oceanbase, rocketmq
from omsbench.endpoints.catalog import SPATIAL_TYPES, quote
from omsbench.endpoints.connection import Endpoint, Flavor, Session, connect, raise_packet
from omsbench.endpoints.queue import QueueEndpoint
from omsbench.endpoints.rocketmq import RocketMQEndpoint
from omsbench.engine import full, narrow, programs, reverse, schema
from omsbench.engine.mapping import Selection, TableMap
from omsbench.engine.schema import CARRIED_TYPES, TYPE_REPLACEMENTS
from omsbench.engine.spec import ProjectSpec
from omsbench.exceptions import OmsError

OK, WARN, FAIL = "ok", "warn", "fail"
COLUMNS = ["check", "object", "status", "detail", "fix"]


@dataclass
class Finding:
    check: str
    object: str
    status: str
    detail: str
    fix: str = ""


def frame(findings: list[Finding]) -> pd.DataFrame:
    return pd.DataFrame([asdict(f) for f in findings], columns=COLUMNS)


def failed(findings: pd.DataFrame) -> bool:
    return bool((findings["status"] == FAIL).any())


def reach(name: str, endpoint: Endpoint) -> tuple[Session | None, Finding]:
    try:
        session = connect(endpoint.dsn())
    except OmsError as err:
        return None, Finding("connect", name, FAIL, err.message, err.fix or "")
    return session, Finding("connect", name, OK, f"{session.version} at {endpoint.url}")


RETENTION_WARN_SECONDS = 24 * 3600


def _retention(session: Session) -> Finding:
    """How long the source keeps binlogs: a sync stopped longer than that cannot resume."""
    found = mysql.variables(session, "binlog_expire_logs_seconds", "expire_logs_days")
    seconds = int(float(found["binlog_expire_logs_seconds"] or 0)) or int(float(found["expire_logs_days"] or 0) * 86400)
    if not seconds:
        return Finding("binlog retention", "source", OK, "binlogs are kept until purged by hand")
    short = seconds < RETENTION_WARN_SECONDS
    return Finding(
        "binlog retention",
        "source",
        WARN if short else OK,
        f"binlogs are kept {seconds / 3600:.1f} h",
        "a sync stopped longer than that needs a new full load: raise binlog_expire_logs_seconds" if short else "",
    )


def source_settings(session: Session) -> list[Finding]:
    if session.flavor is Flavor.OCEANBASE:
        return [Finding("binlog", "source", WARN, "OceanBase source: no binlog; only the full migration can run")]
    found = mysql.variables(session, "log_bin", "binlog_format", "binlog_row_image", "server_id", "gtid_mode")
    expected = {"log_bin": "ON", "binlog_format": "ROW", "binlog_row_image": "FULL"}
    findings = []
    for name, wanted in expected.items():
        value = (found[name] or "").upper()
        ok = value == wanted
        findings.append(
            Finding(
                name,
                "source",
                OK if ok else FAIL,
                f"{name} = {found[name]}",
                "" if ok else f"start the server with --{name.replace('_', '-')}={wanted} (incremental sync needs it)",
            )
        )
    server_id = int(found["server_id"] or 0)
    findings.append(
        Finding(
            "server_id",
            "source",
            OK if server_id else FAIL,
            f"server_id = {server_id}",
            "" if server_id else "set a non-zero --server-id",
        )
    )
    findings.append(_retention(session))
    gtid = mysql.master_status(session)
    findings.append(
        Finding(
            "gtid",
            "source",
            OK if gtid and gtid.gtid else WARN,
            f"binlog at {gtid}" if gtid else "no binlog position",
            "" if gtid and gtid.gtid else "without GTID, sync resumes by file and position",
        )
    )
    return findings


def _privilege(
    grants: dict[str, set[str]],
    privilege: str,
    where: str,
    fix: str,
    schema: str | None = None,
    alternative: str | None = None,
) -> Finding:
    ok = mysql.has_privilege(grants, privilege, schema) or bool(
        alternative and mysql.has_privilege(grants, alternative, schema)
    )
    return Finding(
        f"privilege {privilege}", where, OK if ok else FAIL, "granted" if ok else "missing", "" if ok else fix
    )


def source_privileges(session: Session, selection: Selection) -> list[Finding]:
    grants = mysql.grants(session)
    findings = [
        _privilege(grants, "SELECT", schema, f"GRANT SELECT ON `{schema}`.* TO the migration user", schema)
        for schema in sorted(selection.schemas)
    ]
    findings.append(
        _privilege(
            grants,
            "REPLICATION SLAVE",
            "source",
            "GRANT REPLICATION SLAVE ON *.* TO the migration user (incremental sync)",
        )
    )
    findings.append(
        _privilege(
            grants,
            "REPLICATION CLIENT",
            "source",
            "GRANT REPLICATION CLIENT ON *.* TO the migration user (binlog position)",
            alternative="BINLOG MONITOR",
        )
    )
    findings += [
        _privilege(
            grants,
            privilege,
            "omsbench",
            "GRANT CREATE, INSERT, DELETE ON `omsbench`.* TO the migration user (the sync's heartbeat row)",
            "omsbench",
        )
        for privilege in ("CREATE", "INSERT", "DELETE")
    ]
    if any(tm.filter for tm in selection.tables):
        findings.append(
            _privilege(
                grants,
                "CREATE TEMPORARY TABLES",
                "omsbench",
                "GRANT CREATE TEMPORARY TABLES ON `omsbench`.* TO the migration user (the sync judges row filters"
                " on the source)",
                "omsbench",
            )
        )
    if session.flavor is Flavor.MYSQL:
        findings.append(
            _privilege(
                grants,
                "RELOAD",
                "source",
                "GRANT RELOAD ON *.* TO the migration user (snapshots need FLUSH TABLES WITH READ LOCK)",
            )
        )
    return findings


def column_types(selection: Selection) -> list[Finding]:
    """Every column's type either moves as it is, is converted (warn), or cannot be carried (fail)."""
    findings = []
    for tm in selection.tables:
        for column in tm.source.columns:
            where = f"{tm.source.qualified}.{column.name}"
            kind = column.data_type
            if kind in TYPE_REPLACEMENTS:
                findings.append(
                    Finding(
                        "type",
                        where,
                        WARN,
                        f"{kind} becomes {TYPE_REPLACEMENTS[kind]} on OceanBase",
                        "values keep their text form; change the application's type if it reads it",
                    )
                )
            elif kind not in CARRIED_TYPES:
                findings.append(
                    Finding(
                        "type",
                        where,
                        FAIL,
                        f"type {column.column_type} cannot be carried to OceanBase",
                        "exclude the table in objects.exclude or change the column's type",
                    )
                )
    return findings


_TEXT_KEYS = frozenset({"char", "varchar", "tinytext", "text", "mediumtext", "longtext", "enum", "set"})


def key_collisions(source: Session, target: Session, selection: Selection, chosen: dict[str, str]) -> list[Finding]:
    """Keys distinct on the source that the target's collation would take for one ('a' and 'A',
    'é' and 'e'), where the target lacks the source's collation. The load would fail on them and
    the sync would merge two rows into one; counted on the source, under the target's collation."""
    collations = schema.Collations(target, chosen)
    findings = []
    for tm in selection.tables:
        columns = {c.name: c for c in tm.source.columns}
        key = [columns[name] for name in tm.source.key]
        changed = {
            c.name: mapped
            for c in key
            if c.data_type in _TEXT_KEYS and c.collation
            for mapped in [collations.map(c.charset, c.collation)[1]]
            if mapped and mapped != c.collation.lower()
        }
        if changed:
            findings.append(_collision_finding(source, tm, key, changed))
    return findings


def _collision_finding(source: Session, tm, key: list, changed: dict[str, str]) -> Finding:
    where = f"{tm.source.qualified} ({', '.join(c.name for c in key)})"
    parts = [
        f"CONVERT({quote(c.name)} USING utf8mb4) COLLATE {changed[c.name]}" if c.name in changed else quote(c.name)
        for c in key
    ]
    table = f"{quote(tm.source.schema)}.{quote(tm.source.name)}"
    try:
        merged = source.scalar(f"SELECT COUNT(*) - COUNT(DISTINCT {', '.join(parts)}) FROM {table}")
    except pymysql.err.MySQLError as err:
        return Finding(
            "key collation",
            where,
            WARN,
            f"not checked: the source lacks the target's collation ({err.args[-1]})",
            "check by hand that no two keys differ only in case, accents or trailing spaces",
        )
    mapping = ", ".join(f"{name}: {coll}" for name, coll in changed.items())
    if not merged:
        return Finding("key collation", where, OK, f"the target compares the key as {mapping}; no two keys meet")
    return Finding(
        "key collation",
        where,
        FAIL,
        f"{merged} key(s) distinct on the source are equal under the target's {mapping}: the load fails and the"
        " sync would write two source rows into one",
        "choose a collation that keeps them apart in the spec's objects.collations (for instance"
        f" {{{next(iter(c.collation for c in key if c.name in changed))}: utf8mb4_bin}})",
    )


def spatial_references(source: Session, target: Session, selection: Selection) -> list[Finding]:
    """Geometry whose SRID the target does not know: seekdb's catalog holds SRID 0 alone and
    refuses any other (3548), so without this the load stopped on the first such chunk, after
    hours maybe. Counted on the source with one scan per spatial table."""
    known = catalog.spatial_reference_ids(target)
    findings = []
    for tm in selection.tables:
        spatial = [quote(c.name) for c in tm.source.columns if c.data_type in SPATIAL_TYPES]
        if known is None or not spatial:
            continue
        table = f"{quote(tm.source.schema)}.{quote(tm.source.name)}"
        used = {name: {s for (s,) in source.query(f"SELECT DISTINCT ST_SRID({name}) FROM {table}")} for name in spatial}
        unknown = {name: sorted(srids - known - {None}) for name, srids in used.items() if srids - known - {None}}
        if not unknown:
            findings.append(Finding("spatial reference", tm.source.qualified, OK, "the target knows every SRID used"))
            continue
        listed = "; ".join(f"{', '.join(map(str, srids))} in {name}" for name, srids in unknown.items())
        findings.append(
            Finding(
                "spatial reference",
                tm.source.qualified,
                FAIL,
                f"geometry with SRID {listed}: the target knows only SRID {', '.join(map(str, sorted(known)))}"
                " and refuses these values",
                "load those spatial reference systems into the target (OceanBase ships them in"
                " default_srs_data_mysql.sql; seekdb has none), or exclude the table in objects.exclude",
            )
        )
    return findings


def fallback_charsets(selection: Selection, target: Session, choice: str) -> list[Finding]:
    """Text columns MySQL keeps in a narrower character set than OceanBase's utf8mb4, and what the
    switchover will do about them (``engine/narrow.py``), said before the cut-over."""
    will = {
        "widen": "switchover converts the MySQL table to utf8mb4 (switchover.narrow_columns: widen)",
        "guard": "switchover adds a CHECK on OceanBase that refuses the application such a value"
        " (switchover.narrow_columns: guard)",
        "pause": "the reverse sync pauses on such a value until the MySQL column is widened"
        " (switchover.narrow_columns: pause)",
    }[choice]
    return [
        Finding(
            "fallback charset",
            tm.source.qualified,
            WARN,
            f"column(s) {', '.join(c.name for c in cs)} are {', '.join(sorted({c.charset for c in cs}))} on MySQL and"
            f" utf8mb4 on OceanBase, which takes values MySQL cannot store: {will}",
            ""
            if choice != "pause"
            else f"before switchover, on MySQL: ALTER TABLE {quote(tm.source.schema)}."
            f"{quote(tm.source.name)} CONVERT TO CHARACTER SET utf8mb4",
        )
        for tm, cs in narrow.columns(selection, target)
    ]


def source_tables(selection: Selection) -> list[Finding]:
    findings = column_types(selection)
    for tm in selection.tables:
        if not tm.source.key:
            findings.append(
                Finding(
                    "key",
                    tm.source.qualified,
                    WARN,
                    "no primary key and no unique NOT NULL key",
                    "it is copied as one chunk in one transaction and synced by matching whole "
                    "rows; add a primary key if you can",
                )
            )
    if not selection.tables and not selection.views:
        findings.append(Finding("objects", "source", FAIL, "the spec selects no table", "widen objects.include"))
    return findings


def cut_over(source: Session, target: Session, selection: Selection, spec: ProjectSpec) -> list[Finding]:
    """What the switchover will do with each of the application's triggers, routines and events."""
    return [
        Finding(
            "cut-over",
            program.label,
            OK if program.fate == programs.CREATE and not program.why else WARN,
            programs.described(program),
            "" if program.fate == programs.CREATE else "accept it, or rewrite it for OceanBase and create it there",
        )
        for program in programs.fates(source, target, selection, spec.switchover.definers)
    ]


def reverse_capture(spec: ProjectSpec, source: Session, target: Session, chosen: dict | None = None) -> Finding:
    """How reverse sync will capture the target's changes after switchover (see ``reverse.capture_method``).

    ``chosen`` receives the method and why (``capture``, ``capture_why``), as a switchover records them."""
    try:
        method, why = reverse.capture_method(spec, target, source)
    except OmsError as err:
        return Finding("reverse capture", "target", FAIL, err.message, err.fix or "")
    if chosen is not None:
        chosen.update(capture=method, capture_why=why)
    return Finding("reverse capture", "target", OK, f"{method}: {why}")


def target_checks(session: Session, selection: Selection, spec: ProjectSpec, replayed: set[str]) -> list[Finding]:
    """``replayed``: the tables the project's sync created, whose rows are the project's own."""
    grants = mysql.grants(session)
    findings = [
        _privilege(grants, privilege, "target", f"GRANT {privilege} ON *.* TO the target user")
        for privilege in ("CREATE", "INSERT", "ALTER", "INDEX")
    ]
    resumed = (
        {table for table, _ in full.done_chunks(session, spec.name)}
        if schema.exists(session, "omsbench", "full_chunks")
        else set()
    )
    for tm in selection.tables:
        if tm.source.qualified in replayed:
            findings.append(Finding("target rows", tm.qualified, OK, _REPLAYED))
            continue
        findings += _existing_rows(session, tm, spec, tm.source.qualified in resumed)
    if "seekdb" in session.version:
        findings.append(_redo_logging(session))
    return findings


_REPLAYED = "created by this project's sync (it replayed the CREATE TABLE); its rows come from the sync"

_LARGE_TYPES = frozenset({"mediumblob", "longblob", "mediumtext", "longtext", "json"}) | SPATIAL_TYPES
"""Column types whose values can outgrow a 16 MB statement."""


def packet_limits(source: Session, target: Session, selection: Selection) -> Finding:
    """A row the source holds but the target cannot take in one statement stops the load and pauses the sync."""
    detail = f"the target takes statements of up to {target.packet >> 20} MB (max_allowed_packet)"
    large = [tm.source.qualified for tm in selection.tables if {c.data_type for c in tm.source.columns} & _LARGE_TYPES]
    if target.packet >= source.packet or not large:
        return Finding("packet size", "target", OK, detail)
    return Finding(
        "packet size",
        "target",
        WARN,
        f"{detail}, the source up to {source.packet >> 20} MB: a row of {', '.join(large[:5])}"
        f"{' and others' if len(large) > 5 else ''} larger than that (binary values travel as hex, at twice their"
        " size) stops the full load and pauses the sync",
        raise_packet("target"),
    )


def _redo_logging(session: Session) -> Finding:
    """seekdb keeps the locks of a transaction a restart interrupted once its redo was logged early."""
    value = oceanbase.parameter(session, "_private_buffer_size")  # hidden: listed only when set
    if value == oceanbase.SAFE_PRIVATE_BUFFER:
        return Finding("redo logging", "target", OK, "open transactions log their redo at commit")
    return Finding(
        "redo logging",
        "target",
        WARN,
        f"_private_buffer_size is {value or 'at its default, 16K'}: a restart of seekdb while omsbench"
        " writes can leave locks that no session owns and the server never releases (a seekdb defect)",
        f"ALTER SYSTEM SET _private_buffer_size = '{oceanbase.SAFE_PRIVATE_BUFFER}' (servers omsbench runs have it)",
    )


def _existing_rows(session: Session, tm: TableMap, spec: ProjectSpec, copied: bool) -> list[Finding]:
    if not schema.exists(session, tm.schema, tm.name) or not session.query(f"SELECT 1 FROM {tm.quoted} LIMIT 1"):
        return []
    if copied:
        return [Finding("target rows", tm.qualified, OK, "holds rows of this project's earlier load; it resumes")]
    policy = spec.options.on_existing_rows
    if policy == "refuse":
        return [
            Finding(
                "target rows",
                tm.qualified,
                FAIL,
                "the target table already holds rows",
                "empty it, or set options.on_existing_rows to truncate or append",
            )
        ]
    return [Finding("target rows", tm.qualified, WARN, f"the target table holds rows; on_existing_rows is {policy}")]


def queue_checks(name: str, endpoint: QueueEndpoint, project: str) -> list[Finding]:
    """The broker answers; for Kafka, it takes transactions where exactly-once delivery needs them."""
    if isinstance(endpoint, RocketMQEndpoint):
        return [_rocketmq_check(endpoint, project)]
    try:
        topics = kafka.topics(endpoint)
    except OmsError as err:
        return [Finding("connect", name, FAIL, err.message, err.fix or "")]
    findings = [Finding("connect", name, OK, f"Kafka at {endpoint.kafka}, {len(topics)} topics")]
    if name == "target" and endpoint.delivery == "exactly-once":
        try:
            kafka.producer(endpoint, f"omsbench-precheck-{project}").close(timeout=5)
            findings.append(Finding("transactions", name, OK, "the broker takes transactional producers"))
        except (OmsError, KafkaError) as err:
            findings.append(
                Finding("transactions", name, FAIL, f"a transactional producer failed: {err}",
                        "give the user the right to use transactional ids omsbench-*, or set delivery: at-least-once")
            )  # fmt: skip
    if name == "source":
        found = kafka.matching(endpoint.topics, topics)
        detail = f"{len(found)} topic(s) match {endpoint.topics}" if found else f"no topic matches {endpoint.topics}"
        fix = "" if found else "the consumer waits for them; check the names if a producer already writes"
        findings.append(Finding("topics", name, OK if found else WARN, detail, fix))
    return findings


def _rocketmq_check(endpoint: RocketMQEndpoint, project: str) -> Finding:
    """A producer starts: the proxy answers and routes the project's topic (omsbench cannot create it)."""
    topic = endpoint.topic_for(project, "", "")
    try:
        missing = rocketmq.missing_routes(endpoint, [topic])
    except OmsError as err:
        return Finding("connect", "target", FAIL, err.message, err.fix or "")
    if missing:
        return Finding("connect", "target", FAIL, f"the proxy does not route topic {topic}: {missing[topic]}",
                       "create the topic (a FIFO topic when fifo is on) or fix target.topic")  # fmt: skip
    return Finding("connect", "target", OK, f"RocketMQ at {endpoint.rocketmq}, topic {topic}")
