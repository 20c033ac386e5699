"""`--device X`: a device name from the config, or a URL, resolved to a way of hearing it.

Accepted forms (SPEC section 3):

- `NAME`: a `[devices.NAME]` table of the config (looked up first, so any name works).
- `serial:PORT[?baud=N]`: everything after `serial:` is the pyserial port, a device path
  (`serial:/dev/ttyACM0`) or a pyserial URL (`serial:socket://127.0.0.1:4444`,
  `serial:rfc2217://host:2217?ign_set_control`). The query rule: a `baud=N` option in the
  query is stamp's and is taken out; every other option stays in the port for pyserial, in
  its order (`serial:socket://h:1?logging=debug&baud=9600` opens `socket://h:1?logging=debug`
  at 9600). No pyserial URL handler has a `baud` option, so nothing is lost. A plain
  device path takes no query option but `baud`.
- `particle:DEVICE_ID_OR_NAME`: a device on the Particle Cloud.
- `smp:serial:PORT[?baud=N]` (the serial rule above) or `smp:udp:HOST[:PORT]` (port 1337
  by default, an IPv6 host in brackets): an MCUboot/Zephyr device's SMP server. In the
  config: `smp = "serial:/dev/ttyACM0"` (a `baud` key applies unless the URL has one).
- `gdb:HOST:PORT`: a debug probe's GDB server (OpenOCD and pyOCD listen on 3333, J-Link
  on 2331, QEMU where `-gdb tcp::PORT` says); `gdb:PORT` means localhost. An IPv6 host
  is written in brackets, `gdb:[::1]:3333`.

Anything else is a one-line `DeviceError` (exit 2) that lists the configured names.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from stamp.config import Config, DeviceConfig
from stamp.device.transport.base import Clock, Transport, monotonic
from stamp.errors import DeviceError

if TYPE_CHECKING:
    from stamp.artifact.manifest import Manifest

DEFAULT_BAUD = 115200
SERIAL_SCHEME = "serial:"
PARTICLE_SCHEME = "particle:"
SMP_SCHEME = "smp:"
SMP_UDP = "udp:"
DEFAULT_SMP_UDP_PORT = 1337
"""Zephyr's CONFIG_MCUMGR_TRANSPORT_UDP_PORT default."""
GDB_SCHEME = "gdb:"
BAUD_OPTION = "baud"

# Particle device ids are 24 hex digits; names are letters, digits, `_` and `-`. Both end
# up in an API path, so nothing else is let through.
_PARTICLE_DEVICE = re.compile(r"[A-Za-z0-9_-]{1,64}")
_DIGITS = re.compile(r"[0-9]{1,9}")
_COM_PORT = re.compile(r"COM[0-9]+", re.IGNORECASE)
_NETWORK_SCHEMES = ("socket", "rfc2217")
"""pyserial URL handlers that connect to HOST:PORT."""
_GDB_ADDRESS = re.compile(r"(?:(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):)?([0-9]{1,5})")


@dataclass(frozen=True)
class _Target:
    """What every kind of device target has."""

    name: str | None = field(default=None, kw_only=True)
    """The config name it came from, if any."""


@dataclass(frozen=True)
class SerialTarget(_Target):
    """A device heard on a serial port."""

    port: str
    """The pyserial port: a device path or a pyserial URL (with its own query options)."""
    baud: int = DEFAULT_BAUD
    """Baud rate."""

    def describe(self) -> str:
        return f"serial {self.port} at {self.baud} baud"


@dataclass(frozen=True)
class ParticleTarget(_Target):
    """A device heard through the Particle Cloud."""

    device: str
    """Particle device id or name."""

    def describe(self) -> str:
        return f"Particle device {self.device}"


@dataclass(frozen=True)
class SmpTarget(_Target):
    """An MCUboot/Zephyr device heard over SMP (mcumgr)."""

    kind: str
    """"serial" or "udp"."""
    where: str
    """The serial port (a path or pyserial URL), or the UDP host."""
    baud: int = DEFAULT_BAUD
    """Baud rate (serial)."""
    port: int = DEFAULT_SMP_UDP_PORT
    """UDP port."""

    def describe(self) -> str:
        if self.kind == "serial":
            return f"SMP over serial {self.where} at {self.baud} baud"
        return f"SMP over UDP {self.where}:{self.port}"


@dataclass(frozen=True)
class GdbTarget(_Target):
    """A target read through a debug probe's GDB server."""

    host: str
    """Host name or address (without brackets)."""
    port: int
    """TCP port."""

    def describe(self) -> str:
        return f"GDB server {self.host}:{self.port}"


DeviceTarget = SerialTarget | ParticleTarget | SmpTarget | GdbTarget


def parse_device(text: str, config: Config) -> DeviceTarget:
    """Resolve `--device TEXT` against `config`; DeviceError (exit 2) when it is neither."""
    device = config.devices.get(text)
    if device is not None:
        return _from_config(device)
    if text.startswith(SERIAL_SCHEME):
        return parse_serial_url(text)
    if text.startswith(PARTICLE_SCHEME):
        return _parse_particle(text)
    if text.startswith(SMP_SCHEME):
        return parse_smp_url(text)
    if text.startswith(GDB_SCHEME):
        return parse_gdb_address(text[len(GDB_SCHEME) :], text)
    raise DeviceError(f"unknown device {text!r}: {_hint(text)}; {_known(config)}")


def parse_serial_url(text: str) -> SerialTarget:
    """`serial:PORT[?baud=N]` by the query rule of this module's docstring."""
    rest = text[len(SERIAL_SCHEME) :]
    port, _, query = rest.partition("?")
    if not port:
        raise DeviceError(f"{text!r} names no port: write e.g. serial:/dev/ttyACM0")
    baud = DEFAULT_BAUD
    kept: list[str] = []
    for option in query.split("&") if query else []:
        key, eq, value = option.partition("=")
        if key != BAUD_OPTION:
            kept.append(option)
            continue
        if not eq or not _DIGITS.fullmatch(value) or int(value) <= 0:
            raise DeviceError(f"{text!r} has a bad baud rate {value!r}: write e.g. ?baud=115200")
        baud = int(value)
    if kept and "://" not in port:
        raise DeviceError(
            f"{text!r} has option {kept[0]!r}: a serial device path takes only ?baud=N"
        )
    if kept:
        port = f"{port}?{'&'.join(kept)}"
    problem = port_problem(port)
    if problem:
        raise DeviceError(f"{text!r} {problem}")
    return SerialTarget(port=port, baud=baud)


def port_problem(port: str) -> str | None:
    """What is wrong with a pyserial port or URL (as words after its name), or None.

    pyserial only finds out when it opens the port, and a malformed URL then looks like a
    port that never appeared (issue 10): so a URL is checked here, a usage error.
    """
    if "\0" in port:
        return "holds a NUL byte"
    if "://" not in port:
        return None
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(port)
        number = parts.port
    except ValueError as exc:
        return f"is not a valid URL ({exc})"
    if parts.scheme in _NETWORK_SCHEMES and (not parts.hostname or number is None):
        return f"needs a host and a port: write e.g. serial:{parts.scheme}://127.0.0.1:4444"
    return None


def parse_smp_url(text: str, *, baud: int | None = None) -> SmpTarget:
    """`smp:serial:PORT[?baud=N]` or `smp:udp:HOST[:PORT]`; `baud` is the config's default."""
    rest = text[len(SMP_SCHEME) :]
    if rest.startswith(SERIAL_SCHEME):
        serial = parse_serial_url(rest)
        chosen = serial.baud if "baud=" in rest or baud is None else baud
        return SmpTarget(kind="serial", where=serial.port, baud=chosen)
    if rest.startswith(SMP_UDP):
        host, port = _host_port(rest[len(SMP_UDP) :], text)
        return SmpTarget(kind="udp", where=host, port=port)
    raise DeviceError(
        f"{text!r} is not an SMP device: write smp:serial:/dev/ttyACM0[?baud=N] or "
        "smp:udp:HOST[:PORT]"
    )


def _host_port(text: str, whole: str) -> tuple[str, int]:
    if text.startswith("["):  # [IPv6]:port
        host, bracket, after = text[1:].partition("]")
        port_text = after[1:] if after.startswith(":") else ""
        if not bracket or (after and not after.startswith(":")):
            host = ""
    else:
        host, _, port_text = text.partition(":")
    if not host or any(c in host for c in "/?#@ "):
        raise DeviceError(f"{whole!r} names no host: write e.g. smp:udp:192.0.2.1:1337")
    if not port_text:
        return host, DEFAULT_SMP_UDP_PORT
    if not _DIGITS.fullmatch(port_text) or not 0 < int(port_text) < 65536:
        raise DeviceError(f"{whole!r} has a bad port {port_text!r}: write e.g. :1337")
    return host, int(port_text)


def parse_gdb_address(value: str, shown: str, name: str | None = None) -> GdbTarget:
    """`HOST:PORT` or `PORT` (localhost) of a GDB server; DeviceError when it is neither."""
    match = _GDB_ADDRESS.fullmatch(value)
    port = int(match.group(2)) if match else 0
    if match is None or not 0 < port < 65536:
        raise DeviceError(
            f"{shown!r} is not a GDB server address: write gdb:HOST:PORT, "
            "e.g. gdb:localhost:3333 (OpenOCD, pyOCD) or gdb:localhost:2331 (J-Link)"
        )
    host = (match.group(1) or "localhost").strip("[]")
    return GdbTarget(host=host, port=port, name=name)


def _parse_particle(text: str) -> ParticleTarget:
    device = text[len(PARTICLE_SCHEME) :]
    if not _PARTICLE_DEVICE.fullmatch(device):
        raise DeviceError(
            f"{text!r} is not a Particle device: write particle:ID or particle:NAME "
            "(letters, digits, _ and -)"
        )
    return ParticleTarget(device=device)


def _from_config(device: DeviceConfig) -> DeviceTarget:
    if device.particle is not None:
        return ParticleTarget(device=device.particle, name=device.name)
    if device.smp is not None:
        target = parse_smp_url(SMP_SCHEME + device.smp, baud=device.baud)
        return SmpTarget(target.kind, target.where, target.baud, target.port, name=device.name)
    if device.gdb is not None:
        where = f"[devices.{device.name}] gdb = {device.gdb!r}"
        return parse_gdb_address(device.gdb, where, device.name)
    assert device.serial is not None  # config.py requires exactly one of the four
    problem = port_problem(device.serial)
    if problem:
        raise DeviceError(f"the serial port {device.serial!r} of device {device.name!r} {problem}")
    return SerialTarget(port=device.serial, baud=device.baud, name=device.name)


def _hint(text: str) -> str:
    if text.startswith("/dev/") or _COM_PORT.fullmatch(text):
        return f"a port is written serial:{text}"
    if "://" in text:
        return f"a pyserial URL is written serial:{text}"
    return (
        "use a configured name, serial:PORT[?baud=N], particle:DEVICE_ID_OR_NAME, "
        "smp:serial:PORT, smp:udp:HOST[:PORT] or gdb:HOST:PORT"
    )


def _known(config: Config) -> str:
    if config.devices:
        return "configured devices: " + ", ".join(sorted(config.devices))
    where = f"in {config.path}" if config.path else "(no stamp.toml or [tool.stamp] found)"
    return f"no devices are configured {where}"


def open_transport(
    target: DeviceTarget,
    config: Config,
    env: Mapping[str, str],
    home: Path,
    clock: Clock = monotonic,
    since: float | None = None,
    expected: Manifest | None = None,
    read_image: bool = False,
    reset: bool = False,
) -> Transport:
    """The transport that hears `target` (not yet listening; use it as a context manager).

    `since` (a `time.time()` value: the cloud stamps events with wall-clock time) is for
    `stamp flash`: only events published after the flash started count, and the cloud
    variable, which may still hold the old firmware's identity, is not read. Serial
    ignores it: its port is opened after the flash. `clock` is the transport's deadline
    clock (monotonic), the one `stamp.device.verify.verify` must be given too.
    Cloud credentials come from `stamp.device.credentials` (the token never leaves the client).
    A GDB target reads the memory `expected` (the manifest) records, and with `read_image`
    reads back the whole image too; ArtifactError when the manifest has no addresses.
    A serial transport sends `?stamp` only when the firmware answers it (decided from
    `expected`); `reset` resets the board into its app through DTR/RTS once the port is
    open (serial only; DeviceError for others).
    """
    if isinstance(target, GdbTarget):
        from stamp.device.transport.gdb import GdbTransport

        layout = expected.memory if expected is not None else None
        return GdbTransport(target.host, target.port, layout, read_image=read_image, clock=clock)
    if isinstance(target, SerialTarget):
        from stamp.device.esp_boot import answers_query
        from stamp.device.transport.serial import SerialTransport

        query = expected is None or answers_query(expected)
        return SerialTransport(target.port, target.baud, clock=clock, query=query, reset=reset)
    if reset:
        raise DeviceError(
            f"--reset toggles a serial port's DTR/RTS lines: {target.describe()} has none"
        )
    if isinstance(target, SmpTarget):
        from stamp.device.transport.smp import SmpTransport

        return SmpTransport(target, clock=clock)
    from stamp.device.credentials import find_api_url, find_token
    from stamp.device.transport.cloud import CloudTransport
    from stamp.device.transport.cloud_api import CloudClient

    token = find_token(env, home)
    api_url = find_api_url(env, home, config.api_url)
    client = CloudClient(api_url, token)
    return CloudTransport(
        client, target.device, clock=clock, since=since, read_variable=since is None
    )
