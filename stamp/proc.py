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


# A NamedTuple, not a dataclass: it is on `stamp header`'s no-op path (see stamp/header/run.py).
class Completed(NamedTuple):
    """What a finished child process returned."""

    args: tuple[str, ...]
    """The argument list it ran with."""
    returncode: int
    """Its exit status."""
    stdout: str
    """Its standard output, decoded as UTF-8 with replacement."""
    stderr: str
    """Its standard error, decoded as UTF-8 with replacement."""


TERMINATE_GRACE = 1.0
"""Seconds a child has between SIGTERM and SIGKILL."""

_running: set[subprocess.Popen[bytes]] = set()


def start(
    args: Sequence[str],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    keep_git_env: bool = False,
    stdout: int = subprocess.PIPE,
    stderr: int = subprocess.PIPE,
) -> subprocess.Popen[bytes]:
    """Start `args` in its own process group (stdin closed); `stop()` it when done.

    `keep_git_env` passes the caller's GIT_* variables through (only the git hook wants
    them: inside a hook GIT_INDEX_FILE names the index being committed).
    """
    logs.debug_lazy("stamp.proc", lambda: f"run: {_quoted(args)} (cwd={cwd or '.'})")
    environment = {**os.environ, **(env or {})} if keep_git_env else clean_env(env)
    proc = subprocess.Popen(
        list(args),
        cwd=cwd,
        env=environment,
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=stderr,
        process_group=0,
    )
    _running.add(proc)
    return proc


def stop(proc: subprocess.Popen[bytes], grace: float = TERMINATE_GRACE) -> None:
    """Reap `proc`; a group still running is terminated, then killed after `grace` s."""
    try:
        if proc.poll() is None:
            _signal_group(proc, signal.SIGTERM)
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                proc.wait()
        else:
            _signal_group(proc, signal.SIGKILL)  # helpers it left behind in its group
    finally:
        _running.discard(proc)


def stop_all() -> None:
    """Terminate, then kill, every child still running (the process is about to exit)."""
    for proc in list(_running):
        stop(proc, grace=0.2)


def _signal_group(proc: subprocess.Popen[bytes], signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signum)


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a child: GIT_* scrubbed, LC_ALL=C, plus `extra`."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("GIT_") or key in _KEEP_GIT_VARS
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
) -> Completed:
    """Run `args` to completion, capturing output; OSError/TimeoutExpired propagate."""
    proc = start(args, cwd=cwd, env=env, keep_git_env=keep_git_env)
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        stop(proc)
    return Completed(
        args=tuple(args),
        returncode=proc.returncode,
        stdout=out.decode("utf-8", errors="replace"),
        stderr=err.decode("utf-8", errors="replace"),
    )


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

    proc = start(args, cwd=cwd, env=env, stderr=subprocess.STDOUT)
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
