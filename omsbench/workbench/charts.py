"""Altair charts built from the state store's DataFrames.

The panel, the runbooks and the reports all draw from here, so a chart reads the same
wherever a person meets it. Each chart function takes the DataFrame the state store gives.
"""

from __future__ import annotations

import math
from datetime import datetime

import altair as alt
import pandas as pd

from omsbench.engine.state import StateStore
from omsbench.engine.steps import Step
from omsbench.engine.verify import EXTRA, MISSING

_STAGE_METRIC = r"^(?P<stage>lag|read|apply)_p(?P<percentile>50|99)_ms$"
MAX_POINTS = 500
"""Points in time a chart draws at most. A sync samples every second for as long as it runs, and
Vega-Lite refuses more than 5,000 rows (the lag chart broke after 28 minutes); older samples are
merged into equal time bins: p99 by its maximum, so no spike is hidden, the rest by their mean."""


WIDTH, HEIGHT = 860, 220
"""Sized for a report page (1,100 px of text) and a notebook cell; legends sit below, whole."""
GAP_S = 5.0
"""Samples further apart than this (and than three bins) were not taken: the sync was stopped or
paused. The line breaks there instead of drawing a straight stroke across the time it was away."""


def _time_title(frame: pd.DataFrame) -> str:
    times = pd.to_datetime(frame["ts"], utc=True) if len(frame) else pd.Series(dtype="datetime64[ns, UTC]")
    days = sorted({t.strftime("%Y-%m-%d") for t in (times.min(), times.max()) if not pd.isna(t)})
    return f"time (UTC, {' to '.join(days)})" if days else "time (UTC)"


def _time_axis(frame: pd.DataFrame) -> alt.X:
    """24-hour UTC, titled with the date: a 12-hour clock without AM/PM misread 18:59 as 06:59."""
    return alt.X(
        "ts:T",
        title=_time_title(frame),
        scale=alt.Scale(type="utc"),
        axis=alt.Axis(format="%H:%M:%S", labelOverlap=True),
    )


PADDING = {"left": 40, "right": 40, "top": 8, "bottom": 8}
"""Room around every chart: its SVG is laid out with vl-convert's font metrics, a browser's font can
be wider, and a long table name or a legend title was cut at the edge (seen in Chromium)."""


def _legend(title: str) -> alt.Legend:
    return alt.Legend(title=title, orient="bottom", labelLimit=0, symbolOpacity=1, symbolStrokeWidth=3)


def differences(summary: pd.DataFrame) -> alt.Chart:
    """Rows missing, extra and different per table, from a verification summary."""
    kinds = [MISSING, EXTRA, "different rows"]
    long = summary.melt(id_vars=["table"], value_vars=kinds, var_name="kind", value_name="rows")
    long = long[long["rows"] > 0]
    return (
        alt.Chart(long, title="Differences per table")
        .mark_bar()
        .encode(
            x=alt.X("rows:Q", title="rows", axis=alt.Axis(tickMinStep=1, format="d")),
            y=alt.Y("table:N", title=None, axis=alt.Axis(labelLimit=0)),
            color=alt.Color("kind:N", legend=_legend("kind")),
        )
        .properties(width=WIDTH - 260, padding=PADDING)
    )


def _gaps(frame: pd.DataFrame, by: str) -> pd.DataFrame:
    """Per ``by`` series, the times it skipped (see ``GAP_S``): ``start`` (its last sample before) and ``end``."""
    if not len(frame):
        return pd.DataFrame(columns=[by, "start", "end"])
    frame = frame.assign(ts=pd.to_datetime(frame["ts"], utc=True)).sort_values([by, "ts"])
    steps = frame.groupby(by)["ts"].diff()
    if not steps.notna().any():
        return pd.DataFrame(columns=[by, "start", "end"])
    limit = max(pd.Timedelta(seconds=GAP_S), 3 * steps.median())
    found = frame.loc[steps > limit, [by, "ts"]].assign(start=lambda f: f["ts"] - steps[steps > limit])
    return found.rename(columns={"ts": "end"})[[by, "start", "end"]]


def with_gaps(frame: pd.DataFrame, by: str) -> pd.DataFrame:
    """``frame`` with an empty row wherever a ``by`` series skipped time (see ``GAP_S``), so its line breaks."""
    gaps = _gaps(frame, by)
    if not len(gaps):
        return frame
    breaks = gaps.assign(ts=gaps["end"] - pd.Timedelta(milliseconds=1))[[by, "ts"]]
    frame = frame.assign(ts=pd.to_datetime(frame["ts"], utc=True))
    return pd.concat([frame, breaks]).sort_values([by, "ts"]).reset_index(drop=True)


def _away(frame: pd.DataFrame, by: str) -> list[alt.Chart]:
    """Grey bands, labelled, over the times the sync took no samples (stopped, paused, dead): a
    gap in a line alone reads as missing data, and interpolating across it drew a calm sync."""
    periods = _gaps(frame, by)[["start", "end"]].drop_duplicates()
    if not len(periods):
        return []
    x = alt.X("start:T", scale=alt.Scale(type="utc"), title=_time_title(frame))  # layers merge axis titles
    band = alt.Chart(periods).mark_rect(color="#8c959f", opacity=0.2).encode(x=x, x2="end:T")
    label = (
        alt.Chart(periods)
        .mark_text(align="left", baseline="top", dx=3, dy=3, color="#57606a", fontSize=10)
        .encode(x=x, y=alt.value(0), text=alt.value("not running"))
    )
    return [band, label]


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
    """Sync lag over time by stage: p50 as a line inside a band that reaches up to p99.

    The scale is symmetric-log: one spike of seconds would flatten milliseconds to a line at zero."""
    frame = with_gaps(thinned(lag_frame(metrics), "stage", {"p50": "mean", "p99": "max"}), "stage")
    base = alt.Chart(frame, title=title).encode(
        x=_time_axis(frame), color=alt.Color("stage:N", legend=_legend("stage"))
    )
    top = float(frame["p99"].max()) if len(frame) and frame["p99"].notna().any() else 10.0
    ticks = [v for v in _LOG_TICKS if v <= max(top, 10.0) * 2]
    y = alt.Y("p50:Q", title="ms (log scale)", scale=alt.Scale(type="symlog"), axis=alt.Axis(values=ticks))
    band = base.mark_area(opacity=0.25, invalid="break-paths-filter-domains").encode(y=y, y2="p99:Q")
    line = base.mark_line(point=True, invalid="break-paths-filter-domains").encode(y=y)
    return alt.layer(band, line, *_away(frame, "stage")).properties(width=WIDTH, height=HEIGHT, padding=PADDING)


_LOG_TICKS = [0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 30_000, 60_000, 300_000, 3_600_000]

_RATES = {"rows_per_s": "rows/s", "transactions_per_s": "transactions/s"}


def rates(metrics: pd.DataFrame, title: str = "Applied per second") -> alt.Chart:
    """Rows and transactions applied per second over time, one panel each: their scales differ tenfold."""
    frame = thinned(metrics[metrics["name"].isin(list(_RATES))], "name", {"value": "mean"})
    frame = with_gaps(frame.assign(name=frame["name"].map(_RATES)), "name")
    away = _away(frame, "name")

    def panel(name: str) -> alt.LayerChart:
        one = frame[frame["name"] == name]
        line = (
            alt.Chart(one)
            .mark_line(point=True, invalid="break-paths-filter-domains")
            .encode(x=_time_axis(one), y=alt.Y("value:Q", title=name))
        )
        return alt.layer(line, *away).properties(width=WIDTH, height=HEIGHT // 2)

    return alt.vconcat(*(panel(name) for name in _RATES.values()), title=title).properties(padding=PADDING)


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
            y=alt.Y("table:N", title=None, axis=alt.Axis(labelLimit=0)),
            tooltip=["table", "chunks", "chunks_done", "rows_copied"],
        )
        .properties(width=WIDTH - 260, padding=PADDING)
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
            y=alt.Y("value:Q", title=None, axis=alt.Axis(tickMinStep=1)),
            color=alt.Color("notebook:N", legend=_legend("runbook")),
            row=alt.Row("measure:N", title=None, header=alt.Header(labelAngle=0, labelAlign="left")),
            tooltip=["id", "notebook", "started_at", "value"],
        )
        .resolve_scale(y="independent")
        .properties(height=120, padding=PADDING)
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
    for stage, lag_name, rates_name in ((Step.SYNC, "Lag", "Rates"), (Step.REVERSE, "Reverse lag", "Reverse rates")):
        samples = metrics[metrics["stage"] == stage]
        if len(samples):
            out[lag_name] = lag(samples, f"{lag_name} by stage (ms): p50 line, band up to p99")
            out[rates_name] = rates(samples, f"{rates_name}: applied per second")
    return out


def to_svg(chart: alt.Chart) -> str:
    """Inline SVG: the report then needs no script and no network to show the chart."""
    import vl_convert

    return vl_convert.vegalite_to_svg(chart.to_json())
