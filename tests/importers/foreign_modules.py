"""Stand-in classes under the module names of other code bases, so test pickles look like theirs.

``name_classes(TABLE)`` gives each class of ``{module name: {class name: class}}`` that module and name;
``installed(TABLE)`` puts those modules in ``sys.modules`` only while a pickle is written, so nothing of theirs is
importable when polyinr reads it back.
"""

from __future__ import annotations

import contextlib
import sys
import types
from collections.abc import Iterator

ModuleTable = dict[str, dict[str, object]]


def name_classes(table: ModuleTable) -> None:
    for module, names in table.items():
        for name, obj in names.items():
            obj.__module__, obj.__qualname__ = module, name


@contextlib.contextmanager
def installed(table: ModuleTable) -> Iterator[None]:
    """The table's modules in ``sys.modules`` for the duration of the block, then the previous state back."""
    saved = {name: sys.modules.get(name) for name in table}
    for name, attrs in table.items():
        module = types.ModuleType(name)
        module.__dict__.update(attrs)
        sys.modules[name] = module
        parent, _, child = name.rpartition(".")
        if parent:
            setattr(sys.modules[parent], child, module)
    try:
        yield
    finally:
        for name, old in saved.items():
            if old is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = old
