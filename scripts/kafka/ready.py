"""Wait until a Kafka broker answers a real metadata request.

Usage: python ready.py BOOTSTRAP PID TIMEOUT_SECONDS

Exits 0 once ``describe_cluster`` lists a broker and a controller, 2 when the process
PID exits first, 1 when the deadline passes. Used by scripts/kafka.sh.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time


def _alive(pid: int) -> bool:
    """True while PID runs; a zombie (exited, not yet reaped by the script) counts as gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


async def _probe(bootstrap: str) -> str | None:
    """Return None when the cluster is ready, else a short reason."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
    try:
        await asyncio.wait_for(admin.start(), timeout=5)
        info = await asyncio.wait_for(admin.describe_cluster(), timeout=5)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(admin.close(), timeout=5)
    brokers = info.get("brokers") or []
    controller = info.get("controller_id")
    if not brokers or controller is None or controller < 0:
        return f"cluster not formed yet: {info!r}"
    return None


async def _main(bootstrap: str, pid: int, timeout: float) -> int:
    # Connection refusals while the broker boots are expected; only the outcome matters.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    deadline = time.monotonic() + timeout
    reason = "no attempt made"
    while True:
        if not _alive(pid):
            print(f"ready.py: broker process {pid} exited", file=sys.stderr)
            return 2
        reason = await _probe(bootstrap) or ""
        if not reason:
            return 0
        if time.monotonic() >= deadline:
            print(f"ready.py: not ready after {timeout:.0f}s: {reason}", file=sys.stderr)
            return 1
        await asyncio.sleep(0.25)


if __name__ == "__main__":
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        sys.exit(64)
    sys.exit(asyncio.run(_main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]))))
