"""How `stamp flash` puts an image on a device, and how it hears the device afterwards.

Two ways to flash, behind the `Flasher` protocol:

- `CloudFlasher`: an OTA update through the Particle Cloud API. It uploads once the
  device's event stream is connected, so nothing the device says after its restart can
  be missed, and only events published after the attempt began count (`since`).
- `GdbFlasher` (`stamp.device.flash_gdb`): loads the ELF through a debug probe's GDB
  server, as GDB's `load` does, when the device has no `flash_command`.
- `CommandFlasher`: the device's `flash_command` from the config (`{bin}`, `{elf}` and
  `{device}` replaced in each word), run without a shell, its output shown as it comes.
  For a serial device it runs before the port is opened: the flashing tool usually needs
  the port, and the board resets when it is done.

`make_flasher` picks one for a `--device`; `stamp.device.flash` drives it, attempt by attempt.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from stamp.closing import Closing
from stamp.config import Config
from stamp.device.flash_image import FlashImage
from stamp.device.target import (
    DeviceTarget,
    GdbTarget,
    ParticleTarget,
    SerialTarget,
    SmpTarget,
    open_transport,
)
from stamp.device.transport.base import Clock, Transport
from stamp.errors import (
    ArtifactError,
    ConfigError,
    DeviceError,
    DeviceUnreachable,
    FlashError,
    FlashRefused,
)

if TYPE_CHECKING:
    from stamp.artifact.manifest import Manifest
    from stamp.device.flash_gdb import GdbFlasher
    from stamp.device.flash_smp import SmpFlasher
    from stamp.device.transport.cloud_api import CloudClient
    from stamp.device.transport.cloud_records import DeviceInfo

FLASH_COMMAND_TIMEOUT = 600.0
"""Seconds a flash command may run before it is stopped."""
PLACEHOLDERS = ("{bin}", "{elf}", "{device}")


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
        built_for = (image.manifest.particle or {}).get("platform_id")
        runs_on = self.info.platform_id
        if isinstance(built_for, int) and runs_on is not None and built_for != runs_on:
            raise FlashRefused(
                f"{image.path} is built for platform {_platform(built_for)}, but Particle "
                f"device {self.info.label} is platform {_platform(runs_on)}: build it for "
                "the device's platform"
            )

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
        from stamp.device.transport.cloud import CloudTransport

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


def _platform(platform_id: int) -> str:
    from stamp.artifact.particle.format import PLATFORM_NAMES

    name = PLATFORM_NAMES.get(platform_id)
    return f"{platform_id} ({name})" if name else str(platform_id)


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
    target: DeviceTarget,
    config: Config,
    env: Mapping[str, str],
    home: Path,
    *,
    expected: Manifest | None = None,
    confirm: bool = True,
) -> CloudFlasher | CommandFlasher | GdbFlasher | SmpFlasher:
    """The flasher for `--device`: its configured flash_command, else a cloud OTA update,
    or for an SMP device an upload over SMP (`stamp.device.flash_smp`; `confirm` False
    leaves the new image unconfirmed).

    A serial device needs a flash_command (DeviceError, exit 2, otherwise). A Particle
    device with one (e.g. `particle flash --usb {bin}`) is flashed by it and heard through
    the cloud. Cloud credentials come from `stamp.device.credentials`, as for `stamp verify`.
    `expected` (the build being flashed) tells a serial transport whether the firmware
    answers `?stamp` (an ESP-IDF app without stamp does not).

    Long because it is the one table from a device kind (serial, Particle, SMP, gdb) and its
    config to the flasher that serves it.
    """
    device_config = config.devices.get(target.name) if target.name else None
    command = device_config.flash_command if device_config else None
    if isinstance(target, GdbTarget):
        from stamp.device.flash_gdb import GdbFlasher

        runs = None
        if command is not None:
            assert target.name is not None
            runs = CommandFlasher(
                command,
                device_name=target.name,
                device=f"{target.host}:{target.port}",
                listen=lambda since, clock: open_transport(target, config, env, home),
                serial=True,  # flashed before the target is read, like a serial port
                cwd=config.root,
            )
        return GdbFlasher(target, runs)
    if command is not None:
        assert target.name is not None

        def listen(since: float, clock: Clock) -> Transport:
            return open_transport(
                target, config, env, home, clock=clock, since=since, expected=expected
            )

        return CommandFlasher(
            command,
            device_name=target.name,
            device=_device_word(target),
            listen=listen,
            serial=isinstance(target, SerialTarget | SmpTarget),
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
    if isinstance(target, SmpTarget):
        from stamp.device.flash_smp import SmpFlasher

        return SmpFlasher(target, confirm=confirm)
    return _cloud_flasher(target, config, env, home)


def _device_word(target: DeviceTarget) -> str:
    """What `{device}` in a flash_command becomes."""
    if isinstance(target, SerialTarget):
        return target.port
    if isinstance(target, SmpTarget):
        return target.where
    if isinstance(target, GdbTarget):
        return f"{target.host}:{target.port}"
    return target.device


def _cloud_flasher(
    target: ParticleTarget, config: Config, env: Mapping[str, str], home: Path
) -> CloudFlasher:
    from stamp.device.credentials import find_api_url, find_token
    from stamp.device.transport.cloud_api import CloudClient

    token = find_token(env, home)
    client = CloudClient(find_api_url(env, home, config.api_url), token)
    return CloudFlasher(client, target.device)
