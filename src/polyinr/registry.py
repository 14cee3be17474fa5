"""Things found by name: one :class:`Registry` each for models, discriminators, losses, converters and recipes.

A registry is a read-only mapping from name to entry, filled by its package's ``register…`` decorator or
function. :meth:`Registry.lookup` is the one way a name a user typed becomes an entry: an unknown name is a
one-line error that lists the known ones.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator, Mapping
from typing import Generic, TypeVar

from polyinr.errors import PolyinrError

T = TypeVar("T")


class Registry(Mapping[str, T], Generic[T]):
    """Entries of one kind by name, in registration order.

    ``kind`` and ``listing`` word the error of an unknown name: ``unknown {kind} 'x'; {listing}: a, b``.
    ``error`` is the exception class of that error.
    """

    def __init__(self, kind: str, listing: str, error: type[PolyinrError] = PolyinrError) -> None:
        self.kind, self.listing, self.error = kind, listing, error
        self._entries: dict[str, T] = {}

    def add(self, name: str, entry: T, aliases: tuple[str, ...] = ()) -> T:
        """Register ``entry`` as ``name`` and each of ``aliases``; a name taken already is a ``ValueError``."""
        for key in (name, *aliases):
            if key in self._entries:
                raise ValueError(f"{self.kind} name {key!r} is registered twice")
        for key in (name, *aliases):
            self._entries[key] = entry
        return entry

    def lookup(self, name: str) -> T:
        """The entry registered as ``name``; an unknown name is a one-line ``error`` naming the known ones."""
        if name not in self._entries:
            raise self.error(f"unknown {self.kind} {name!r}; {self.listing}: {', '.join(self.names())}")
        return self._entries[name]

    def names(self, pattern: str = "*") -> list[str]:
        """Registered names (aliases included) matching an fnmatch ``pattern``, sorted."""
        return sorted(n for n in self._entries if fnmatch.fnmatch(n, pattern))

    def __getitem__(self, name: str) -> T:
        return self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)
