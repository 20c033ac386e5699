"""`stamp header`: the edit counter, outputs and errors (real git repos, whole processes)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from stamp.config import Config
from stamp.header.run import run_header
from tests.support import GitRepo, make_repo, run_stamp


def header(cwd: Path, *args: str, env: dict[str, str] | None = None) -> dict[str, object]:
    done = run_stamp("header", "--json", *args, cwd=cwd, env=env)
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout)
    return result


def mtimes(directory: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in directory.iterdir()}


def test_first_run_renders_and_noop_touches_nothing(repo: GitRepo) -> None:
    first = header(repo.path)
    out = repo.path / "build" / "stamp"
    assert first["edit"] == 1 and first["git"] == repo.head and first["dirty"] is False
    assert sorted(Path(str(p)).name for p in first["changed"]) == ["stamp.c", "stamp.h"]  # type: ignore[attr-defined]
    before = mtimes(out)
    contents = {p.name: p.read_bytes() for p in out.iterdir()}
    second = header(repo.path)
    assert second["edit"] == 1 and second["changed"] == []
    assert mtimes(out) == before
    assert {p.name: p.read_bytes() for p in out.iterdir()} == contents


def test_human_output(repo: GitRepo) -> None:
    done = run_stamp("header", cwd=repo.path)
    assert done.returncode == 0
    assert done.stdout.startswith(f"stamp: edit 1 ({repo.head[:8]}) -> build/stamp/stamp.c")
    done = run_stamp("header", cwd=repo.path)
    assert done.stdout == "stamp: unchanged (edit 1)\n"
    repo.write("main.c", "int main(void) { return 2; }\n")
    done = run_stamp("header", cwd=repo.path)
    assert done.stdout == f"stamp: edit 2 ({repo.head[:8]}, dirty) -> build/stamp/stamp.c\n"


def test_one_bump_per_change_never_backwards(repo: GitRepo) -> None:
    assert header(repo.path)["edit"] == 1
    repo.write("main.c", "int main(void) { return 2; }\n")
    assert header(repo.path)["edit"] == 2
    assert header(repo.path)["edit"] == 2
    repo.git("add", "main.c")  # staging is not an edit
    assert header(repo.path)["edit"] == 2
    repo.commit("two")  # same content, new HEAD: a new source state
    assert header(repo.path)["edit"] == 3
    repo.write("main.c", "int main(void) { return 3; }\n")
    assert header(repo.path)["edit"] == 4
    repo.git("checkout", "--", "main.c")  # back to a state seen before: still forward
    assert header(repo.path)["edit"] == 5


def test_outputs_and_build_dir_are_not_edits(repo: GitRepo) -> None:
    header(repo.path, "--output-dir", "gen")
    repo.git("add", "-A")
    repo.commit("track generated files")
    edit = header(repo.path, "--output-dir", "gen")["edit"]
    (repo.path / "build").mkdir(exist_ok=True)
    (repo.path / "build" / "main.o").write_text("object")
    (repo.path / "gen" / "stamp.c").write_text("hand-edited\n")
    again = header(repo.path, "--output-dir", "gen")
    assert again["edit"] == edit and again["dirty"] is False
    # the hand-edited output is restored without a bump
    assert "hand-edited" not in (repo.path / "gen" / "stamp.c").read_text()


def test_make_clean_keeps_the_counter(repo: GitRepo) -> None:
    header(repo.path)
    repo.write("main.c", "int v2;\n")
    assert header(repo.path)["edit"] == 2
    shutil.rmtree(repo.path / "build")
    again = header(repo.path)
    assert again["edit"] == 2 and len(again["changed"]) == 2  # type: ignore[arg-type]


def test_untracked_files_with_include_untracked(repo: GitRepo) -> None:
    repo.write("stamp.toml", "include_untracked = true\n")
    repo.commit("config")
    assert header(repo.path)["edit"] == 1
    repo.write("new.c", "int n;\n")
    result = header(repo.path)
    assert result["edit"] == 2 and result["dirty"] is True


@pytest.mark.parametrize("damage", ["garbage", "empty", "deleted", "wrong-type"])
def test_corrupt_state_never_reuses_a_number(repo: GitRepo, damage: str) -> None:
    header(repo.path)
    for n in range(2, 5):
        repo.write("main.c", f"int v{n};\n")
        assert header(repo.path)["edit"] == n
    state = repo.path / ".git" / "stamp" / "edit.json"
    if damage == "garbage":
        state.write_bytes(b"\x00\xff{not json")
    elif damage == "empty":
        state.write_bytes(b"")
    elif damage == "deleted":
        state.unlink()
    else:
        state.write_text('{"version": 1, "edit": "four", "fingerprint": 3}')
    done = run_stamp("header", "--json", cwd=repo.path)
    assert done.returncode == 0
    assert json.loads(done.stdout)["edit"] == 5  # recovered from the generated stamp.c
    assert "Traceback" not in done.stderr


def test_recovery_uses_history_when_outputs_are_gone(repo: GitRepo) -> None:
    header(repo.path)
    state_dir = repo.path / ".git" / "stamp"
    (state_dir / "history.jsonl").write_text('{"schema": 1, "edit": 41}\n')
    (state_dir / "edit.json").unlink()
    shutil.rmtree(repo.path / "build")
    assert header(repo.path)["edit"] == 42


def test_recovery_uses_this_checkouts_builds_in_the_sqlite_history(repo: GitRepo) -> None:
    """Pulled builds carry another checkout's edit counter: recovery must not jump to it."""
    from stamp.artifact.history import History
    from tests.artifact.test_history import manifest

    header(repo.path)
    state_dir = repo.path / ".git" / "stamp"
    with History.open(state_dir) as history:
        history.append(manifest(41), None)
        pulled = json.dumps({"manifest": manifest(500).to_json(), "origin": None})
        history.add_pulled([pulled], "origin", "2026-01-02T00:00:00Z")
    (state_dir / "edit.json").unlink()
    shutil.rmtree(repo.path / "build")
    assert header(repo.path)["edit"] == 42


def test_state_dir_from_config(repo: GitRepo) -> None:
    repo.write("stamp.toml", 'state_dir = ".stamp-state"\noutput_dir = "out"\n')
    repo.write(".gitignore", ".stamp-state/\nout/\n")
    repo.commit("config")
    header(repo.path)
    assert (repo.path / ".stamp-state" / "edit.json").is_file()
    assert (repo.path / "out" / "stamp.c").is_file()


def test_concurrent_runs_bump_once(repo: GitRepo) -> None:
    header(repo.path)
    repo.write("main.c", "int concurrent;\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env["NO_COLOR"] = "1"
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "stamp", "header", "--json"],
            cwd=repo.path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        for _ in range(32)
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        results.append(json.loads(out))
    assert {r["edit"] for r in results} == {2}
    assert sum(1 for r in results if r["changed"]) == 1
    text = (repo.path / "build" / "stamp" / "stamp.c").read_text()
    assert "    2u,\n" in text and text.endswith("}\n")


def test_header_only_template(repo: GitRepo) -> None:
    repo.write("stamp.toml", 'template = "header-only"\n')
    repo.commit("config")
    result = header(repo.path)
    out = repo.path / "build" / "stamp"
    assert [p.name for p in out.iterdir()] == ["stamp.h"]
    text = (out / "stamp.h").read_text()
    assert f"#define STAMP_EDIT_VERSION {result['edit']}\n" in text
    assert f'#define STAMP_GIT "{repo.head}"' in text


def test_custom_template_directory(repo: GitRepo) -> None:
    tpl = repo.path / "tpl"
    tpl.mkdir()
    (tpl / "version.txt.j2").write_text("{{ edit }} {{ git_short }} {{ branch }}\n")
    repo.write("stamp.toml", 'template = "tpl"\n')
    repo.commit("config")
    header(repo.path)
    assert (repo.path / "build/stamp/version.txt").read_text() == f"1 {repo.head[:8]} main\n"
    (tpl / "version.txt.j2").write_text("{{ no_such_name }}\n")
    done = run_stamp("header", cwd=repo.path)
    assert done.returncode == 2
    assert "unknown variable" in done.stderr and "Traceback" not in done.stderr


def test_build_time_only_when_configured(repo: GitRepo) -> None:
    header(repo.path)
    assert "build_time" not in (repo.path / "build/stamp/stamp.c").read_text()
    repo.write("stamp.toml", "build_time = true\n")
    repo.commit("config")
    header(repo.path, env={"SOURCE_DATE_EPOCH": "1700000000"})
    text = (repo.path / "build/stamp/stamp.c").read_text()
    assert "stamp_build_time = 1700000000LL;" in text


def test_no_git_still_renders(tmp_path: Path) -> None:
    (tmp_path / "main.c").write_text("int main(void) { return 0; }\n")
    done = run_stamp("header", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["git"] == "unknown" and result["dirty"] is None and result["edit"] == 1
    assert "not a git repository" in done.stderr
    text = (tmp_path / "build/stamp/stamp.c").read_text()
    assert '"unknown"' in text and "0xFFu" in text
    assert json.loads(run_stamp("header", "--json", cwd=tmp_path).stdout)["edit"] == 1
    (tmp_path / "main.c").write_text("int main(void) { return 1; }\n")
    os.utime(tmp_path / "main.c", ns=(1, 1))
    assert json.loads(run_stamp("header", "--json", cwd=tmp_path).stdout)["edit"] == 2
    strict = run_stamp("header", "--strict", cwd=tmp_path)
    assert strict.returncode == 2 and "not a git repository" in strict.stderr


def test_git_not_installed(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "r")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    done = run_stamp("header", "--json", cwd=repo.path, env={"PATH": str(bindir)})
    assert done.returncode == 0, done.stderr
    assert "git is not installed" in done.stderr
    assert json.loads(done.stdout)["git"] == "unknown"


def test_dubious_ownership_says_how_to_fix(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "theirs")
    if os.geteuid() != 0:
        pytest.fail("this test chowns a repository to another user: run the suite as root")
    subprocess.run(["chown", "-R", "nobody", str(repo.path)], check=True)
    done = run_stamp("header", cwd=repo.path)
    assert done.returncode == 2
    assert "safe.directory" in done.stderr and "Traceback" not in done.stderr


def test_unwritable_output_dir(repo: GitRepo) -> None:
    (repo.path / "blocker").write_text("a file where a directory should be\n")
    done = run_stamp("header", "--output-dir", "blocker/stamp", cwd=repo.path)
    assert done.returncode == 2
    assert "blocker" in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_unknown_config_key(repo: GitRepo) -> None:
    repo.write("stamp.toml", 'output-dir = "x"\n')
    done = run_stamp("header", cwd=repo.path)
    assert done.returncode == 2
    assert "unknown key `output-dir`" in done.stderr and "stamp.toml" in done.stderr


def test_worktrees_count_separately(repo: GitRepo, tmp_path: Path) -> None:
    header(repo.path)
    repo.write("main.c", "int main_edit;\n")
    assert header(repo.path)["edit"] == 2
    other = tmp_path / "wt"
    repo.git("worktree", "add", "-q", "-b", "feature", str(other))
    assert header(other)["edit"] == 1


def test_api_returns_result_without_cli(repo: GitRepo) -> None:
    result = run_header(Config(root=repo.path))
    assert result.edit == 1 and result.git == repo.head and len(result.changed) == 2
    assert result.to_json()["changed"] == [str(p) for p in result.changed]


def test_shallow_clone_warns_once(repo: GitRepo, tmp_path: Path) -> None:
    repo.commit("second")
    clone = tmp_path / "shallow"
    subprocess.run(
        ["git", "clone", "-q", "--depth", "1", f"file://{repo.path}", str(clone)],
        check=True,
        capture_output=True,
    )
    first = run_stamp("header", cwd=clone)
    assert first.returncode == 0 and "shallow clone" in first.stderr
    second = run_stamp("header", cwd=clone)
    assert second.returncode == 0 and "shallow" not in second.stderr
