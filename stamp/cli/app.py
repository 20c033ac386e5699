"""The command line: parse, call one core function, render, pick the exit code.

Subcommands load lazily so `stamp header` (run on every build) never imports httpx,
pyserial or pyelftools. Exit codes are decided in `stamp.cli.exits` (SPEC section 3),
for this path and the `stamp header` fast path alike.
"""

from __future__ import annotations

import importlib
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from stamp import __version__
from stamp.cli import exits
from stamp.errors import EXIT_USAGE, StampError

log = logging.getLogger("stamp")

# name -> "module:attribute" of the click command; loaded only when invoked or listed.
COMMANDS = {
    "header": "stamp.cli.header:header",
    "manifest": "stamp.cli.manifest:manifest",
    "inspect": "stamp.cli.inspect:inspect_cmd",
    "verify": "stamp.cli.verify:verify",
    "flash": "stamp.cli.flash:flash",
    "fleet": "stamp.cli.fleet:fleet",
    "hooks": "stamp.cli.hooks:hooks",
    "history": "stamp.cli.history:history",
    "sim": "stamp.cli.sim:sim",
    "demo": "stamp.cli.demo:demo",
}


@dataclass
class Settings:
    """Global options, available to every subcommand as `ctx.obj`."""

    config_path: Path | None
    """--config, or None to search upward."""
    verbosity: int
    """-1 quiet, 0 normal, 1+ verbose."""


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use (click's documented pattern).

    `members` maps each subcommand's name to "module:attribute" of its click command.
    """

    def __init__(self, *args: Any, members: dict[str, str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.members = members

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(self.members)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = self.members.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        command = getattr(importlib.import_module(module_name), attr)
        assert isinstance(command, click.Command)
        accept_global_options(command)
        return command


# --- global options, before or after the command (SPEC section 3) ------------------------

_GLOBAL_MARK = "_stamp_global_options"

# name -> (flags, click settings); the group and every command share these.
_GLOBAL_OPTIONS: dict[str, tuple[tuple[str, ...], dict[str, Any]]] = {
    "config_path": (
        ("--config",),
        {
            "type": click.Path(dir_okay=False, path_type=Path),
            "help": "Use this stamp.toml or pyproject.toml instead of searching upward.",
        },
    ),
    "verbose": (("-v", "--verbose"), {"count": True, "help": "Show more detail (repeatable)."}),
    "quiet": (("-q", "--quiet"), {"is_flag": True, "help": "Print only errors and results."}),
}


def _global_option(name: str) -> click.Option:
    """The group's own `name` option, passed to `cli` as `name`."""
    flags, settings = _GLOBAL_OPTIONS[name]
    return click.Option([*flags, name], **settings)


def accept_global_options(command: click.Command) -> None:
    """Give `command` (and a group's subcommands) `--config`, `-v` and `-q` of its own.

    They update the one `Settings` the group made, so `stamp verify -v` is `stamp -v
    verify`. Added once per command object; a lazy group adds them as it loads members.
    """
    if getattr(command, _GLOBAL_MARK, False):
        return
    setattr(command, _GLOBAL_MARK, True)
    command.params.extend(
        click.Option([*flags, f"_{name}"], expose_value=False, callback=_late, **settings)
        for name, (flags, settings) in _GLOBAL_OPTIONS.items()
    )
    if isinstance(command, click.Group) and not isinstance(command, LazyGroup):
        for sub in command.commands.values():
            accept_global_options(sub)


def _late(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    """A global option given after the command: it updates the group's `Settings`."""
    if not value:
        return
    settings = ctx.find_object(Settings)
    assert settings is not None, "the stamp group makes the Settings"
    if param.name == "_config_path":
        settings.config_path = value
        return
    settings.verbosity = -1 if param.name == "_quiet" else max(settings.verbosity, 0) + value
    from stamp.cli.terminal import setup_logging

    setup_logging(settings.verbosity)


@click.group(
    cls=LazyGroup,
    members=COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(__version__, prog_name="stamp")
@click.pass_context
def cli(ctx: click.Context, config_path: Path | None, verbose: int, quiet: bool) -> None:
    """Stamp every firmware build, extract what was really built, prove the device runs it.

    \b
    Typical use:
      stamp header                      # before compiling: edit counter + git state
      stamp manifest build/app.elf      # after linking: what was really built
      stamp verify --device bench       # after flashing: does the device run it?
    """
    from stamp.cli.terminal import setup_logging

    verbosity = -1 if quiet else verbose
    setup_logging(verbosity)
    ctx.obj = Settings(config_path=config_path, verbosity=verbosity)


cli.params.extend(_global_option(name) for name in _GLOBAL_OPTIONS)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: run the CLI and exit with the code of SPEC section 3."""
    sys.exit(run(argv))


def run(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code (no sys.exit: usable from tests).

    Everything written to stdout and stderr meanwhile (results, status lines, errors,
    log records) goes through stamp.redact: no token is printed, whatever its source.
    """
    from stamp.redact import RedactingStream

    saved = sys.stdout, sys.stderr
    sys.stdout = RedactingStream(sys.stdout)
    sys.stderr = RedactingStream(sys.stderr)
    try:
        return _run(argv)
    finally:
        sys.stdout, sys.stderr = saved


def _run(argv: list[str] | None) -> int:
    args = sys.argv[1:] if argv is None else argv
    verbose = any(a in ("-v", "--verbose") for a in args)
    try:
        # What click's main() does in non-standalone mode, without its `except OSError`,
        # which turns a closed stdout into exit 1 ("mismatch" to every script).
        with cli.make_context("stamp", list(args)) as ctx:
            result: Any = cli.invoke(ctx)
    except StampError as exc:
        return exits.for_error(exc, verbose=verbose)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code if exc.exit_code else EXIT_USAGE
    except (KeyboardInterrupt, EOFError, click.Abort):
        return exits.for_interrupt()
    except BrokenPipeError:
        return exits.for_broken_pipe()
    return result if isinstance(result, int) else 0
