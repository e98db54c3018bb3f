"""DataFrames as a person reads them in a terminal: fitted to its width, values in words, not reprs.

pandas prints what it holds: NaN, NaT, None, ``16264.0`` for a pid in a column with a gap,
microseconds, and dicts as Python literals. Scripts get JSON instead (``--json``); this is for eyes.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pandas as pd
from pandas.io.formats.style import Styler
from rich.console import Console
from rich.table import Table

from omsbench.actions import as_command

_IDENTIFIERS = ("pid", "port", "owner", "id", "chunk_no", "server_id")
"""Columns of numbers that name something: no thousands separator in a pid or a port."""


def cell(value: Any, grouped: bool = True, words: Callable[[str], str] = as_command) -> str:
    """One value as text: blank for missing, whole numbers without a fraction, times to the second in UTC.

    ``grouped``: whole numbers with thousands separators (counts, not identifiers); ``words``: how
    an action a message names is worded (``omsbench.actions``), as a command unless the panel shows it."""
    if value is None or (not isinstance(value, dict | list | tuple | str) and pd.isna(value)):
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}" if grouped else str(value)
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer() and abs(value) < 1e15:
            return cell(int(value), grouped)
        return f"{value:,.2f}"
    if isinstance(value, pd.Timestamp | datetime):
        stamp = pd.Timestamp(value)
        stamp = stamp.tz_convert("UTC") if stamp.tzinfo else stamp
        return stamp.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, dict):
        return position(value) or json.dumps(value, default=str, ensure_ascii=False)
    if isinstance(value, list | tuple):
        return ", ".join(cell(v) for v in value)
    return words(str(value))


def position(value: dict) -> str | None:
    """A binlog position record as ``binlog.000001:4711 (gtid 0-1-2118)``; None for any other dict."""
    if set(value) - {"file", "pos", "gtid"} or "pos" not in value:
        return None
    text = f"{value.get('file') or ''}:{value['pos']}"
    return f"{text} (gtid {value['gtid']})" if value.get("gtid") else text


def _grouped(name: object) -> bool:
    return str(name) not in _IDENTIFIERS and not str(name).endswith("_id")


def styled(frame: pd.DataFrame, words: Callable[[str], str] = as_command) -> Styler:
    """``frame`` for a notebook and its HTML export, in the same words as in the terminal (no NaN,
    NaT or None, times to the second, whole numbers whole), text and headers left-aligned, wrapped."""
    formats = {name: functools.partial(cell, grouped=_grouped(name), words=words) for name in frame.columns}
    return (
        frame.style.hide(axis="index")
        .format(formats)
        .set_properties(**{"text-align": "left", "white-space": "pre-wrap", "overflow-wrap": "anywhere"})
        .set_table_styles([{"selector": "th", "props": "text-align: left; padding-right: 1em"}])
    )


def render(frame: pd.DataFrame, title: str | None = None) -> Table:
    """A rich table of ``frame``: numbers right-aligned, long text wrapped to the terminal's width."""
    table = Table(title=title, title_justify="left", show_lines=False, header_style="bold")
    for name in frame.columns:
        numeric = pd.api.types.is_numeric_dtype(frame[name]) and not pd.api.types.is_bool_dtype(frame[name])
        table.add_column(str(name), justify="right" if numeric else "left", overflow="fold")
    grouped = [_grouped(name) for name in frame.columns]
    for row in frame.itertuples(index=False):
        table.add_row(*(cell(v, g) for v, g in zip(row, grouped, strict=True)))
    return table


def _console() -> Console:
    """The terminal's width on a terminal; piped into a file or another program, lines are not
    folded at 80 columns, so each row stays one line that grep and a log reader can find."""
    console = Console()
    return console if console.is_terminal else Console(width=100_000)


def show(frame: pd.DataFrame, title: str | None = None, console: Console | None = None) -> None:
    """Print ``frame`` for a person; "(nothing)" for an empty one, so silence never means "all well"."""
    console = console or _console()
    if not len(frame):
        console.print(f"{title}: (nothing)" if title else "(nothing)")
        return
    console.print(render(frame, title))
