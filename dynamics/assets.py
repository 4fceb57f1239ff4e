"""Where the data files in the repository's top-level `assets/` (presets, sweep specs) are.

The wheel carries them as `dynamics/_assets/` (pyproject maps `assets/` there), because
`assets/` stays at the repository root and a regular install has no checkout beside it.
The packaged copy is tried first: in site-packages, `../assets` could belong to anything.
"""
from __future__ import annotations

from pathlib import Path

_HERE = Path(__file__).resolve().parent


def root() -> Path:
    """The installed copy (`dynamics/_assets`), else the checkout's `assets/` (editable installs, tests)."""
    packaged = _HERE / "_assets"
    return packaged if packaged.is_dir() else _HERE.parent / "assets"
