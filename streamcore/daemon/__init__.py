"""The daemon: the ``streamcore`` command line, signal handling and scheduling of pipelines.

``cli`` parses the command and maps outcomes to exit statuses; ``target`` loads
``module:attr``; ``run`` runs what was loaded under ``signals``; ``logs`` sets up the
root logger. Nothing here is imported by the rest of the engine.
"""

from streamcore.daemon.cli import main

__all__ = ["main"]
