"""Scale-out over a partition group: one task, a copy of the flow, per assigned partition.

Design: docs/scale-out.md, docs/architecture.md
"""

from streamcore.scaleout.rewrite import partition_group_of, split_at_repartition, task_flow
from streamcore.scaleout.supervisor import PartitionedRuntime

__all__ = ["PartitionedRuntime", "partition_group_of", "split_at_repartition", "task_flow"]
