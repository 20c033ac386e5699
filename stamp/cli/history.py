"""`stamp history list|show|find|push|pull`: the build history (SPEC section 10)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click

from stamp.cli.app import Settings
from stamp.cli.options import flag_option, json_option

if TYPE_CHECKING:
    from stamp.artifact.history import Build, History, LegacyImport
    from stamp.config import Config

DEFAULT_LIMIT = 20
DEFAULT_REMOTE = "origin"


def open_history(config: Config, *, create: bool = False) -> History:
    """The checkout's history; says once (on stderr) what importing the old file skipped.

    Only commands that record builds `create` the database; the others see an empty
    history where there is none yet.
    """
    from stamp.artifact.history import History
    from stamp.state_dir import find_state_dir

    history = History.open(find_state_dir(config), create=create)
    say_legacy_import(history.legacy_import)
    return history


def history_for_naming(config: Config, *, required: bool = False) -> History | None:
    """The history `verify`, `flash` and `fleet` name builds from; unreadable, it only
    costs the names (a warning), unless it is `required` (no --manifest given)."""
    import logging

    from stamp.errors import StateError

    try:
        return open_history(config)
    except StateError as exc:
        if required:
            raise
        logging.getLogger("stamp.device.verify").warning("%s; builds will not be named", exc)
        return None


def say_legacy_import(done: LegacyImport | None) -> None:
    """The one warning about the old history's unreadable lines, when they were skipped."""
    if done is not None and done.skipped:
        lines = "line" if done.skipped == 1 else "lines"
        click.echo(
            f"stamp: warning: {done.skipped} unreadable {lines} of the old build history "
            f"{done.path} skipped ({done.imported} builds imported; the file is kept as it is)",
            err=True,
        )


@click.group("history")
def history() -> None:
    """The build history: every build `stamp manifest` recorded, and those pulled from a remote.

    It lives in the state directory (`.git/stamp/history.sqlite` by default), has no size
    limit, and is what `stamp verify` names a device's build from. `push` and `pull`
    exchange builds with a git remote as notes on the commits they were built from
    (`refs/notes/stamp`), so builds CI made reach every clone.

    \b
    Examples:
      stamp history list --limit 5
      stamp history show 214                 # by edit number
      stamp history find 5f3a1c2e            # a unique prefix of any hash
      stamp history push                     # to origin
      stamp history pull origin && stamp verify --device bench
    """


@history.command("list")
@click.option(
    "--limit",
    type=click.IntRange(min=0),
    default=DEFAULT_LIMIT,
    show_default=True,
    metavar="N",
    help="Show the N newest builds (0: all).",
)
@json_option("Print a JSON array of builds.")
@click.pass_obj
def list_cmd(settings: Settings, limit: int, as_json: bool) -> int:
    """List builds, newest first: edit, time, git, hashes, and where pulled builds came from.

    \b
    Examples:
      stamp history list
      stamp history list --limit 0 --json | jq '.[].manifest.build_id'
    """
    from stamp.cli.terminal import print_json
    from stamp.config import load_config

    with open_history(load_config(settings.config_path)) as db:
        builds = db.newest(limit or None)
        total = db.count()
    if as_json:
        print_json([build_json(b) for b in builds])
        return 0
    if not builds:
        click.echo("stamp: the build history is empty: `stamp manifest FIRMWARE.elf` records one")
        return 0
    for build in builds:
        click.echo(_list_line(build))
    if settings.verbosity >= 0 and len(builds) < total:
        click.echo(f"stamp: {len(builds)} of {total} builds shown (--limit 0 shows all)", err=True)
    return 0


@history.command("show")
@click.argument("build")
@json_option("Print the build as JSON.")
@click.pass_obj
def show(settings: Settings, build: str, as_json: bool) -> int:
    """Show one build in full. BUILD is an edit number or any identity value.

    An identity value is a git commit, build-id, app hash or image SHA-256, in full or a
    unique prefix of at least 8 hex digits. Exit status: 0 shown, 1 no such build, 2 more
    than one build matches (they are listed; give a longer or another value).

    \b
    Examples:
      stamp history show 214
      stamp history show 5f3a1c2e --json
    """
    from stamp.cli.terminal import print_json

    found = _lookup(settings, build, edit_numbers=True)
    if len(found) > 1:
        click.echo(f"stamp: error: {build} names {len(found)} builds:", err=True)
        for entry in found:
            click.echo("  " + _list_line(entry), err=True)
        return 2
    if as_json:
        print_json(build_json(found[0]))
    else:
        _show(found[0])
    return 0


@history.command("find")
@click.argument("hex_value", metavar="HEX")
@json_option("Print a JSON array of the builds.")
@click.pass_obj
def find(settings: Settings, hex_value: str, as_json: bool) -> int:
    """Find the builds carrying HEX in any identity key: in full, or a unique prefix of at
    least 8 hex digits. A full git commit lists every build made from it.

    Exit status: 0 found, 1 no build matches, 2 an ambiguous prefix (the values it
    starts are listed) or not hex.

    \b
    Examples:
      stamp history find 5f3a1c2e
      stamp history find 1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d --json
    """
    from stamp.cli.terminal import print_json

    found = _lookup(settings, hex_value, edit_numbers=False)
    if as_json:
        print_json([build_json(b) for b in found])
    else:
        for build in found:
            click.echo(_list_line(build))
    return 0


@history.command("push")
@click.argument("remote", default=DEFAULT_REMOTE)
@flag_option(
    "--include-dirty",
    help="Also push builds made from a tree with uncommitted changes (marked dirty).",
)
@json_option("Print what was pushed as JSON.")
@click.pass_obj
def push(settings: Settings, remote: str, include_dirty: bool, as_json: bool) -> int:
    """Push this checkout's builds to REMOTE as git notes (refs/notes/stamp).

    Each build goes into the note of the commit it was built from; the remote's notes are
    merged in first (a union: nothing is lost, nothing doubled), and a push that raced
    another is retried. Builds from a dirty tree are left out unless --include-dirty.

    \b
    Examples:
      stamp history push
      stamp history push upstream --include-dirty
    """
    from dataclasses import asdict

    from stamp.artifact.history.git_notes import push as push_notes
    from stamp.cli.terminal import print_json
    from stamp.config import load_config

    config = load_config(settings.config_path)
    with open_history(config) as db:
        result = push_notes(db, config.root, remote, include_dirty=include_dirty)
    if as_json:
        print_json({"remote": remote, **asdict(result)})
        return 0
    where = "pushed" if result.changed_remote else "already had"
    click.echo(f"stamp: {remote} {where} {_builds(result.builds)} (refs/notes/stamp)")
    if settings.verbosity >= 0 and result.dirty_left:
        click.echo(
            f"stamp: {_builds(result.dirty_left)} from a dirty tree not pushed "
            "(--include-dirty pushes them)",
            err=True,
        )
    if settings.verbosity >= 0 and result.no_commit:
        click.echo(
            f"stamp: {_builds(result.no_commit)} not pushed: their commit is not in this "
            "repository",
            err=True,
        )
    return 0


@history.command("pull")
@click.argument("remote", default=DEFAULT_REMOTE)
@json_option("Print what was pulled as JSON.")
@click.pass_obj
def pull(settings: Settings, remote: str, as_json: bool) -> int:
    """Pull the builds REMOTE's notes (refs/notes/stamp) carry into this checkout's history.

    Pulled builds keep where they were made (host, CI or user) and from which remote they
    came; `stamp verify` names them so. Pulling again adds nothing new.

    \b
    Examples:
      stamp history pull
      stamp history pull upstream --json
    """
    from dataclasses import asdict
    from datetime import UTC, datetime

    from stamp.artifact.history.git_notes import pull as pull_notes
    from stamp.cli.terminal import print_json
    from stamp.config import load_config

    config = load_config(settings.config_path)
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    with open_history(config, create=True) as db:
        result = pull_notes(db, config.root, remote, now)
    if as_json:
        print_json({"remote": remote, **asdict(result)})
        return 0
    if not result.remote_has_notes:
        click.echo(f"stamp: {remote} has no builds yet (no refs/notes/stamp)")
        return 0
    new = "new build" if result.new_builds == 1 else "new builds"
    click.echo(
        f"stamp: pulled {result.new_builds} {new} from {remote} ({result.seen} in its notes)"
    )
    if result.unreadable:
        click.echo(
            f"stamp: warning: {result.unreadable} note lines are not builds this stamp can "
            "read (left in the notes)",
            err=True,
        )
    return 0


# -- rendering -------------------------------------------------------------------------


def _lookup(settings: Settings, text: str, *, edit_numbers: bool) -> list[Build]:
    """The builds `text` names; if none, says why and exits (1 none, 2 a bad value)."""
    from stamp.artifact.history.lookup import MIN_PREFIX, LookupStatus, find_builds
    from stamp.config import load_config

    with open_history(load_config(settings.config_path)) as db:
        found = find_builds(db, text, edit_numbers=edit_numbers)
    if found.status is LookupStatus.FOUND:
        return list(found.builds)
    says = {
        LookupStatus.NOT_FOUND: f"no build in the history matches {text}",
        LookupStatus.NOT_HEX: f"{text!r} is not "
        + ("an edit number or " if edit_numbers else "")
        + "hex digits",
        LookupStatus.TOO_SHORT: f"{text} is too short: give at least {MIN_PREFIX} hex digits",
        LookupStatus.AMBIGUOUS: f"{text} starts {len(found.candidates)} different values: "
        "give more digits",
    }
    click.echo(f"stamp: error: {says[found.status]}", err=True)
    for key, value in found.candidates:
        click.echo(f"  {key} {value}", err=True)
    raise click.exceptions.Exit(1 if found.status is LookupStatus.NOT_FOUND else 2)


def _builds(n: int) -> str:
    return f"{n} build" + ("" if n == 1 else "s")


def build_json(build: Build) -> dict[str, Any]:
    """One build in `--json`: its manifest, and where it is in the history."""
    from dataclasses import asdict

    return {
        "number": build.number,
        "manifest": build.manifest.to_json(),
        "origin": asdict(build.origin) if build.origin else None,
        "pulled_from": build.pulled_from,
        "pulled_at": build.pulled_at,
    }


def _list_line(build: Build) -> str:
    from stamp.cli.verdict_words import build_summary, origin_words

    where = ""
    if build.pulled_from is not None:
        made = origin_words(build.origin)
        where = f"  [from {build.pulled_from}" + (f", {made}" if made else "") + "]"
    when = build.manifest.recorded_at.replace("T", " ").removesuffix("Z")
    return f"{build.number:>6}  {when}  {build_summary(build.manifest)}{where}"


def _show(build: Build) -> None:
    from stamp.cli.verdict_words import age_words, origin_words

    manifest = build.manifest
    out = sys.stdout
    name = f"edit {manifest.identity.edit}" if manifest.identity.edit is not None else "unstamped"
    age = age_words(manifest.recorded_at)
    out.write(f"build {build.number}: {name}, recorded {manifest.recorded_at}")
    out.write(f" ({age})\n" if age else "\n")
    for key, value in manifest.identity.known().items():
        out.write(f"  {key:<13} {str(value).lower() if isinstance(value, bool) else value}\n")
    for label, artifact in (("elf", manifest.elf), ("bin", manifest.bin)):
        if artifact is not None:
            out.write(f"  {label:<13} {artifact.path} ({artifact.size} bytes, sha256 ")
            out.write(f"{artifact.sha256})\n")
    if build.pulled_from is not None:
        made = origin_words(build.origin) or "built elsewhere"
        out.write(f"  {'origin':<13} {made}; pulled from {build.pulled_from} {build.pulled_at}\n")
    elif build.origin is not None:
        out.write(f"  {'origin':<13} {origin_words(build.origin)}\n")
