"""`stamp flash`: flash a build, prove the device runs it, and flash again when it does not.

SPEC section 1 is why this exists: `particle flash` says "Flash success!" once the cloud
accepted the upload, the cloud's `spark/flash/status` says "success" once the transfer
started, and a device that rebooted into its old app says nothing at all. So a flash
counts only when the device itself reports the build (`stamp.verify`), and an attempt
that ends in a mismatch or in silence is repeated, up to `retries` more times.

Before anything is flashed, the file is checked against its manifest (`load_flash_image`):
an image whose identity stamp cannot check is never sent.

Two ways to flash, behind the `Flasher` protocol:

- `CloudFlasher`: an OTA update through the Particle Cloud API. It uploads once the
  device's event stream is connected, so nothing the device says after its restart can
  be missed, and only events published after the attempt began count (`since`).
- `CommandFlasher`: the device's `flash_command` from the config (`{bin}`, `{elf}` and
  `{device}` replaced in each word), run without a shell, its output shown as it comes.
  For a serial device it runs before the port is opened: the flashing tool usually needs
  the port, and the board resets when it is done.

Silence after an OTA has a meaning (SPEC section 1): Device OS publishes
`spark/device/app-hash` as soon as it reconnects when the app changed, and nothing when it
did not. So once the device is back online, an attempt waits `settle` more seconds for a
report and then ends, instead of waiting out the whole timeout.
"""

from __future__ import annotations

import hashlib
import logging
import shlex
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from stamp.closing import Closing
from stamp.config import Config
from stamp.device import DeviceTarget, ParticleTarget, SerialTarget, open_transport
from stamp.errors import (
    ArtifactError,
    ConfigError,
    DeviceError,
    DeviceUnreachable,
    FlashError,
)
from stamp.manifest import Artifact, Manifest, build_name, load_manifest
from stamp.output import Progress
from stamp.transport.base import Clock, Heard, HeardKind, Transport, monotonic
from stamp.verify import CAME_ONLINE, Verdict, VerdictStatus, verdict_message, verify
from stamp.watch import Watch

if TYPE_CHECKING:
    from stamp.artifact.image import Firmware
    from stamp.transport.cloud import CloudClient, DeviceInfo

log = logging.getLogger("stamp.flash")

DEFAULT_RETRIES = 2
DEFAULT_TIMEOUT = 60.0
"""Seconds one attempt may take from the start of the upload (or from the end of the
flash command) to a verdict."""
DEFAULT_SETTLE = 15.0
"""Seconds to wait for a report after the device came back online from an OTA."""
FLASH_COMMAND_TIMEOUT = 600.0
"""Seconds a flash command may run before it is stopped."""
STREAM_CONNECTED = "event stream connected"
"""The status `stamp.transport.cloud.CloudTransport` yields when its event stream opens."""
PLACEHOLDERS = ("{bin}", "{elf}", "{device}")
FLASH_FAILED = "flash_failed"
"""The `status` of `stamp flash --json` when the last attempt could not flash at all."""


class Flasher(Protocol):
    """A way to put an image on a device, and to hear the device afterwards."""

    @property
    def flash_while_listening(self) -> bool:
        """Flash once the transport is listening (cloud), not before opening it (serial)."""
        ...

    def describe(self) -> str:
        """How and where it flashes, e.g. "to bench with `openocd …`" (never a secret)."""
        ...

    def prepare(self, image: FlashImage) -> None:
        """Check everything that can be checked before the first flash; StampError if not."""
        ...

    def flash(self, image: FlashImage, say: Callable[[str], None]) -> None:
        """Flash once; FlashError when it failed. `say` shows a line of progress as is."""
        ...

    def open(self, since: float, clock: Clock) -> Transport:
        """The transport that hears the device; `since` is when the attempt began."""
        ...

    def close(self) -> None:
        """Release connections; idempotent."""
        ...


# --- the image and its manifest ---------------------------------------------------------


@dataclass(frozen=True)
class FlashImage:
    """A firmware file to flash and the manifest that says which build it is."""

    path: Path
    """The file as given."""
    manifest: Manifest
    """The build it is: the identity the device must report."""
    manifest_path: Path
    """Where the manifest was read from."""
    bin: Path | None
    """The raw image: the file given, or the manifest's .bin when its SHA-256 matches."""
    elf: Path | None
    """The ELF: the file given, or the manifest's ELF when its SHA-256 matches."""

    def describe(self) -> str:
        """e.g. "build/firmware.bin (edit 112)"."""
        return f"{self.path} ({build_name(self.manifest)})"


def load_flash_image(firmware: Path, manifest_path: Path | None = None) -> FlashImage:
    """`firmware` and its manifest (default: NAME.stamp.json beside it), checked to match.

    They match when the file's SHA-256 is one of the manifest's artifacts, or else when
    the identity read from the file (stamp record, build-id, hashes) is the manifest's
    build. Anything else is an ArtifactError (exit 2): flashing an image the manifest
    does not describe would make every verdict after it meaningless.
    """
    from stamp.artifact.image import default_manifest_path, load_file

    path = manifest_path if manifest_path is not None else default_manifest_path(firmware)
    loaded = load_file(firmware)
    try:
        manifest = load_manifest(path)
    except ArtifactError as exc:
        hint = "" if manifest_path is not None else " (or pass --manifest FILE.stamp.json)"
        raise ArtifactError(f"not flashing {firmware}: {exc.message}{hint}") from None
    given = "elf" if loaded.elf is not None else "bin"
    recorded: dict[str, Artifact | None] = {"elf": manifest.elf, "bin": manifest.bin}
    sha = loaded.facts.sha256
    if not any(a is not None and a.sha256 == sha for a in recorded.values()):
        _check_identity(loaded, manifest, path)
    found = {given: firmware}
    other = "bin" if given == "elf" else "elf"
    artifact = recorded[other]
    if artifact is not None:
        candidate = _artifact_path(path, artifact)
        if _file_sha256(candidate) == artifact.sha256:
            found[other] = candidate
        else:
            log.debug("%s of %s is missing or changed: not used", candidate, path)
    return FlashImage(
        path=firmware,
        manifest=manifest,
        manifest_path=path,
        bin=found.get("bin"),
        elf=found.get("elf"),
    )


def _check_identity(loaded: Firmware, manifest: Manifest, path: Path) -> None:
    from stamp.artifact.image import build_manifest
    from stamp.verify import compare, identifies

    extracted = build_manifest(
        loaded if loaded.elf is not None else None,
        loaded if loaded.bin is not None else None,
        manifest_dir=path.parent,
        recorded_at="",
        allow_unstamped=True,
    )
    compared = compare(manifest.identity(), extracted.identity())
    if identifies(compared):
        return
    differing = [c for c in compared if not c.match]
    if any(c.key == "edit" for c in differing):
        detail = f"it is edit {manifest.edit}, the file is edit {extracted.edit}"
    elif differing:
        detail = "their " + ", ".join(c.key for c in differing) + " differ"
    else:
        detail = "the file matches none of its artifacts and nothing else identifies it"
    raise ArtifactError(
        f"not flashing {loaded.name}: manifest {path} describes another build ({detail}): "
        "run `stamp manifest` after the build, or pass the right --manifest"
    )


def _artifact_path(manifest_path: Path, artifact: Artifact) -> Path:
    recorded = Path(artifact.path)
    return recorded if recorded.is_absolute() else manifest_path.parent / recorded


def _file_sha256(path: Path) -> str | None:
    digest = hashlib.sha256()
    try:
        with path.open("rb") as fp:
            for block in iter(lambda: fp.read(1 << 16), b""):
                digest.update(block)
    except OSError:
        return None
    return digest.hexdigest()


# --- flashers -----------------------------------------------------------------------------


class CloudFlasher(Closing):
    """OTA updates through the Particle Cloud API (PUT /v1/devices/:id, multipart `file`)."""

    flash_while_listening = True

    def __init__(self, client: CloudClient, device: str, *, owns_client: bool = True) -> None:
        self.client = client
        self.device = device
        """The device id or name as given."""
        self.info: DeviceInfo | None = None
        """The device as the cloud describes it, after prepare()."""
        self._owns_client = owns_client

    def describe(self) -> str:
        label = self.info.label if self.info is not None else self.device
        return f"over the air to Particle device {label} via {self.client.host}"

    def prepare(self, image: FlashImage) -> None:
        """The image must be a module .bin; the device must exist (a bad token: exit 2)."""
        if image.bin is None:
            raise ArtifactError(
                f"a Particle OTA update sends the module .bin, and {image.manifest_path} "
                f"names none that matches: flash the .bin (`stamp manifest {image.path} "
                "--bin BIN` records it)"
            )
        self.info = self.client.resolve(self.device)

    def flash(self, image: FlashImage, say: Callable[[str], None]) -> None:
        assert image.bin is not None and self.info is not None, "prepare() first"
        try:
            data = image.bin.read_bytes()
        except OSError as exc:
            raise ArtifactError(f"cannot read {image.bin}: {exc.strerror or exc}") from None
        try:
            answer = self.client.flash(self.info.id, image.bin.name, data)
        except DeviceUnreachable as exc:
            raise FlashError(f"the upload failed: {exc.message}") from None
        say(f'stamp: the cloud accepted the upload ("{answer}"); only the device can confirm it')

    def open(self, since: float, clock: Clock) -> Transport:
        from stamp.transport.cloud import CloudTransport

        assert self.info is not None, "prepare() first"
        # The variable may still hold the old app's identity: only new events count.
        return CloudTransport(
            self.client,
            self.info.id,
            clock=clock,
            since=since,
            read_variable=False,
            owns_client=False,
        )

    def close(self) -> None:
        if self._owns_client:
            self.client.close()


class CommandFlasher(Closing):
    """A device's `flash_command`, run without a shell, with its output streamed."""

    def __init__(
        self,
        command: str,
        *,
        device_name: str,
        device: str,
        listen: Callable[[float, Clock], Transport],
        serial: bool,
        cwd: Path,
        timeout: float = FLASH_COMMAND_TIMEOUT,
    ) -> None:
        self.command = command
        """The configured command, placeholders unreplaced."""
        self.device_name = device_name
        """The `[devices.NAME]` it comes from."""
        self.device = device
        """What `{device}` stands for: the port, or the Particle device id or name."""
        self.flash_while_listening = not serial
        self.cwd = cwd
        """Where it runs: the config's directory."""
        self.timeout = timeout
        self.args: list[str] = []
        """The argument list, after prepare()."""
        self._listen = listen

    def describe(self) -> str:
        shown = shlex.join(self.args) if self.args else self.command
        return f"to {self.device_name} with `{shown}`"

    def prepare(self, image: FlashImage) -> None:
        self.args = command_args(self.command, image, self.device, self.device_name)
        program = self.args[0]
        # A path with a slash is relative to where the command runs (the config's directory).
        found = (self.cwd / program).is_file() if "/" in program else shutil.which(program)
        if not found:
            raise ConfigError(
                f"the flash command of device {self.device_name!r} runs {program!r}, "
                "which is not installed or not on PATH"
            )

    def flash(self, image: FlashImage, say: Callable[[str], None]) -> None:
        from stamp.proc import run_streaming

        assert self.args, "prepare() first"
        try:
            status = run_streaming(
                self.args, lambda line: say(f"  {line}"), cwd=self.cwd, timeout=self.timeout
            )
        except OSError as exc:
            raise FlashError(
                f"cannot run the flash command {self.args[0]!r}: {exc.strerror or exc}"
            ) from None
        except subprocess.TimeoutExpired:
            raise FlashError(
                f"the flash command did not finish within {self.timeout:g} s and was stopped"
            ) from None
        if status < 0:
            raise FlashError(f"the flash command was killed by signal {-status}")
        if status != 0:
            raise FlashError(f"the flash command exited with status {status}")

    def open(self, since: float, clock: Clock) -> Transport:
        return self._listen(since, clock)

    def close(self) -> None:
        pass


def command_args(command: str, image: FlashImage, device: str, device_name: str) -> list[str]:
    """The argument list of a flash command: split like a shell would, then `{bin}`,
    `{elf}` and `{device}` replaced inside each word (so a path with spaces stays one)."""
    try:
        words = shlex.split(command)
    except ValueError as exc:
        raise ConfigError(
            f"the flash command of device {device_name!r} cannot be split into words ({exc})"
        ) from None
    if not words:
        raise ConfigError(f"the flash command of device {device_name!r} is empty")
    values = {
        "{bin}": str(image.bin.absolute()) if image.bin else None,
        "{elf}": str(image.elf.absolute()) if image.elf else None,
        "{device}": device,
    }
    for placeholder, value in values.items():
        if value is None and any(placeholder in word for word in words):
            kind = placeholder.strip("{}")
            raise ArtifactError(
                f"the flash command of device {device_name!r} needs {placeholder}, but "
                f"neither {image.path} nor {image.manifest_path} gives a matching .{kind} file"
            )
    out = []
    for word in words:
        for placeholder, value in values.items():
            if value is not None:
                word = word.replace(placeholder, value)
        out.append(word)
    return out


def make_flasher(
    target: DeviceTarget, config: Config, env: Mapping[str, str], home: Path
) -> CloudFlasher | CommandFlasher:
    """The flasher for `--device`: its configured flash_command, else a cloud OTA update.

    A serial device needs a flash_command (DeviceError, exit 2, otherwise). A Particle
    device with one (e.g. `particle flash --usb {bin}`) is flashed by it and heard through
    the cloud. Cloud credentials come from `stamp.credentials`, as for `stamp verify`.
    """
    device_config = config.devices.get(target.name) if target.name else None
    command = device_config.flash_command if device_config else None
    if command is not None:
        assert target.name is not None

        def listen(since: float, clock: Clock) -> Transport:
            return open_transport(target, config, env, home, clock=clock, since=since)

        return CommandFlasher(
            command,
            device_name=target.name,
            device=target.port if isinstance(target, SerialTarget) else target.device,
            listen=listen,
            serial=isinstance(target, SerialTarget),
            cwd=config.root,
        )
    if isinstance(target, SerialTarget):
        if target.name is None:
            raise DeviceError(
                f"stamp cannot flash serial:{target.port}: a port has no flash command; "
                "name the device in stamp.toml ([devices.NAME] with serial and "
                'flash_command = "… {bin}"), or flash it yourself and run `stamp verify`'
            )
        where = f" in {config.path}" if config.path else ""
        raise DeviceError(
            f"device {target.name!r}{where} has no flash_command: add one to "
            f'[devices.{target.name}], e.g. flash_command = "particle flash --usb {{bin}}"'
        )
    return _cloud_flasher(target, config, env, home)


def _cloud_flasher(
    target: ParticleTarget, config: Config, env: Mapping[str, str], home: Path
) -> CloudFlasher:
    from stamp.credentials import find_api_url, find_token
    from stamp.transport.cloud import CloudClient

    token = find_token(env, home)
    client = CloudClient(find_api_url(env, home, config.api_url), token)
    return CloudFlasher(client, target.device)


# --- attempts -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Attempt:
    """One flash and what the device said after it."""

    number: int
    """1 for the first."""
    verdict: Verdict | None
    """What verification found; None when the flash itself failed."""
    flash_error: str | None
    """Why flashing failed or did not happen (the command's exit status, a refused upload)."""
    elapsed: float
    """Seconds the attempt took, flashing included."""

    @property
    def status(self) -> VerdictStatus:
        """The verdict's status; NO_REPORT when there is none."""
        return self.verdict.status if self.verdict else VerdictStatus.NO_REPORT

    def summary(self, *, now: datetime | None = None) -> str:
        """One line: the verdict, or why the flash failed."""
        if self.verdict is None:
            return f"FLASH FAILED: {self.flash_error}"
        verdict = self.verdict
        if verdict.status is VerdictStatus.NO_REPORT and verdict.heard.explanation:
            text = f"NO REPORT: {verdict.heard.explanation}"
        else:
            text = verdict_message(verdict, now=now)
        return f"{text} ({self.flash_error})" if self.flash_error else text

    def to_json(self, *, now: datetime | None = None) -> dict[str, Any]:
        return {
            "attempt": self.number,
            "flash_error": self.flash_error,
            "verdict": self.verdict.to_json(now=now) if self.verdict else None,
            "elapsed": round(self.elapsed, 3),
        }


@dataclass(frozen=True)
class FlashResult:
    """Every attempt of one `stamp flash`, the last one deciding."""

    attempts: tuple[Attempt, ...]
    """In order; at least one."""
    retries: int
    """How many attempts after the first were allowed."""

    @property
    def final(self) -> Attempt:
        return self.attempts[-1]

    @property
    def verdict(self) -> Verdict | None:
        """The last attempt's verdict; None when its flash failed."""
        return self.final.verdict

    @property
    def status(self) -> str:
        """The verdict's status value, or "flash_failed"."""
        return self.verdict.status.value if self.verdict else FLASH_FAILED

    def to_json(self, *, now: datetime | None = None) -> dict[str, Any]:
        """The record of `stamp flash --json`."""
        return {
            "status": self.status,
            "message": self.final.summary(now=now),
            "retries": self.retries,
            "attempts": [a.to_json(now=now) for a in self.attempts],
            "verdict": self.verdict.to_json(now=now) if self.verdict else None,
        }


def flash_and_verify(
    flasher: Flasher,
    image: FlashImage,
    history: Sequence[Manifest],
    *,
    retries: int = DEFAULT_RETRIES,
    timeout: float = DEFAULT_TIMEOUT,
    settle: float = DEFAULT_SETTLE,
    progress: Progress | None = None,
    show_events: bool = False,
    verbose: bool = False,
    clock: Clock = monotonic,
    wall_clock: Callable[[], float] = time.time,
) -> FlashResult:
    """Flash `image` and verify, up to `retries` more times until the device runs it.

    `flasher.prepare(image)` must have been called. The outcome of each attempt that is
    followed by another is one line on `progress` (the last one is the caller's to show,
    from the result); `show_events` prints every event heard as a line even on a terminal
    (the demo). StampErrors that retrying cannot fix (a rejected token, an unknown
    device) propagate; a failed flash or a wrong or silent device is a failed attempt.
    """
    progress = progress or Progress(quiet=True)
    total = retries + 1
    attempts: list[Attempt] = []
    for number in range(1, total + 1):
        if number == 1:
            doing = f"flashing {image.describe()} {flasher.describe()}"
        else:
            doing = "flashing again" + (" (the last attempt)" if number == total else "")
        progress.line(f"stamp: attempt {number}/{total}: {doing}")
        attempt = _attempt(
            flasher,
            image,
            history,
            number,
            timeout=timeout,
            settle=settle,
            waiting=Watch(progress, timeout, lines=show_events, verbose=verbose),
            clock=clock,
            wall_clock=wall_clock,
        )
        attempts.append(attempt)
        if attempt.status is VerdictStatus.VERIFIED or number == total:
            break  # the caller shows the final verdict
        progress.line(f"stamp: attempt {number}/{total}: {attempt.summary()}; retrying")
    return FlashResult(attempts=tuple(attempts), retries=retries)


def _attempt(
    flasher: Flasher,
    image: FlashImage,
    history: Sequence[Manifest],
    number: int,
    *,
    timeout: float,
    settle: float,
    waiting: Watch,
    clock: Clock,
    wall_clock: Callable[[], float],
) -> Attempt:
    started = clock()
    since = wall_clock()
    say = waiting.line
    flashed = False
    if not flasher.flash_while_listening:
        try:
            flasher.flash(image, say)
        except FlashError as exc:
            return Attempt(number, None, exc.message, clock() - started)
        flashed = True
    attempt_clock = _AttemptClock(clock, timeout)

    def on_heard(heard: Heard) -> None:
        nonlocal flashed
        waiting.heard(heard)
        if not flashed and heard.kind is HeardKind.STATUS and heard.text == STREAM_CONNECTED:
            flashed = True
            flasher.flash(image, say)
        elif flashed and heard.kind is not HeardKind.LINE and heard.text.strip() == CAME_ONLINE:
            attempt_clock.settle_after(settle)
        elif heard.kind is HeardKind.REPORT:
            attempt_clock.cancel()

    try:
        with flasher.open(since, attempt_clock) as transport:
            listening = clock()
            waiting.start()
            try:
                verdict = verify(
                    transport,
                    image.manifest,
                    history,
                    timeout=timeout,
                    clock=attempt_clock,
                    on_heard=on_heard,
                )
            finally:
                waiting.stop()
    except FlashError as exc:
        return Attempt(number, None, exc.message, clock() - started)
    if attempt_clock.settled:
        # It stopped early on purpose: say how long it really listened.
        waited = round(clock() - listening, 1)
        verdict = replace(verdict, elapsed=waited, timeout=waited)
    note = None
    if not flashed:
        note = "nothing was flashed: " + (
            "the device's event stream did not connect"
            if verdict.status is VerdictStatus.NO_REPORT
            else "the device answered before the upload"
        )
    return Attempt(number, verdict, note, clock() - started)


class _AttemptClock:
    """The deadline clock of one attempt: monotonic time, which jumps past the deadline
    once `settle` seconds went by after the device came back online with nothing to say.

    Transports and `verify` stop when their clock reaches the deadline and look at it
    between reads, so moving the clock ends the wait even when nothing more arrives.
    """

    def __init__(self, base: Clock, timeout: float) -> None:
        self._base = base
        self._jump = timeout
        self._settle_at: float | None = None
        self.settled = False
        """The settle time ran out: the attempt ended early."""

    def __call__(self) -> float:
        now = self._base()
        if not self.settled and self._settle_at is not None and now >= self._settle_at:
            self.settled = True
        return now + self._jump if self.settled else now

    def settle_after(self, seconds: float) -> None:
        if not self.settled:
            self._settle_at = self._base() + seconds

    def cancel(self) -> None:
        """A report came: the verdict decides, or the full timeout runs."""
        if not self.settled:
            self._settle_at = None
