"""Release: end a migration project and take omsbench out of both databases.

Once the application has settled on OceanBase (or the migration is given up), nothing of
omsbench may keep running or writing there: the syncs stop, the capture triggers leave the
OceanBase tables (each would otherwise log every write into a change log that nobody reads
any more), and the project's rows leave omsbench's own tables on both sides. The users' tables
and data are not touched. A MySQL the switchover made read-only stays so, guarding the old
primary, and triggers it suspended there are listed with their statements, not created again.
"""

from __future__ import annotations

from datetime import datetime, timezone

import pandas as pd

from omsbench.actions import named
from omsbench.endpoints.catalog import quote
from omsbench.endpoints.connection import Endpoint, Session, connect
from omsbench.engine import capture, own_tables, switchover
from omsbench.engine.project import Project
from omsbench.engine.steps import State, Step
from omsbench.exceptions import StateError


def release(project: Project) -> dict:
    """Stop the project's syncs, remove its capture triggers and bookkeeping rows; return the record.

    Run again, it only reports itself. Refused in the middle of a switchover or a switch-back:
    MySQL and the syncs would be left half moved.
    """
    if project.released:
        return project.state.detail(project.name, Step.RELEASE)
    moving = project.state.detail(project.name, Step.SWITCHOVER)
    halfway = _halfway(project.name, moving)
    if halfway:
        finish = (
            named("switchover", project.name)
            if moving["direction"] == "switchover"
            else named("switchback", project.name, "--writes-stopped")
        )
        raise StateError(
            halfway,
            fix=f"finish it first ({finish} goes on from where it stopped), then release",
        )
    project.stop_sync()
    project.stop_reverse()
    record: dict = {"sides": {}}
    for side, endpoint in (("source", project.spec.source), ("target", project.spec.target)):
        if isinstance(endpoint, Endpoint):  # a Kafka or RocketMQ side keeps nothing of the project's
            with connect(endpoint.dsn()) as session:
                record["sides"][side] = _clean(session, project.name)
    switched = moving.get("direction") == "switchover"
    record["source_read_only"] = bool(switched and moving.get("read_only_set"))
    record["suspended_triggers"] = moving.get("triggers", []) if switched else []
    record["released_at"] = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
    project.state.set_step(project.name, Step.RELEASE, State.DONE, "released", record)
    return record


def refusal(project: Project) -> str | None:
    """Why release cannot run now, in the words its error uses; None when it can."""
    return _halfway(project.name, project.state.detail(project.name, Step.SWITCHOVER))


def _halfway(name: str, moving: dict) -> str | None:
    if moving.get("phases") and not moving.get("finished"):
        return f"project {name} is in the middle of its {moving['direction']}"
    return None


def _bookkeeping(session: Session) -> list[str]:
    """omsbench's own tables on one side that hold rows by project."""
    rows = session.query(
        "SELECT TABLE_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s AND COLUMN_NAME = 'project'",
        (own_tables.SCHEMA,),
    )
    return [table for (table,) in rows]


def remains(session: Session, project: str) -> dict[str, int]:
    """What of the project is still in one database: capture triggers and bookkeeping rows."""
    rows = sum(
        session.scalar(f"SELECT COUNT(*) FROM {quote(own_tables.SCHEMA)}.{quote(table)} WHERE project = %s", (project,))
        for table in _bookkeeping(session)
    )
    return {"triggers": len(capture.installed(session, project)), "rows": int(rows)}


def _clean(session: Session, project: str) -> dict:
    """The project's capture triggers and bookkeeping rows gone from one database; what was removed."""
    triggers = capture.remove(session, project)
    rows = {
        table: session.execute(f"DELETE FROM {quote(own_tables.SCHEMA)}.{quote(table)} WHERE project = %s", (project,))
        for table in _bookkeeping(session)
    }
    others = sorted(
        table
        for (table,) in session.query(
            "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s", (own_tables.SCHEMA,)
        )
        if session.scalar(f"SELECT COUNT(*) FROM {quote(own_tables.SCHEMA)}.{quote(table)}")
    )
    left = remains(session, project)
    return {"triggers_dropped": triggers, "rows_deleted": rows, "own_tables_in_use": others, "left": left}


def summary(record: dict) -> pd.DataFrame:
    """What a release removed, one row per side."""
    return pd.DataFrame(
        [
            {
                "side": side,
                "triggers dropped": len(found["triggers_dropped"]),
                "rows deleted": sum(found["rows_deleted"].values()),
                "triggers left": found["left"]["triggers"],
                "rows left": found["left"]["rows"],
            }
            for side, found in record["sides"].items()
        ]
    )


def notes(project: Project, record: dict) -> list[str]:
    """What the user may still want to do by hand after a release."""
    lines = []
    for side, found in record["sides"].items():
        where = getattr(project.spec, side).url
        if not found["rows_deleted"]:
            continue  # omsbench kept nothing on this side
        if found["own_tables_in_use"]:
            lines.append(
                f"{where}: `{own_tables.SCHEMA}` still holds rows of other projects in "
                + ", ".join(found["own_tables_in_use"])
            )
        else:
            lines.append(f"{where}: `{own_tables.SCHEMA}` holds nothing more; drop it if no other project will use it")
    if record["source_read_only"]:
        lines.append(f"MySQL ({project.spec.source.url}) stays read-only: SET GLOBAL read_only = OFF to write to it")
    for item in map(switchover.trigger, record["suspended_triggers"]):
        name = f"{item['schema']}.{item['name']}"
        lines.append(f"trigger {name}, suspended at switchover, was not created again: {item['statement']}")
    return lines
