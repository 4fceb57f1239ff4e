"""Named starting points: JSON files in the repository's `assets/presets/`.

A preset is a partial config (dotted keys); `_doc` says what it shows.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from . import assets
from .knobs import ConfigError, KNOBS, show, unknown_key
from .textfile import read_text

PRESET_DIR = assets.root() / "presets"
DEFAULT = "ring8"


def names() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.json"))


def read_json(path: Path | str, field: str) -> dict[str, Any]:
    """A JSON object from a file, or a ConfigError naming `field` in one line."""
    p = Path(path)
    text = read_text(p, field, "a JSON file of dotted keys")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{field}: {p.name} is not valid JSON (line {e.lineno}, column {e.colno}); "
                          "allowed a JSON object of dotted keys") from None
    except (ValueError, RecursionError) as e:     # an integer of over 4300 digits; nesting past the guard
        raise ConfigError(f"{field}: {p.name} cannot be read as JSON ({str(e).split(';')[0][:80]}); "
                          "allowed a JSON object of dotted keys") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{field}: {p.name} holds a {type(data).__name__}; allowed a JSON object of dotted keys")
    unknown = [k for k in data if k not in KNOBS and not k.startswith("_")]
    if unknown:
        raise unknown_key(unknown[0], where=f" in {p.name}")
    return data


def load(name: str, field: str = "--preset") -> dict[str, Any]:
    """The preset's knobs (without `_doc`); field: what to name in an error (a spec's `base`)."""
    if name not in names():
        raise ConfigError(f"{field}: unknown preset {name!r}; allowed {', '.join(names())}")
    return {k: v for k, v in read_json(PRESET_DIR / f"{name}.json", field).items() if not k.startswith("_")}


def describe(name: str) -> str:
    return read_json(PRESET_DIR / f"{name}.json", "--preset").get("_doc", "")
