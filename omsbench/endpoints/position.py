"""A position in a change stream, the one value every reader hands over and every sink records.

Binlog positions are ``file:pos`` with the GTID state where the server has one; the reverse
capture's are ``change_log:<last seq>``, a Kafka message's ``topic/partition:offset`` (or the binlog
position its producer wrote into it), so checkpoints, hand-overs and the state store treat all alike.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BinlogPosition:
    """Where in the binlog a snapshot stands; incremental sync continues from here."""

    file: str
    pos: int
    gtid: str | None = None

    def __str__(self) -> str:
        return f"{self.file}:{self.pos}" + (f" (gtid {self.gtid})" if self.gtid else "")

    def as_dict(self) -> dict[str, object]:
        return {"file": self.file, "pos": self.pos, "gtid": self.gtid}

    def __reduce__(self) -> tuple:
        """Pickled with every transaction the binlog reader hands over: as a constructor call,
        cheaper to load than a frozen dataclass's state."""
        return BinlogPosition, (self.file, self.pos, self.gtid)
