"""The fix a user reviews is the fix that runs: ``fix.sql`` as verify wrote it, checked by its SHA-256.

Recomputing the fix at apply time would run statements nobody read, built from rows that may have
moved since. So verify writes ``fix.sql`` (one statement a line-group, each ended by ``;`` and a
newline) beside its statements as JSON, and records the file's SHA-256; applying reads the JSON,
proves it renders to the very bytes of ``fix.sql`` and that those bytes still have the recorded
hash, and runs exactly that. The JSON exists because a value may hold ``;`` and a newline itself,
so the text alone cannot be split back into statements.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from omsbench.exceptions import VerifyError

FILE = "fix.sql"
_STATEMENTS = "fix.statements.json"


@dataclass(frozen=True)
class FixFile:
    path: str
    sha256: str
    statements: int

    def record(self) -> dict:
        return asdict(self)


def _text(statements: list[str]) -> bytes:
    return "".join(f"{statement};\n" for statement in statements).encode()


def write(folder: Path, statements: list[str]) -> FixFile:
    """Write the fix for review; the returned record goes into the verify step."""
    text = _text(statements)
    (folder / _STATEMENTS).write_text(json.dumps(statements))
    (folder / FILE).write_bytes(text)
    return FixFile(str(folder / FILE), hashlib.sha256(text).hexdigest(), len(statements))


def read(record: dict | None) -> list[str]:
    """The statements of the reviewed file named by ``record``, exactly; VerifyError when there is
    none, or the file is not the one verify wrote."""
    if not record:
        raise VerifyError(
            "there is no reviewed fix: no verify has written one for this project",
            fix="run verify, read the fix SQL it writes, then apply it",
        )
    path = Path(record["path"])
    try:
        text = path.read_bytes()
        statements = json.loads((path.parent / _STATEMENTS).read_text())
    except (OSError, ValueError) as err:
        raise VerifyError(f"cannot read the fix {path}: {err}", fix="run verify again to write it anew") from err
    found = hashlib.sha256(text).hexdigest()
    if found != record["sha256"] or _text(statements) != text:
        raise VerifyError(
            f"{path} is not the fix verify wrote (SHA-256 {found[:12]}…, verify wrote {record['sha256'][:12]}…);"
            " nothing was applied",
            fix="run verify again and review the fix it writes; to run statements of your own, run them yourself",
        )
    return statements
