"""Where the templates and runbooks are: the repository root, or inside the installed package."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parents[1]


def folder(name: str) -> Path:
    """``templates`` or ``notebooks``: beside the package in a checkout, inside it in a wheel."""
    for candidate in (_PACKAGE.parent / name, _PACKAGE / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"omsbench {name} folder not found; reinstall omsbench")
