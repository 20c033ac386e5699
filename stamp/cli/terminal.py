"""Terminal output: colour only on a terminal and never with NO_COLOR; logging for -v/-q.

Nothing here imports click, so the `stamp header` fast path can use it too.
"""

from __future__ import annotations

import os
import sys
from typing import Any, TextIO

from stamp.fileio import relative_path

_COLOURS = {"red": 31, "green": 32, "yellow": 33, "blue": 34, "magenta": 35, "cyan": 36}


def use_colour(stream: TextIO) -> bool:
    """True when `stream` is a terminal and NO_COLOR is unset (https://no-color.org)."""
    if "NO_COLOR" in os.environ:
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def paint(text: str, colour: str, stream: TextIO | None = None, *, bold: bool = False) -> str:
    """`text` in `colour` when `stream` (default stdout) shows colour."""
    if not use_colour(stream or sys.stdout):
        return text
    code = f"{'1;' if bold else ''}{_COLOURS[colour]}"
    return f"\033[{code}m{text}\033[0m"


def paint_label(sentence: str, colour: str, stream: TextIO) -> str:
    """`LABEL: rest` with the label painted (bold), e.g. a verdict's `VERIFIED:`."""
    label, _, rest = sentence.partition(": ")
    return f"{paint(label + ':', colour, stream, bold=True)} {rest}"


def shown_path(path: os.PathLike[str] | str, cwd: str | None = None) -> str:
    """`path` relative to the working directory when it is inside it, else absolute."""
    return relative_path(path, cwd or os.curdir) or os.path.abspath(path)


def print_json(record: Any, stream: TextIO | None = None) -> None:
    """One JSON document on stdout, sorted keys, newline-terminated."""
    import json

    out = stream or sys.stdout
    out.write(json.dumps(record, indent=2, sort_keys=True) + "\n")
    out.flush()


def setup_logging(verbosity: int) -> None:
    """-v shows debug detail, -q only errors; messages go to stderr prefixed `stamp:`."""
    import logging

    level = logging.DEBUG if verbosity > 0 else logging.ERROR if verbosity < 0 else logging.WARNING
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("stamp: %(levelname)s: %(message)s"))
    root = logging.getLogger("stamp")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


class Progress:
    """Progress while waiting: a rewritten status line on a terminal, plain lines otherwise."""

    def __init__(self, stream: TextIO | None = None, *, quiet: bool = False) -> None:
        self.stream = stream or sys.stderr
        self.quiet = quiet
        # A terminal gets the redrawn status line whether or not NO_COLOR is set.
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._last_plain = ""
        self._open_line = False

    def status(self, text: str) -> None:
        """Replace the status line (terminal) or print it when it changed (pipe)."""
        if self.quiet:
            return
        if self.tty:
            self.stream.write("\r\033[K" + text)
            self._open_line = True
        elif text != self._last_plain:
            self.stream.write(text + "\n")
            self._last_plain = text
        self.stream.flush()

    def line(self, text: str) -> None:
        """A permanent line (an event worth keeping in the scrollback)."""
        if self.quiet:
            return
        self.done()
        self.stream.write(text + "\n")
        self.stream.flush()

    def done(self) -> None:
        """Finish the status line so later output starts on a fresh line."""
        if self._open_line:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self._open_line = False
