"""The lifecycle of a migration project: which action the user may take now, and taking it.

The CLI, the control panel and the runbooks all ask this module, so a button is enabled
exactly when the matching command would be accepted, and the reason shown for a disabled
one is the error the command would give.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import pandas as pd

from omsbench.actions import named
from omsbench.engine import precheck, release, switchover
from omsbench.engine.project import Project
from omsbench.engine.state import as_utc
from omsbench.engine.steps import ACTIVE, ENDED, State, Step
from omsbench.exceptions import NotNow, StateError

ACTIONS = ("precheck", "start", "pause", "resume", "stop", "verify", "switchover", "switchback", "release")
"""In the order the panel shows them. ``start`` runs what is not done yet, then the sync;
``switchback`` confirms that the application no longer writes to OceanBase; ``release`` ends
the project and takes omsbench out of both databases."""
_AFTER_RELEASE = ("precheck", "verify")
"""What a released project may still do: nothing that runs a sync or writes."""


def _state(project: Project, step: str) -> str:
    return (project.state.step(project.name, step) or {}).get("state", State.PENDING)


def asks_behind(sync_state: str) -> bool:
    """Whether how far the sync is behind must be asked of the servers: a sync that ran and is not
    running now samples no lag, and one never started has no position."""
    return sync_state not in (State.NEVER_STARTED, State.RUNNING)


def allowed(project: Project) -> dict[str, str | None]:
    """Per action: None when it may run now, else why not (the words the user sees)."""
    sync = project.sync_status()["state"]
    syncing = sync in ACTIVE
    loading = (project.state.step(project.name, Step.FULL) or {}).get("state")
    record = project.state.detail(project.name, Step.SWITCHOVER)
    databases = "Kafka is on one side of this project" if project.spec.queue else None
    switched = record.get("direction") == "switchover" and record.get("finished")
    returning = record.get("direction") == "switch back" and not record.get("finished")
    reasons = {
        "precheck": None,
        "start": f"the sync is already {sync}" if syncing else None,
        "pause": None if sync in ("running", "retrying") else f"the sync is {sync}, not running",
        "resume": None if sync == "paused" else f"the sync is {sync}, not paused",
        "stop": None if syncing else f"the sync is {sync}",
        # a load never started may have been made by other means; one under way or cut short compares nothing
        "verify": databases
        or (None if loading in (None, State.DONE) else f"the full migration has not finished (it is {loading})"),
        "switchover": databases
        or (
            None
            if sync in ("running", "retrying") or (record.get("direction") == "switchover" and not switched)
            else f"the forward sync is {sync}: switchover drains a running sync"
        ),
        "switchback": databases or (None if switched or returning else "the project has not switched over"),
        "release": release.refusal(project),
    }
    if project.released:
        return {a: why if a in _AFTER_RELEASE else "the project was released" for a, why in reasons.items()}
    return reasons


def start(project: Project, progress: bool = False) -> int:
    """Precheck, schema and full load where not done yet, then the sync as a background process.

    Steps already done are not repeated, so Start after a crash or a failed step goes on
    from where the project stands. Returns the sync process id.
    """
    if project.spec.queue:  # Kafka on one side: nothing to create or copy, only the stream
        project.require_precheck()
        return project.start_sync()
    if _state(project, Step.SCHEMA) != State.DONE:
        project.require_precheck()
        project.migrate_schema()
    if _state(project, Step.FULL) != State.DONE:
        project.full(progress=progress)
    return project.start_sync()


def require(project: Project, action: str) -> None:
    """NotNow naming why, unless :func:`allowed` says ``action`` may run now."""
    if action not in ACTIONS:
        raise StateError(f"unknown action {action!r}", fix=f"use one of {', '.join(ACTIONS)}")
    refusal = allowed(project)[action]
    if refusal:
        raise NotNow(f"cannot {action} project {project.name}: {refusal}", fix=f"see {named('status', project.name)}")


def perform(project: Project, action: str, force: bool = False, **options: Any) -> Any:
    """Run ``action`` if :func:`allowed` says it may run, else raise a StateError naming why.

    A switchover also needs every item of :func:`checklist` ticked, unless ``force``."""
    require(project, action)
    if action == "switchover" and not force:
        require_checklist(project)
    runs: dict[str, Callable[..., Any]] = {
        "precheck": project.precheck,
        "start": lambda **kw: start(project, **kw),
        "pause": project.pause,
        "resume": project.resume,
        "stop": project.stop_sync,
        "verify": project.verify,
        "switchover": lambda **kw: switchover.switchover(project, **kw),
        "switchback": lambda **kw: switchover.switch_back(project, writes_stopped=True, **kw),
        "release": lambda: release.release(project),
    }
    return runs[action](**options)


_CHECKLIST_FIX = "run Verify and let the sync catch up, or force the switchover"
LAG_LIMIT_MS = 1000.0
"""The lag (p50) under which a switchover's drain is a matter of seconds: writes stop on MySQL for that long."""


@dataclass(frozen=True)
class Check:
    """One item a DBA ticks before a switchover: what it asks, and whether it holds now."""

    what: str
    ok: bool


def checklist(project: Project) -> list[Check]:
    """Before a switchover: the sync runs, its lag is small, and the last verify is equal and not stale.

    The switchover verifies again after its drain; this list is what makes that second verify a
    formality instead of the moment a DBA learns of a difference with the application stopped."""
    sync = project.sync_status()
    verified, stale = verify_freshness(project)
    lag = sync.get("lag_p50_ms")
    return [
        Check("sync running", sync["state"] == "running"),
        Check(
            f"lag under {LAG_LIMIT_MS:,.0f} ms (now {lag:,.0f} ms)" if lag is not None else "lag measured",
            lag is not None and lag < LAG_LIMIT_MS,
        ),
        Check("last verify equal and not stale", verified.get("state") == State.DONE and not stale),
    ]


def require_checklist(project: Project) -> None:
    """Refuse a switchover that has not begun while an item of :func:`checklist` fails.

    One that a crash interrupted goes on, and one that finished reports itself: their sync is
    stopped by then, on purpose."""
    if project.state.detail(project.name, Step.SWITCHOVER).get("direction") == "switchover":
        return
    failing = [check.what for check in checklist(project) if not check.ok]
    if failing:
        raise NotNow(
            f"switchover of {project.name} refused: not yet {'; '.join(failing)}",
            fix=_CHECKLIST_FIX,
        )


def readiness(project: Project, force: bool = False, **options: Any) -> list[precheck.Finding]:
    """What a switchover would do and what would stop it (see ``switchover.readiness``), with the
    checklist first: a dry run refuses exactly what the switchover itself would refuse."""
    checks = [] if force else [_finding(project, check) for check in checklist(project)]
    return checks + switchover.readiness(project, **options)


def _finding(project: Project, check: Check) -> precheck.Finding:
    if check.ok:
        return precheck.Finding("checklist", project.name, precheck.OK, check.what)
    return precheck.Finding(
        "checklist",
        project.name,
        precheck.FAIL,
        f"not yet: {check.what}",
        _CHECKLIST_FIX,
    )


@dataclass(frozen=True)
class Headline:
    """Where the project stands, in one line, and the action to take next (None: nothing to do now)."""

    text: str
    next_action: str | None
    attention: bool
    """True when something waits for the user: a failure, a pause, a verify that found differences."""


_SYNC_WORDS = {
    "running": "Replicating",
    "starting": "Starting the sync",
    "retrying": "Reconnecting",
    "paused": "Sync paused",
    "failed": "Sync failed",
    "died": "Sync process gone",
    "stopped": "Sync stopped",
}


def verify_freshness(project: Project) -> tuple[dict, int]:
    """The last verify step, and how many DDL changes were applied after it: each makes its verdict stale."""
    verified = project.state.step(project.name, Step.VERIFY) or {}
    ddl = project.state.ddl(project.name)
    ddl = ddl[ddl["action"] != "ignored"]
    if not verified.get("ended_at"):
        return verified, len(ddl)
    ended = as_utc(verified["ended_at"])
    return verified, int((pd.to_datetime(ddl["at"], utc=True) > ended).sum())


def headline(project: Project, refusals: dict[str, str | None] | None = None, behind: dict | None = None) -> Headline:
    """One line for the top of the panel and of ``omsbench status``: state, lag, last verify, next step.

    ``refusals``: what :func:`allowed` said, where the caller has just asked it (the panel, every
    refresh). ``behind``: how far a sync that is not running is behind the source's binlog end
    (``Project.behind``), where the caller asked the servers; a running sync's lag says it."""
    allowed_now = allowed(project) if refusals is None else refusals
    sync = project.sync_status()
    state = sync["state"]
    parts = []
    if state == State.NEVER_STARTED:
        loaded = _state(project, Step.FULL) == State.DONE
        parts.append("Loaded, sync not started" if loaded else "Not started")
    else:
        lag = sync.get("lag_p50_ms")
        words = _SYNC_WORDS.get(state, state)
        if state == "running":
            words += f", {lag:,.0f} ms behind" if lag is not None else ""
        elif sync.get("since"):
            words += f" since {_utc(datetime.fromtimestamp(sync['since'], timezone.utc))}"
        parts.append(words + _behind(behind))
    verified, stale = verify_freshness(project)
    if verified.get("ended_at"):
        when = _utc(verified["ended_at"])
        verdict = "equal" if verified.get("state") == State.DONE else f"differences ({verified.get('message', '')})"
        parts.append(f"last verify {when} {verdict}" + (f", before {stale} DDL change(s): stale" if stale else ""))
    attention = state in (State.FAILED, State.DIED, State.PAUSED) or verified.get("state") == State.FAILED
    action = _next(project, sync, verified, stale, allowed_now)
    if action:
        parts.append(f"next: {action}")
    return Headline("; ".join(parts), action, attention)


def _next(project: Project, sync: dict, verified: dict, stale: int, allowed_now: dict) -> str | None:
    """The one action that moves the project on; None while it is the user's move outside the panel."""
    record = project.state.detail(project.name, Step.SWITCHOVER)
    if record.get("direction") == "switchover" and record.get("finished"):
        wanted = "release"
    elif sync["state"] == "paused":
        wanted = None if sync.get("at") else "resume"  # a DDL waits for the user's decision, not a resume
    elif sync["state"] in ENDED | {State.NEVER_STARTED}:
        wanted = "start"
    elif not verified.get("ended_at") or stale or verified.get("state") != State.DONE:
        wanted = "verify"
    else:
        wanted = "switchover"
    return wanted if wanted and allowed_now.get(wanted) is None else None


def _behind(behind: dict | None) -> str:
    if not behind or behind.get("behind_bytes") is None:
        return ""
    seconds = behind.get("behind_s")
    return f", {behind['behind_bytes']:,} bytes" + (f" / {seconds:,.0f} s" if seconds is not None else "") + " behind"


def _utc(value: datetime | str) -> str:
    return as_utc(value).strftime("%Y-%m-%d %H:%M UTC")
