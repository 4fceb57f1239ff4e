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


def sweep_specs() -> dict[str, Path]:
    """The packaged sweep specs by name (the file's stem)."""
    return {p.stem: p for p in sorted((root() / "sweeps").glob("*.toml"))}


def find_sweep_spec(arg: str) -> Path:
    """A spec file the user named, else the packaged spec of that name (`effgan sweep
    collapse-phase` works after a pip install, where there is no assets/ folder to point at)."""
    from .knobs import ConfigError
    p = Path(arg)
    if p.exists():
        return p
    packaged = sweep_specs()
    if arg in packaged:
        return packaged[arg]
    if arg.removesuffix(".toml") in packaged and p.name == arg:
        return packaged[arg.removesuffix(".toml")]
    raise ConfigError(f"SPEC: {arg!r} is neither a file nor a packaged sweep spec; allowed a TOML file path or "
                      f"one of {', '.join(packaged)}")
