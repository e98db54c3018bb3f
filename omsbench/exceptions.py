"""The exception hierarchy. Every error a user can cause names the problem and what to do.

The CLI maps ``exit_code`` straight to the process exit status: 1 for a failed check or
differences, 2 for usage, configuration and connection errors.
"""

from __future__ import annotations


class OmsError(Exception):
    """Base class: ``str(err)`` says what is wrong, ``fix`` what the user should do."""

    exit_code = 2

    def __init__(self, message: str, fix: str | None = None) -> None:
        super().__init__(message, fix)  # both in args, so the error survives pickling between processes
        self.message = message
        self.fix = fix

    def __str__(self) -> str:
        return f"{self.message}\n  fix: {self.fix}" if self.fix else self.message


class SpecError(OmsError):
    """The project spec is malformed or names things that do not exist."""


class ConnectError(OmsError):
    """A database could not be reached or refused the credentials."""


class PasswordUnavailable(ConnectError):
    """The spec's password variable is unset or its file cannot be read: no retry changes that."""


class ServerError(OmsError):
    """A private server (MariaDB, seekdb) could not be installed, started or stopped."""


class PrecheckFailed(OmsError):
    """At least one precheck failed; the findings say which and how to fix them."""

    exit_code = 1


class SchemaError(OmsError):
    """An object could not be created on the target."""


class StatementStopped(SchemaError):
    """A DDL statement was stopped at its bound while it waited for ``transactions`` on its table."""

    def __init__(self, message: str, fix: str | None = None, transactions: tuple[int, ...] = ()) -> None:
        super().__init__(message, fix)
        self.args = (message, fix, transactions)
        self.transactions = transactions


class CopyError(OmsError):
    """The full migration could not copy a chunk."""


class StateError(OmsError):
    """The state store does not match what the request needs (unknown project, step order)."""


class NotNow(StateError):
    """The action is refused in the state the project is in (pausing a sync that does not run)."""

    exit_code = 1


class BinlogPurged(OmsError):
    """The binlog a sync must continue from is gone from the source."""


class VerifyError(OmsError):
    """The target does not hold the tables or columns the comparison needs."""


class SyncError(OmsError):
    """Incremental sync cannot go on without the user: a failed apply, an untranslatable DDL."""


class DdlPaused(SyncError):
    """A DDL statement could not be translated or applied; the sync waits for skip or replace-with."""

    def __init__(self, message: str, fix: str | None = None, statement: str = "", position: str = "") -> None:
        super().__init__(message, fix)
        self.args = (message, fix, statement, position)
        self.statement = statement
        self.position = position


class DdlBlocked(DdlPaused):
    """A replayed DDL was stopped while it waited for ``transactions`` on the target; they may yet
    end, so the sync waits for them a while before it pauses on it."""

    def __init__(self, message: str, fix: str | None, statement: str, position: str, transactions: tuple[int, ...]):
        super().__init__(message, fix, statement, position)
        self.args = (message, fix, statement, position, transactions)
        self.transactions = transactions


class ChangePaused(SyncError):
    """The target cannot take a change as it stands (its row is not there to change, a value it
    refuses); the sync pauses on it until it is resumed, skipped or replaced."""

    def __init__(self, message: str, fix: str | None = None, position: str = "") -> None:
        super().__init__(message, fix)
        self.args = (message, fix, position)
        self.position = position
        """The binlog position of the transaction, once the sync has narrowed the change down to it."""
