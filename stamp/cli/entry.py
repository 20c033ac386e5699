"""The `stamp` executable: a click-free fast path for `stamp header`, click for the rest.

`stamp header` runs on every build of every user, usually with nothing changed; importing
click costs about as much as the whole no-op run (see bench/README.md). So the exact
forms a Makefile uses are parsed here by hand and everything else — any other command,
`--help`, `-v`, anything unusual — goes to the click CLI, which defines the same options
(tests/cli/test_main_fastpath.py checks that both paths behave the same).

Ctrl-C is handled from the first statement on (issue 10): while modules load, SIGINT
ends the process at once with exit 130 (nothing has started that needs cleaning up);
once a command runs it becomes a KeyboardInterrupt that the command's `finally` blocks
see (stamp.cli.app and `main` below turn it into exit 130), and a second SIGINT, or one
during cleanup, ends the process at once after stopping the children stamp.proc started.
"""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType

INTERRUPTED = 130
"""SPEC section 3's exit code for an interrupt (stamp.errors.EXIT_INTERRUPTED; not imported
here so that the handler is installed before any other stamp module loads)."""


def exit_interrupted(signum: int = signal.SIGINT, frame: FrameType | None = None) -> None:
    """End the process now with exit 130, stopping stamp's children first."""
    proc = sys.modules.get("stamp.proc")
    if proc is not None:
        proc.stop_all()
    os.write(2, b"\nstamp: interrupted\n")
    os._exit(INTERRUPTED)


def raise_interrupt(signum: int = signal.SIGINT, frame: FrameType | None = None) -> None:
    """Raise KeyboardInterrupt once; any later SIGINT ends the process (exit_interrupted)."""
    signal.signal(signal.SIGINT, exit_interrupted)
    raise KeyboardInterrupt


signal.signal(signal.SIGINT, exit_interrupted)
# A launcher may start stamp with SIGINT blocked so that an interrupt during the
# interpreter's own startup (site, before any stamp code runs) waits for this handler
# (tests/cli/test_signals.py does); stamp handles it from here on.
signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})

from collections.abc import Callable  # noqa: E402 (after the handler, on purpose)
from pathlib import Path  # noqa: E402

_FLAGS = {"--json": "as_json", "--strict": "strict"}


def _parse_fast(argv: list[str]) -> dict[str, object] | None:
    """Keyword arguments for header_main, or None when click must parse `argv`.

    `-q` and `--config` may stand before or after `header`, as with click (SPEC section 3).
    """
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
        if arg in ("-q", "--quiet"):
            options["quiet"] = True
        elif arg == "--config" or arg.startswith("--config="):
            value = arg.partition("=")[2] if "=" in arg else next(args, None)
            if not value:
                return None
            options["config_path"] = Path(value)
        elif not seen_header:
            if arg != "header":
                return None
            seen_header = True
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
        from stamp.cli.app import run

        code = _interruptible(run)
    else:
        from stamp.cli.header_print import header_main

        code = _interruptible(lambda: _header(header_main, options))
    # The work is done and its exit code decided: an interrupt now changes nothing, and
    # during the interpreter's shutdown (which restores the default action) it would kill
    # the process with -2. So it is held until the process has exited.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    sys.exit(code)


def _interruptible(body: Callable[[], int]) -> int:
    """Run `body` with SIGINT raising KeyboardInterrupt; exit 130 when it does."""
    signal.signal(signal.SIGINT, raise_interrupt)
    try:
        return body()
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, exit_interrupted)
        from stamp.cli import exits

        return exits.for_interrupt()
    finally:
        signal.signal(signal.SIGINT, exit_interrupted)


def _header(header_main: Callable[..., int], options: dict[str, object]) -> int:
    from stamp.cli import exits
    from stamp.cli.header_print import header_main
    from stamp.errors import StampError

    try:
        return header_main(**options)
    except StampError as exc:
        return exits.for_error(exc)
    except BrokenPipeError:
        return exits.for_broken_pipe()
