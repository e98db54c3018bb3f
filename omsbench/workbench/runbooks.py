"""Runbooks: parameterized notebooks executed with papermill, each run kept as an audit record.

A run gets its own timestamped folder in the workspace holding the executed notebook and its
offline HTML export, and a row in the state store's ``runs`` table with its parameters, its
state and what it reported through :func:`outcome`. A failed run is kept the same way: the
executed notebook shows the cell that failed.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import nbformat
import pandas as pd
import papermill
from nbconvert import HTMLExporter
from papermill.execute import ERROR_MARKER_TAG
from papermill.iorw import load_notebook_node
from papermill.parameterize import parameterize_notebook

from omsbench.actions import as_command
from omsbench.engine.workspace import Workspace
from omsbench.exceptions import OmsError
from omsbench.workbench import resources, tables

OUTCOME_MIME = "application/vnd.omsbench.outcome+json"
_SECRET = re.compile(r"pass(word|wd)?|secret|token|credential", re.IGNORECASE)


class RunbookError(OmsError):
    """A runbook could not be found, was given bad parameters, or failed while it ran."""

    exit_code = 1


@dataclass(frozen=True)
class Run:
    id: int
    notebook: Path
    html: Path
    state: str
    outcome: dict


def find(name: str | Path) -> Path:
    """A notebook by path, or a runbook of ``notebooks/`` by name (``verify`` or ``verify.ipynb``)."""
    path = Path(name)
    if path.is_file():
        return path.resolve()
    if path.name:  # "", "." and "/" name no notebook
        bundled = resources.folder("notebooks") / path.with_suffix(".ipynb").name
        if bundled.is_file():
            return bundled
    known = ", ".join(sorted(p.stem for p in resources.folder("notebooks").glob("*.ipynb")))
    raise RunbookError(f"no notebook {str(name)!r}", fix=f"give a notebook path or one of the runbooks: {known}")


def check_parameters(notebook: Path, parameters: dict[str, Any]) -> None:
    """Refuse names the runbook does not declare, and any secret: an executed notebook keeps its parameters."""
    secrets = sorted(name for name in parameters if _SECRET.search(name))
    if secrets:
        raise RunbookError(
            f"parameter(s) {', '.join(secrets)} look like secrets; executed runbooks are kept as records",
            fix="put the password in an environment variable and name it in the project spec (password_env)",
        )
    declared = papermill.inspect_notebook(str(notebook))
    unknown = sorted(set(parameters) - set(declared))
    if unknown:
        raise RunbookError(
            f"{notebook.name} has no parameter(s) {', '.join(unknown)}",
            fix=f"its parameters are: {', '.join(declared) or '(none)'}",
        )


def run(workspace: Workspace, name: str | Path, parameters: dict[str, Any] | None = None) -> Run:
    """Execute a runbook into ``runs/<UTC time>-<name>/`` of the workspace and export it to HTML."""
    source = find(name)
    parameters = dict(parameters or {})
    check_parameters(source, parameters)
    if "workspace" in papermill.inspect_notebook(str(source)):
        parameters.setdefault("workspace", str(workspace.root))
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-%f")
    folder = workspace.folder("runs", f"{stamp}-{source.stem}")
    executed = folder / source.name
    run_id = workspace.state.start_run(source.stem, str(folder), parameters)
    error = None
    try:
        papermill.execute_notebook(str(source), str(executed), parameters=parameters, progress_bar=False)
    except papermill.PapermillExecutionError as err:
        error = f"{err.ename}: {err.evalue} (cell {err.exec_count})"
    found = outcome_of(executed) if executed.exists() else {}
    state = "failed" if error else "checks failed" if failed_checks(found) else "done"
    summary = {"title": f"{source.stem}: {state}", "state": state, "error": error, "outcome": _shown(found),
               "headline": found.get("headline")}  # fmt: skip
    html = export_html(executed, summary) if executed.exists() else folder / "missing.html"
    workspace.state.end_run(run_id, state, error, found)
    if error:
        raise RunbookError(f"runbook {source.stem} failed: {error}", fix=f"open {html} to see the failing cell")
    return Run(run_id, executed, html, state, found)


def failed_checks(found: dict) -> list[str]:
    """The outcome's verdicts that are false (``passed``, ``equal``): a run that ended but found a
    failure must not look like a success to a script that reads only the exit code."""
    return [key for key in ("passed", "equal") if found.get(key) is False]


def panel_notebook(project: str, workspace: Workspace, path: Path) -> Path:
    """The control-panel notebook of ``project`` at ``path``, its parameters filled in, not executed."""
    template = load_notebook_node(str(resources.folder("templates") / "panel.ipynb"))
    book = parameterize_notebook(template, {"project": project, "workspace": str(workspace.root)})
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(book, path)
    return path


def _shown(found: dict) -> list[tuple[str, str]]:
    """The outcome as a reader's key and value: ``lag p99 ms``, ``8,096.39``, not ``8096.386938095093``."""
    return [(key.replace("_", " "), tables.cell(value)) for key, value in found.items() if key != "headline"]


def export_html(notebook: Path, summary: dict | None = None) -> Path:
    """The executed notebook as one HTML page that loads nothing from the network, without its code.

    ``summary`` (the run's state, error and outcome) heads the page: a reader learns the result
    before the cells. papermill's own banners, which point at a cell number, are left out."""
    book = nbformat.read(notebook, as_version=4)
    book.cells = [c for c in book.cells if ERROR_MARKER_TAG not in c.get("metadata", {}).get("tags", [])]
    for cell in book.cells:  # the outcome heads the page, written for a reader: not again as raw JSON
        if "outputs" in cell:
            cell.outputs = [o for o in cell.outputs if OUTCOME_MIME not in o.get("data", {})]
    book.metadata["omsbench_summary"] = summary or {}
    exporter = HTMLExporter(
        template_name="offline",
        extra_template_basedirs=[str(resources.folder("templates") / "nbconvert")],
        exclude_input=True,  # a report for the reader: results, not code (the .ipynb beside it keeps the code)
        exclude_input_prompt=True,
        exclude_output_prompt=True,
    )
    body, _ = exporter.from_notebook_node(book)
    path = notebook.with_suffix(".html")
    path.write_text(body, encoding="utf-8")
    return path


def outcome(**values: Any) -> None:
    """Report what this run found (called in a runbook's last cell); ``omsbench run`` records it.

    Shown as text in the notebook and its HTML, kept as JSON for the history view.
    """
    from IPython.display import display

    data = {
        k: as_command(v) if isinstance(v, str) else v for k, v in json.loads(json.dumps(values, default=str)).items()
    }
    display({OUTCOME_MIME: data, "text/plain": json.dumps(data, indent=2)}, raw=True)


def outcome_of(notebook: Path) -> dict:
    """The values the executed notebook reported with :func:`outcome` (the last call wins per key)."""
    found: dict = {}
    for cell in nbformat.read(notebook, as_version=4).cells:
        for output in cell.get("outputs", []):
            found.update(output.get("data", {}).get(OUTCOME_MIME, {}))
    return found


def history(workspace: Workspace) -> pd.DataFrame:
    """Every run with its outcome's values as columns, to compare lag and differences across runs."""
    runs = workspace.state.runs()
    if not len(runs):
        return runs
    found = pd.json_normalize(runs["outcome"].map(lambda o: o or {}).tolist())
    return pd.concat([runs.drop(columns=["outcome"]), found], axis=1)
