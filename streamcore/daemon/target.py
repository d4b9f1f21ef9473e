"""Loading ``module:attr`` targets for the command line: a Dataflow, a Pipeline, or a factory.

A target names a module (dotted, importable from the current directory, or a path to a
``.py`` file) and an attribute in it (dotted for nested attributes). Loading happens in
two steps so that a factory runs on the event loop that will run its result:

1. ``load_target`` imports the module and fetches the attribute (synchronous);
2. ``resolve_target`` calls it if it is a zero-argument function, awaits the result if
   it is awaitable, and checks that a ``Dataflow`` or ``Pipeline`` came out.

Every problem the user can fix is a ``TargetError`` with a message that says what to fix;
the CLI turns it into exit status 2 without a traceback.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import sys
from pathlib import Path
from typing import Any

from streamcore.batch.pipeline import Pipeline
from streamcore.dataflow.flow import Dataflow
from streamcore.errors import TargetCallError, TargetError, TargetImportError

__all__ = [
    "Target",
    "TargetCallError",
    "TargetError",
    "TargetImportError",
    "load_target",
    "resolve_target",
]

Target = Dataflow | Pipeline

_EXAMPLE = "e.g. jobs.clicks:flow or path/to/clicks.py:flow"
# The module name for a .py file whose stem is not an identifier or names another module.
_FALLBACK_MODULE = "__streamcore_target__"


def load_target(spec: str) -> Any:
    """Import the module of ``spec`` (``module:attr``) and return the attribute."""
    module_part, colon, attr_part = spec.rpartition(":")
    if not colon or not module_part or not attr_part:
        raise TargetError(f"target {spec!r} must be module:attribute ({_EXAMPLE})")
    if _looks_like_path(module_part):
        module = _import_file(module_part)
    else:
        module = _import_module(module_part)
    obj: Any = module
    for i, name in enumerate(attr_part.split(".")):
        try:
            obj = getattr(obj, name)
        except AttributeError:
            where = module_part if i == 0 else f"{module_part}:{'.'.join(attr_part.split('.')[:i])}"
            raise TargetError(f"{where!r} has no attribute {name!r} (target {spec!r})") from None
    return obj


async def resolve_target(obj: Any, spec: str) -> Target:
    """The Dataflow or Pipeline ``obj`` is, or returns when called with no arguments."""
    if isinstance(obj, Dataflow | Pipeline):
        return obj
    if not callable(obj) or isinstance(obj, type):
        raise TargetError(_wrong_type(spec, obj))
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):
        signature = None  # some builtins have none; just try the call
    if signature is not None:
        required = [
            p.name
            for p in signature.parameters.values()
            if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]
        if required:
            raise TargetError(
                f"{spec!r} is a function with required arguments ({', '.join(required)}); "
                "the target must be a Dataflow, a Pipeline, or a function taking no arguments"
            )
    try:
        result = obj()
        if inspect.isawaitable(result):
            result = await result
    except Exception as exc:
        raise TargetCallError(f"calling {spec}() failed: {type(exc).__name__}: {exc}") from exc
    if isinstance(result, Dataflow | Pipeline):
        return result
    raise TargetError(
        f"{spec}() returned {_describe(result)}; it must return a streamcore Dataflow or Pipeline"
    )


def _wrong_type(spec: str, obj: Any) -> str:
    return (
        f"{spec!r} is {_describe(obj)}; the target must be a streamcore Dataflow, a Pipeline, "
        "or a function (sync or async) taking no arguments that returns one"
    )


def _describe(obj: Any) -> str:
    if obj is None:
        return "None"
    if isinstance(obj, type):
        return f"the class {obj.__qualname__}"
    kind = type(obj).__name__
    return f"an {kind}" if kind[:1].lower() in "aeiou" else f"a {kind}"


def _looks_like_path(module_part: str) -> bool:
    return module_part.endswith(".py") or "/" in module_part or os.sep in module_part


def _import_module(name: str) -> Any:
    # Like `python -m`, uvicorn and celery: modules next to the user resolve first.
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        # Only a missing target module (or a parent package) is "not found"; a module
        # missing *inside* the user's code is an import failure of its own.
        if exc.name is not None and (name == exc.name or name.startswith(exc.name + ".")):
            raise TargetError(
                f"module {name!r} not found (looked in the current directory {cwd} and sys.path); "
                f"give a dotted module name or a path to a .py file ({_EXAMPLE})"
            ) from None
        raise TargetImportError(f"importing {name!r} failed: {type(exc).__name__}: {exc}") from exc
    except Exception as exc:
        raise TargetImportError(f"importing {name!r} failed: {type(exc).__name__}: {exc}") from exc


def _import_file(path_text: str) -> Any:
    path = Path(path_text).expanduser().resolve()
    if not path.is_file():
        raise TargetError(f"file {path_text!r} not found ({_EXAMPLE})")
    # The file's folder goes on sys.path so that its sibling modules import, and so
    # that worker processes can import the module by name.
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    name = path.stem
    existing = sys.modules.get(name)
    if not name.isidentifier() or (
        existing is not None and Path(getattr(existing, "__file__", "") or "").resolve() != path
    ):
        name = _FALLBACK_MODULE
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise TargetError(f"{path_text!r} cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise TargetImportError(f"importing {path_text!r} failed: {type(exc).__name__}: {exc}") from exc
    return module
