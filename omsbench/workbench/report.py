"""Self-contained HTML reports (Jinja template in templates/) with a JSON twin beside them.

The HTML carries its own style and no script, so it opens offline and can be mailed to
someone without Jupyter.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from html import escape
from pathlib import Path

import altair as alt
import pandas as pd
from jinja2 import Environment, FileSystemLoader, select_autoescape

from omsbench.engine.project import Project
from omsbench.engine.steps import State, Step
from omsbench.engine.verify import Verification
from omsbench.workbench import resources
from omsbench.workbench.charts import differences, for_project, to_svg


def _environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(resources.folder("templates")), autoescape=select_autoescape(["html", "j2"])
    )


def _table(name: str, frame: pd.DataFrame) -> str:
    """A section's table; an empty one says so in words (a header row alone read as a broken page)."""
    if not len(frame):
        return f'<p class="empty">No {escape(name if name.isupper() else name.lower())}.</p>'
    return frame.to_html(index=False, border=0, classes="grid", na_rep="", escape=True)


def write(
    path: Path,
    title: str,
    summary: dict,
    sections: dict[str, pd.DataFrame],
    verdict: bool,
    charts: dict[str, alt.Chart] | None = None,
    labels: tuple[str, str] | None = None,
) -> Path:
    """Write ``path`` (.html) and its .json twin; return the HTML path.

    ``labels`` are the banner's words for a true and a false verdict (a verification's by default).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    created = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    html = (
        _environment()
        .get_template("report.html.j2")
        .render(
            title=title,
            created=created,
            verdict=verdict,
            labels=labels,
            summary=summary,
            sections={name: _table(name, frame) for name, frame in sections.items()},
            charts={name: to_svg(chart) for name, chart in (charts or {}).items()},
        )
    )
    path.write_text(html, encoding="utf-8")
    twin = {
        "title": title,
        "created": created,
        "verdict": verdict,
        "summary": summary,
        "sections": {name: frame.to_dict("records") for name, frame in sections.items()},
    }
    path.with_suffix(".json").write_text(json.dumps(twin, indent=2, default=str), encoding="utf-8")
    return path


def sync(project: Project) -> Path:
    """The sync report of ``project``: state, lag and rate charts, every DDL and its decision."""
    status = project.sync_status()
    lines = {k: v for k, v in for_project(project.state, project.name).items() if k in ("Lag", "Rates")}
    label = f"SYNC {status['state'].upper()}"
    return write(
        project.workspace.folder("reports", project.name) / "sync.html",
        f"omsbench sync: {project.name}",
        {k: v for k, v in status.items() if not isinstance(v, dict)},
        {"DDL": project.state.ddl(project.name)},
        status["state"] in (State.RUNNING, State.STOPPED),
        lines,
        labels=(label, f"{label}: see the message"),
    )


def verification(project: Project, result: Verification) -> Path:
    """The verify report of ``project``, beside the fix verify wrote: one writer for every front end."""
    record = project.state.detail(project.name, Step.VERIFY).get("fix") or {}
    return write(
        project.workspace.folder("reports", project.name) / "verify.html",
        f"omsbench verify: {project.name}",
        {
            "project": project.name,
            "source": project.spec.source.url,
            "target": project.spec.target.url,
            "differences": len(result.differences),
            "fix statements": len(result.fixes),
            "fix SQL": record.get("path", ""),
            "fix SHA-256": record.get("sha256", ""),
        },
        {"Tables": result.summary, "Differences": result.differences},
        result.equal,
        charts={} if result.equal else {"Differences per table": differences(result.summary)},
    )
