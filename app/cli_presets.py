"""`effgan presets` and `effgan knobs`: what can be chosen, with defaults and ranges."""
from __future__ import annotations

from dynamics import presets
from dynamics.knobs import KNOBS


def main_presets(args) -> int:
    for name in presets.names():
        mark = " (default)" if name == presets.DEFAULT else ""
        print(f"{name}{mark}: {presets.describe(name)}")
    return 0


def main_knobs(args) -> int:
    for k in KNOBS.values():
        print(f"{k.name:<20} {str(k.default):<12} {k.describe():<40} {k.doc}")
    return 0
