"""The public test kit: virtual-time stage drivers, a manual clock, the state-store contract suite.

``StageDriver`` runs one window or keyed process stage with explicit records and
watermarks (docs/event-time.md#the-test-kit); ``JoinDriver`` does the same for a join,
feeding each side by hand (docs/joins.md). ``ManualClock`` is a wall clock that moves
only when told, for ``flow.source(..., advance_when_idle=..., clock=...)``. The
state-store contract suite lives in ``streamcore.testing.state_contract`` (it imports
pytest, so it is not imported here).
"""

from streamcore.testing.clock import ManualClock
from streamcore.testing.driver import StageDriver
from streamcore.testing.join_driver import JoinDriver

__all__ = ["JoinDriver", "ManualClock", "StageDriver"]
