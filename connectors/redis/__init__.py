"""Redis connectors: ``RedisStreamSource``, ``RedisStreamSink`` and ``RedisHashSink`` over redis-py.

The source reads streams (XREAD, or XREADGROUP in a consumer group) as
``RedisStreamRecord``; each stream is a partition with its own watermark and position,
positions live in checkpoints, and a group's entries are acknowledged only once the
checkpoint covering them is complete. The stream sink adds entries at least once, or
exactly once by publishing each checkpoint interval's entries atomically in step with
checkpoints; the hash sink upserts one hash per key, for serving results.
Connection settings (URL, TLS, timeouts) are the state store's: ``RedisSettings``.
Design: docs/connectors-redis.md
"""

from connectors.redis._record import RedisStreamRecord
from connectors.redis.hash_sink import RedisHashSink
from connectors.redis.source import RedisStreamSource
from connectors.redis.stream_sink import RedisStreamSink

__all__ = ["RedisHashSink", "RedisStreamRecord", "RedisStreamSink", "RedisStreamSource"]
