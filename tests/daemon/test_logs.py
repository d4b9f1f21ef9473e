"""JSON log lines carry the key=value pairs of the message as fields."""

from __future__ import annotations

import json
import logging

from streamcore.daemon.logs import JsonFormatter, message_fields


def test_key_value_pairs_become_fields() -> None:
    message = "checkpoint failed flow=clicks@in:3 checkpoint=12 duration_ms=80.5 error='Redis down: a=b' parts=['a:0', 'a:1']"
    assert message_fields(message) == {
        "flow": "clicks@in:3", "checkpoint": 12, "duration_ms": 80.5, "error": "Redis down: a=b",
        "parts": "['a:0', 'a:1']",
    }


def test_a_json_line_keeps_its_own_keys_first() -> None:
    record = logging.LogRecord("streamcore.checkpoint", logging.INFO, __file__, 1, "done level=9 flow=f", None, None)
    entry = json.loads(JsonFormatter().format(record))
    assert entry["level"] == "INFO" and entry["flow"] == "f" and entry["message"] == "done level=9 flow=f"
