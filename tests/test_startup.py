"""Start-up stays light: what a stream job does not use is not imported with the package.

Each check runs a fresh interpreter and lists the modules an import left in
``sys.modules``; timing is left to ``bench/bench_startup.py`` (the machine is shared).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def modules_after(code: str) -> set[str]:
    """The names in ``sys.modules`` after running ``code`` in a fresh interpreter."""
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys, json; print(json.dumps(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return set(json.loads(out.splitlines()[-1]))


def test_importing_streamcore_and_the_file_connectors_leaves_out_batch_serde_and_avro() -> None:
    loaded = modules_after("import streamcore, connectors.files")
    heavy = {m for m in loaded if m.startswith(("streamcore.batch", "fastavro", "psutil"))}
    assert heavy == set()
    assert {
        "streamcore.state.serde",
        "streamcore.state.redis",
        "decimal",
        "zoneinfo",
    } & loaded == set()
    assert "multiprocessing" not in loaded


def test_importing_the_packages_loads_no_runtime_until_a_name_is_used() -> None:
    loaded = modules_after("import streamcore, connectors.files")
    assert {"asyncio", "orjson", "typing"} & loaded == set()
    assert {m for m in loaded if m.startswith(("streamcore.", "connectors."))} == {
        "streamcore._lazy",
        "connectors.files",
    }
    used = modules_after("import streamcore as sc\nsc.Dataflow('f')")
    assert "streamcore.dataflow.flow" in used


def test_a_submodule_is_an_attribute_of_the_package_before_it_is_imported() -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import streamcore as sc; print(sc.errors.ConfigurationError.__name__, sc.agg.__name__)",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.split() == ["ConfigurationError", "streamcore.agg"]


@pytest.mark.parametrize(
    ("name", "package"),
    [
        ("Pipeline", "streamcore.batch"),
        ("PipelineResult", "streamcore.batch"),
        ("Retry", "streamcore.batch"),
        ("MemoryStateStore", "streamcore.state"),
        ("RedisStateStore", "streamcore.state"),
    ],
)
def test_a_lazy_name_on_streamcore_is_the_class_of_its_package(name: str, package: str) -> None:
    import importlib

    import streamcore

    assert getattr(streamcore, name) is getattr(importlib.import_module(package), name)
    assert name in dir(streamcore)


def test_the_state_package_still_offers_its_submodules_and_names() -> None:
    from streamcore.state import MemoryStateStore, serde

    assert serde.decode(serde.encode({"a": 1})) == {"a": 1}
    assert MemoryStateStore.__module__ == "streamcore.state.memory"


def test_an_unknown_name_on_streamcore_raises_attribute_error() -> None:
    import streamcore

    with pytest.raises(AttributeError, match="no attribute 'Pipelin'"):
        streamcore.Pipelin  # noqa: B018


@pytest.mark.parametrize(
    "package", ["streamcore", "streamcore.batch", "streamcore.state", "connectors.files"]
)
def test_every_name_of_a_lazy_package_resolves(package: str) -> None:
    import importlib

    module = importlib.import_module(package)
    missing = [n for n in module.__all__ if getattr(module, n, None) is None]
    assert missing == []


def test_the_avro_source_imports_fastavro_when_used(tmp_path) -> None:  # type: ignore[no-untyped-def]
    loaded = modules_after(
        "from connectors.files import AvroSink\n"
        f"AvroSink({str(tmp_path / 'out.avro')!r}, "
        "{'type': 'record', 'name': 'r', 'fields': [{'name': 'a', 'type': 'int'}]})"
    )
    assert "fastavro" in loaded


def test_a_flow_without_joins_or_async_stages_does_not_import_them() -> None:
    loaded = modules_after(
        "import streamcore as sc\n"
        "from connectors.memory import IterableSource, ListSink\n"
        "flow = sc.Dataflow('f')\n"
        "flow.source(IterableSource([1, 2])).map(lambda x: x).sink(ListSink())\n"
        "flow.run_sync()"
    )
    assert "streamcore.execution.runner" in loaded
    unused = {"streamcore.operators.asof_join", "streamcore.operators.window_join", "streamcore.operators.async_map"}
    assert unused & loaded == set()
    assert "secrets" not in loaded
