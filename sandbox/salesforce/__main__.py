"""``python -m sandbox.salesforce --port P --data-dir D`` serves; ``... admin ...`` is the admin CLI."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "admin":
        from .cli import main as cli_main

        sys.exit(cli_main(argv[1:]))
    from .server import serve

    serve(argv)


if __name__ == "__main__":
    main()
