"""JsonLinesSource and JsonLinesSink, driven directly through their methods."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import os
import re
from collections import namedtuple
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import streamcore as sc
from connectors.files import JsonLinesSink, JsonLinesSource
from connectors.memory import ListSink
from streamcore.errors import SinkError, SourceError
from streamcore.io import SinkContext, SourceContext


async def read_all(
    source: JsonLinesSource,
    max_records: int = 1000,
    *,
    context: SourceContext | None = None,
    position: Any = None,
) -> list[Any]:
    await source.open(context or SourceContext("src"), position)
    out: list[Any] = []
    try:
        while (batch := await source.read_batch(max_records, 0.1)) is not None:
            assert len(batch) <= max_records
            out.extend(batch)
    finally:
        await source.close()
    return out


async def write_all(sink: JsonLinesSink, *batches: list[Any]) -> None:
    await sink.open(SinkContext("sink", "flow"))
    for batch in batches:
        sink.write_batch(batch)
    await sink.close()


def write_lines(path: Path, records: list[Any]) -> None:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))


RECORDS: list[dict[str, Any]] = [
    {"user": f"u{i % 7}", "amount": i * 1.5, "ts": 1_000 + i} for i in range(250)
]


async def test_records_written_by_the_sink_read_back_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    await write_all(JsonLinesSink(path), RECORDS[:100], [], RECORDS[100:])
    assert await read_all(JsonLinesSource(path), 17) == RECORDS


@pytest.mark.parametrize("max_records", [1, 2, 7, 1000, 100_000])
async def test_batches_never_exceed_max_records_and_lose_nothing(
    tmp_path: Path, max_records: int
) -> None:
    path = tmp_path / "in.jsonl"
    write_lines(path, RECORDS)
    assert await read_all(JsonLinesSource(path), max_records) == RECORDS


async def test_a_glob_reads_every_matching_file_in_sorted_order(tmp_path: Path) -> None:
    for name, part in [
        ("b.jsonl", RECORDS[10:20]),
        ("a.jsonl", RECORDS[:10]),
        ("c.jsonl", RECORDS[20:30]),
    ]:
        write_lines(tmp_path / name, part)
    (tmp_path / "skip.txt").write_text("not json\n")
    assert await read_all(JsonLinesSource(tmp_path / "*.jsonl"), 4) == RECORDS[:30]


async def test_a_glob_matching_nothing_fails_at_open_naming_the_pattern(tmp_path: Path) -> None:
    pattern = str(tmp_path / "*.jsonl")
    source = JsonLinesSource(pattern)
    with pytest.raises(SourceError, match=re.escape(f"glob {pattern!r} matches no files")):
        await source.open(SourceContext("src"))


async def test_a_missing_file_fails_at_open_naming_it(tmp_path: Path) -> None:
    path = str(tmp_path / "missing.jsonl")
    with pytest.raises(SourceError, match=re.escape(f"no such file: {path!r}")):
        await JsonLinesSource(path).open(SourceContext("src"))


async def test_blank_lines_crlf_a_bom_and_a_missing_final_newline_are_handled(
    tmp_path: Path,
) -> None:
    path = tmp_path / "messy.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"a": 1}\r\n\r\n   \n{"a": 2}\n\n{"a": 3}')
    assert await read_all(JsonLinesSource(path), 2) == [{"a": 1}, {"a": 2}, {"a": 3}]


async def test_an_empty_file_yields_nothing(tmp_path: Path) -> None:
    (tmp_path / "empty.jsonl").write_bytes(b"")
    assert await read_all(JsonLinesSource(tmp_path / "empty.jsonl")) == []


async def test_a_line_longer_than_any_read_is_read_whole(tmp_path: Path) -> None:
    big = {"blob": "x" * 300_000}
    path = tmp_path / "big.jsonl"
    write_lines(path, [{"n": 1}, big, {"n": 2}])
    assert await read_all(JsonLinesSource(path), 1) == [{"n": 1}, big, {"n": 2}]


async def test_a_malformed_line_fails_the_source_naming_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b'{"a": 1}\n{"a": 2}\n{"a": \n{"a": 4}\n')
    with pytest.raises(SourceError) as caught:
        await read_all(JsonLinesSource(path))
    assert str(caught.value).startswith(f"source 'src': cannot decode file {path} line 3: ")
    assert isinstance(caught.value.__cause__, ValueError)


async def test_in_dead_letter_mode_bad_lines_go_to_the_callback_and_the_rest_come_through(
    tmp_path: Path,
) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b'{"a": 1}\nnot json\r\n{"a": 2}\n\n[1,\n{"a": 3}\n')
    dead: list[tuple[object, BaseException]] = []
    context = SourceContext(
        "src", on_error="dead_letter", dead_letter=lambda r, e: dead.append((r, e))
    )
    assert await read_all(JsonLinesSource(path), context=context) == [{"a": 1}, {"a": 2}, {"a": 3}]
    assert [raw for raw, _ in dead] == [b"not json", b"[1,"]
    assert [str(err).split(": ")[1] for _, err in dead] == [
        f"cannot decode file {path} line 2",
        f"cannot decode file {path} line 5",
    ]
    assert all(isinstance(err, SourceError) for _, err in dead)
    assert context.bad_records == 2


async def test_in_skip_mode_bad_lines_are_counted(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b'{"a": 1}\n{oops}\n{"a": 2}\n')
    context = SourceContext("src", on_error="skip")
    assert await read_all(JsonLinesSource(path), context=context) == [{"a": 1}, {"a": 2}]
    assert context.bad_records == 1


async def test_lines_that_only_parse_when_joined_are_still_bad_lines(tmp_path: Path) -> None:
    # "[1" and "2]" form a valid array once joined; the count check must catch it.
    path = tmp_path / "split.jsonl"
    path.write_bytes(b'{"a": 1}\n[1\n2]\n{"a": 2}\n')
    context = SourceContext("src", on_error="skip")
    assert await read_all(JsonLinesSource(path), context=context) == [{"a": 1}, {"a": 2}]
    assert context.bad_records == 2


async def test_integers_beyond_64_bits_stay_exact_and_the_rest_of_the_batch_too(tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl"
    path.write_bytes(
        b'{"id": 100000000000000000000000000001, "ts": 1}\n'
        b'{"id": -9223372036854775809}\n'
        b'{"id": 18446744073709551615, "x": 0.5}\n'
        b'{"note": "12345678901234567890 in a string"}\n'
    )
    records = await read_all(JsonLinesSource(path))
    assert records == [
        {"id": 100000000000000000000000000001, "ts": 1},
        {"id": -9223372036854775809},
        {"id": 18446744073709551615, "x": 0.5},
        {"note": "12345678901234567890 in a string"},
    ]
    assert all(type(r["id"]) is int for r in records[:3])


async def test_latin1_files_are_decoded_and_utf16_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "latin.jsonl"
    path.write_bytes('{"name": "café"}\n'.encode("latin-1"))
    assert await read_all(JsonLinesSource(path, encoding="latin-1")) == [{"name": "café"}]
    with pytest.raises(SourceError, match="encoding 'utf-16' is not supported"):
        JsonLinesSource(path, encoding="utf-16")


async def test_position_is_json_serialisable_and_points_after_the_last_record(
    tmp_path: Path,
) -> None:
    path = tmp_path / "in.jsonl"
    write_lines(path, RECORDS[:5])
    source = JsonLinesSource(path)
    await source.open(SourceContext("src"))
    assert source.position() == {"file": str(path), "offset": 0, "line": 0}
    batch = await source.read_batch(2, 0.1)
    position = source.position()
    await source.close()
    assert batch == RECORDS[:2]
    assert orjson.loads(orjson.dumps(position)) == position
    consumed = sum(len(orjson.dumps(r)) + 1 for r in RECORDS[:2])
    assert position == {"file": str(path), "offset": consumed, "line": 2}


async def test_a_resumed_source_yields_exactly_the_records_after_the_position(
    tmp_path: Path,
) -> None:
    for i in range(3):
        write_lines(tmp_path / f"part-{i}.jsonl", RECORDS[i * 50 : (i + 1) * 50])
    pattern = tmp_path / "part-*.jsonl"
    source = JsonLinesSource(pattern)
    await source.open(SourceContext("src"))
    seen: list[Any] = []
    positions = []
    while (batch := await source.read_batch(15, 0.1)) is not None:
        seen.extend(batch)
        positions.append((len(seen), source.position()))
    await source.close()
    for count, position in positions:
        rest = await read_all(JsonLinesSource(pattern), 15, position=position)
        assert rest == RECORDS[count:150], position


async def test_resuming_after_the_named_file_disappeared_starts_at_the_next_file(
    tmp_path: Path,
) -> None:
    write_lines(tmp_path / "a.jsonl", RECORDS[:3])
    write_lines(tmp_path / "c.jsonl", RECORDS[3:6])
    position = {"file": str(tmp_path / "b.jsonl"), "offset": 10, "line": 1}
    assert await read_all(JsonLinesSource(tmp_path / "*.jsonl"), position=position) == RECORDS[3:6]


async def test_a_position_of_the_wrong_shape_is_a_source_error(tmp_path: Path) -> None:
    write_lines(tmp_path / "a.jsonl", RECORDS[:3])
    source = JsonLinesSource(tmp_path / "a.jsonl")
    with pytest.raises(SourceError, match="expected 'offset' and 'line' integers"):
        await source.open(SourceContext("src"), {"file": str(tmp_path / "a.jsonl")})
    with pytest.raises(SourceError, match="expected a mapping with a 'file' key"):
        await source.open(SourceContext("src"), 42)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    records=st.lists(
        st.dictionaries(
            st.text(max_size=5), st.integers(-(2**63), 2**63 - 1) | st.text(max_size=20), max_size=3
        ),
        max_size=40,
    ),
    files=st.integers(min_value=1, max_value=4),
    blank_every=st.integers(min_value=0, max_value=5),
    first_batch=st.integers(min_value=1, max_value=10),
    batches_before_stop=st.integers(min_value=0, max_value=8),
    second_batch=st.integers(min_value=1, max_value=10),
)
def test_any_split_point_gives_the_same_concatenated_records(
    tmp_path_factory: pytest.TempPathFactory,
    records: list[dict[str, Any]],
    files: int,
    blank_every: int,
    first_batch: int,
    batches_before_stop: int,
    second_batch: int,
) -> None:
    directory = tmp_path_factory.mktemp("split")
    per_file = -(-len(records) // files) if records else 1
    for i in range(files):
        lines = []
        for j, record in enumerate(records[i * per_file : (i + 1) * per_file]):
            lines.append(orjson.dumps(record))
            if blank_every and j % blank_every == 0:
                lines.append(b"  ")
        (directory / f"f{i}.jsonl").write_bytes(b"\n".join(lines) + (b"\n" if i % 2 else b""))

    async def scenario() -> list[Any]:
        pattern = directory / "f*.jsonl"
        source = JsonLinesSource(pattern)
        await source.open(SourceContext("src"))
        head: list[Any] = []
        for _ in range(batches_before_stop):
            batch = await source.read_batch(first_batch, 0.1)
            if batch is None:
                break
            head.extend(batch)
        position = orjson.loads(orjson.dumps(source.position()))
        await source.close()
        return head + await read_all(JsonLinesSource(pattern), second_batch, position=position)

    assert asyncio.run(scenario()) == records


async def test_the_sink_publishes_only_on_close_and_leaves_no_pending_file(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    sink = JsonLinesSink(path)
    await sink.open(SinkContext("sink", "flow"))
    sink.write_batch([{"a": 1}, {"a": 2}])
    assert not path.exists()
    assert sink.committed_length() == len(b'{"a":1}\n{"a":2}\n')
    await sink.close()
    assert path.read_bytes() == b'{"a":1}\n{"a":2}\n'
    assert not Path(sink.pending_path).exists()


async def test_the_sink_overwrites_an_earlier_output_and_a_leftover_pending_file(
    tmp_path: Path,
) -> None:
    path = tmp_path / "out.jsonl"
    path.write_bytes(b"old\n")
    Path(str(path) + ".pending").write_bytes(b"torn")
    await write_all(JsonLinesSink(path), [{"a": 1}])
    assert path.read_bytes() == b'{"a":1}\n'


@dataclasses.dataclass
class Click:
    user: str
    at: datetime.datetime


Point = namedtuple("Point", "x y")


async def test_the_sink_writes_dataclasses_namedtuples_as_objects_and_tuples_as_lists(
    tmp_path: Path,
) -> None:
    path = tmp_path / "out.jsonl"
    when = datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
    await write_all(
        JsonLinesSink(path), [Click("u1", when), Point(1, 2), (1, "a"), {"p": Point(3, 4)}]
    )
    assert path.read_bytes().splitlines() == [
        b'{"user":"u1","at":"2024-01-02T03:04:05+00:00"}',
        b'{"x":1,"y":2}',
        b'[1,"a"]',
        b'{"p":{"x":3,"y":4}}',
    ]


async def test_an_unserialisable_record_is_a_sink_error_naming_path_and_type(
    tmp_path: Path,
) -> None:
    path = tmp_path / "out.jsonl"
    sink = JsonLinesSink(path)
    await sink.open(SinkContext("sink", "flow"))
    sink.write_batch([{"a": 1}])
    with pytest.raises(SinkError) as caught:
        sink.write_batch([{"a": 2}, {"a": {1, 2}}])
    message = str(caught.value)
    assert message.startswith(
        f"JSON lines sink {str(path)!r}: cannot serialise record 1 of the batch (type dict): "
    )
    assert "set" in message
    assert sink.committed_length() == len(b'{"a":1}\n')
    await sink.close()
    assert path.read_bytes() == b'{"a":1}\n'


async def test_opening_a_sink_in_a_missing_directory_creates_it(tmp_path: Path) -> None:
    sink = JsonLinesSink(tmp_path / "no" / "such" / "out.jsonl")
    await sink.open(SinkContext("sink", "flow"))
    sink.write_batch([{"a": 1}])
    await sink.close()
    assert (tmp_path / "no" / "such" / "out.jsonl").read_bytes() == b'{"a":1}\n'


async def test_opening_a_sink_under_a_file_is_a_sink_error(tmp_path: Path) -> None:
    (tmp_path / "blocker").write_text("not a directory")
    sink = JsonLinesSink(tmp_path / "blocker" / "out.jsonl")
    with pytest.raises(SinkError, match="check that the directory exists"):
        await sink.open(SinkContext("sink", "flow"))


async def test_closing_a_sink_that_never_opened_does_nothing(tmp_path: Path) -> None:
    sink = JsonLinesSink(tmp_path / "out.jsonl")
    await sink.close()
    assert os.listdir(tmp_path) == []


async def test_a_flow_reads_maps_and_writes_json_lines_end_to_end(tmp_path: Path) -> None:
    source_path, out_path = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_lines(source_path, RECORDS)
    flow = sc.Dataflow("files-jsonl")
    flow.source(JsonLinesSource(source_path), batch_size=64).map(
        lambda r: {**r, "amount": r["amount"] * 2}
    ).sink(JsonLinesSink(out_path))
    await flow.run()
    expected = [{**r, "amount": r["amount"] * 2} for r in RECORDS]
    assert await read_all(JsonLinesSource(out_path)) == expected


async def test_a_flow_sends_bad_lines_to_its_dead_letters(tmp_path: Path) -> None:
    source_path = tmp_path / "in.jsonl"
    source_path.write_bytes(b'{"a": 1}\nnope\n{"a": 2}\n')
    flow = sc.Dataflow("files-jsonl-dead")
    good, dead = ListSink(), ListSink()
    flow.source(JsonLinesSource(source_path), name="lines", on_error="dead_letter").sink(good)
    flow.dead_letters.sink(dead)
    await flow.run()
    assert good.items == [{"a": 1}, {"a": 2}]
    assert [(d.stage, d.record) for d in dead.items] == [("lines", b"nope")]


async def test_a_flow_fails_on_a_bad_line_naming_file_and_line(tmp_path: Path) -> None:
    source_path = tmp_path / "in.jsonl"
    source_path.write_bytes(b'{"a": 1}\nnope\n')
    flow = sc.Dataflow("files-jsonl-fail")
    flow.source(JsonLinesSource(source_path), name="lines").sink(ListSink())
    with pytest.raises(sc.StreamcoreError, match=re.escape(f"file {source_path} line 2")):
        await flow.run()
