"""Altair charts built from the engine's DataFrames, shared by notebooks and reports."""

from __future__ import annotations

import altair as alt
import pandas as pd

from omsbench.engine.verify import EXTRA, MISSING


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


def lag(metrics: pd.DataFrame) -> alt.Chart:
    """Sync lag over time by stage (read, apply, end to end), p50 as lines and p99 as dashes."""
    rows = metrics[metrics["name"].str.match(r"^(lag|read|apply)_p(50|99)_ms$")]
    parts = rows["name"].str.extract(r"^(?P<stage>\w+)_p(?P<percentile>\d+)_ms$")
    frame = rows.assign(stage=parts["stage"], percentile="p" + parts["percentile"])
    return (
        alt.Chart(frame, title="Sync lag by stage (ms)")
        .mark_line()
        .encode(
            x=alt.X("ts:T", title=None),
            y=alt.Y("value:Q", title="ms"),
            color=alt.Color("stage:N"),
            strokeDash=alt.StrokeDash("percentile:N"),
        )
    )


def rates(metrics: pd.DataFrame) -> alt.Chart:
    """Rows and transactions applied per second over time."""
    frame = metrics[metrics["name"].isin(["rows_per_s", "transactions_per_s"])]
    return (
        alt.Chart(frame, title="Applied per second")
        .mark_line()
        .encode(x=alt.X("ts:T", title=None), y=alt.Y("value:Q", title="per second"), color=alt.Color("name:N"))
    )


def to_svg(chart: alt.Chart) -> str:
    """Inline SVG: the report then needs no script and no network to show the chart."""
    import vl_convert

    return vl_convert.vegalite_to_svg(chart.to_json())
