"""The one error hierarchy of stamp, and the exit codes of SPEC section 3.

Every expected failure is a `StampError` whose message is one sentence a user can act
on; `stamp.cli.app` turns it into that sentence on stderr and its `exit_code`. Third-party
errors (pyelftools, pyserial, httpx, struct, OSError) are translated where they happen.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_MISMATCH = 1
EXIT_USAGE = 2
EXIT_NO_REPORT = 3
EXIT_INTERRUPTED = 130
EXIT_INTERNAL = 70
"""A bug in stamp (sysexits' EX_SOFTWARE): never 1, which scripts read as "mismatch"."""
EXIT_BROKEN_PIPE = 141
"""stdout was closed by the reader (`stamp ... | head`): 128 + SIGPIPE, as a shell reports it."""


class StampError(Exception):
    """An expected failure: a usage, configuration or input error unless a subclass says."""

    exit_code: int = EXIT_USAGE

    def __init__(self, message: str, *, detail: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        #: Extra context shown only with `-v` (e.g. the underlying library error).
        self.detail = detail

    def __str__(self) -> str:
        return self.message


class NoAnswer(StampError):
    """Something outside stamp did not answer in time or could not be reached: exit 3, as
    when a device stays silent (SPEC section 3), so a script can try again later."""

    exit_code = EXIT_NO_REPORT


class ConfigError(StampError):
    """stamp.toml / [tool.stamp] is unreadable, malformed, or names an unknown key."""


class GitError(StampError):
    """git failed in a way stamp cannot work around (only raised with --strict or for hooks)."""


class ArtifactError(StampError):
    """An ELF, .bin or manifest is missing, unreadable, corrupt, or inconsistent."""


class StateError(StampError):
    """The edit counter state or build history cannot be read or written."""


class HistoryBusy(StateError, NoAnswer):
    """Another process held the build history's write lock for longer than stamp waits."""


class RemoteError(NoAnswer):
    """A git remote could not be reached, or refused an exchange of the build history."""


class TemplateError(StampError):
    """A template is missing, malformed, or refers to an unknown variable."""


class DeviceError(StampError):
    """A device address or its configuration is wrong (exit 2)."""


class AuthError(StampError):
    """The Particle Cloud rejected the token (401/403), or no token is configured."""


class DeviceUnreachable(NoAnswer):
    """The device, port or cloud could not be reached, or it did not answer in time."""


class FlashError(NoAnswer):
    """A flash could not be started (the upload or the flash command failed)."""


class FlashRefused(StampError):
    """A refusal that another attempt cannot change (wrong platform, invalid binary):
    `stamp flash` does not retry it and exits 2 (SPEC section 3)."""
