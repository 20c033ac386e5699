"""kill -9 at random instants: the state and outputs are always the old or the new, never torn."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time

from stamp.record import find_records
from tests.support import GitRepo, git_env, run_stamp


def test_kill_at_random_instants(repo: GitRepo) -> None:
    rng = random.Random(1234)
    env = git_env()
    env.pop("GIT_AUTHOR_DATE")
    env.pop("GIT_COMMITTER_DATE")
    state_file = repo.path / ".git" / "stamp" / "edit.json"
    stamp_c = repo.path / "build" / "stamp" / "stamp.c"
    highest = 0
    killed_midway = 0
    for attempt in range(40):
        repo.write("main.c", f"int attempt_{attempt};\n")
        proc = subprocess.Popen(
            [sys.executable, "-m", "stamp", "header"],
            cwd=repo.path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(0.0, 0.25))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if proc.returncode == -signal.SIGKILL:
            killed_midway += 1
        # Whatever instant it died at: every file is complete and parseable.
        if state_file.exists():
            state = json.loads(state_file.read_text())
            assert state["edit"] >= highest
            highest = state["edit"]
        if stamp_c.exists():
            text = stamp_c.read_text()
            assert text.endswith("}\n")
            records = find_records(text.encode())  # the C text holds no binary record
            assert records == []
            assert "STAMPREC" not in text and "'S', 'T', 'A', 'M', 'P'" in text
        # A tmp file may be left by the kill; it must never be mistaken for an output.
        for leftover in (repo.path / "build" / "stamp").glob("*"):
            assert leftover.name in {"stamp.c", "stamp.h"} or leftover.name.endswith(".tmp")
    assert killed_midway > 0  # the test really interrupted runs
    # Temp files a kill left mid-write are removed by the next run that writes.
    out_dir = repo.path / "build" / "stamp"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / ".stamp.c.planted.tmp").write_text("torn")
    (state_file.parent / ".edit.json.planted.tmp").write_text("torn")
    repo.write("main.c", "int after_the_kills;\n")
    done = run_stamp("header", "--json", cwd=repo.path)
    assert not list(out_dir.glob(".*.tmp")) and not list(state_file.parent.glob(".*.tmp"))
    assert done.returncode == 0, done.stderr
    final = json.loads(done.stdout)["edit"]
    assert final >= highest
    again = json.loads(run_stamp("header", "--json", cwd=repo.path).stdout)
    assert again["edit"] == final and again["changed"] == []
