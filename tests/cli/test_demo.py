"""`stamp demo`, what `make demo` runs: the whole loop, its tidying up, also on Ctrl-C."""

from __future__ import annotations

import io
import os
import re
import select
import signal
import time
from pathlib import Path

from stamp.artifact.history import History
from stamp.cli.demo_story import run_demo
from tests.support import run_stamp, spawn_stamp
from tests.support.cloud import no_thread_leaks

START_TIMEOUT = 60.0


def test_the_demo_shows_a_caught_failure_a_retry_and_a_stale_device(tmp_path: Path) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    done = run_stamp("demo", cwd=tmp_path, env={"TMPDIR": str(scratch)})
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert done.stderr == ""
    # Section 1's failure, as it happens: "success", a restart, no new app hash.
    first_attempt = out.split("stamp: attempt 2/3")[0]
    assert "event: spark/flash/status: success" in first_attempt
    assert "status: spark/status: online" in first_attempt
    assert "spark/device/app-hash" not in first_attempt
    assert (
        "stamp: attempt 1/3: NO REPORT: device online, no stamp event; app hash unchanged "
        "since last session, which usually means the flash did not take; retrying"
    ) in out
    assert re.search(r"^VERIFIED: device runs edit 1 \(git [0-9a-f]{8}, app hash ", out, re.M)
    assert re.search(
        r"^MISMATCH: device runs edit 1 \(git [0-9a-f]{8}, built just now\); expected edit 2$",
        out,
        re.M,
    )
    assert "the cloud: Update started" in out
    assert list(scratch.iterdir()) == []  # the project is gone


def test_keep_leaves_the_project(tmp_path: Path) -> None:
    out = io.StringIO()
    with no_thread_leaks():
        assert run_demo(out, keep=True, parent=tmp_path) == 0
    (base,) = tmp_path.iterdir()
    project = base / "photon-app"
    assert out.getvalue().endswith(f"\nThe demo project is kept in {project}\n")
    assert (project / "build" / "firmware.stamp.json").is_file()
    assert (project / "build" / "stamp" / "stamp.c").is_file()
    assert "BLINK_MS = 250;" in (project / "main.c").read_text()
    with History.open(project / ".git" / "stamp") as history:
        assert history.count() == 2


def test_ctrl_c_tidies_up(tmp_path: Path) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    proc = spawn_stamp("demo", cwd=tmp_path, env={"TMPDIR": str(scratch)})
    try:
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        deadline = time.monotonic() + START_TIMEOUT
        seen = b""
        while b"\n$ stamp flash" not in seen:
            assert time.monotonic() < deadline, f"the demo did not start flashing: {seen!r}"
            ready, _, _ = select.select([fd], [], [], 0.1)
            if ready:
                chunk = os.read(fd, 65536)
                assert chunk, f"the demo ended before it flashed: {seen!r}"
                seen += chunk
        assert list(scratch.iterdir()) != []  # the project exists while it runs
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=START_TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    assert err.endswith("stamp: interrupted\n")
    assert list(scratch.iterdir()) == []
