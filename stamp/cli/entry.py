"""The `stamp` executable: a click-free fast path for `stamp header`, click for the rest.

`stamp header` runs on every build of every user, usually with nothing changed; importing
click costs about as much as the whole no-op run (see bench/README.md). So the exact
forms a Makefile uses are parsed here by hand and everything else — any other command,
`--help`, `-v`, anything unusual — goes to the click CLI, which defines the same options
(tests/cli/test_main_fastpath.py checks that both paths behave the same).
"""

from __future__ import annotations

import sys
from pathlib import Path

_FLAGS = {"--json": "as_json", "--strict": "strict"}


def _parse_fast(argv: list[str]) -> dict[str, object] | None:
    """Keyword arguments for header_main, or None when click must parse `argv`."""
    options: dict[str, object] = {
        "config_path": None,
        "output_dir": None,
        "as_json": False,
        "strict": False,
        "quiet": False,
    }
    args = iter(argv)
    seen_header = False
    for arg in args:
        if not seen_header:
            if arg == "header":
                seen_header = True
            elif arg in ("-q", "--quiet"):
                options["quiet"] = True
            elif arg == "--config" or arg.startswith("--config="):
                value = arg.partition("=")[2] if "=" in arg else next(args, None)
                if not value:
                    return None
                options["config_path"] = Path(value)
            else:
                return None
        elif arg in _FLAGS:
            options[_FLAGS[arg]] = True
        elif arg == "--output-dir" or arg.startswith("--output-dir="):
            value = arg.partition("=")[2] if "=" in arg else next(args, None)
            if not value or value.startswith("-"):
                return None
            options["output_dir"] = Path(value)
        else:
            return None
    return options if seen_header else None


def main() -> None:
    options = _parse_fast(sys.argv[1:])
    if options is None:
        from stamp.cli.app import main as cli_main

        cli_main()
        return
    from stamp.cli import exits
    from stamp.cli.header_print import header_main
    from stamp.errors import StampError

    try:
        code = header_main(**options)  # type: ignore[arg-type]
    except StampError as exc:
        code = exits.for_error(exc)
    except KeyboardInterrupt:
        code = exits.for_interrupt()
    except BrokenPipeError:
        code = exits.for_broken_pipe()
    sys.exit(code)
