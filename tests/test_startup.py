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


def test_importing_streamcore_and_the_file_connectors_leaves_out_batch_and_avro() -> None:
    loaded = modules_after("import streamcore, connectors.files")
    heavy = {m for m in loaded if m.startswith(("streamcore.batch", "fastavro", "psutil"))}
    assert heavy == set()
    assert "multiprocessing" not in loaded


@pytest.mark.parametrize("name", ["Pipeline", "PipelineResult", "Retry"])
def test_a_batch_name_on_streamcore_is_the_batch_class_on_first_use(name: str) -> None:
    import streamcore
    import streamcore.batch

    assert getattr(streamcore, name) is getattr(streamcore.batch, name)
    assert name in dir(streamcore)


def test_an_unknown_name_on_streamcore_raises_attribute_error() -> None:
    import streamcore

    with pytest.raises(AttributeError, match="no attribute 'Pipelin'"):
        streamcore.Pipelin  # noqa: B018


def test_every_batch_name_resolves_through_the_lazy_package() -> None:
    import streamcore.batch

    missing = [n for n in streamcore.batch.__all__ if getattr(streamcore.batch, n, None) is None]
    assert missing == []


def test_the_avro_source_imports_fastavro_when_used(tmp_path) -> None:  # type: ignore[no-untyped-def]
    loaded = modules_after(
        "from connectors.files import AvroSink\n"
        f"AvroSink({str(tmp_path / 'out.avro')!r}, "
        "{'type': 'record', 'name': 'r', 'fields': [{'name': 'a', 'type': 'int'}]})"
    )
    assert "fastavro" in loaded
