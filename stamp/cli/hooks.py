"""`stamp hooks`: the git pre-commit hook (install, uninstall, and the step it runs)."""

from __future__ import annotations

from pathlib import Path

import click

from stamp.cli.app import Settings
from stamp.header.git_hook import HookAction

_HOOK_WORDS = {
    HookAction.INSTALLED: "installed",
    HookAction.ALREADY_INSTALLED: "already installed",
    HookAction.UNINSTALLED: "uninstalled",
    HookAction.NOT_INSTALLED: "not installed",
}


@click.group()
def hooks() -> None:
    """Keep committed generated files fresh with a git pre-commit hook.

    \b
    Examples:
      stamp hooks install      # in your firmware repository
      stamp hooks uninstall
      stamp hooks path         # where stamp.mk and stamp.cmake are installed
    """


@hooks.command()
@click.pass_obj
def install(settings: Settings) -> int:
    """Install the pre-commit hook into the current repository (chains an existing hook).

    The hook runs `stamp header` before each commit and stages the generated files that
    git tracks. Running it twice changes nothing.

    \b
    Example:
      cd my-firmware && stamp hooks install
    """
    from stamp.header.git import hooks_dir
    from stamp.header.git_hook import install as do_install

    result = do_install(hooks_dir(Path.cwd()))
    if settings.verbosity < 0:
        return 0
    click.echo(f"stamp: {_HOOK_WORDS[result.action]}: {result.path}")
    if result.chained:
        click.echo(f"stamp: the previous hook still runs after it: {result.chained}")
    return 0


@hooks.command()
def uninstall() -> int:
    """Remove stamp's pre-commit hook, restoring a hook it chained.

    \b
    Example:
      stamp hooks uninstall
    """
    from stamp.header.git import hooks_dir
    from stamp.header.git_hook import uninstall as do_uninstall

    result = do_uninstall(hooks_dir(Path.cwd()))
    click.echo(f"stamp: {_HOOK_WORDS[result.action]}: {result.path}")
    return 0


@hooks.command("path")
def path_cmd() -> int:
    """Print the directory that holds stamp.mk and stamp.cmake (installed with stamp).

    \b
    Examples:
      include $(shell stamp hooks path)/stamp.mk          # in a Makefile
      stamp hooks path                                    # for CMake: include(DIR/stamp.cmake)
    """
    from importlib.resources import files

    click.echo(str(files("stamp.hooks")))  # a directory on disk: stamp installs unzipped
    return 0


@hooks.command("pre-commit")
@click.option(
    "--stage/--no-stage",
    default=False,
    help="git add refreshed tracked files (git hook) or fail so you can stage them "
    "(pre-commit framework convention).",
)
@click.pass_obj
def pre_commit(settings: Settings, stage: bool) -> int:
    """The step the hook runs: refresh generated files that git tracks.

    With --no-stage (the pre-commit framework's convention for hooks that modify files)
    it exits 1 when it rewrote a tracked file, so you can review and stage it.

    \b
    Example (what .pre-commit-hooks.yaml runs):
      stamp hooks pre-commit --no-stage
    """
    from stamp.config import load_config
    from stamp.header.git_hook import stage as git_stage
    from stamp.header.git_hook import tracked
    from stamp.header.run import run_header

    config = load_config(settings.config_path)
    result = run_header(config)
    refreshed = tracked(list(result.changed), Path.cwd())
    if not refreshed:
        return 0
    names = ", ".join(str(p) for p in refreshed)
    if stage:
        git_stage(refreshed, Path.cwd())
        click.echo(f"stamp: edit {result.edit}: refreshed and staged {names}")
        return 0
    click.echo(f"stamp: edit {result.edit}: refreshed {names}; stage them and commit again")
    return 1
