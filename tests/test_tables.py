"""Terminal tables read as a person expects: no NaN/None, whole numbers whole, positions in words."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
from rich.console import Console

from omsbench.engine.state import StateStore
from omsbench.workbench import tables


def _printed(frame: pd.DataFrame, width: int = 100) -> str:
    out = io.StringIO()
    tables.show(frame, "t", Console(file=out, width=width))
    return out.getvalue()


def test_missing_values_numbers_times_and_positions_read_as_words():
    frame = pd.DataFrame(
        {
            "step": ["full", "sync"],
            "owner": [16264, None],  # a column with a gap: pandas holds 16264.0
            "rows": [94000.0, np.nan],
            "at": [pd.Timestamp("2026-12-02 19:47:49.875070", tz="UTC"), pd.NaT],
            "start": [{"file": "binlog.000001", "pos": 4711, "gtid": "0-1-2118"}, None],
        }
    )
    text = _printed(frame)
    for raw in ("NaN", "NaT", "None", "16264.0", "94000.0", ".875070", "{'file'"):
        assert raw not in text
    assert "16264" in text and "94,000" in text and "2026-12-02 19:47:49" in text
    assert "binlog.000001:4711 (gtid 0-1-2118)" in text


def test_a_wide_table_fits_the_terminal_and_an_empty_one_says_so():
    frame = pd.DataFrame({"table": ["shop.legacy_notes_with_a_long_name"], "message": ["x " * 200]})
    assert max(len(line) for line in _printed(frame, width=80).splitlines()) <= 80
    assert "(nothing)" in _printed(frame.iloc[0:0])


def test_steps_come_in_the_order_a_migration_takes_them(tmp_path):
    state = StateStore(tmp_path / "state.db")
    for step in ("verify", "check", "full", "sync", "precheck", "schema", "post_load"):
        state.set_step("p", step, "done")
    assert state.steps("p").step.tolist() == ["precheck", "schema", "full", "post_load", "check", "sync", "verify"]
