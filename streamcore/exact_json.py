"""JSON decoding that keeps integers of any size exact.

orjson decodes an integer beyond 64 bits (below -2**63 or above 2**64 - 1) as a float,
silently rounding ``100000000000000000000000000001`` to ``1e+29``. Such an integer has at
least 19 digits in a row, so text with a run of 19 digits is decoded by the standard
library instead (exact ``int``, slower); all other text keeps orjson's speed. A long run
of digits inside a string or a float only costs the slower decoder, never a wrong value.
Design: docs/connectors-files.md#json-lines
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

__all__ = ["loads", "may_lose_precision"]

_LONG_DIGITS = re.compile(rb"\d{19}")
_LONG_DIGITS_TEXT = re.compile(r"\d{19}")


def may_lose_precision(data: bytes | str) -> bool:
    """True when orjson might round an integer in ``data`` (a run of 19 or more digits)."""
    if isinstance(data, str):
        return _LONG_DIGITS_TEXT.search(data) is not None
    return _LONG_DIGITS.search(data) is not None


def loads(data: bytes | str) -> Any:
    """One JSON value, integers exact whatever their size; ``ValueError`` for bad JSON."""
    if may_lose_precision(data):
        return json.loads(data)
    return orjson.loads(data)
