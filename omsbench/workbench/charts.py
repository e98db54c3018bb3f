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


def to_svg(chart: alt.Chart) -> str:
    """Inline SVG: the report then needs no script and no network to show the chart."""
    import vl_convert

    return vl_convert.vegalite_to_svg(chart.to_json())
