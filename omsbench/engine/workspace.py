"""The workspace: one folder holding the state store, specs, private servers and reports."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from omsbench.engine.state import StateStore

ENV = "OMSBENCH_WORKSPACE"


@dataclass(frozen=True)
class Workspace:
    root: Path

    @classmethod
    def at(cls, path: str | Path | None = None) -> Workspace:
        """The given folder, else $OMSBENCH_WORKSPACE, else ./.omsbench.

        Nothing is created here: a command that is refused (an unknown project, a bad spec) must
        leave no folder behind; the state store and folders appear when something is written."""
        return cls(Path(path or os.environ.get(ENV) or ".omsbench").expanduser().resolve())

    @property
    def exists(self) -> bool:
        """Whether anything was ever recorded here."""
        return (self.root / "state.db").exists()

    @cached_property
    def state(self) -> StateStore:
        return StateStore(self.root / "state.db")

    def folder(self, *parts: str) -> Path:
        path = self.root.joinpath(*parts)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def spec_path(self, project: str) -> Path:
        return self.folder("projects") / f"{project}.yaml"
