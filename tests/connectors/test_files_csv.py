"""CsvSource and CsvSink, driven directly through their methods."""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import io
import re
from collections import namedtuple
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import streamcore as sc
from connectors.files import CsvSink, CsvSource
from streamcore.errors import SinkError, SourceError
from streamcore.io import SinkContext, SourceContext


async def read_all(
    source: CsvSource,
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


async def write_all(sink: CsvSink, *batches: list[Any]) -> None:
    await sink.open(SinkContext("sink", "flow"))
    for batch in batches:
        sink.write_batch(batch)
    await sink.close()


ROWS = [{"user": f"u{i % 5}", "amount": str(i * 2.5), "ts": str(1_000 + i)} for i in range(120)]


async def test_rows_written_by_the_sink_read_back_as_dicts_of_str(tmp_path: Path) -> None:
    path = tmp_path / "out.csv"
    await write_all(CsvSink(path), ROWS[:50], [], ROWS[50:])
    assert path.read_text().splitlines()[0] == "user,amount,ts"
    assert path.read_text().count("user,amount,ts") == 1
    assert await read_all(CsvSource(path), 9) == ROWS


async def test_types_convert_the_named_fields(tmp_path: Path) -> None:
    path = tmp_path / "out.csv"
    await write_all(CsvSink(path), ROWS[:3])
    rows = await read_all(CsvSource(path, types={"amount": float, "ts": int}))
    assert rows == [
        {"user": r["user"], "amount": float(r["amount"]), "ts": int(r["ts"])} for r in ROWS[:3]
    ]


async def test_quoted_fields_with_newlines_and_delimiters_survive_a_round_trip(
    tmp_path: Path,
) -> None:
    tricky = [
        {"id": "1", "text": "line one\nline two"},
        {"id": "2", "text": 'say "hi";\r\nthen; leave'},
        {"id": "3", "text": ""},
        {"id": "4", "text": "\n\n"},
    ]
    path = tmp_path / "tricky.csv"
    await write_all(CsvSink(path, delimiter=";"), tricky)
    assert await read_all(CsvSource(path, delimiter=";"), 1) == tricky


async def test_positions_inside_multi_line_rows_resume_exactly(tmp_path: Path) -> None:
    path = tmp_path / "multi.csv"
    path.write_bytes(b'id,text\r\n1,"a\r\nb"\r\n2,plain\r\n3,"c\nd\ne"\r\n4,"x"\r\n')
    expected = [
        {"id": "1", "text": "a\r\nb"},
        {"id": "2", "text": "plain"},
        {"id": "3", "text": "c\nd\ne"},
        {"id": "4", "text": "x"},
    ]
    source = CsvSource(path)
    await source.open(SourceContext("src"))
    positions: list[dict[str, Any]] = []
    while await source.read_batch(1, 0.1) is not None:
        position = source.position()
        assert position is not None
        positions.append(position)
    await source.close()
    assert [p["line"] for p in positions] == [3, 4, 7, 8]
    for done, position in enumerate(positions, start=1):
        assert await read_all(CsvSource(path), position=position) == expected[done:]


async def test_a_glob_reads_each_file_with_its_own_header(tmp_path: Path) -> None:
    (tmp_path / "b.csv").write_text("y,x\n4,3\n")
    (tmp_path / "a.csv").write_text("x,y\n1,2\n")
    assert await read_all(CsvSource(tmp_path / "*.csv")) == [
        {"x": "1", "y": "2"},
        {"x": "3", "y": "4"},
    ]


async def test_a_glob_matching_nothing_fails_at_open_naming_the_pattern(tmp_path: Path) -> None:
    pattern = str(tmp_path / "*.csv")
    with pytest.raises(SourceError, match=re.escape(f"glob {pattern!r} matches no files")):
        await CsvSource(pattern).open(SourceContext("src"))


async def test_blank_lines_and_a_bom_are_skipped_and_empty_files_yield_nothing(
    tmp_path: Path,
) -> None:
    (tmp_path / "a.csv").write_bytes(b"\xef\xbb\xbf\nx,y\n\n1,2\n\n")
    (tmp_path / "b.csv").write_bytes(b"")
    (tmp_path / "c.csv").write_bytes(b"x,y\n")
    assert await read_all(CsvSource(tmp_path / "*.csv")) == [{"x": "1", "y": "2"}]


async def test_a_failed_conversion_fails_the_source_naming_file_line_and_field(
    tmp_path: Path,
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text('user,amount\nu1,1.5\nu2,"multi\nline"\nu3,oops\n')
    with pytest.raises(SourceError) as caught:
        await read_all(CsvSource(path, types={"amount": float}))
    assert str(caught.value).startswith(
        f"source 'src': cannot decode file {path} line 3: field 'amount' value 'multi\\nline': "
    )


async def test_in_dead_letter_mode_bad_rows_go_to_the_callback_and_the_rest_come_through(
    tmp_path: Path,
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("user,amount\nu1,1.5\nu2,abc\nu3,2,extra\nu4,4\n")
    dead: list[tuple[object, BaseException]] = []
    context = SourceContext(
        "src", on_error="dead_letter", dead_letter=lambda r, e: dead.append((r, e))
    )
    rows = await read_all(CsvSource(path, types={"amount": float}), context=context)
    assert rows == [{"user": "u1", "amount": 1.5}, {"user": "u4", "amount": 4.0}]
    assert [raw for raw, _ in dead] == [{"user": "u2", "amount": "abc"}, ["u3", "2", "extra"]]
    assert str(dead[0][1]).startswith(
        f"source 'src': cannot decode file {path} line 3: field 'amount'"
    )
    assert str(dead[1][1]) == (
        f"source 'src': cannot decode file {path} line 4: 3 fields where the header has 2"
    )


async def test_undecodable_bytes_are_a_bad_row_and_reading_continues(tmp_path: Path) -> None:
    path = tmp_path / "bytes.csv"
    path.write_bytes(b"a,b\n1,2\n\xff\xfe,3\n4,5\n")
    context = SourceContext("src", on_error="skip")
    assert await read_all(CsvSource(path), context=context) == [
        {"a": "1", "b": "2"},
        {"a": "4", "b": "5"},
    ]
    assert context.bad_records == 1


async def test_types_naming_a_field_the_header_lacks_fail_at_open(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text("x,y\n1,2\n")
    with pytest.raises(
        SourceError, match=re.escape("types= names ['z'] but the header has ['x', 'y']")
    ):
        await CsvSource(path, types={"z": int}).open(SourceContext("src"))


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    values=st.lists(
        st.tuples(st.text(max_size=8), st.text(alphabet='ab,"\n\r é', max_size=8)), max_size=30
    ),
    files=st.integers(min_value=1, max_value=3),
    first_batch=st.integers(min_value=1, max_value=6),
    batches_before_stop=st.integers(min_value=0, max_value=8),
    second_batch=st.integers(min_value=1, max_value=6),
)
def test_any_split_point_gives_the_same_concatenated_rows(
    tmp_path_factory: pytest.TempPathFactory,
    values: list[tuple[str, str]],
    files: int,
    first_batch: int,
    batches_before_stop: int,
    second_batch: int,
) -> None:
    # csv cannot tell an unquoted lone "\r" from a line end; the writer quotes it.
    rows = [{"k": k, "v": v} for k, v in values]
    directory = tmp_path_factory.mktemp("split")
    per_file = -(-len(rows) // files) if rows else 1
    for i in range(files):
        text = io.StringIO(newline="")
        writer = csv.DictWriter(
            text, ["k", "v"], quoting=csv.QUOTE_NONNUMERIC if i else csv.QUOTE_MINIMAL
        )
        writer.writeheader()
        writer.writerows(rows[i * per_file : (i + 1) * per_file])
        (directory / f"f{i}.csv").write_bytes(text.getvalue().encode())

    async def scenario() -> list[Any]:
        pattern = directory / "f*.csv"
        source = CsvSource(pattern)
        await source.open(SourceContext("src"))
        head: list[Any] = []
        for _ in range(batches_before_stop):
            batch = await source.read_batch(first_batch, 0.1)
            if batch is None:
                break
            head.extend(batch)
        position = orjson.loads(orjson.dumps(source.position()))
        await source.close()
        return head + await read_all(CsvSource(pattern), second_batch, position=position)

    assert asyncio.run(scenario()) == rows


@dataclasses.dataclass
class Sale:
    item: str
    price: float


Pair = namedtuple("Pair", "item price")


async def test_the_sink_takes_dataclasses_and_namedtuples_and_writes_none_as_empty(
    tmp_path: Path,
) -> None:
    path = tmp_path / "out.csv"
    await write_all(CsvSink(path), [Sale("a", 1.5), Pair("b", None), {"item": "c"}])
    assert path.read_text() == "item,price\na,1.5\nb,\nc,\n"


async def test_given_fieldnames_order_the_columns_and_an_empty_stream_writes_the_header(
    tmp_path: Path,
) -> None:
    path = tmp_path / "out.csv"
    await write_all(CsvSink(path, fieldnames=["b", "a"]), [{"a": 1, "b": 2}])
    assert path.read_text() == "b,a\n2,1\n"
    empty = tmp_path / "empty.csv"
    await write_all(CsvSink(empty, fieldnames=["b", "a"]))
    assert empty.read_text() == "b,a\n"


async def test_a_record_with_an_unknown_field_is_a_sink_error_and_writes_nothing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "out.csv"
    sink = CsvSink(path)
    await sink.open(SinkContext("sink", "flow"))
    sink.write_batch([{"a": 1}])
    length = sink.committed_length()
    with pytest.raises(SinkError) as caught:
        sink.write_batch([{"a": 2}, {"a": 3, "b": 4}])
    assert str(caught.value).startswith(
        f"CSV sink {str(path)!r}: record 1 of the batch has fields ['b'] that are not in fieldnames ['a']"
    )
    assert sink.committed_length() == length
    with pytest.raises(SinkError, match="record 0 of the batch has type int"):
        sink.write_batch([5])
    await sink.close()
    assert path.read_text() == "a\n1\n"


async def test_a_flow_reads_maps_and_writes_csv_end_to_end(tmp_path: Path) -> None:
    source_path, out_path = tmp_path / "in.csv", tmp_path / "out.csv"
    await write_all(CsvSink(source_path), ROWS)
    flow = sc.Dataflow("files-csv")
    flow.source(CsvSource(source_path, types={"ts": int}), batch_size=16).filter(
        lambda r: r["ts"] % 2 == 0
    ).map(lambda r: {"user": r["user"], "next_ts": r["ts"] + 1}).sink(CsvSink(out_path))
    await flow.run()
    assert await read_all(CsvSource(out_path, types={"next_ts": int})) == [
        {"user": r["user"], "next_ts": int(r["ts"]) + 1} for r in ROWS if int(r["ts"]) % 2 == 0
    ]
