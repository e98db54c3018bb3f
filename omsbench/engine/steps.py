"""The vocabulary of a project's progress: the steps a migration takes, in order, and their states.

Both are ``str`` enums: the state store, JSON and the front ends keep plain strings, and a member
compares equal to its string, so a row read back needs no conversion.
"""

from __future__ import annotations

from enum import Enum


class _Word(str, Enum):
    __str__ = str.__str__  # "sync" in messages and f-strings, never "Step.SYNC"
    __format__ = str.__format__


class Step(_Word):
    """In the order a migration takes them: the state store and the panel list them so."""

    PRECHECK = "precheck"
    SCHEMA = "schema"
    FULL = "full"
    POST_LOAD = "post_load"
    CHECK = "check"
    SYNC = "sync"
    VERIFY = "verify"
    FIX = "fix"
    SWITCHOVER = "switchover"
    REVERSE = "reverse"
    RELEASE = "release"

    @property
    def said(self) -> str:
        """The step in a sentence: the reverse step is "the reverse sync" to a reader, not "the reverse"."""
        return "reverse sync" if self is Step.REVERSE else self.value.replace("_", "-")


class State(_Word):
    NEVER_STARTED = "never started"
    PENDING = "pending"
    STARTING = "starting"
    RUNNING = "running"
    RETRYING = "retrying"
    PAUSED = "paused"
    DONE = "done"
    FAILED = "failed"
    STOPPED = "stopped"
    DIED = "died"


MILESTONES = (
    Step.PRECHECK,
    Step.SCHEMA,
    Step.FULL,
    Step.SYNC,
    Step.VERIFY,
    Step.SWITCHOVER,
    Step.REVERSE,
    Step.RELEASE,
)
"""The steps every project goes through (post_load, check and fix only some): listed before they ran."""

LIVE = frozenset({State.RUNNING, State.RETRYING, State.PAUSED})
"""States that hold only while the process that wrote them lives: read back without it, "died"."""
ACTIVE = LIVE | {State.STARTING}
"""States of a sync whose runner is alive or coming up: another start is refused."""
WORKING = ACTIVE - {State.PAUSED}
"""States of a sync that moves changes (or is about to)."""
ENDED = frozenset({State.FAILED, State.DIED, State.STOPPED})
"""States of a sync that will not go on by itself."""
