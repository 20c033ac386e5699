"""Logging for the hot path that costs nothing until logging is wanted.

`stamp header` runs on every build, and importing `logging` (with traceback, threading,
string, tokenize…) is a measurable share of its no-op time (bench/README.md). Debug
records are only ever shown with `-v`, which goes through the click CLI and configures
logging; until something has imported `logging`, a debug record has nowhere to go and
is dropped unformatted, and a warning is written to stderr in the CLI's own format.
Modules off the hot path use `logging` directly.
"""

from __future__ import annotations

import sys
from collections.abc import Callable


def debug(name: str, msg: str, *args: object) -> None:
    """logging.getLogger(name).debug(...), if logging is in use at all."""
    logging = sys.modules.get("logging")
    if logging is not None:
        logging.getLogger(name).debug(msg, *args)


def debug_lazy(name: str, make: Callable[[], str]) -> None:
    """A debug record whose text is only built when logging is in use."""
    if "logging" in sys.modules:
        debug(name, "%s", make())


def warning(name: str, msg: str, *args: object) -> None:
    """A warning: through logging when it is configured, else straight to stderr."""
    logging = sys.modules.get("logging")
    if logging is not None:
        logging.getLogger(name).warning(msg, *args)
    else:
        sys.stderr.write(f"stamp: warning: {msg % args if args else msg}\n")
