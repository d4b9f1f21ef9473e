"""Checkpoint hooks of the file sinks (restore, pre_commit, commit), driven directly.

A crash is simulated by leaving every file as it is and dropping the sink (``kill``),
or by making a step of ``commit``/``restore``/``pre_commit`` raise ``Killed`` part-way
through; the state handed back to the sinks always goes through a JSON round trip, as
it does through the checkpoint store.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fastavro
import orjson
import pytest

import connectors.files._output as output
from connectors.files import AvroSink, CsvSink, JsonLinesSink
from connectors.files._output import FileSink
from streamcore.errors import SinkError
from streamcore.io import SinkContext

SCHEMA = {
    "type": "record",
    "name": "Row",
    "fields": [{"name": "id", "type": "string"}, {"name": "name", "type": "string"}],
}
FIELDS = ["id", "name"]


class Killed(BaseException):
    """The process died here (a BaseException, so no ``except Exception`` catches it)."""


@dataclass(frozen=True)
class Format:
    name: str
    make: Callable[[Path], FileSink]
    read: Callable[[Path], list[dict[str, str]]]
    """The published records; fails if the file is not valid in its format."""

    def __repr__(self) -> str:
        return self.name


def read_jsonl(path: Path) -> list[dict[str, str]]:
    data = path.read_bytes()
    assert not data or data.endswith(b"\n")
    return [orjson.loads(line) for line in data.splitlines()]


def read_csv(path: Path) -> list[dict[str, str]]:
    text = path.read_text()
    if not text:
        return []
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == FIELDS, "the published file must start with the header row"
    assert FIELDS not in rows[1:], "the header row must appear once"
    return [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]


def read_avro(path: Path) -> list[dict[str, str]]:
    with open(path, "rb") as file:
        records = list(fastavro.reader(file))
        assert file.read() == b"", "trailing bytes after the last block"
    return records  # type: ignore[return-value]


FORMATS = [
    Format("jsonl", lambda path: JsonLinesSink(path), read_jsonl),
    Format("csv", lambda path: CsvSink(path), read_csv),
    Format("avro", lambda path: AvroSink(path, SCHEMA), read_avro),
]


@pytest.fixture(params=FORMATS, ids=repr)
def fmt(request: pytest.FixtureRequest) -> Format:
    return request.param


@pytest.fixture
def out(tmp_path: Path) -> Path:
    return tmp_path / "out" / "result.data"


def batch(i: int) -> list[dict[str, str]]:
    """Batch ``i``: three records, distinct from every other batch's."""
    return [{"id": f"{i}.{j}", "name": f"name {i},{j}"} for j in range(3)]


def batches(*ids: int) -> list[dict[str, str]]:
    return [record for i in ids for record in batch(i)]


def js(state: Any) -> Any:
    """What the checkpoint store gives back."""
    return orjson.loads(orjson.dumps(state))


def ctx() -> SinkContext:
    return SinkContext("sink", "flow", checkpointing=True)


async def start(sink: FileSink, state: Any = None) -> FileSink:
    await sink.restore(state)
    await sink.open(ctx())
    return sink


def kill(sink: FileSink) -> None:
    """What a SIGKILL leaves: every file as it is, only the handle gone."""
    if sink._file is not None:
        sink._file.close()
        sink._file = None


def leftovers(path: Path) -> list[str]:
    """Files next to ``path`` other than ``path`` itself (segments, pending files)."""
    return sorted(p.name for p in path.parent.iterdir() if p != path)


CrashOn = Callable[..., None]


@pytest.fixture
def crash_on(monkeypatch: pytest.MonkeyPatch) -> CrashOn:
    """``crash_on(name, n)``: the ``n``-th call (0-based) of ``output.<name>`` kills the
    process; with ``half=True`` that call of ``_copy`` first copies half its bytes."""

    def arm(name: str, n: int, *, half: bool = False) -> None:
        real = getattr(output, name)
        calls = iter(range(10**6))

        def dying(*args: Any, **kwargs: Any) -> Any:
            if next(calls) == n:
                if half:
                    source, target, count = args
                    target.write(source.read(count // 2))
                    target.flush()
                raise Killed(name)
            return real(*args, **kwargs)

        monkeypatch.setattr(output, name, dying)

    return arm


# -- publishing --------------------------------------------------------------------


async def test_sealed_output_is_invisible_until_commit_then_published_in_order(
    fmt: Format, out: Path
) -> None:
    sink = await start(fmt.make(out))
    sink.write_batch(batch(0))
    s1 = js(sink.pre_commit(1))
    assert not out.exists()
    sink.write_batch(batch(1))
    s2 = js(sink.pre_commit(2))
    sink.write_batch(batch(2))
    assert not out.exists()
    sink.commit(1, s1)
    assert fmt.read(out) == batches(0)
    sink.commit(2, s2)
    assert fmt.read(out) == batches(0, 1)
    await sink.close()
    assert fmt.read(out) == batches(0, 1)
    assert leftovers(out) == []


async def test_commit_is_idempotent_and_an_old_commit_never_undoes_a_newer_one(
    fmt: Format, out: Path
) -> None:
    sink = await start(fmt.make(out))
    sink.write_batch(batch(0))
    s1 = js(sink.pre_commit(1))
    sink.commit(1, s1)
    sink.commit(1, s1)
    assert fmt.read(out) == batches(0)
    sink.write_batch(batch(1))
    s2 = js(sink.pre_commit(2))
    sink.commit(2, s2)
    published = out.read_bytes()
    sink.commit(2, s2)
    sink.commit(1, s1)  # late: must not undo 2, on disk or in what the sink remembers
    assert out.read_bytes() == published
    assert fmt.read(out) == batches(0, 1)
    sink.write_batch(batch(2))
    s3 = js(sink.pre_commit(3))
    assert s3["base"] == len(published)
    sink.commit(3, s3)
    assert fmt.read(out) == batches(0, 1, 2)
    await sink.close()


async def test_an_abandoned_checkpoint_is_published_by_the_next_commit(
    fmt: Format, out: Path
) -> None:
    sink = await start(fmt.make(out))
    sink.write_batch(batch(0))
    sink.pre_commit(1)  # never committed
    sink.write_batch(batch(1))
    s2 = js(sink.pre_commit(2))
    assert [s["checkpoint"] for s in s2["segments"]] == [1, 2]
    sink.commit(2, s2)
    assert fmt.read(out) == batches(0, 1)
    sink.write_batch(batch(2))
    s3 = js(sink.pre_commit(3))
    assert [s["checkpoint"] for s in s3["segments"]] == [3]
    sink.commit(3, s3)
    assert fmt.read(out) == batches(0, 1, 2)
    await sink.close()
    assert leftovers(out) == []


async def test_a_commit_while_the_next_checkpoint_is_sealed_keeps_that_one_for_later(
    fmt: Format, out: Path
) -> None:
    sink = await start(fmt.make(out))
    sink.write_batch(batch(0))
    s1 = js(sink.pre_commit(1))
    sink.write_batch(batch(1))
    sink.pre_commit(2)  # sealed before 1 is committed, then abandoned
    sink.commit(1, s1)
    assert fmt.read(out) == batches(0)
    sink.write_batch(batch(2))
    s3 = js(sink.pre_commit(3))
    assert [s["checkpoint"] for s in s3["segments"]] == [2, 3]
    sink.commit(3, s3)
    assert fmt.read(out) == batches(0, 1, 2)
    await sink.close()
    assert leftovers(out) == []


async def test_a_checkpoint_without_new_batches_seals_no_new_segment(
    fmt: Format, out: Path
) -> None:
    sink = await start(fmt.make(out))
    sink.write_batch(batch(0))
    s1 = js(sink.pre_commit(1))
    sink.commit(1, s1)
    s2 = js(sink.pre_commit(2))
    assert s2["segments"] == []
    sink.commit(2, s2)
    assert fmt.read(out) == batches(0)
    await sink.close()


async def test_close_under_checkpointing_publishes_nothing_and_commit_still_works_after(
    fmt: Format, out: Path
) -> None:
    sink = await start(fmt.make(out))
    sink.write_batch(batch(0))
    s1 = js(sink.pre_commit(1))
    sink.write_batch(batch(1))  # never sealed
    await sink.close()
    assert not out.exists()
    assert not Path(sink.pending_path).exists()
    assert len(leftovers(out)) == 1  # the sealed segment, kept for commit or restore
    sink.commit(1, s1)
    assert fmt.read(out) == batches(0)
    assert leftovers(out) == []


async def test_an_empty_stream_publishes_an_empty_valid_file(fmt: Format, out: Path) -> None:
    sink = await start(fmt.make(out))
    state = js(sink.pre_commit(1))
    await sink.close()
    sink.commit(1, state)
    assert fmt.read(out) == []


async def test_segment_names_differ_between_runs_for_the_same_checkpoint_id(
    fmt: Format, out: Path
) -> None:
    first = await start(fmt.make(out))
    first.write_batch(batch(0))
    s1 = js(first.pre_commit(1))
    kill(first)
    second = await start(fmt.make(out))
    second.write_batch(batch(1))
    again = js(second.pre_commit(1))
    assert s1["segments"][0]["name"] != again["segments"][0]["name"]
    second.commit(1, again)
    assert fmt.read(out) == batches(1)
    await second.close()


async def test_without_checkpointing_close_still_publishes_everything(
    fmt: Format, out: Path
) -> None:
    sink = fmt.make(out)
    await sink.open(SinkContext("sink", "flow"))
    sink.write_batch(batch(0))
    assert not out.exists()
    await sink.close()
    assert fmt.read(out) == batches(0)
    assert leftovers(out) == []


# -- restore -----------------------------------------------------------------------


async def test_restore_none_discards_leftovers_and_the_first_commit_replaces_an_old_file(
    fmt: Format, out: Path
) -> None:
    out.parent.mkdir()
    out.write_bytes(b"an older run's output\n")
    Path(str(out) + ".pending").write_bytes(b"torn")
    Path(f"{out}.7-00aa11bb22cc.segment").write_bytes(b"sealed long ago")
    sink = fmt.make(out)
    await sink.restore(None)
    assert leftovers(out) == []
    assert out.read_bytes() == b"an older run's output\n"
    await sink.open(ctx())
    sink.write_batch(batch(0))
    state = js(sink.pre_commit(1))
    assert out.read_bytes() == b"an older run's output\n"
    sink.commit(1, state)
    assert fmt.read(out) == batches(0)
    await sink.close()


async def test_restore_publishes_a_completed_checkpoint_whose_commit_never_ran(
    fmt: Format, out: Path
) -> None:
    sink = await start(fmt.make(out))
    sink.write_batch(batch(0))
    sink.pre_commit(1)
    sink.write_batch(batch(1))
    s2 = js(sink.pre_commit(2))
    sink.write_batch(batch(2))
    sink.pre_commit(3)  # sealed, but checkpoint 3 never completed
    sink.write_batch(batch(3))  # pending only
    kill(sink)
    assert not out.exists()

    # The same object is restored, as a restart inside the process does.
    await sink.restore(s2)
    assert fmt.read(out) == batches(0, 1)
    assert leftovers(out) == []
    await sink.open(ctx())
    sink.write_batch(batch(4))
    s3 = js(sink.pre_commit(3))
    sink.commit(3, s3)
    assert fmt.read(out) == batches(0, 1, 4)
    await sink.close()
    assert leftovers(out) == []


CRASHES = {
    # where: (function of the output module that dies, at which call, half a copy first)
    "after moving the first segment into place": ("_copy", 0, False),
    "half way through appending the last segment": ("_copy", 1, True),
    "after appending, before deleting the segments": ("_remove", 0, False),
}


@pytest.mark.parametrize("where", list(CRASHES))
async def test_restore_completes_a_commit_a_crash_interrupted(
    fmt: Format, out: Path, where: str, crash_on: CrashOn, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = await start(fmt.make(out))
    for i in range(3):
        sink.write_batch(batch(i))
        state = js(sink.pre_commit(i + 1))  # none committed: state 3 names 3 segments
    name, call, half = CRASHES[where]
    crash_on(name, call, half=half)
    with pytest.raises(Killed):
        sink.commit(3, state)
    kill(sink)
    monkeypatch.undo()
    torn = out.read_bytes()
    assert len(torn) > 0

    restored = await start(fmt.make(out), state)
    assert fmt.read(out) == batches(0, 1, 2)
    assert leftovers(out) == [Path(restored.pending_path).name]
    restored.write_batch(batch(3))
    s4 = js(restored.pre_commit(4))
    restored.commit(4, s4)
    assert fmt.read(out) == batches(0, 1, 2, 3)
    await restored.close()
    assert leftovers(out) == []


async def test_restoring_an_older_checkpoint_cuts_off_what_later_ones_committed(
    fmt: Format, out: Path
) -> None:
    sink = await start(fmt.make(out))
    states = {}
    for i in range(3):
        sink.write_batch(batch(i))
        states[i + 1] = js(sink.pre_commit(i + 1))
        sink.commit(i + 1, states[i + 1])
    sink.write_batch(batch(3))
    sink.pre_commit(4)  # sealed, never committed
    kill(sink)
    assert fmt.read(out) == batches(0, 1, 2)

    # Checkpoints 2 and 3 turned out corrupted: the flow restarts from 1.
    restored = await start(fmt.make(out), states[1])
    assert fmt.read(out) == batches(0)
    assert leftovers(out) == [Path(restored.pending_path).name]
    restored.write_batch(batch(5))
    s2 = js(restored.pre_commit(2))
    assert s2["segments"][0]["name"] != states[2]["segments"][0]["name"]
    restored.commit(2, s2)
    assert fmt.read(out) == batches(0, 5)
    await restored.close()


async def test_restore_is_idempotent_when_a_crash_interrupts_it(
    fmt: Format, out: Path, crash_on: CrashOn, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = await start(fmt.make(out))
    sink.write_batch(batch(0))
    s1 = js(sink.pre_commit(1))
    sink.commit(1, s1)
    sink.write_batch(batch(1))
    s2 = js(sink.pre_commit(2))
    sink.write_batch(batch(2))
    sink.pre_commit(3)
    sink.write_batch(batch(3))
    sink.commit(4, js(sink.pre_commit(4)))  # publishes 2, 3 and 4
    sink.write_batch(batch(4))
    sink.pre_commit(5)
    kill(sink)
    assert fmt.read(out) == batches(0, 1, 2, 3)

    # Restoring checkpoint 2 dies after cutting the file, while deleting leftovers
    # (call 0 of _remove deletes 2's own segment, already published).
    crash_on("_remove", 1)
    with pytest.raises(Killed):
        await fmt.make(out).restore(s2)
    monkeypatch.undo()
    assert fmt.read(out) == batches(0, 1)
    assert len(leftovers(out)) > 0

    restored = await start(fmt.make(out), s2)
    assert fmt.read(out) == batches(0, 1)
    assert leftovers(out) == [Path(restored.pending_path).name]
    again = fmt.make(out)
    await again.restore(s2)
    assert fmt.read(out) == batches(0, 1)
    await restored.close()


async def test_a_crash_inside_pre_commit_leaves_an_orphan_segment_that_restore_deletes(
    fmt: Format, out: Path, crash_on: CrashOn
) -> None:
    sink = await start(fmt.make(out))
    sink.write_batch(batch(0))
    s1 = js(sink.pre_commit(1))
    sink.commit(1, s1)
    sink.write_batch(batch(1))
    crash_on("_fsync_directory", 0)  # right after the pending file became a segment
    with pytest.raises(Killed):
        sink.pre_commit(2)
    kill(sink)
    assert any(name.endswith(".segment") for name in leftovers(out))

    restored = await start(fmt.make(out), s1)
    assert leftovers(out) == [Path(restored.pending_path).name]
    assert fmt.read(out) == batches(0)
    await restored.close()


async def test_a_published_file_cut_short_outside_the_sink_is_an_error(
    fmt: Format, out: Path
) -> None:
    sink = await start(fmt.make(out))
    sink.write_batch(batch(0))
    s1 = js(sink.pre_commit(1))
    sink.commit(1, s1)
    await sink.close()
    out.write_bytes(out.read_bytes()[:5])
    with pytest.raises(SinkError, match="committed"):
        await fmt.make(out).restore(s1)


async def test_a_state_of_the_wrong_shape_is_a_sink_error(fmt: Format, out: Path) -> None:
    with pytest.raises(SinkError, match="not one this sink returned"):
        await fmt.make(out).restore({"segments": "nope"})


# -- format specifics -------------------------------------------------------------


async def test_csv_header_is_written_once_across_segments_and_restores(out: Path) -> None:
    sink = await start(CsvSink(out))
    sink.write_batch(batch(0))
    s1 = js(sink.pre_commit(1))
    assert s1["fieldnames"] == FIELDS
    sink.write_batch(batch(1))
    s2 = js(sink.pre_commit(2))
    sink.commit(2, s2)
    kill(sink)

    # A new sink without fieldnames takes them from the state, and writes no header.
    restored = await start(CsvSink(out), s2)
    restored.write_batch([{"name": "reordered", "id": "x"}])
    restored.commit(3, js(restored.pre_commit(3)))
    await restored.close()
    text = out.read_text()
    assert text.count("id,name") == 1
    assert text.splitlines()[-1] == "x,reordered"
    assert read_csv(out) == [*batches(0, 1), {"id": "x", "name": "reordered"}]


async def test_csv_with_fieldnames_publishes_the_header_of_an_empty_stream(out: Path) -> None:
    sink = await start(CsvSink(out, fieldnames=FIELDS))
    state = js(sink.pre_commit(1))
    await sink.close()
    sink.commit(1, state)
    assert out.read_text() == "id,name\n"
    restored = await start(CsvSink(out, fieldnames=FIELDS), state)
    restored.write_batch(batch(0))
    restored.commit(2, js(restored.pre_commit(2)))
    await restored.close()
    assert read_csv(out) == batches(0)


async def test_csv_refuses_to_continue_an_output_with_other_fieldnames(out: Path) -> None:
    sink = await start(CsvSink(out))
    sink.write_batch(batch(0))
    state = js(sink.pre_commit(1))
    sink.commit(1, state)
    await sink.close()
    with pytest.raises(SinkError, match="columns"):
        await CsvSink(out, fieldnames=["name", "id"]).restore(state)


def avro_header(path: Path) -> tuple[bytes, dict[str, Any]]:
    with open(path, "rb") as file:
        reader = fastavro.reader(file)
        return path.read_bytes()[: file.tell()], dict(reader.metadata)


async def test_avro_stays_valid_after_every_commit_and_a_restore_keeps_its_header(
    out: Path,
) -> None:
    sink = await start(AvroSink(out, SCHEMA))
    states = []
    for i in range(3):
        sink.write_batch(batch(i))
        states.append(js(sink.pre_commit(i + 1)))
        sink.commit(i + 1, states[-1])
        assert read_avro(out) == batches(*range(i + 1))
    header, _ = avro_header(out)
    kill(sink)

    restored = await start(AvroSink(out, SCHEMA), states[1])
    assert read_avro(out) == batches(0, 1)
    restored.write_batch(batch(7))
    restored.commit(3, js(restored.pre_commit(3)))
    assert read_avro(out) == batches(0, 1, 7)
    restored.write_batch(batch(8))
    restored.commit(4, js(restored.pre_commit(4)))
    await restored.close()
    assert read_avro(out) == batches(0, 1, 7, 8)
    assert out.read_bytes().startswith(header)


async def test_avro_restored_output_keeps_its_codec_and_schema(out: Path) -> None:
    sink = await start(AvroSink(out, SCHEMA, codec="deflate"))
    sink.write_batch(batch(0))
    state = js(sink.pre_commit(1))
    sink.commit(1, state)
    await sink.close()

    restored = await start(AvroSink(out, SCHEMA), state)  # codec="null" now
    restored.write_batch(batch(1))
    restored.commit(2, js(restored.pre_commit(2)))
    await restored.close()
    assert read_avro(out) == batches(0, 1)
    _, metadata = avro_header(out)
    assert metadata["avro.codec"] == "deflate"


async def test_avro_segments_hold_whole_blocks(out: Path) -> None:
    sink = await start(AvroSink(out, SCHEMA))
    sink.write_batch(batch(0))
    state = js(sink.pre_commit(1))
    sink.write_batch(batch(1))
    state = js(sink.pre_commit(2))
    for segment in state["segments"]:
        # Each segment file is a valid Avro file of its own: header copy + whole blocks.
        path = out.parent / segment["name"]
        assert read_avro(path) == batch(segment["checkpoint"] - 1)
    sink.commit(2, state)
    await sink.close()
    assert read_avro(out) == batches(0, 1)


def test_the_file_sinks_declare_checkpoint_support() -> None:
    assert JsonLinesSink.supports_checkpoints
    assert CsvSink.supports_checkpoints
    assert AvroSink.supports_checkpoints


# -- a crash at every step -----------------------------------------------------------


class Fuse:
    """Counts the steps of the sink that change files; kills the process at step ``at``.

    Steps: ``os.replace/rename/remove/fsync`` as the output module calls them, each
    directory fsync and each segment copy (which, when it is the fatal step, copies
    half its bytes first). A killed process loses no written data, so the fsyncs
    themselves are skipped (which keeps the many runs fast).
    """

    def __init__(self) -> None:
        self.count = 0
        self.at: int | None = None

    def tick(self) -> bool:
        """True when this step is the fatal one."""
        fatal = self.count == self.at
        self.count += 1
        return fatal


class CountingOs:
    def __init__(self, fuse: Fuse) -> None:
        self._fuse = fuse

    def __getattr__(self, name: str) -> Any:
        real = getattr(os, name)
        if name not in {"replace", "rename", "remove", "fsync"}:
            return real

        def step(*args: Any) -> Any:
            if self._fuse.tick():
                raise Killed(name)
            return None if name == "fsync" else real(*args)

        return step


@pytest.fixture
def fuse(monkeypatch: pytest.MonkeyPatch) -> Fuse:
    fuse = Fuse()
    copy = output._copy

    def counted_copy(source: Any, target: Any, count: int) -> None:
        if fuse.tick():
            target.write(source.read(count // 2))
            target.flush()
            raise Killed("_copy")
        copy(source, target, count)

    def counted_fsync_directory(directory: str) -> None:
        if fuse.tick():
            raise Killed("_fsync_directory")

    monkeypatch.setattr(output, "os", CountingOs(fuse))
    monkeypatch.setattr(output, "_copy", counted_copy)
    monkeypatch.setattr(output, "_fsync_directory", counted_fsync_directory)
    return fuse


async def run_script(sink: FileSink, completed: list[tuple[Any, list[int]]]) -> None:
    """A run with an abandoned checkpoint, a commit trailing a pre_commit, and a commit
    after close. ``completed`` gets each checkpoint's state once it is complete in the
    store (before its commit), with the batches it holds."""
    await start(sink)
    sink.write_batch(batch(0))
    s1 = js(sink.pre_commit(1))
    completed.append((s1, [0]))
    sink.commit(1, s1)
    sink.write_batch(batch(1))
    sink.pre_commit(2)  # abandoned
    sink.write_batch(batch(2))
    s3 = js(sink.pre_commit(3))
    completed.append((s3, [0, 1, 2]))
    sink.write_batch(batch(3))
    s4 = js(sink.pre_commit(4))
    completed.append((s4, [0, 1, 2, 3]))
    sink.commit(3, s3)
    sink.commit(4, s4)
    sink.write_batch(batch(4))
    s5 = js(sink.pre_commit(5))
    completed.append((s5, [0, 1, 2, 3, 4]))
    await sink.close()
    sink.commit(5, s5)


async def test_a_crash_at_any_step_then_restore_gives_exactly_the_committed_output(
    fmt: Format, tmp_path: Path, fuse: Fuse
) -> None:
    await run_script(fmt.make(tmp_path / "dry" / "out"), [])
    steps = fuse.count
    assert steps > 30
    checked = 0
    for at in range(steps):
        out = tmp_path / f"crash{at}" / "out"
        completed: list[tuple[Any, list[int]]] = []
        sink = fmt.make(out)
        fuse.at, fuse.count = at, 0
        with pytest.raises(Killed):
            await run_script(sink, completed)
        kill(sink)
        # The newest complete checkpoint, and the one before it (as when the newest
        # turned out corrupted); each restore itself crashes at every step, then runs
        # again to the end.
        choices = completed[-2:] or [(None, [])]
        for choice, (state, held) in enumerate(choices):
            for restore_at in range(100):
                trial = out.parent.with_name(f"crash{at}-{choice}-{restore_at}") / "out"
                shutil.copytree(out.parent, trial.parent)
                fuse.at, fuse.count = restore_at, 0
                try:
                    await fmt.make(trial).restore(state)
                    finished = True
                except Killed:
                    finished = False
                fuse.at = None
                restored = await start(fmt.make(trial), state)
                assert fmt.read(trial) == batches(*held) if trial.exists() else held == []
                restored.write_batch(batch(9))
                restored.commit(6, js(restored.pre_commit(6)))
                await restored.close()
                assert fmt.read(trial) == batches(*held, 9), (at, choice, restore_at)
                assert leftovers(trial) == []
                checked += 1
                if finished:
                    break
    assert checked > steps
