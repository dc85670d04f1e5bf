"""Entry point: ``python -m sandbox.leadgen --port P --data-dir D`` runs the server;
``python -m sandbox.leadgen admin --url URL <command>`` runs the admin CLI."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "admin":
        from .cli import main as cli_main

        return cli_main(argv[1:])
    from .server import main as server_main

    return server_main(argv)


if __name__ == "__main__":
    sys.exit(main())
