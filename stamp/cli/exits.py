"""The one place where an outcome or an error becomes an exit code (SPEC section 3).

Both the click CLI (`stamp.cli.app`) and the click-free `stamp header` fast path
(`stamp.cli.entry`) end here, so an error reads the same and exits the same whichever
path ran. Nothing here imports click: the fast path must not pay for it.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, TextIO

from stamp.errors import (
    EXIT_BROKEN_PIPE,
    EXIT_INTERRUPTED,
    EXIT_MISMATCH,
    EXIT_NO_REPORT,
    EXIT_OK,
    StampError,
)

if TYPE_CHECKING:
    from stamp.device.fleet_report import FleetOutcome
    from stamp.device.verify import VerdictStatus


def for_verdict(status: VerdictStatus | None) -> int:
    """0 verified, 1 mismatch or an MCUboot image running unconfirmed (it reverts at the
    next reset: not the state asked for), 3 no report (also when there was no verdict)."""
    from stamp.device.verify import VerdictStatus

    if status is VerdictStatus.VERIFIED:
        return EXIT_OK
    if status in (VerdictStatus.MISMATCH, VerdictStatus.UNCONFIRMED):
        return EXIT_MISMATCH
    return EXIT_NO_REPORT


def for_fleet(outcome: FleetOutcome) -> int:
    """0 every online device runs the expected build, 1 some run another, 3 some silent."""
    from stamp.device.fleet_report import FleetOutcome

    if outcome is FleetOutcome.ALL_EXPECTED:
        return EXIT_OK
    if outcome is FleetOutcome.MISMATCH:
        return EXIT_MISMATCH
    return EXIT_NO_REPORT


def for_error(exc: StampError, *, verbose: bool = False, stream: TextIO | None = None) -> int:
    """Print an expected error as one line (its detail too with -v); its exit code."""
    from stamp.cli.terminal import paint

    out = stream or sys.stderr
    out.write(f"{paint('stamp: error:', 'red', out, bold=True)} {exc}\n")
    if verbose and exc.detail:
        out.write(f"stamp: detail: {exc.detail}\n")
    return exc.exit_code


def for_interrupt(stream: TextIO | None = None) -> int:
    """Ctrl-C: say so on one line; 130."""
    (stream or sys.stderr).write("\nstamp: interrupted\n")
    return EXIT_INTERRUPTED


def for_broken_pipe() -> int:
    """The reader closed stdout: silence further writes to it; 141, never 1 ("mismatch")."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    return EXIT_BROKEN_PIPE
