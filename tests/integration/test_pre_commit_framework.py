"""The README's pre-commit configuration, verbatim, run by the real pre-commit framework.

The stamp repository is this tree, committed into a temporary repository and tagged at
the README's `rev` (as a release is), and the firmware repository refers to it by path
(issue 11, item 4).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from stamp import __version__
from tests.support import REPO_ROOT, GitRepo, git_env, make_repo, require_tool

README = (REPO_ROOT / "README.md").read_text()
_NOT_SOURCE = (".venv", ".git", "build", "*.egg-info", "__pycache__", ".*_cache", ".hypothesis")


def readme_config() -> str:
    section = README.split("### Git hooks and the pre-commit framework", 1)[1]
    return re.findall(r"```yaml\n(.*?)```", section, flags=re.S)[0]


def released_stamp(path: Path, tag: str) -> GitRepo:
    """This tree as a repository with an annotated release tag."""
    shutil.copytree(REPO_ROOT, path, ignore=shutil.ignore_patterns(*_NOT_SOURCE))
    repo = make_repo(path, {})
    repo.git("tag", "-a", tag, "-m", f"stamp {tag}")
    return repo


def commit(repo: GitRepo, home: Path) -> subprocess.CompletedProcess[str]:
    env = git_env()
    env["PRE_COMMIT_HOME"] = str(home)
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
    return subprocess.run(
        ["git", "commit", "-q", "-m", "change"],
        cwd=repo.path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def test_readme_rev_is_a_release_tag() -> None:
    config = yaml.safe_load(readme_config())
    assert config["repos"][0]["rev"] == f"v{__version__}"


def test_framework_hook_refreshes_fails_once_then_passes(tmp_path: Path) -> None:
    pre_commit = Path(sys.executable).parent / "pre-commit"
    if not pre_commit.exists():
        require_tool("pre-commit")  # fails loudly: it comes with the test extra
    config = yaml.safe_load(readme_config())
    rev = config["repos"][0]["rev"]
    stamp_repo = released_stamp(tmp_path / "stamp", rev)
    config["repos"][0]["repo"] = str(stamp_repo.path)

    firmware = make_repo(
        tmp_path / "fw",
        {
            "src/app.c": "int main(void) { return 0; }\n",
            "stamp.toml": 'output_dir = "src/stamp"\ntemplate = "header-only"\n',
            ".pre-commit-config.yaml": yaml.safe_dump(config),
        },
    )
    env = {**git_env(), "PRE_COMMIT_HOME": str(tmp_path / "cache")}
    subprocess.run(
        [sys.executable, "-m", "stamp", "header"], cwd=firmware.path, env=env, check=True
    )
    firmware.commit("generated header")
    installed = subprocess.run(
        [str(pre_commit), "install"], cwd=firmware.path, env=env, capture_output=True, text=True
    )
    assert installed.returncode == 0, installed.stderr

    firmware.write("src/app.c", "int main(void) { return 1; }\n")
    firmware.git("add", "src/app.c")
    first = commit(firmware, tmp_path / "cache")
    assert first.returncode == 1, first.stdout + first.stderr
    said = first.stdout + first.stderr
    assert "stamp header" in said and "Failed" in said and "stage them and commit again" in said
    assert "#define STAMP_EDIT_VERSION 2" in (firmware.path / "src/stamp/stamp.h").read_text()

    firmware.git("add", "src/stamp/stamp.h")
    second = commit(firmware, tmp_path / "cache")
    assert second.returncode == 0, second.stdout + second.stderr
    committed = firmware.git("show", "HEAD:src/stamp/stamp.h")
    assert "#define STAMP_EDIT_VERSION 2" in committed
