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
        """The given folder, else $OMSBENCH_WORKSPACE, else ./.omsbench."""
        chosen = Path(path or os.environ.get(ENV) or ".omsbench").expanduser().resolve()
        chosen.mkdir(parents=True, exist_ok=True)
        return cls(chosen)

    @cached_property
    def state(self) -> StateStore:
        return StateStore(self.root / "state.db")

    def folder(self, *parts: str) -> Path:
        path = self.root.joinpath(*parts)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def spec_path(self, project: str) -> Path:
        return self.folder("projects") / f"{project}.yaml"
