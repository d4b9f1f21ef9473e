"""Root logging for the command line: ``text`` lines or one ``json`` object per line, on stderr.

stderr keeps stdout free for what the command prints (plans, pipeline progress), so
either can be piped on its own. JSON records carry ``time`` (UTC, ISO 8601), ``level``,
``logger`` and ``message``, plus ``exc`` when the record has an exception, plus the
``key=value`` pairs of the message as fields of their own: the project's log lines name
what they are about that way (``checkpoint complete flow=clicks checkpoint=12 ...``), so
``flow``, ``stage``, ``checkpoint`` and the rest can be filtered on.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime

__all__ = ["LOG_FORMATS", "LOG_LEVELS", "JsonFormatter", "configure_logging", "message_fields"]

LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_PAIR = re.compile(
    r"(?<![\w.])([a-z_][a-z0-9_]*)="
    r"('(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|\[[^\]]*\]|\{[^}]*\}|[^\s,]+)"
)
_RESERVED = frozenset({"time", "level", "logger", "message", "exc"})


def message_fields(message: str) -> dict[str, object]:
    """The ``key=value`` pairs of a log message: ints as ints, quotes taken off."""
    fields: dict[str, object] = {}
    for key, raw in _PAIR.findall(message):
        if key in _RESERVED:
            continue
        value: object = raw
        if raw[:1] in ("'", '"') and raw[-1:] == raw[:1] and len(raw) >= 2:
            value = raw[1:-1]
        else:
            try:
                value = int(raw)
            except ValueError:
                try:
                    value = float(raw)
                except ValueError:
                    value = raw
        fields[key] = value
    return fields


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message (and exc)."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        message = record.getMessage()
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": message,
        }
        entry.update(message_fields(message))
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: str = "INFO", fmt: str = "text") -> None:
    """Replace the root logger's handlers with one stderr handler in ``fmt`` at ``level``."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(_TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
