"""The ``streamcore`` command's exit statuses, in a module of their own so that the
command can answer a usage error without importing the runner."""

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_USAGE"]

EXIT_OK = 0
"""The run ended, or was stopped, as asked."""
EXIT_FAILED = 1
"""The run failed."""
EXIT_USAGE = 2
"""Nothing ran: the command line, the config or the target needs fixing."""
