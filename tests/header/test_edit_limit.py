"""The edit counter never wraps: past 4294967295 `stamp header` refuses (issue 10 item 14)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support import GitRepo, run_stamp


def _set_edit(repo: GitRepo, edit: int) -> None:
    state = repo.path / ".git" / "stamp" / "edit.json"
    record = json.loads(state.read_text())
    record["edit"] = edit
    state.write_text(json.dumps(record))


def test_last_edit_renders_and_the_next_is_refused(repo: GitRepo) -> None:
    assert run_stamp("header", cwd=repo.path).returncode == 0
    _set_edit(repo, 4294967294)
    repo.write("main.c", "int a;\n")
    done = run_stamp("header", "--json", cwd=repo.path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["edit"] == 4294967295
    generated = Path(repo.path / "build" / "stamp" / "stamp.c").read_text()
    assert "4294967295" in generated

    repo.write("main.c", "int b;\n")
    done = run_stamp("header", cwd=repo.path)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "4294967296" in done.stderr and "at most 4294967295" in done.stderr
    assert "edit.json" in done.stderr  # how to reset
    assert "4294967296" not in Path(repo.path / "build" / "stamp" / "stamp.c").read_text()
