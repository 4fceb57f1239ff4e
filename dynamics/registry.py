"""String choices resolved through small named tables (torchdiffeq's SOLVERS idiom)."""
from __future__ import annotations

from typing import Generic, Iterator, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """A name -> entry table whose lookups fail with a one-line message naming the field.

    >>> LOSSES = Registry("loss"); LOSSES.add("ipm", object())
    """

    def __init__(self, field: str):
        self.field = field
        self._entries: dict[str, T] = {}

    def add(self, name: str, entry: T) -> T:
        self._entries[name] = entry
        return entry

    def register(self, name: str):
        """Decorator form of `add`."""
        def deco(entry):
            self.add(name, entry)
            return entry
        return deco

    def __getitem__(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            raise KeyError(f"{self.field}: unknown choice {name!r}; allowed {', '.join(self)}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def names(self) -> list[str]:
        return list(self._entries)
