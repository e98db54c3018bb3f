"""Altair charts built from the state store's DataFrames.

The panel, the runbooks and the reports all draw from here, so a chart reads the same
wherever a person meets it. Each chart function takes the DataFrame the state store gives.
"""

from __future__ import annotations

import math
from datetime import datetime

import altair as alt
import pandas as pd

from omsbench.engine.reverse import STEP as REVERSE_STEP
from omsbench.engine.state import StateStore
from omsbench.engine.sync import STEP as SYNC_STEP
from omsbench.engine.verify import EXTRA, MISSING

_STAGE_METRIC = r"^(?P<stage>lag|read|apply)_p(?P<percentile>50|99)_ms$"
MAX_POINTS = 500
"""Points in time a chart draws at most. A sync samples every second for as long as it runs, and
Vega-Lite refuses more than 5,000 rows (the lag chart broke after 28 minutes); older samples are
merged into equal time bins: p99 by its maximum, so no spike is hidden, the rest by their mean."""


def differences(summary: pd.DataFrame) -> alt.Chart:
    """Rows missing, extra and different per table, from a verification summary."""
    kinds = [MISSING, EXTRA, "different rows"]
    long = summary.melt(id_vars=["table"], value_vars=kinds, var_name="kind", value_name="rows")
    long = long[long["rows"] > 0]
    return (
        alt.Chart(long, title="Differences per table")
        .mark_bar()
        .encode(x=alt.X("rows:Q", title="rows"), y=alt.Y("table:N", title=None), color=alt.Color("kind:N"))
    )


def lag_frame(metrics: pd.DataFrame) -> pd.DataFrame:
    """One row per sample and stage with its p50 and p99 in ms (stage: lag = end to end, read, apply)."""
    rows = metrics[metrics["name"].str.match(_STAGE_METRIC)]
    parts = rows["name"].str.extract(_STAGE_METRIC)
    frame = rows.assign(stage=parts["stage"], percentile="p" + parts["percentile"])
    wide = frame.pivot_table(index=["ts", "stage"], columns="percentile", values="value", aggfunc="last")
    return wide.reindex(columns=["p50", "p99"]).reset_index().rename_axis(columns=None)


def thinned(frame: pd.DataFrame, by: str, how: dict[str, str]) -> pd.DataFrame:
    """``frame`` with at most ``MAX_POINTS`` times per ``by`` value, merged into equal time bins ``how``."""
    times = pd.to_datetime(frame["ts"], utc=True)
    if times.nunique() <= MAX_POINTS:
        return frame
    width = max(1, math.ceil((times.max() - times.min()).total_seconds() / MAX_POINTS))
    binned = frame.assign(ts=times).groupby([pd.Grouper(key="ts", freq=f"{width}s"), by]).agg(how)
    return binned.dropna(how="all").reset_index()


def lag(metrics: pd.DataFrame, title: str = "Sync lag by stage (ms): p50 line, band up to p99") -> alt.Chart:
    """Sync lag over time by stage: p50 as a line inside a band that reaches up to p99."""
    frame = thinned(lag_frame(metrics), "stage", {"p50": "mean", "p99": "max"})
    base = alt.Chart(frame, title=title).encode(x=alt.X("ts:T", title=None), color=alt.Color("stage:N", title="stage"))
    band = base.mark_area(opacity=0.25).encode(y=alt.Y("p50:Q", title="ms"), y2="p99:Q")
    return band + base.mark_line(point=True).encode(y="p50:Q")


def rates(metrics: pd.DataFrame, title: str = "Applied per second") -> alt.Chart:
    """Rows and transactions applied per second over time."""
    frame = thinned(metrics[metrics["name"].isin(["rows_per_s", "transactions_per_s"])], "name", {"value": "mean"})
    return (
        alt.Chart(frame, title=title)
        .mark_line(point=True)
        .encode(x=alt.X("ts:T", title=None), y=alt.Y("value:Q", title="per second"), color=alt.Color("name:N"))
    )


def progress_frame(chunks: pd.DataFrame) -> pd.DataFrame:
    """Per table: share of its chunks copied (0-100), from the state store's chunk progress."""
    done = chunks["chunks_done"].fillna(0)
    percent = (100 * done / chunks["chunks"].where(chunks["chunks"] > 0)).fillna(100).round(1)
    return chunks.assign(percent=percent)


def progress(chunks: pd.DataFrame) -> alt.Chart:
    """Full-load progress per table, as bars filled to the share of chunks copied."""
    return (
        alt.Chart(progress_frame(chunks), title="Full migration: chunks copied per table")
        .mark_bar()
        .encode(
            x=alt.X("percent:Q", title="% of chunks", scale=alt.Scale(domain=[0, 100])),
            y=alt.Y("table:N", title=None),
            tooltip=["table", "chunks", "chunks_done", "rows_copied"],
        )
    )


def history(runs: pd.DataFrame, measures: tuple[str, ...] = ("lag_p99_ms", "differences")) -> alt.Chart:
    """What each runbook run reported, run by run: one small chart per measure the runs share."""
    present = [m for m in measures if m in runs.columns]
    long = runs.melt(id_vars=["id", "notebook", "started_at"], value_vars=present, var_name="measure").dropna(
        subset=["value"]
    )
    return (
        alt.Chart(long, title="Runs compared")
        .mark_bar()
        .encode(
            x=alt.X("id:O", title="run"),
            y=alt.Y("value:Q", title=None),
            color=alt.Color("notebook:N"),
            row=alt.Row("measure:N", title=None),
            tooltip=["id", "notebook", "started_at", "value"],
        )
        .resolve_scale(y="independent")
        .properties(height=120)
    )


def for_project(state: StateStore, project: str, since: datetime | None = None) -> dict[str, alt.Chart]:
    """Every chart the state store has data for, by title: what the panel and reports show.

    ``since`` limits the lag and rate charts to the samples taken from then on.
    """
    out: dict[str, alt.Chart] = {}
    chunks = state.chunk_progress(project)
    if len(chunks):
        out["Full migration progress"] = progress(chunks)
    metrics = state.metrics(project, since)
    for stage, lag_name, rates_name in ((SYNC_STEP, "Lag", "Rates"), (REVERSE_STEP, "Reverse lag", "Reverse rates")):
        samples = metrics[metrics["stage"] == stage]
        if len(samples):
            out[lag_name] = lag(samples, f"{lag_name} by stage (ms): p50 line, band up to p99")
            out[rates_name] = rates(samples, f"{rates_name}: applied per second")
    return out


def to_svg(chart: alt.Chart) -> str:
    """Inline SVG: the report then needs no script and no network to show the chart."""
    import vl_convert

    return vl_convert.vegalite_to_svg(chart.to_json())
