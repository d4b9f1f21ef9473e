"""Scale-out over a partition group: one task, a copy of the flow, per assigned partition.

Design: docs/scale-out.md, docs/architecture.md
"""
