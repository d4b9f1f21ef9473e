"""Every exception a user can meet is a StreamcoreError drawn in errors.py's tree.

Walks every module of ``streamcore`` and ``connectors``, finds each exception class
defined there, and checks that it is a ``StreamcoreError`` (or is one of the few the
engine raises only to itself, listed below with the reason) and that the tree in
``streamcore/errors.py``'s docstring names it.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from types import ModuleType

import pytest

import connectors
import streamcore
from streamcore import errors
from streamcore.errors import ConnectorError, SinkError, SourceError, StreamcoreError

#: Raised and caught inside the engine; a user never sees them.
INTERNAL: dict[str, str] = {
    "streamcore.runtime.chain.ChainFailure": "carries a failed record out of a fused chain to its step, "
    "which turns it into a StageError or a dead letter",
    "streamcore.batch.streams.AbandonedError": "thrown into a task body whose try timed out, so that it "
    "stops; the task's result is a TaskTimeoutError",
}


def _modules() -> list[ModuleType]:
    found: list[ModuleType] = []
    for package in (streamcore, connectors):
        for info in pkgutil.walk_packages(package.__path__, prefix=package.__name__ + "."):
            if info.name.endswith("__main__"):
                continue  # running it is the CLI
            try:
                found.append(importlib.import_module(info.name))
            except ImportError as exc:  # an optional extra (dask...) not installed here
                if exc.name and not exc.name.startswith(("streamcore", "connectors")):
                    continue
                raise
    return found


def _exception_classes() -> list[type[BaseException]]:
    classes: dict[str, type[BaseException]] = {}
    for module in _modules():
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, BaseException) and cls.__module__ == module.__name__:
                classes[f"{cls.__module__}.{cls.__qualname__}"] = cls
    return [classes[name] for name in sorted(classes)]


EXCEPTIONS = _exception_classes()


def test_the_walk_finds_the_errors_of_the_engine_and_of_the_connectors() -> None:
    names = {cls.__name__ for cls in EXCEPTIONS}
    assert {"StreamcoreError", "ConfigError", "TargetError", "LoopError", "QueueClosedError"} <= names


@pytest.mark.parametrize("cls", EXCEPTIONS, ids=lambda c: f"{c.__module__}.{c.__qualname__}")
def test_every_exception_class_is_a_streamcore_error_or_internal(cls: type[BaseException]) -> None:
    name = f"{cls.__module__}.{cls.__qualname__}"
    if cls.__name__.startswith("_") or name in INTERNAL:
        return
    assert issubclass(cls, StreamcoreError), f"{name} is not a StreamcoreError subclass"


@pytest.mark.parametrize("cls", EXCEPTIONS, ids=lambda c: f"{c.__module__}.{c.__qualname__}")
def test_every_public_error_is_drawn_in_the_tree(cls: type[BaseException]) -> None:
    if cls.__name__.startswith("_") or not issubclass(cls, StreamcoreError):
        return
    tree = errors.__doc__ or ""
    assert f"── {cls.__name__} " in tree or f"    {cls.__name__} " in tree, (
        f"{cls.__name__} is missing from the tree in streamcore/errors.py's docstring"
    )


def test_foreign_client_failures_are_connector_errors_on_their_side() -> None:
    assert issubclass(errors.SourceConnectorError, SourceError)
    assert issubclass(errors.SourceConnectorError, ConnectorError)
    assert issubclass(errors.SinkConnectorError, SinkError)
    assert issubclass(errors.SinkConnectorError, ConnectorError)


def test_bad_options_are_still_value_errors_for_old_callers() -> None:
    assert issubclass(errors.ConfigurationError, ValueError)
    assert issubclass(errors.ConfigurationTypeError, TypeError)


def test_daemon_errors_keep_their_import_paths() -> None:
    from streamcore.daemon.config import ConfigError
    from streamcore.daemon.run import UsageError
    from streamcore.daemon.target import TargetCallError, TargetError, TargetImportError

    assert ConfigError is errors.ConfigError and UsageError is errors.UsageError
    assert (TargetError, TargetImportError, TargetCallError) == (
        errors.TargetError, errors.TargetImportError, errors.TargetCallError
    )
