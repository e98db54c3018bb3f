"""What a message tells the user to do: named once where the message is written, worded by each front end.

The engine and the endpoints do not know which front end shows their messages, so they name an
action, not a front end's syntax: ``named("sync resume", project)`` writes ``«sync resume P»``
into the text. The CLI, and what it prints or writes (tables, runbook exports, reports), words it
as its command, ``omsbench sync resume P``; the control panel as the button that does it where it
has one. A text no front end worded still reads as what to do.
"""

from __future__ import annotations

import re

_NAMED = re.compile(r"«([^«»]+)»")

_BUTTONS = {
    "precheck": "Precheck",
    "start": "Start",
    "pause": "Pause",
    "resume": "Resume",
    "stop": "Stop",
    "verify": "Verify",
    "switchover": "Switchover",
    "switchback": "Switch back",
    "release": "Release",
}
"""The control panel's buttons, by the command whose work they do (``engine.lifecycle.ACTIONS``)."""

_CONFIRMED = {("switchback", "--writes-stopped")}
"""Options a panel button stands for: Switch back asks the user to confirm the writes stopped."""

_DECISIONS = {"--skip": "Skip", "--replace-with": "Replace with"}
"""The panel's decision card, by the option of ``resolve`` it stands for."""


def named(command: str, project: str | None = None, *options: str) -> str:
    """An action inside a message: a command of the CLI's vocabulary (``sync resume``, ``full``),
    the project it acts on, and its options (``--restart``)."""
    return "«" + " ".join([command, *([project] if project else []), *options]) + "»"


def as_command(text: str) -> str:
    """Every action in ``text`` as the command that does it: ``omsbench sync resume P``."""
    return _NAMED.sub(lambda found: f"`omsbench {found.group(1)}`", text)


def as_button(text: str) -> str:
    """Every action in ``text`` as the panel's button that does it, or the command where it has none."""
    return _NAMED.sub(_button, text)


def _button(found: re.Match) -> str:
    words = found.group(1).split()
    step = words[0] if words[0] in ("sync", "reverse") and len(words) > 1 else None
    verb = words[1] if step else words[0]
    option = next((_DECISIONS[w] for w in words if w in _DECISIONS), None)
    if verb == "resolve" and option:
        return f"{option} on the decision card"
    if verb == "status":
        return "the status above"
    options = [w for w in words if w.startswith("--") and (verb, w) not in _CONFIRMED]
    if step != "reverse" and verb in _BUTTONS and not options:
        return f"the {_BUTTONS[verb]} button"  # the panel's lifecycle buttons act on the forward sync
    return f"`omsbench {found.group(1)}` in a terminal"
