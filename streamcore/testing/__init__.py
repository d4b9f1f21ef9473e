"""The public test kit: virtual-time stage drivers and the state-store contract suite.

``StageDriver`` runs one window or keyed process stage with explicit records and
watermarks (docs/event-time.md#the-test-kit). The state-store contract suite lives in
``streamcore.testing.state_contract`` (it imports pytest, so it is not imported here).
"""

from streamcore.testing.driver import StageDriver

__all__ = ["StageDriver"]
