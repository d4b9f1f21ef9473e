"""``python -m streamcore``: the same program as the ``streamcore`` command."""

from streamcore.daemon.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
