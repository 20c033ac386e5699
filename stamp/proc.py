"""The one way stamp runs a child process (git, flash commands, toolchains).

An argument list (never a shell), a timeout, `LC_ALL=C` so output can be parsed, and the
`GIT_*` variables that git hooks export scrubbed: inside a pre-commit hook GIT_INDEX_FILE
and GIT_DIR point at the hooked repository and would silently redirect a git call made
for another one (setuptools-scm's `_run_cmd.py` does the same).

Every child starts in its own process group (so a terminal's Ctrl-C reaches stamp only, and
stamp decides) and is remembered until it is reaped: when stamp is interrupted, `stop`
terminates the whole group, then kills it (a flash tool's own helpers included), and
`stop_all` does that for every child still running (stamp.cli.entry's exit on a second
Ctrl-C; issue 10).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

from stamp import logs

# Kept from the caller's environment: they change where git finds config, not which repo.
_KEEP_GIT_VARS = frozenset({"GIT_CONFIG_GLOBAL", "GIT_CONFIG_SYSTEM", "GIT_CONFIG_NOSYSTEM"})
TERMINATE_GRACE = 1.0
"""Seconds a child's group has between SIGTERM and SIGKILL."""

_running: set[subprocess.Popen[bytes]] = set()


# A NamedTuple, not a dataclass: it is on `stamp header`'s no-op path (see stamp/header/run.py).
class Completed(NamedTuple):
    """What a finished child process returned."""

    args: tuple[str, ...]
    """The argument list it ran with."""
    returncode: int
    """Its exit status."""
    out: bytes
    """Its standard output, as bytes (git's NUL-separated records are parsed from these)."""
    err: bytes
    """Its standard error, as bytes."""

    @property
    def stdout(self) -> str:
        """Standard output decoded as UTF-8 with replacement."""
        return self.out.decode("utf-8", errors="replace")

    @property
    def stderr(self) -> str:
        """Standard error decoded as UTF-8 with replacement."""
        return self.err.decode("utf-8", errors="replace")


def clean_env(
    extra: Mapping[str, str] | None = None, *, keep_git_env: bool = False
) -> dict[str, str]:
    """The environment for a child: GIT_* scrubbed (unless `keep_git_env`), LC_ALL=C, plus
    `extra`."""
    env = {
        key: value
        for key, value in os.environ.items()
        if keep_git_env or not key.startswith("GIT_") or key in _KEEP_GIT_VARS
    }
    env["LC_ALL"] = "C"
    env["LANGUAGE"] = ""
    if extra:
        env.update(extra)
    return env


def run(
    args: Sequence[str],
    *,
    cwd: Path | None = None,
    timeout: float = 60.0,
    env: Mapping[str, str] | None = None,
    keep_git_env: bool = False,
    input: bytes | None = None,
) -> Completed:
    """Run `args` to completion, capturing output; OSError/TimeoutExpired propagate.

    `keep_git_env` passes GIT_* through: inside a git hook GIT_INDEX_FILE names the index
    being committed (a temporary one for `git commit -a`), and the hook must use it.
    `input` is written to its standard input (otherwise it reads nothing).
    """
    running = start(args, cwd=cwd, env=env, keep_git_env=keep_git_env, stdin=input is not None)
    return running.wait(timeout, input=input)


class Running:
    """A child started by `start`, to be waited for with a timeout."""

    def __init__(self, args: Sequence[str], popen: subprocess.Popen[bytes]) -> None:
        self.args = tuple(args)
        self._popen = popen

    def wait(self, timeout: float, *, input: bytes | None = None) -> Completed:
        """Its result; on a timeout or an interrupt its group is stopped (TimeoutExpired
        or KeyboardInterrupt propagates). `input` goes to its standard input (started with
        `stdin=True`)."""
        try:
            out, err = self._popen.communicate(input=input, timeout=timeout)
        finally:
            stop(self._popen)
        return Completed(self.args, self._popen.returncode, out, err)


def start(
    args: Sequence[str],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    keep_git_env: bool = False,
    stdin: bool = False,
) -> Running:
    """Start `args` with captured output and no stdin (a pipe with `stdin`), for several
    children at once (`stamp header` runs four gits in parallel); `Running.wait` collects
    it."""
    popen = _spawn(
        args, cwd, clean_env(env, keep_git_env=keep_git_env), subprocess.PIPE, stdin=stdin
    )
    return Running(args, popen)


def _spawn(
    args: Sequence[str],
    cwd: Path | None,
    env: dict[str, str],
    stderr: int,
    *,
    stdin: bool = False,
) -> subprocess.Popen[bytes]:
    """Popen in a new process group, remembered until `stop` reaps it."""
    logs.debug_lazy("stamp.proc", lambda: f"run: {_quoted(args)} (cwd={cwd or '.'})")
    popen = subprocess.Popen(
        list(args),
        cwd=cwd,
        env=env,
        stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=stderr,
        process_group=0,
    )
    _running.add(popen)
    return popen


def stop(popen: subprocess.Popen[bytes], grace: float = TERMINATE_GRACE) -> None:
    """Reap `popen`; a group still running is terminated, then killed after `grace` s."""
    try:
        if popen.poll() is None:
            _signal_group(popen, signal.SIGTERM)
            try:
                popen.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                _signal_group(popen, signal.SIGKILL)
                popen.wait()
        else:
            _signal_group(popen, signal.SIGKILL)  # helpers it left behind in its group
    finally:
        _running.discard(popen)


def stop_all() -> None:
    """Terminate, then kill, every child still running (the process is about to exit)."""
    for popen in list(_running):
        stop(popen, grace=0.2)


def _signal_group(popen: subprocess.Popen[bytes], signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(popen.pid, signum)


STREAM_DRAIN = 0.2
"""Seconds to keep reading after the child exited: output still in the pipe is shown, but
a daemon it left behind (holding the pipe open) cannot keep the caller waiting."""


def run_streaming(
    args: Sequence[str],
    on_line: Callable[[str], None],
    *,
    cwd: Path | None = None,
    timeout: float = 60.0,
    env: Mapping[str, str] | None = None,
) -> int:
    """Run `args`, handing each line of its merged stdout and stderr to `on_line` as it
    comes; returns the exit status. On a timeout (subprocess.TimeoutExpired) or an
    interrupt the child's group is terminated, then killed; OSError (not found, not
    executable) propagates.
    """
    import selectors
    import time

    proc = _spawn(args, cwd, clean_env(env), subprocess.STDOUT)
    assert proc.stdout is not None
    pipe = proc.stdout
    os.set_blocking(pipe.fileno(), False)
    pending = b""
    deadline = time.monotonic() + timeout
    exited_at: float | None = None
    try:
        with selectors.DefaultSelector() as selector:
            selector.register(pipe, selectors.EVENT_READ)
            while True:
                now = time.monotonic()
                if exited_at is None and proc.poll() is not None:
                    exited_at = now
                if exited_at is not None and now - exited_at >= STREAM_DRAIN:
                    break
                if now >= deadline:
                    raise subprocess.TimeoutExpired(list(args), timeout)
                if not selector.select(0.05):
                    continue
                chunk = pipe.read(65536)
                if chunk is None:  # woken but nothing to read after all
                    continue
                if not chunk:  # EOF: nothing holds the pipe open any more
                    break
                *lines, pending = (pending + chunk).split(b"\n")
                for line in lines:
                    on_line(line.rstrip(b"\r").decode("utf-8", errors="replace"))
        if pending:
            on_line(pending.rstrip(b"\r").decode("utf-8", errors="replace"))
        try:
            return proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            raise subprocess.TimeoutExpired(list(args), timeout) from None
    finally:
        stop(proc)
        pipe.close()


def _quoted(args: Sequence[str]) -> str:
    import shlex

    return shlex.join(args)
