"""The logical graph of a dataflow: plain-data nodes, whole-graph validation and queries, planning.

Below the operators and the execution layer: nothing here runs. Design: docs/architecture.md
"""
