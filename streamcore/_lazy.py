"""Names of a package imported on first use (PEP 562), for a fast ``import streamcore``.

A package lists ``name -> defining module`` and gets a module ``__getattr__`` and
``__dir__`` from ``lazy_attributes``. The first access imports the module and stores the
name in the package's namespace, so later accesses are plain global lookups and
``from package import name`` works unchanged. A name listed with its own module
(``"agg": "streamcore.agg"``) is that submodule, and a name not listed is tried as a
submodule of the package (``streamcore.errors``), as it would be found after an eager
import. Type checkers see the names through the package's ``if TYPE_CHECKING:`` imports.
Design: docs/performance.md#start-up
"""

from __future__ import annotations

import importlib

TYPE_CHECKING = False  # typing itself is not imported at start-up
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any


def lazy_attributes(
    package: str, namespace: dict[str, Any], names: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of ``package`` for ``names`` (name -> module)."""

    def __getattr__(name: str) -> Any:
        module = names.get(name)
        if module is None:
            from importlib.util import find_spec  # only on a miss: a name that may be a submodule

            if name.startswith("__") or find_spec(f"{package}.{name}") is None:
                raise AttributeError(f"module {package!r} has no attribute {name!r}")
            value: Any = importlib.import_module(f"{package}.{name}")
        elif module == f"{package}.{name}":
            value = importlib.import_module(module)
        else:
            value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(names))

    return __getattr__, __dir__
