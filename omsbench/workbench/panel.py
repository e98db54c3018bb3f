"""The control panel: one migration project in JupyterLab (or Voila), as ipywidgets.

The panel has no logic of its own. It shows what the state store says (steps, per-table
progress, lag, rates, errors, DDL decisions), refreshed by a timer thread so the kernel stays
free, and its buttons call :mod:`omsbench.engine.lifecycle`, which also decides which of them
are enabled. Long actions (Start runs precheck, schema and the full load) run in a worker
thread; the sync itself runs as a background process that outlives the kernel.
"""

from __future__ import annotations

import html
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import ipywidgets as w
import pandas as pd

from omsbench.actions import as_button
from omsbench.engine import lifecycle
from omsbench.engine import precheck as prechecks
from omsbench.engine.project import Project
from omsbench.engine.steps import MILESTONES, State, Step
from omsbench.exceptions import OmsError
from omsbench.workbench import charts, report, tables

_COLOURS = {"done": "#1a7f37", "running": "#0969da", "failed": "#cf222e", "paused": "#9a6700", "died": "#cf222e"}
_ICONS = {
    "precheck": "check",
    "start": "play",
    "pause": "pause",
    "resume": "forward",
    "stop": "stop",
    "verify": "search",
    "switchover": "exchange",
    "switchback": "undo",
    "release": "flag-checkered",
}
_LABELS = {"switchover": "Switchover", "switchback": "Switch back"}
_HINTS = {
    "precheck": "check connections, privileges, binlog settings, keys and types on both sides",
    "start": "run what is not done yet (precheck, schema, full load), then the sync in the background",
    "pause": "stop applying changes; the checkpoint stays where it is",
    "resume": "continue a paused sync from its checkpoint",
    "stop": "stop the background sync at a transaction boundary",
    "verify": "compare every table on both sides and find each differing row",
    "switchover": "stop MySQL writes, drain, verify, capture on OceanBase and start the reverse sync",
    "switchback": "only once the application no longer writes to OceanBase: pressing it confirms that",
    "release": "end the project: stop its syncs (the fallback too) and take omsbench out of both databases",
}
_CONFIRM = {"release": "Confirm release", "switchover": "Confirm switchover", "stop": "Confirm stop"}
"""Actions with consequences: the first click arms the button and shows the checklist, a second performs it."""
ERROR_SHOWN_FOR = timedelta(minutes=1)
"""An action's error stays this long, or until the next action: minutes later it no longer applied."""
_open_panels: dict[tuple[str, str], ControlPanel] = {}
"""One live panel per project: re-running the cell stops the refresh timer of the panel it replaces."""
_LIVE = {"sync": "sync_status", "reverse": "reverse_status"}
_STYLE = "<style>.omsbench-panel svg { max-width: 100%; height: auto; }</style>"
"""Charts shrink to the panel: laid out for a report page, they ran 20 px past a notebook with its sidebar open."""
"""Steps whose state comes with a check that their process is alive."""


class _TwoClicks:
    """A button whose first click only arms it, saying so on the button; the second confirms.

    For what cannot be undone: a switchover, a stop, a release, skipping a change, applying a fix."""

    def __init__(self, button: w.Button, confirm: str) -> None:
        self.button, self.label, self.confirm = button, button.description, confirm
        self.armed = False

    def set(self, armed: bool) -> None:
        self.armed = armed
        self.button.description = self.confirm if armed else self.label
        self.button.button_style = "danger" if armed else ""

    def press(self) -> bool:
        """True on the confirming click; the first one arms the button and returns False."""
        self.set(not self.armed)
        return not self.armed


def _said(text: object) -> str:
    """An engine message for the panel: escaped, each action it names worded as the panel's button."""
    return html.escape(as_button(str(text)))


def _label(action: str) -> str:
    return _LABELS.get(action, action.capitalize())


BEHIND_EVERY = timedelta(seconds=10)
"""How often the panel asks both servers how far a sync that is not running is behind."""

PANEL_WINDOW = timedelta(hours=1)
"""The panel draws the lag and rates of the last hours; reports and runbooks draw the whole run.
A day of sync is about 10^6 samples, which took 12 s to read and draw at every refresh (now 0.7 s)."""


class ControlPanel:
    """``ControlPanel(project)`` as the last line of a cell shows the panel and starts its refresh timer."""

    def __init__(self, project: Project, interval: float = 2.0) -> None:
        self.project = project
        self.interval = interval
        self.buttons = {
            action: w.Button(description=_label(action), icon=_ICONS[action], layout=w.Layout(width="auto"))
            for action in lifecycle.ACTIONS  # sized to the label: a fixed width cut "Switchover" to "Switcho..."
        }
        for action, button in self.buttons.items():
            button.on_click(lambda _button, action=action: self.act(action))
        self.confirms = {action: _TwoClicks(self.buttons[action], label) for action, label in _CONFIRM.items()}
        self.headline = w.HTML()
        self.next = w.Button(icon="arrow-right", button_style="primary", layout=w.Layout(display="none"))
        self.next_action: str | None = None
        self.next.on_click(lambda _button: self.next_action and self.act(self.next_action))
        self.reasons = w.HTML()
        self.force = w.Checkbox(
            description="switch over although the checklist fails", indent=False, layout=w.Layout(display="none")
        )
        self.readiness = w.HTML()
        self.steps = w.HTML()
        self.progress = w.VBox()
        self.sync = w.HTML()
        self.lag = w.HTML()
        self.errors = w.HTML()
        self.decision = _Decision(self)
        self.verified = _Verified(self)
        self.ddl = w.HTML()
        self.last_error: str | None = None
        self._behind: tuple[datetime, dict] = (datetime.min.replace(tzinfo=timezone.utc), {})
        self._error_at = datetime.now(timezone.utc)
        self.armed: str | None = None
        self.job: Future | None = None
        self._jobs = ThreadPoolExecutor(1, thread_name_prefix=f"omsbench-panel-{project.name}")
        self._drawn_mark = -1
        self._drawing = threading.Lock()
        self._stopping = threading.Event()
        self._timer: threading.Thread | None = None
        self.widget = w.VBox(
            [
                w.HTML(f"{_STYLE}<h3>omsbench · {html.escape(project.name)}</h3>{_endpoints(project)}"),
                w.HBox([self.headline, self.next], layout=w.Layout(align_items="center", grid_gap="12px")),
                w.HBox(list(self.buttons.values())),
                self.reasons,
                self.force,
                self.readiness,
                self.errors,
                self.decision.widget,
                self.verified.widget,
                w.HBox([self.steps, self.sync], layout=w.Layout(grid_gap="24px")),
                w.HTML("<b>Full migration</b>"),
                self.progress,
                self.lag,
                self.ddl,
            ]
        )
        self.widget.add_class("omsbench-panel")
        previous = _open_panels.get((str(project.workspace.root), project.name))
        if previous is not None:
            previous.stop()
        _open_panels[(str(project.workspace.root), project.name)] = self
        self.refresh()

    # actions --------------------------------------------------------------------------------
    def act(self, action: str) -> Future | None:
        """What a button does: the lifecycle action in the worker thread, one at a time.

        An action that cannot be undone only arms its button on the first click (None is returned).
        """
        force = self.force.value  # read before disarming clears it
        if action in _CONFIRM and not self.confirms[action].press():
            self._arm(action)
            self.refresh()  # the checklist shows under the buttons
            return None
        self._arm(None)
        for button in (*self.buttons.values(), self.next):
            button.disabled = True
        if action == "verify":  # its differences, fix and report are shown here, not only counted
            return self.run(action, self.verified.verify)
        return self.run(action, lifecycle.perform, self.project, action, force)

    def _arm(self, action: str | None) -> None:
        """Arm ``action`` alone (None: disarm all). An armed switchover shows the cut-over readiness
        report: what it will do with every object and column, and what would stop it."""
        for name, confirm in self.confirms.items():
            confirm.set(name == action)
        self.armed = action
        self.force.value = False
        self.force.layout.display = "" if action == "switchover" else "none"
        self.readiness.value = self._readiness() if action == "switchover" else ""

    def _readiness(self) -> str:
        try:
            found = prechecks.frame(lifecycle.readiness(self.project, force=True))
        except OmsError as err:
            return f"<div style='color:#cf222e'>cut-over readiness: {_said(err.message)}</div>"
        first = {prechecks.FAIL: 0, prechecks.WARN: 1}  # failures, then warnings, then what is fine
        found = found.sort_values("status", key=lambda s: s.map(first).fillna(2), kind="stable")
        return "<b>Cut-over readiness</b>" + _table(found)

    def run(self, what: str, call, *args) -> Future:
        """An engine call in the worker thread, one at a time; once done the panel refreshes, so the
        buttons count it finished."""
        self.last_error = None
        self.job = self._jobs.submit(self._guarded, what, call, *args)
        self.job.add_done_callback(lambda _job: self.refresh())
        return self.job

    def _guarded(self, what: str, call, *args) -> None:
        try:
            call(*args)
        except OmsError as err:
            self._error(
                f"{what}: {_said(err.message)}" + (f"<br><i>what to do:</i> {_said(err.fix)}" if err.fix else "")
            )
        except Exception as err:  # shown in the panel: the worker thread has no one else to tell
            self._error(f"{what}: {type(err).__name__}: {err}")

    def _error(self, text: str) -> None:
        self.last_error, self._error_at = text, datetime.now(timezone.utc)

    def wait(self, timeout: float | None = None) -> None:
        """Block until the current action has finished and the panel shows its result (runbooks, tests)."""
        if self.job is not None:
            self.job.result(timeout)
        self.refresh()

    # display --------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Read the state store and bring every widget up to date; each status is read once per refresh."""
        busy = self.job is not None and not self.job.done()
        refusals = lifecycle.allowed(self.project)
        for action, refusal in refusals.items():
            button = self.buttons[action]
            button.disabled = busy or refusal is not None
            button.tooltip = "another action is running" if busy else refusal or _HINTS[action]
        self.reasons.value = self._reasons(refusals, busy)
        live = {step: getattr(self.project, status)() for step, status in _LIVE.items()}
        self._headline(refusals, busy, self._behind_now(live["sync"]))
        if self.last_error and datetime.now(timezone.utc) - self._error_at > ERROR_SHOWN_FOR:
            self.last_error = None
        recorded = self.project.state.steps(self.project.name)
        self.steps.value = self._steps(recorded, live)
        self.sync.value = self._sync(live)
        self._progress()
        self._charts()
        self.errors.value = self._errors(recorded, live["sync"])
        ddl = self.project.state.ddl(self.project.name)
        self.decision.show(live, busy)
        self.verified.enable(live["sync"]["state"], busy)
        shown = ddl[["at", "position", "action", "reason", "statement", "target_sql"]].rename(
            columns={"target_sql": "run on the target"}
        )
        self.ddl.value = "<b>Decisions: DDL and refused changes</b>" + _table(shown)

    def _headline(self, refusals: dict[str, str | None], busy: bool, behind: dict) -> None:
        """Where the project stands and what to do next, with the next step as a button."""
        line = lifecycle.headline(self.project, refusals, behind)
        colour = "#cf222e" if line.attention else "#1f2328"
        self.headline.value = (
            f"<b class='omsbench-headline' style='color:{colour};font-size:1.1em'>{_said(line.text)}</b>"
        )
        self.next_action = line.next_action
        self.next.tooltip = f"next step: {_HINTS[line.next_action]}" if line.next_action else ""
        self.next.description = f"Next: {_label(line.next_action)}" if line.next_action else ""
        self.next.disabled = busy
        self.next.layout.display = "" if line.next_action else "none"

    def _reasons(self, refusals: dict[str, str | None], busy: bool) -> str:
        """Why each disabled button is disabled, written out: a hover tooltip is easy to miss."""
        if busy:
            return "<div style='color:#57606a'>an action is running; the buttons wait for it</div>"
        lines = [f"{_label(a)}: {_said(why)}" for a, why in refusals.items() if why]
        if self.armed:
            lines.insert(0, f"<b>{_label(self.armed)} armed</b>: {self._checklist()}")
        return "<div style='color:#57606a;font-size:.9em'>" + "<br>".join(lines) + "</div>"

    def _checklist(self) -> str:
        """What a DBA checks before a switchover or a stop, ticked by the engine; a switchover is
        refused while one fails unless forced, as the CLI refuses it without --force."""
        checks = lifecycle.checklist(self.project)
        ticks = " ".join(f"{'✔' if c.ok else '✘'} {html.escape(c.what)};" for c in checks)
        if self.armed == "switchover" and not all(c.ok for c in checks):
            return f"{ticks} Click it again: it is refused unless forced (tick the box below)."
        return f"{ticks} Click it again to go on."

    def _steps(self, steps: pd.DataFrame, live: dict[str, dict]) -> str:
        """Every step in the order a migration takes them, with when it last ended."""
        recorded = steps.set_index("step")
        rows = []
        for step in Step:
            if step not in live and step not in recorded.index and step not in MILESTONES:
                continue
            state = live[step]["state"] if step in live else _get(recorded, step, "state", "pending")
            colour = _COLOURS.get(state, "#57606a")
            ended = _get(recorded, step, "ended_at", None)
            when = pd.Timestamp(ended).strftime("%H:%M:%S UTC") if ended is not None and not pd.isna(ended) else ""
            message = _said(_get(recorded, step, "message", "") or "")[:120]
            rows.append(
                f"<tr><td>{step}</td><td style='color:{colour};font-weight:600'>{html.escape(str(state))}</td>"
                f"<td style='white-space:nowrap'>{when}</td><td>{message}</td></tr>"
            )
        return "<b>Steps</b><table class='omsbench-steps'>" + "".join(rows) + "</table>"

    def _sync(self, live: dict[str, dict]) -> str:
        status, reverse = {**live["sync"], **self._behind_now(live["sync"])}, live["reverse"]
        keys = ("state", "position", "behind_bytes", "behind_s", "lag_p50_ms", "lag_p99_ms", "rows_per_s",
                "transactions_per_s", "last_compare_s_ago")  # fmt: skip
        rows = "".join(
            f"<tr><td>{k.replace('_', ' ')}</td><td>{html.escape(str(status[k]))}</td></tr>"
            for k in keys
            if k in status
        )
        if reverse["state"] != State.NEVER_STARTED:
            rows += "".join(
                f"<tr><td>reverse {k.replace('_', ' ')}</td><td>{html.escape(str(reverse[k]))}</td></tr>"
                for k in keys
                if k in reverse
            )
        return f"<b>Incremental sync</b><table>{rows}</table>"

    def _behind_now(self, status: dict) -> dict:
        """How far a sync that is not running is behind the source's binlog end (its lag samples
        stop then), asked of both servers at most every ``BEHIND_EVERY``."""
        if not lifecycle.asks_behind(status["state"]):
            return {}
        asked, found = self._behind
        now = datetime.now(timezone.utc)
        if now - asked >= BEHIND_EVERY:
            found = self.project.behind()
            self._behind = (now, found)
        return found

    def _progress(self) -> None:
        """One bar per table, with the share and rows copied beside it; bars are kept and updated."""
        frame = charts.progress_frame(self.project.state.chunk_progress(self.project.name))
        rows = {row.children[0].tooltip: row for row in self.progress.children}
        for table in frame.itertuples():
            if table.table not in rows:
                bar = w.FloatProgress(  # the whole name, schema too: "legacy_no..." named nothing
                    min=0, max=100, description=table.table, tooltip=table.table, style={"description_width": "initial"}
                )
                rows[table.table] = w.HBox([bar, w.HTML()])
            bar, label = rows[table.table].children
            bar.value = table.percent
            bar.bar_style = "success" if table.percent >= 100 else "info"
            rows_copied = int(table.rows_copied or 0)
            label.value = f"<span class='omsbench-progress'>{table.percent:g}% · {rows_copied:,} rows</span>"
        self.progress.children = tuple(rows.values())

    def _charts(self) -> None:
        """Redraw the lag and rate charts only when new samples arrived: SVG rendering costs.

        The timer thread and a caller may refresh at once; the lock makes the second one wait for
        the drawing the first started, rather than see the new mark and an empty chart.
        """
        with self._drawing:
            mark = self.project.state.metrics_mark(self.project.name)
            if mark == self._drawn_mark:
                return
            since = datetime.now(timezone.utc) - PANEL_WINDOW
            found = charts.for_project(self.project.state, self.project.name, since)
            names = ("Lag", "Rates", "Reverse lag", "Reverse rates")
            self.lag.value = "".join(charts.to_svg(found[name]) for name in names if name in found)
            self._drawn_mark = mark

    def _errors(self, steps: pd.DataFrame, status: dict) -> str:
        lines = [self.last_error] if self.last_error else []
        lines += [f"{r.step} {r.state}: {_said(r.message)}" for r in steps.itertuples() if r.state == "failed"]
        if status["state"] in ("died", "failed", "paused", "retrying"):
            lines.append(f"sync {status['state']}: {_said(status['message'])}")
        body = "".join(f"<li>{line}</li>" for line in lines)
        return f"<div style='color:#cf222e'><b>Needs attention</b><ul>{body}</ul></div>" if lines else ""

    # timer ------------------------------------------------------------------------------------
    def start(self) -> None:
        """Refresh every ``interval`` seconds in a daemon thread; widget updates reach the browser from it."""
        if self._timer and self._timer.is_alive():
            return
        self._stopping.clear()
        self._timer = threading.Thread(target=self._tick, name=f"omsbench-panel-timer-{self.project.name}", daemon=True)
        self._timer.start()

    def stop(self) -> None:
        self._stopping.set()

    def _tick(self) -> None:
        while not self._stopping.wait(self.interval):
            try:
                self.refresh()
            except Exception as err:  # a refresh that fails (state store busy) must not end the timer
                self.last_error = f"refresh: {type(err).__name__}: {err}"

    def _repr_mimebundle_(self, **kwargs):
        self.start()
        return self.widget._repr_mimebundle_(**kwargs)


class _Decision:
    """The card of a sync paused on a DDL or a refused change: what it is, and the three ways on
    (retry as it is once the cause is fixed, skip it, run other SQL instead), where it is shown.
    Skipping drops a change: its first click only arms it."""

    def __init__(self, panel: ControlPanel) -> None:
        self.panel = panel
        self.step: str | None = None
        self.text = w.HTML()
        self.sql = w.Textarea(placeholder="SQL to run instead", layout=w.Layout(width="100%", height="4em"))
        self.buttons = {
            "retry": w.Button(
                description="Retry", icon="redo", tooltip="run it again as it is, once the cause is fixed"
            ),
            "skip": w.Button(description="Skip", icon="forward", tooltip="move past it: the change is not applied"),
            "replace": w.Button(description="Replace with", icon="pencil", tooltip="run the SQL above in its place"),
        }
        for name, button in self.buttons.items():
            button.on_click(lambda _button, name=name: self.decide(name))
        self.sql.observe(lambda _change: self._enable(False), names="value")
        self.skip = _TwoClicks(self.buttons["skip"], "Confirm skip")  # it drops a change
        self.widget = w.VBox(
            [self.text, self.sql, w.HBox(list(self.buttons.values()))],
            layout=w.Layout(display="none", border="1px solid #9a6700", padding="6px"),
        )

    def show(self, live: dict[str, dict], busy: bool) -> None:
        paused = next((s for s in ("sync", "reverse") if live[s]["state"] == "paused" and live[s].get("at")), None)
        self.step = paused
        self.widget.layout.display = "" if paused else "none"
        if not paused:
            self.skip.set(False)
            return
        status = live[paused]
        what = f"<b>The {paused} waits for a decision at {html.escape(status['at'])}</b>"
        statement = status.get("statement")
        shown = f"<pre style='white-space:pre-wrap'>{html.escape(statement)}</pre>" if statement else ""
        self.text.value = f"{what}{shown}<div>{_said(status['message'])}</div>"
        self._enable(busy)

    def _enable(self, busy: bool) -> None:
        for name, button in self.buttons.items():
            button.disabled = busy or (name == "replace" and not self.sql.value.strip())

    def decide(self, name: str) -> Future | None:
        project, step = self.panel.project, self.step
        if step is None:
            return None
        if name == "skip" and not self.skip.press():
            return None
        self.skip.set(False)
        if name == "retry":
            return self.panel.run("retry", project.resume, step)
        if name == "skip":
            return self.panel.run("skip", project.resolve, step, True, None)
        return self.panel.run("replace", project.resolve, step, False, self.sql.value.strip())


class _Verified:
    """What the panel's last verify found: the differing rows, the fix it wrote (a preview of it),
    the report's path, and Apply fix (two clicks), which runs that fix as written and verifies again."""

    PREVIEW = 10

    def __init__(self, panel: ControlPanel) -> None:
        self.panel = panel
        self.text = w.HTML()
        self.apply = w.Button(description="Apply fix", icon="wrench", tooltip="run the fix shown, then verify again")
        self.apply.on_click(lambda _button: self.apply_fix())
        self.why = w.HTML()
        self.confirm = _TwoClicks(self.apply, "Confirm apply fix")
        self.widget = w.VBox([self.text, w.HBox([self.apply, self.why])], layout=w.Layout(display="none"))

    def enable(self, sync: str, busy: bool) -> None:
        """Apply fix waits for a paused or stopped sync, as the engine does: the fix holds rows as
        verify read them and could undo a newer change the sync has applied since."""
        syncing = sync in ("starting", "running", "retrying")
        self.apply.disabled = busy or syncing
        self.why.value = (
            "<span style='color:#57606a'>pause the sync first (Pause above): the fix could undo a newer change"
            " it has applied; Resume after the fix replays what came since</span>"
            if syncing
            else ""
        )

    def verify(self) -> None:
        self._show(lifecycle.perform(self.panel.project, "verify"))

    def apply_fix(self) -> Future | None:
        if not self.confirm.press():
            return None
        return self.panel.run("apply fix", lambda: self._show(self.panel.project.apply_fix()))

    def _show(self, result) -> None:
        path = report.verification(self.panel.project, result)
        verdict = "equal" if result.equal else f"{len(result.differences):,} difference(s)"
        fixes = "".join(f"{html.escape(s)}\n" for s in result.fixes[: self.PREVIEW])
        more = f"... and {len(result.fixes) - self.PREVIEW:,} more\n" if len(result.fixes) > self.PREVIEW else ""
        self.text.value = (
            f"<b>Verify: {verdict}</b> · report <code>{html.escape(str(path))}</code>"
            + ("" if result.equal else _table(result.differences.head(50)))
            + (
                f"<b>Fix</b> (as written for review)<pre style='white-space:pre-wrap'>{fixes}{more}</pre>"
                if fixes
                else ""
            )
        )
        self.apply.layout.display = "" if result.fixes else "none"
        self.widget.layout.display = ""


def _get(frame: pd.DataFrame, step: str, column: str, default: object) -> object:
    return frame.at[step, column] if step in frame.index else default


def _table(frame: pd.DataFrame) -> str:
    """As the runbooks show a frame (times to the second, numbers one way), wrapped to the panel's width."""
    return tables.styled(frame, words=as_button).to_html() if len(frame) else " <i>none</i>"


def _endpoints(project: Project) -> str:
    source, target = html.escape(project.spec.source.url), html.escape(project.spec.target.url)
    return f"<div>{source} &rarr; {target}</div>"
