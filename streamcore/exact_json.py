"""JSON decoding that keeps integers of any size exact.

orjson decodes an integer beyond 64 bits (below -2**63 or above 2**64 - 1) as a float,
silently rounding ``100000000000000000000000000001`` to ``1e+29``. Such an integer has at
least 19 digits in a row, so text with a run of 19 digits is decoded by the standard
library instead (exact ``int``, slower); all other text keeps orjson's speed. A long run
of digits inside a string or a float only costs the slower decoder, never a wrong value.
``loads_for`` makes that check once for a batch of texts (joined by a byte that is no
digit, so no run spans two of them) instead of once per text.
Design: docs/connectors-files.md#json-lines
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import orjson

__all__ = ["loads", "loads_for", "may_lose_precision"]

# Every digit becomes "0", so a run of 19 digits is a run of 19 "0"s: translate and find
# both run in C, where a regex tries each digit position in turn (5x slower on a batch).
_ZEROS = bytes.maketrans(b"123456789", b"000000000")
_ZEROS_TEXT = str.maketrans("123456789", "000000000")
_RUN = b"0" * 19
_RUN_TEXT = "0" * 19
_SEPARATOR = b"\n"


def may_lose_precision(data: bytes | str) -> bool:
    """True when orjson might round an integer in ``data`` (a run of 19 or more digits)."""
    if isinstance(data, str):
        return _RUN_TEXT in data.translate(_ZEROS_TEXT)
    return _RUN in data.translate(_ZEROS)


def loads(data: bytes | str) -> Any:
    """One JSON value, integers exact whatever their size; ``ValueError`` for bad JSON."""
    if may_lose_precision(data):
        return json.loads(data)
    return orjson.loads(data)


def loads_for(texts: list[bytes]) -> Callable[[bytes | str], Any]:
    """The loads to use for every one of ``texts``: orjson's when none of them has a run
    of 19 digits (the check made once over all of them), else the exact ``loads``."""
    if may_lose_precision(_SEPARATOR.join(texts)):
        return loads
    return orjson.loads
