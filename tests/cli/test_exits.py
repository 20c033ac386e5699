"""Exit codes come from one place and cannot be mistaken for "mismatch" (SPEC section 3)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from stamp.cli import exits
from stamp.cli.demo_story import DemoFailed
from stamp.device.verify import VerdictStatus
from stamp.errors import (
    EXIT_BROKEN_PIPE,
    EXIT_INTERNAL,
    EXIT_MISMATCH,
    EXIT_NO_REPORT,
    EXIT_OK,
    ArtifactError,
    DeviceUnreachable,
)
from tests.support import REPO_ROOT, git_env


def test_verdicts_map_to_the_spec_codes() -> None:
    assert exits.for_verdict(VerdictStatus.VERIFIED) == EXIT_OK == 0
    assert exits.for_verdict(VerdictStatus.MISMATCH) == EXIT_MISMATCH == 1
    assert exits.for_verdict(VerdictStatus.NO_REPORT) == EXIT_NO_REPORT == 3
    assert exits.for_verdict(None) == EXIT_NO_REPORT


def test_an_internal_demo_failure_is_not_a_mismatch() -> None:
    assert DemoFailed("step x").exit_code == EXIT_INTERNAL
    assert EXIT_INTERNAL not in (0, 1, 2, 3, 130)


def test_errors_print_one_line_and_the_detail_only_when_verbose(tmp_path: Path) -> None:
    out = tmp_path / "err.txt"
    with out.open("w") as stream:
        code = exits.for_error(ArtifactError("bad file", detail="why"), stream=stream)
    assert code == 2
    assert out.read_text() == "stamp: error: bad file\n"
    with out.open("w") as stream:
        code = exits.for_error(
            DeviceUnreachable("gone", detail="ECONNREFUSED"), verbose=True, stream=stream
        )
    assert code == 3
    assert out.read_text() == "stamp: error: gone\nstamp: detail: ECONNREFUSED\n"


def test_a_closed_stdout_exits_141_without_a_traceback() -> None:
    # `stamp --help | head -c0`: the reader is gone before stamp writes. Not 1 ("mismatch").
    read_end, write_end = os.pipe()
    os.close(read_end)
    done = subprocess.run(
        [sys.executable, "-m", "stamp", "inspect", "--help"],
        cwd=REPO_ROOT,
        env={**git_env(), "NO_COLOR": "1"},
        stdout=write_end,
        stderr=subprocess.PIPE,
        text=True,
        timeout=60,
    )
    os.close(write_end)
    assert done.returncode == EXIT_BROKEN_PIPE, done.stderr
    assert "Traceback" not in done.stderr
