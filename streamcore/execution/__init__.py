"""Building a graph into actors and running them: ``Runtime``, one attempt of a run.

Above the operators (it asks the step registry for each node's step) and below the
scale-out supervisor and the run handle. Design: docs/architecture.md
"""
