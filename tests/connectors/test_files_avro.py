"""AvroSource and AvroSink, driven directly through their methods."""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections import namedtuple
from pathlib import Path
from typing import Any

import fastavro
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import streamcore as sc
from connectors.files import AvroSink, AvroSource
from streamcore.errors import SinkError, SourceError
from streamcore.io import SinkContext, SourceContext

SCHEMA = {
    "type": "record",
    "name": "Sale",
    "fields": [
        {"name": "item", "type": "string"},
        {"name": "qty", "type": "long"},
        {"name": "note", "type": ["null", "string"], "default": None},
    ],
}
RECORDS: list[dict[str, Any]] = [
    {"item": f"i{i}", "qty": i, "note": None if i % 3 else f"n{i}"} for i in range(200)
]


async def read_all(
    source: AvroSource, max_records: int = 1000, *, position: Any = None
) -> list[Any]:
    await source.open(SourceContext("src"), position)
    out: list[Any] = []
    try:
        while (batch := await source.read_batch(max_records, 0.1)) is not None:
            assert len(batch) <= max_records
            out.extend(batch)
    finally:
        await source.close()
    return out


async def write_all(sink: AvroSink, *batches: list[Any]) -> None:
    await sink.open(SinkContext("sink", "flow"))
    for batch in batches:
        sink.write_batch(batch)
    await sink.close()


def write_blocks(path: Path, records: list[Any], block_size: int) -> None:
    """An Avro file whose blocks hold ``block_size`` records each."""
    with open(path, "wb") as f:
        writer = fastavro.write.Writer(f, fastavro.parse_schema(SCHEMA))
        for i, record in enumerate(records, start=1):
            writer.write(record)
            if i % block_size == 0:
                writer.flush()
        writer.flush()


async def test_records_written_by_the_sink_read_back_with_the_schema_from_the_file(
    tmp_path: Path,
) -> None:
    path = tmp_path / "out.avro"
    await write_all(AvroSink(path, SCHEMA), RECORDS[:70], [], RECORDS[70:])
    source = AvroSource(path)
    assert await read_all(source, 13) == RECORDS
    assert source.writer_schema is not None
    assert source.writer_schema["name"] == "Sale"
    assert [f["name"] for f in source.writer_schema["fields"]] == ["item", "qty", "note"]


async def test_the_sink_writes_one_block_per_batch(tmp_path: Path) -> None:
    path = tmp_path / "out.avro"
    await write_all(AvroSink(path, SCHEMA), RECORDS[:5], RECORDS[5:7])
    with open(path, "rb") as f:
        assert [block.num_records for block in fastavro.block_reader(f)] == [5, 2]


async def test_a_reader_schema_resolves_the_records(tmp_path: Path) -> None:
    path = tmp_path / "out.avro"
    await write_all(AvroSink(path, SCHEMA), RECORDS[:3])
    reader_schema = {
        "type": "record",
        "name": "Sale",
        "fields": [
            {"name": "item", "type": "string"},
            {"name": "region", "type": "string", "default": "eu"},
        ],
    }
    rows = await read_all(AvroSource(path, reader_schema=reader_schema))
    assert rows == [{"item": r["item"], "region": "eu"} for r in RECORDS[:3]]


async def test_a_compressed_file_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "out.avro"
    await write_all(AvroSink(path, SCHEMA, codec="deflate"), RECORDS)
    assert await read_all(AvroSource(path)) == RECORDS


async def test_a_glob_reads_every_matching_file_in_sorted_order(tmp_path: Path) -> None:
    write_blocks(tmp_path / "b.avro", RECORDS[10:20], 4)
    write_blocks(tmp_path / "a.avro", RECORDS[:10], 4)
    assert await read_all(AvroSource(tmp_path / "*.avro"), 3) == RECORDS[:20]


async def test_a_glob_matching_nothing_fails_at_open_naming_the_pattern(tmp_path: Path) -> None:
    pattern = str(tmp_path / "*.avro")
    with pytest.raises(SourceError, match=re.escape(f"glob {pattern!r} matches no files")):
        await AvroSource(pattern).open(SourceContext("src"))


async def test_a_file_that_is_not_avro_is_a_source_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "fake.avro"
    path.write_bytes(b'{"not": "avro"}\n')
    with pytest.raises(SourceError, match=re.escape(f"cannot read Avro file {str(path)!r}")):
        await AvroSource(path).open(SourceContext("src"))


async def test_a_truncated_file_is_a_source_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "cut.avro"
    write_blocks(path, RECORDS, 50)
    path.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(SourceError, match=re.escape(f"cannot read Avro file {str(path)!r}")):
        await read_all(AvroSource(path))


async def test_positions_count_records_and_resume_inside_and_across_blocks_and_files(
    tmp_path: Path,
) -> None:
    write_blocks(tmp_path / "p0.avro", RECORDS[:45], 10)
    write_blocks(tmp_path / "p1.avro", RECORDS[45:90], 7)
    pattern = tmp_path / "p*.avro"
    source = AvroSource(pattern)
    await source.open(SourceContext("src"))
    assert source.position() == {"file": str(tmp_path / "p0.avro"), "records": 0}
    seen: list[Any] = []
    positions = []
    while (batch := await source.read_batch(6, 0.1)) is not None:
        seen.extend(batch)
        positions.append((len(seen), source.position()))
    await source.close()
    assert seen == RECORDS[:90]
    assert positions[0][1] == {"file": str(tmp_path / "p0.avro"), "records": 6}
    for count, position in positions:
        assert await read_all(AvroSource(pattern), 6, position=position) == RECORDS[count:90]


async def test_resuming_past_the_end_of_a_file_is_a_source_error(tmp_path: Path) -> None:
    path = tmp_path / "a.avro"
    write_blocks(path, RECORDS[:5], 2)
    with pytest.raises(SourceError, match="after 9 records: it holds only 5"):
        await AvroSource(path).open(SourceContext("src"), {"file": str(path), "records": 9})


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    total=st.integers(min_value=0, max_value=60),
    block_size=st.integers(min_value=1, max_value=9),
    files=st.integers(min_value=1, max_value=3),
    first_batch=st.integers(min_value=1, max_value=10),
    batches_before_stop=st.integers(min_value=0, max_value=8),
    second_batch=st.integers(min_value=1, max_value=10),
)
def test_any_split_point_gives_the_same_concatenated_records(
    tmp_path_factory: pytest.TempPathFactory,
    total: int,
    block_size: int,
    files: int,
    first_batch: int,
    batches_before_stop: int,
    second_batch: int,
) -> None:
    records = RECORDS[:total]
    directory = tmp_path_factory.mktemp("split")
    per_file = -(-total // files) if total else 1
    for i in range(files):
        write_blocks(
            directory / f"f{i}.avro", records[i * per_file : (i + 1) * per_file], block_size
        )

    async def scenario() -> list[Any]:
        pattern = directory / "f*.avro"
        source = AvroSource(pattern)
        await source.open(SourceContext("src"))
        head: list[Any] = []
        for _ in range(batches_before_stop):
            batch = await source.read_batch(first_batch, 0.1)
            if batch is None:
                break
            head.extend(batch)
        position = orjson.loads(orjson.dumps(source.position()))
        await source.close()
        return head + await read_all(AvroSource(pattern), second_batch, position=position)

    assert asyncio.run(scenario()) == records


@dataclasses.dataclass
class Sale:
    item: str
    qty: int
    note: str | None = None


SaleTuple = namedtuple("SaleTuple", "item qty note")


async def test_the_sink_takes_dataclasses_and_namedtuples(tmp_path: Path) -> None:
    path = tmp_path / "out.avro"
    await write_all(AvroSink(path, SCHEMA), [Sale("a", 1), SaleTuple("b", 2, "x")])
    assert await read_all(AvroSource(path)) == [
        {"item": "a", "qty": 1, "note": None},
        {"item": "b", "qty": 2, "note": "x"},
    ]


async def test_a_record_not_matching_the_schema_is_a_sink_error_and_leaves_no_trace(
    tmp_path: Path,
) -> None:
    path = tmp_path / "out.avro"
    sink = AvroSink(path, SCHEMA)
    await sink.open(SinkContext("sink", "flow"))
    sink.write_batch(RECORDS[:3])
    length = sink.committed_length()
    # Enough good records before the bad one that fastavro already wrote a block.
    bad_batch = [*RECORDS[3:200], *RECORDS[3:200], {"item": "x", "qty": 1.5}]
    with pytest.raises(SinkError) as caught:
        sink.write_batch(bad_batch)
    assert str(caught.value).startswith(
        f"Avro sink {str(path)!r}: cannot write record 394 of the batch (type dict): "
    )
    assert "expected long" in str(caught.value)
    assert sink.committed_length() == length
    sink.write_batch(RECORDS[3:5])
    await sink.close()
    assert await read_all(AvroSource(path)) == RECORDS[:5]


async def test_an_invalid_schema_is_a_sink_error_when_the_sink_is_made(tmp_path: Path) -> None:
    with pytest.raises(
        SinkError, match=re.escape(f"Avro sink {str(tmp_path / 'x.avro')!r}: invalid schema")
    ):
        AvroSink(
            tmp_path / "x.avro",
            {"type": "record", "name": "R", "fields": [{"name": "a", "type": "nope"}]},
        )


async def test_an_empty_stream_publishes_a_valid_file_with_the_schema(tmp_path: Path) -> None:
    path = tmp_path / "empty.avro"
    await write_all(AvroSink(path, SCHEMA))
    source = AvroSource(path)
    assert await read_all(source) == []
    assert source.writer_schema is not None
    assert source.writer_schema["name"] == "Sale"


async def test_a_flow_reads_maps_and_writes_avro_end_to_end(tmp_path: Path) -> None:
    source_path, out_path = tmp_path / "in.avro", tmp_path / "out.avro"
    write_blocks(source_path, RECORDS, 30)
    flow = sc.Dataflow("files-avro")
    flow.source(AvroSource(source_path), batch_size=25).map(
        lambda r: {**r, "qty": r["qty"] * 10}
    ).sink(AvroSink(out_path, SCHEMA))
    await flow.run()
    assert await read_all(AvroSource(out_path)) == [{**r, "qty": r["qty"] * 10} for r in RECORDS]
