"""Staged entries of an exactly-once ``RedisStreamSink``, and the script that publishes them.

Keys of one sink (flow ``F``, stage ``S``, stream ``X``), all under the hash tag
``{X}`` so that they and the stream live in one cluster slot:
- ``<prefix>:{X}:F/S:epoch``: incremented by every ``open``; only the holder of the
  current value may publish (a process still running from before a restart is fenced).
- ``<prefix>:{X}:F/S:published``: the sequence number of the last staged list
  published into the stream (the sink's progress marker).
- ``<prefix>:{X}:F/S:staged:<epoch>:<seq>``: a Redis list holding the entries written
  between two barriers, flattened as ``n, field1, value1, ... fieldn, valuen`` per entry.

``PUBLISH`` runs in Redis as one script, so it is applied all or nothing: it XADDs the
entries of every staged list after the marker up to ``upto`` in order, deletes those
lists and moves the marker, or does nothing when the marker is already there (a
replayed commit). Design: docs/connectors-redis.md#exactly-once
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["PUBLISH", "SinkKeys", "flatten"]

# KEYS: stream, published, epoch. ARGV: staged-key prefix (ends with ":"), upto, my epoch,
# maxlen ("" for none). Returns the number of entries added, or an error when fenced.
PUBLISH = """
local epoch = redis.call('GET', KEYS[3])
if epoch ~= ARGV[3] then
  return redis.error_reply('FENCED epoch ' .. tostring(epoch) .. ' is not ' .. ARGV[3])
end
local done = tonumber(redis.call('GET', KEYS[2]) or '0')
local upto = tonumber(ARGV[2])
if upto <= done then return 0 end
local added = 0
for seq = done + 1, upto do
  local key = ARGV[1] .. seq
  local items = redis.call('LRANGE', key, 0, -1)
  local i = 1
  while i <= #items do
    local n = tonumber(items[i])
    local args = {}
    if ARGV[4] ~= '' then
      args[1] = 'MAXLEN'; args[2] = '~'; args[3] = ARGV[4]; args[4] = '*'
    else
      args[1] = '*'
    end
    local base = #args
    for j = 1, 2 * n do args[base + j] = items[i + j] end
    redis.call('XADD', KEYS[1], unpack(args))
    added = added + 1
    i = i + 1 + 2 * n
  end
  redis.call('DEL', key)
end
redis.call('SET', KEYS[2], upto)
return added
"""


class SinkKeys:
    """The Redis key names of one exactly-once stream sink."""

    def __init__(self, key_prefix: str, stream: str, flow: str, stage: str) -> None:
        base = f"{key_prefix}:{{{stream}}}:{flow}/{stage}"
        self.base = base
        self.epoch = f"{base}:epoch"
        self.published = f"{base}:published"
        self.staged_root = f"{base}:staged:"

    def staged_prefix(self, epoch: int) -> str:
        """Prefix of the staged lists of ``epoch``; the sequence number follows it."""
        return f"{self.staged_root}{epoch}:"

    def staged(self, epoch: int, seq: int) -> str:
        """The staged list of sequence number ``seq`` written in ``epoch``."""
        return f"{self.staged_root}{epoch}:{seq}"


def flatten(entries: Iterable[Mapping[Any, Any]]) -> list[Any]:
    """``[n, f1, v1, ..., fn, vn, ...]`` for a list of encoded field mappings."""
    out: list[Any] = []
    extend, append = out.extend, out.append
    for fields in entries:
        append(len(fields))
        for item in fields.items():
            extend(item)
    return out
