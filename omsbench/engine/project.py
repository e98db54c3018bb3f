"""A migration project: the one object the CLI, the notebooks and the panel all drive.

It ties a validated spec to a workspace (state store, reports) and runs the steps in order:
precheck, schema, full (with its post-load objects), check. Each step records its state,
so any process can show where a project stands.
"""

from __future__ import annotations

import hashlib
import json
import time
from concurrent.futures import Executor, ThreadPoolExecutor
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pymysql
import yaml
from tqdm.auto import tqdm

from omsbench.actions import named
from omsbench.endpoints import catalog
from omsbench.endpoints.binlog import require_available
from omsbench.endpoints.connection import Flavor, Session, connect
from omsbench.endpoints.kafka import KafkaEndpoint
from omsbench.endpoints.position import BinlogPosition
from omsbench.endpoints.queue import QueueEndpoint
from omsbench.engine import (
    checksum,
    compared,
    fixsql,
    full,
    precheck,
    programs,
    publish,
    runner,
    schema,
    touched,
    verify,
)
from omsbench.engine import spec as specs
from omsbench.engine.consume import topics_to_database
from omsbench.engine.mapping import Selection, select
from omsbench.engine.reverse import oceanbase_to_mysql
from omsbench.engine.reverse import wait_caught_up as reverse_wait
from omsbench.engine.state import as_utc
from omsbench.engine.steps import ACTIVE, ENDED, State, Step
from omsbench.engine.sync import StartAt, Sync, binlog_to_database, wait_caught_up
from omsbench.engine.sync import behind as sync_behind
from omsbench.engine.verify import CHUNK_ROWS
from omsbench.engine.workspace import ENV, Workspace
from omsbench.exceptions import NotNow, OmsError, PrecheckFailed, SchemaError, StateError, SyncError

_NO_TARGET_TABLES = precheck.Finding(
    "tables", "target", precheck.FAIL, "no table on the target matches objects.include",
    "create the tables first, with a schema migration from the original database",
)  # fmt: skip
PRECHECK_REUSED_FOR = timedelta(minutes=10)
"""A precheck that passed this recently, of the same spec, is not run again before a load or a sync."""
_NOT_FOR_SYNC = ("target rows", "reverse capture")
"""Precheck findings that concern the full load or the switchover, not whether a sync can run."""


_STALLED = {"failed": "it failed", "died": "it died", "stopped": "it was stopped", "paused": "it is paused"}


def missing_objects(report: pd.DataFrame, accepted: list[str]) -> list[str]:
    """``kind db.table.name (why)`` of each object the target did not get and the spec does not accept."""
    missing = []
    for row in report[report.status.isin(["skipped", "failed"])].itertuples():
        table, _, name = row.source.partition(" (")
        label = f"{row.object_type} {table}.{name.rstrip(')')}" if name else f"{row.object_type} {table}"
        if label not in accepted:
            missing.append(f"{label} ({row.detail})")
    return missing


class Project:
    def __init__(self, spec: specs.ProjectSpec, workspace: Workspace) -> None:
        self.spec = spec
        self.workspace = workspace
        self.state = workspace.state

    @property
    def name(self) -> str:
        return self.spec.name

    @classmethod
    def load(cls, ref: str | Path, workspace: Workspace) -> Project:
        """A project by spec file path, or by name from the workspace."""
        path = Path(ref)
        if path.suffix in (".yaml", ".yml") or path.exists():
            project = cls(specs.load(path), workspace)
            project.save()
            return project
        if not workspace.exists:
            raise StateError(
                f"no project named {str(ref)!r}: there is no workspace at {workspace.root}",
                fix=f"name the workspace that holds it (--workspace DIR, or ${ENV}), or pass the project's spec file",
            )
        return cls(
            specs.parse(yaml.safe_load(workspace.state.project_spec(str(ref))), origin=f"project {ref}"), workspace
        )

    def save(self) -> Path:
        text = self.spec.to_yaml()
        self.state.save_project(self.name, text)
        path = self.workspace.spec_path(self.name)
        path.write_text(text)
        return path

    @property
    def released(self) -> bool:
        return (self.state.step(self.name, Step.RELEASE) or {}).get("state") == State.DONE

    def require_unreleased(self, what: str) -> None:
        """A released project starts nothing: its syncs would write to databases it was taken out of."""
        if self.released:
            raise StateError(
                f"project {self.name} was released: it cannot {what} any more",
                fix=f"to migrate again, make a project under a new name ({named('init', 'NEW-NAME')});"
                " this one's record stays in the workspace",
            )

    def require_databases(self, what: str) -> None:
        """Steps that read and write tables on both sides refuse a project with Kafka on one side."""
        if self.spec.queue:
            raise StateError(
                f"project {self.name} has Kafka as its {'target' if self.spec.target is self.spec.queue else 'source'}:"
                f" {what} needs a database on both sides",
                fix=f"run its precheck and {named('sync start', self.name)}; migrate schemas in a database project",
            )

    @contextmanager
    def sessions(self):
        self.require_databases("this step")
        with connect(self.spec.source.dsn()) as source, connect(self.spec.target.dsn()) as target:
            yield source, target

    def selection(self, source: Session) -> Selection:
        schemas = {specs.split_name(p)[0] for p in self.spec.objects.include}
        names = None if any("*" in s or "?" in s for s in schemas) else schemas
        return select(self.spec, catalog.read(source, names))

    def _comparable(self, source: Session, target: Session) -> Selection:
        """The selection, once the target is known to hold every table and column it compares."""
        selection = self.selection(source)
        checksum.require_comparable(target, selection.tables)
        return selection

    # steps ----------------------------------------------------------------------------------
    def precheck(self) -> pd.DataFrame:
        if self.spec.queue:
            return self._record_precheck(self._queue_precheck())
        source, src_finding = precheck.reach("source", self.spec.source)
        target, dst_finding = precheck.reach("target", self.spec.target)
        findings = [src_finding, dst_finding]
        try:
            if source and target:
                selection = self.selection(source)
                findings += precheck.source_settings(source)
                findings += precheck.source_privileges(source, selection)
                findings += precheck.source_tables(selection)
                findings += precheck.target_checks(target, selection, self.spec, self.state.replayed_tables(self.name))
                findings.append(precheck.packet_limits(source, target, selection))
                findings += precheck.key_collisions(source, target, selection, self.spec.objects.collations)
                findings += precheck.spatial_references(source, target, selection)
                findings.append(precheck.reverse_capture(self.spec, source, target))
                findings += precheck.cut_over(source, target, selection, self.spec)
                findings += precheck.fallback_charsets(selection, target, self.spec.switchover.narrow_columns)
        finally:
            for session in (source, target):
                if session:
                    session.close()
        return self._record_precheck(findings)

    def _queue_precheck(self) -> list[precheck.Finding]:
        """Kafka on one side: the broker's checks, and the database side's own."""
        side = "target" if isinstance(self.spec.target, QueueEndpoint) else "source"
        findings = precheck.queue_checks(side, self.spec.queue, self.name)
        database = self.spec.source if side == "target" else self.spec.target
        session, finding = precheck.reach("target" if side == "source" else "source", database)
        findings.append(finding)
        if session:
            with session:
                selection = self.selection(session)
                if side == "target":
                    findings += precheck.source_settings(session)
                    findings += precheck.source_privileges(session, selection)
                    findings += precheck.source_tables(selection)
                elif not selection.tables:
                    findings.append(_NO_TARGET_TABLES)
        return findings

    def _record_precheck(self, findings: list[precheck.Finding]) -> pd.DataFrame:
        result = precheck.frame(findings)
        state = State.FAILED if precheck.failed(result) else State.DONE
        self.state.set_step(
            self.name,
            Step.PRECHECK,
            state,
            f"{(result.status == 'fail').sum()} failed",
            {"findings": result.to_dict("records"), "spec": self._spec_digest()},
        )
        return result

    def _spec_digest(self) -> str:
        """What the precheck judged: the spec but its options (parallelism, chunk sizes), which a run may override."""
        return hashlib.sha256(self.spec.model_dump_json(exclude={"options"}).encode()).hexdigest()[:16]

    def passed_precheck(self, within: timedelta = PRECHECK_REUSED_FOR) -> pd.DataFrame | None:
        """The findings of a precheck of this very spec that passed less than ``within`` ago, else None.

        ``full`` and Start run right after a precheck the user has just read; running it again cost
        1.4-1.9 s of a 25 s load and found nothing new. Older, failed or of another spec: None."""
        step = self.state.step(self.name, Step.PRECHECK) or {}
        detail = step.get("detail") or {}
        if step.get("state") != State.DONE or detail.get("spec") != self._spec_digest() or not step.get("ended_at"):
            return None
        ended = as_utc(step["ended_at"])
        if pd.Timestamp.now(tz="UTC") - ended > pd.Timedelta(within):
            return None
        return pd.DataFrame(detail["findings"], columns=precheck.COLUMNS).assign(reused_from=ended)

    def require_precheck(self, ignore: tuple[str, ...] = ()) -> pd.DataFrame:
        """The precheck's findings (a passing one of minutes ago is reused: see ``passed_precheck``);
        PrecheckFailed when a check not in ``ignore`` failed."""
        recent = self.passed_precheck()
        if recent is not None:
            return recent
        findings = self.precheck()
        bad = findings[(findings.status == "fail") & ~findings.check.isin(ignore)]
        if len(bad):
            raise PrecheckFailed(
                "precheck failed:\n" + "\n".join(f"  - {r.check} {r.object}: {r.detail}" for r in bad.itertuples()),
                fix="; ".join(dict.fromkeys(bad.fix)),
            )
        return findings

    def migrate_schema(self) -> pd.DataFrame:
        self.require_unreleased("migrate the schema")
        self.state.set_step(self.name, Step.SCHEMA, State.RUNNING)
        with self.sessions() as (source, target):
            selection = self.selection(source)
            plans = self._plans(target, selection)
            findings = schema.create_schemas(target, selection) + schema.create_tables(target, plans)
            findings += schema.create_views(target, selection)
            findings += schema.cut_over(programs.fates(source, target, selection, self.spec.switchover.definers))
        report = schema.report(findings)
        self._write_json("schema", report)
        failures = report[report.status == "failed"]
        self.state.set_step(
            self.name,
            Step.SCHEMA,
            State.FAILED if len(failures) else State.DONE,
            f"{len(report)} objects, {len(failures)} failed",
            {"objects": report.to_dict("records")},
        )
        if len(failures):
            raise SchemaError(
                f"{len(failures)} object(s) could not be created: "
                + "; ".join(f"{r.source}: {r.detail}" for r in failures.itertuples()),
                fix="see the schema report; fix the objects or exclude them in objects.exclude",
            )
        return report

    def _plans(self, target: Session, selection: Selection) -> list[schema.TablePlan]:
        """The tables' plans, alike for the schema step and the post-load step that completes them."""
        options = self.spec.options
        return schema.plan_tables(target, selection, self.spec.objects.collations, options.index_after_rows)

    def full(self, executor: Executor | None = None, progress: bool = True, restart: bool = False) -> full.FullResult:
        self.require_unreleased("copy rows")
        with self.sessions() as (source, target):
            selection = self.selection(source)
            if restart:
                full.reset(target, self.state, self.name, selection.tables)
        result = full.run(
            self.name,
            self.spec.source,
            self.spec.target,
            selection.tables,
            self.spec.options,
            self.state,
            executor=executor,
            progress=progress,
        )
        made = self.post_load(selection)
        result.missing = missing_objects(made, self.spec.objects.accept_missing)
        return result

    def post_load(self, selection: Selection | None = None) -> pd.DataFrame:
        """Indexes, CHECK constraints, foreign keys and AUTO_INCREMENT, once the rows are in."""
        self.state.set_step(self.name, Step.POST_LOAD, State.RUNNING, "indexes, constraints and foreign keys")
        try:
            with self.sessions() as (source, target):
                selection = selection or self.selection(source)
                plans = self._plans(target, selection)
                options = self.spec.options
                made = schema.create_post_load(
                    self.spec.target.dsn(), plans, options.ddl_timeout_s, options.parallelism
                )
                report = schema.report(made)
                schema.sync_auto_increment(source, target, plans)
        except OmsError as err:
            self.state.set_step(self.name, Step.POST_LOAD, State.FAILED, str(err))
            raise
        self._write_json("post_load", report)
        missing = missing_objects(report, self.spec.objects.accept_missing)
        self.state.set_step(
            self.name,
            Step.POST_LOAD,
            State.FAILED if missing else State.DONE,
            f"{len(missing)} object(s) not created: {'; '.join(missing)}" if missing else f"{len(report)} objects",
            {"objects": report.to_dict("records")},
        )
        return report

    def check(self, progress: bool = False) -> pd.DataFrame:
        """Row counts and checksums of every table, computed inside both databases."""
        with self.sessions() as (source, target):
            result = checksum.check(source, target, self._comparable(source, target).tables, progress)
        equal = bool(result["equal"].all())
        self.state.set_step(
            self.name,
            Step.CHECK,
            State.DONE if equal else State.FAILED,
            "equal" if equal else f"{(~result['equal']).sum()} table(s) differ",
            {"tables": result.to_dict("records")},
        )
        return result

    def verify(
        self,
        apply_fix: bool = False,
        chunk_size: int = CHUNK_ROWS,
        threads: int = 2,
        sample: float = 1.0,
        seed: int | None = None,
        online: int = 0,
        progress: bool = False,
    ) -> verify.Verification:
        """Find every differing row; with ``apply_fix`` run the fix SQL in one transaction and check again.

        ``threads`` tables are compared at once, each on its own pair of sessions; ``sample`` < 1
        compares that share of each table's key ranges, for a fast signal. ``online`` > 0 is for a
        running sync: differing tables are re-checked up to that many times, each after the sync
        has caught up with the moment of the previous read, and differences are labelled
        transient or persistent.
        """
        with self.sessions() as (source, target):
            tables = self._comparable(source, target).tables
        result = self._verify_tables(tables, chunk_size, threads, sample, seed, progress)
        if online:
            by_name = {tm.source.qualified: tm for tm in tables}

            def recheck(names: set[str]) -> verify.Verification:
                return self._verify_tables([by_name[n] for n in sorted(names)], chunk_size, threads, sample, seed)

            result = verify.settle(result, recheck, self.wait_for_sync, online)
        self._record_verify(result)
        if apply_fix and result.fixes:
            return self.apply_fix(chunk_size=chunk_size, threads=threads, sample=sample, seed=seed)
        return result

    def _record_verify(self, result: verify.Verification) -> None:
        """The verdict, and the fix written for review (``fixsql``), as the verify step."""
        fix = fixsql.write(self.workspace.folder("reports", self.name), result.fixes)
        self.state.set_step(
            self.name,
            Step.VERIFY,
            State.DONE if result.equal else State.FAILED,
            "equal" if result.equal else f"{len(result.differences)} difference(s)",
            {"summary": result.summary.to_dict("records"), "fix": fix.record()},
        )

    def apply_fix(
        self, chunk_size: int = CHUNK_ROWS, threads: int = 2, sample: float = 1.0, seed: int | None = None
    ) -> verify.Verification:
        """Run the fix the last verify wrote, exactly as written, in one transaction; then verify again.

        Refused while the sync applies changes: the fix holds rows as the source had them when
        verify read them, and would overwrite a newer change the sync has applied since, which the
        sync never writes again. A paused or stopped sync replays its later changes over the fix.
        """
        sync = self.sync_status()["state"]
        if sync in ("starting", "running", "retrying"):
            raise NotNow(
                f"the sync of {self.name} is {sync}: the fix could undo a newer change it has applied",
                fix="pause the sync, apply the fix and verify, then resume the sync",
            )
        record = self.state.detail(self.name, Step.VERIFY).get("fix")
        statements = fixsql.read(record)
        with self.sessions() as (_, target):
            verify.apply_fixes(target, statements)
        self.state.set_step(
            self.name,
            Step.FIX,
            State.DONE,
            f"applied the {len(statements)} statement(s) of {record['path']} (SHA-256 {record['sha256'][:12]})",
            {"fix": record},
        )
        return self.verify(chunk_size=chunk_size, threads=threads, sample=sample, seed=seed)

    def verify_changes(self, since: StartAt, threads: int = 2) -> verify.Verification:
        """Changed-rows check: compare only the rows the source wrote since ``since``, once the sync has them.

        Tables without a key that were written are compared whole (as multisets). Each difference
        shows the last change events that wrote its row (``last_changes``).
        """
        self.wait_for_sync()
        with self.sessions() as (source, target):
            selection = self._comparable(source, target)
            keys = touched.keys(self.spec, source, target, selection, since)
        by_name = {(tm.source.schema, tm.source.name): tm for tm in selection.tables}

        def one(item):
            name, table_keys = item
            with self.sessions() as (source, target):
                tm = by_name[name]
                if tm.source.key:
                    return verify.verify_keys(source, target, tm, set(table_keys))
                return verify.verify_table(source, target, tm)

        written = [(name, k) for name, k in keys.items() if name in by_name]
        with ThreadPoolExecutor(threads, thread_name_prefix="omsbench-verify-changes") as pool:
            result = verify.combine(list(pool.map(one, written)))
        events = {
            (tm.source.qualified, verify.key_label(tm, key)): "; ".join(history)
            for name, table_keys in written
            for tm in [by_name[name]]
            for key, history in table_keys.items()
        }
        result.differences["last_changes"] = [
            events.get((t, k), "") for t, k in zip(result.differences["table"], result.differences["key"], strict=True)
        ]
        self._record_verify(result)
        return result

    def _verify_tables(
        self, tables: list, chunk_size: int, threads: int, sample: float, seed: int | None, progress: bool = False
    ) -> verify.Verification:
        def one(tm):
            with self.sessions() as (source, target):
                return verify.verify_table(source, target, tm, chunk_size, sample=sample, seed=seed, progress=progress)

        with ThreadPoolExecutor(threads, thread_name_prefix="omsbench-verify-table") as pool:
            done = tqdm(pool.map(one, tables), total=len(tables), desc="verify", unit="table", disable=not progress)
            return verify.combine(list(done))

    def sync(self, start: StartAt | None = None) -> Sync:
        """The incremental sync: ``run()`` blocks; ``runner.run_thread`` or ``omsbench sync start`` run it aside."""
        if isinstance(self.spec.target, QueueEndpoint):
            pairing = publish.oceanbase_to_queue if self._source_is_oceanbase() else publish.binlog_to_queue
        elif isinstance(self.spec.source, KafkaEndpoint):
            pairing = topics_to_database
        else:
            pairing = binlog_to_database
        return Sync(self.spec, self.state, self.selection, pairing, start=start)

    def _source_is_oceanbase(self) -> bool:
        """OceanBase has no binlog: its changes come from the capture triggers."""
        if self.spec.source.embedded:
            return True
        with connect(self.spec.source.dsn()) as source:
            return source.flavor is Flavor.OCEANBASE

    def start_sync(self, start: StartAt | None = None) -> int:
        """Run the sync as a background process (it outlives a notebook kernel); return its pid.

        ``start``: where a sync without a checkpoint begins (the full load's hand-over by default). Connections,
        credentials, binlog settings and privileges are checked first: a detached process could
        only retry what no retry cures, while the user saw "started".
        """
        self.require_unreleased("start its sync")
        runner.refuse_second(runner.SyncProcess(self.workspace, self.name))
        try:
            self.require_precheck(ignore=_NOT_FOR_SYNC)
        except PrecheckFailed as err:
            raise SyncError(f"the sync of {self.name} was not started: {err.message}", fix=err.fix) from err
        return runner.SyncProcess(self.workspace, self.name, start).launch()

    def require_binlog(self, position: BinlogPosition) -> None:
        """Refuse a start position in a binlog file the source does not have, before a sync starts."""
        with connect(self.spec.source.dsn()) as source:
            require_available(source, position)

    def pause(self, step: str = Step.SYNC) -> None:
        """Ask a running sync (``step``: the forward one, or the reverse one) to stop applying; its
        checkpoint stays where it is."""
        self.state.request(self.name, step, "pause")

    def resume(self, step: str = Step.SYNC) -> None:
        """Continue a paused sync (a DDL, a refused change, or on request) from its checkpoint."""
        state = self.status_of(step)["state"]
        if state != State.PAUSED:
            raise NotNow(f"the {Step(step).said} of {self.name} is {state}, not paused", fix="nothing to resume")
        self.state.request(self.name, step, "resume")

    def status_of(self, step: str) -> dict:
        return self.reverse_status() if step == Step.REVERSE else self.sync_status()

    def resolve(self, step: str, skip: bool = False, sql: str | None = None) -> str:
        """Decide on the DDL or the refused transaction the sync (``step``: sync or reverse) paused
        on: skip it, or run ``sql`` instead; the sync picks the decision up and goes on. Returns
        the position decided on."""
        if skip == bool(sql):
            raise StateError("give exactly one decision: skip it, or the SQL to run instead")
        status = self.status_of(step)
        where = status.get("at") if status["state"] == "paused" else None
        if not where:
            raise NotNow(
                f"the {Step(step).said} of {self.name} is {status['state']}, not paused on a DDL or a change",
                fix=f"see {named(f'{step} status', self.name)}",
            )
        self.state.request(self.name, step, "resolve", {"position": where, "skip": skip, "sql": sql})
        return where

    def stop_sync(self, timeout: float = 60) -> None:
        """Stop the background sync at a transaction boundary and wait for it to exit."""
        runner.SyncProcess(self.workspace, self.name).stop(timeout)

    def wait_for_sync(self, timeout: float = 120) -> None:
        """Return once the target has every change the source had committed when this was called."""
        if isinstance(self.spec.target, QueueEndpoint):
            with connect(self.spec.source.dsn()) as source:
                publish.wait_caught_up(source, self.spec, self.state, timeout, self._stalled)
            return
        with self.sessions() as (source, target):
            try:
                wait_caught_up(source, target, self.name, timeout, self._stalled)
            except SyncError as err:
                status = self.sync_status()
                if status["message"] in err.message:  # it gave up because of that state, and says so
                    raise
                raise SyncError(f"{err.message}; the sync is {status['state']}: {status['message']}", err.fix) from err

    def _stalled(self) -> str | None:
        """Why the sync cannot catch up by itself, if it cannot: it failed, died, stopped or is paused."""
        status = self.sync_status()
        if status["state"] not in ENDED | {State.PAUSED}:
            return None
        if status["state"] == "paused" and (self.state.requested(self.name, Step.SYNC) or {}).get("want") in (
            "resume",
            "resolve",
        ):
            return None  # a resume or a DDL resolution is on its way to the running loop
        return f"{_STALLED[status['state']]}: {status['message']}"

    def sync_status(self) -> dict:
        """State, position, last rates and lag of the sync, from the state store only (no connection).

        A sync whose runner is gone (kill -9, a crash) says so instead of its last recorded state.
        """
        return self._runner_status(runner.SyncProcess(self.workspace, self.name))

    def behind(self) -> dict:
        """How far the forward sync is behind the source's binlog end (bytes, seconds), asked of both
        servers; what stops the asking is said instead of a number."""
        if self.spec.queue:
            return {}  # a broker on one side: its own offsets tell, not a binlog end
        try:
            with self.sessions() as (source, target):
                return sync_behind(source, target, self.name, full.handover(self.state, self.name))
        except (OmsError, pymysql.err.MySQLError) as err:
            return {"behind": f"unknown: {getattr(err, 'message', None) or err}"}

    def _runner_status(self, process: runner.SyncProcess) -> dict:
        step = self.state.step(self.name, process.step) or {"state": State.NEVER_STARTED, "message": "", "detail": {}}
        status = {"state": step["state"], "message": step["message"], **(step.get("detail") or {})}
        if status["state"] in ACTIVE and process.pid() is None:
            status["message"] = (
                f"the {process.step} process is gone while {status['state']} (killed or crashed); "
                f"{named(f'{process.command} start', self.name)} resumes it from its checkpoint"
            )
            status["state"] = "died"
        return status

    # reverse sync (after switchover) ---------------------------------------------------------------
    def reverse(self) -> Sync:
        """OceanBase -> MySQL, for the tables the switchover put under capture."""
        return Sync(self.spec, self.state, self.selection, oceanbase_to_mysql, step=Step.REVERSE)

    def start_reverse(self) -> int:
        """The reverse sync as a background process, once both databases answer with these credentials."""
        self.require_unreleased("start its reverse sync")
        with self.sessions():
            pass
        return runner.ReverseProcess(self.workspace, self.name).launch()

    def stop_reverse(self, timeout: float = 60) -> None:
        runner.ReverseProcess(self.workspace, self.name).stop(timeout)

    def reverse_status(self) -> dict:
        """As ``sync_status``; with tables carried back by comparison, how long ago the last pass
        over them began: their lag, which the heartbeat of the trigger capture does not measure."""
        status = self._runner_status(runner.ReverseProcess(self.workspace, self.name))
        by_compare = self.state.detail(self.name, Step.SWITCHOVER).get("compared")
        if by_compare:
            last = self.state.mark(self.name, compared.MARK)
            status["compared_tables"] = len(by_compare)
            status["last_compare_s_ago"] = round(time.time() - last["started"], 1) if last else None
        return status

    def wait_for_reverse(self, timeout: float = 120) -> None:
        """Return once MySQL has every change OceanBase had committed when this was called."""
        record = self.state.detail(self.name, Step.SWITCHOVER)
        last_pass = (lambda: self.state.mark(self.name, compared.MARK)) if record.get("compared") else None
        with self.sessions() as (source, target):
            reverse_wait(target, source, self.name, record.get("capture"), timeout, last_pass)

    def status(self) -> dict[str, pd.DataFrame]:
        return {"steps": self.state.steps(self.name), "progress": self.state.chunk_progress(self.name)}

    def _write_json(self, kind: str, frame: pd.DataFrame) -> Path:
        path = self.workspace.folder("reports", self.name) / f"{kind}.json"
        path.write_text(json.dumps(frame.to_dict("records"), indent=2, default=str))
        return path
