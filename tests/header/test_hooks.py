"""`stamp hooks`: the git pre-commit hook in real repositories, and the framework entry."""

from __future__ import annotations

from pathlib import Path

from tests.support import REPO_ROOT, GitRepo, run_stamp


def commit_through_hooks(repo: GitRepo, message: str) -> str:
    # No --no-verify: the hooks run as they do for a user.
    return repo.git("commit", "-q", "-m", message)


def test_install_refreshes_and_stages_tracked_outputs(repo: GitRepo) -> None:
    assert run_stamp("header", "--output-dir", "gen", cwd=repo.path).returncode == 0
    repo.write("stamp.toml", 'output_dir = "gen"\n')
    repo.commit("track generated files")
    done = run_stamp("hooks", "install", cwd=repo.path)
    assert done.returncode == 0 and "installed" in done.stdout
    again = run_stamp("hooks", "install", cwd=repo.path)
    assert "already installed" in again.stdout

    repo.write("main.c", "int main(void) { return 5; }\n")
    repo.git("add", "main.c")
    parent = repo.head
    commit_through_hooks(repo, "change main")
    committed = repo.git("show", "HEAD:gen/stamp.c")
    # Inside the hook HEAD is the parent commit, and the commit's changes make it dirty.
    assert f"git {parent} (dirty)" in committed
    assert repo.git("status", "--porcelain") == ""  # nothing left unstaged


def test_untracked_outputs_are_left_alone(repo: GitRepo) -> None:
    repo.write(".gitignore", "build/\n")
    repo.commit("ignore build")
    assert run_stamp("hooks", "install", cwd=repo.path).returncode == 0
    repo.write("main.c", "int x;\n")
    repo.git("add", "main.c")
    commit_through_hooks(repo, "x")
    assert repo.git("ls-files", "build") == ""


def test_chains_and_restores_existing_hook(repo: GitRepo) -> None:
    hooks = repo.path / ".git" / "hooks"
    hooks.mkdir(exist_ok=True)
    original = hooks / "pre-commit"
    original.write_text('#!/bin/sh\necho ran >> "$(git rev-parse --git-dir)/chained.log"\n')
    original.chmod(0o755)
    assert run_stamp("hooks", "install", cwd=repo.path).returncode == 0
    assert "stamp hooks install" in original.read_text()
    repo.write("main.c", "int y;\n")
    repo.git("add", "main.c")
    commit_through_hooks(repo, "y")
    assert (repo.path / ".git" / "chained.log").read_text() == "ran\n"
    assert run_stamp("hooks", "uninstall", cwd=repo.path).returncode == 0
    assert original.read_text().startswith("#!/bin/sh\necho ran")
    assert not (hooks / "pre-commit.stamp-chained").exists()
    assert "not installed" in run_stamp("hooks", "uninstall", cwd=repo.path).stdout


def test_framework_mode_fails_when_it_rewrote_a_tracked_file(repo: GitRepo) -> None:
    assert run_stamp("header", cwd=repo.path).returncode == 0
    repo.commit("track build/stamp")
    repo.write("main.c", "int z;\n")
    first = run_stamp("hooks", "pre-commit", "--no-stage", cwd=repo.path)
    assert first.returncode == 1 and "stage them" in first.stdout
    repo.git("add", "-A")
    second = run_stamp("hooks", "pre-commit", "--no-stage", cwd=repo.path)
    assert second.returncode == 0, second.stdout  # staging is not an edit: no new bump


def test_not_a_repository(tmp_path: Path) -> None:
    done = run_stamp("hooks", "install", cwd=tmp_path)
    assert done.returncode == 2 and "not inside a git repository" in done.stderr


def test_pre_commit_framework_manifest() -> None:
    text = (REPO_ROOT / ".pre-commit-hooks.yaml").read_text()
    assert "id: stamp-header" in text
    assert "entry: stamp hooks pre-commit --no-stage" in text
    assert "pass_filenames: false" in text
