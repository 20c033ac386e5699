"""stamp.toml / [tool.stamp] in pyproject.toml: found upward from the working directory.

Everything has a default, so `stamp header` works with no configuration in any git
repository. Unknown keys are an error naming the key and the file, since a typo
(`output-dir` for `output_dir`) would otherwise be silently ignored.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, NamedTuple

from stamp.errors import ConfigError

CONFIG_NAMES = ("stamp.toml", "pyproject.toml")
DEFAULT_OUTPUT_DIR = "build/stamp"
DEFAULT_TEMPLATE = "default"
DEFAULT_EXCLUDE = ("build/",)
MAX_BAUD = 999_999_999
"""The highest baud rate accepted (the same bound as `serial:PORT?baud=N`): past 2**31 the
serial driver overflows."""
MAX_CONFIG_BYTES = 1 << 20
"""A config is a few hundred bytes; a bigger file is not one."""
MAX_PATH_BYTES = 4095
MAX_NAME_BYTES = 255
"""Linux's PATH_MAX - 1 and NAME_MAX: longer paths fail with "File name too long"."""
_PATH_KEYS = frozenset({"output_dir", "template", "state_dir", "exclude"})


# A NamedTuple, not a dataclass: it is on `stamp header`'s no-op path (see stamp/header/run.py).
class DeviceConfig(NamedTuple):
    """One `[devices.NAME]` table."""

    name: str
    """The table name, used as `--device NAME`."""
    serial: str | None = None
    """Serial port path or pyserial URL (e.g. /dev/ttyACM0, socket://127.0.0.1:4444)."""
    baud: int = 115200
    """Serial baud rate."""
    particle: str | None = None
    """Particle device id or name."""
    smp: str | None = None
    """An MCUboot/Zephyr device over SMP: "serial:/dev/ttyACM0[?baud=N]" or "udp:HOST[:PORT]"."""
    flash_command: str | None = None
    """Command for `stamp flash` on serial devices; {bin}, {elf}, {device} are replaced."""
    gdb: str | None = None
    """A debug probe's GDB server, HOST:PORT (e.g. localhost:3333 for OpenOCD)."""


class Config(NamedTuple):
    """The effective configuration."""

    root: Path
    """Directory relative paths are resolved against (the config file's, else the cwd)."""
    path: Path | None = None
    """The file it came from; None when defaults are used."""
    output_dir: str = DEFAULT_OUTPUT_DIR
    """Where generated files go, relative to root."""
    template: str = DEFAULT_TEMPLATE
    """"default", "header-only", or a directory of .j2 templates."""
    state_dir: str = ""
    """Edit counter and build history; empty means inside the git directory."""
    include_untracked: bool = False
    """Untracked, not ignored files count as edits and make the tree dirty."""
    exclude: tuple[str, ...] = DEFAULT_EXCLUDE
    """Paths (prefixes relative to the repository root) that never count as edits."""
    build_time: bool = False
    """Put the build time into generated files (SOURCE_DATE_EPOCH wins when set)."""
    api_url: str | None = None
    """Particle Cloud API base URL (the simulator, or another cloud)."""
    devices: dict[str, DeviceConfig] = {}  # noqa: RUF012 (never mutated)
    """Named devices for --device NAME."""

    @property
    def output_path(self) -> Path:
        return self.root / self.output_dir


_TOP_KEYS: dict[str, type | tuple[type, ...]] = {
    "output_dir": str,
    "template": str,
    "state_dir": str,
    "include_untracked": bool,
    "exclude": list,
    "build_time": bool,
    "api_url": str,
    "devices": dict,
}
_DEVICE_KEYS: dict[str, type | tuple[type, ...]] = {
    "serial": str,
    "baud": int,
    "particle": str,
    "smp": str,
    "flash_command": str,
    "gdb": str,
}


def find_config(start: Path) -> Path | None:
    """The nearest stamp.toml, or pyproject.toml with a [tool.stamp] table, at or above start."""
    for directory in (start, *start.parents):
        candidate = directory / "stamp.toml"
        if candidate.is_file():
            return candidate
        candidate = directory / "pyproject.toml"
        if candidate.is_file() and _mentions_stamp(candidate):
            return candidate
    return None


_MAYBE_STAMP = re.compile(rb"^\s*(?:tool\s*=|stamp\s*=|\[\[\s*tool\s*\.\s*stamp)", re.MULTILINE)
"""Lines that may give pyproject.toml a `tool.stamp` that is not written [tool.stamp]."""


def _mentions_stamp(pyproject: Path) -> bool:
    """The file has a `tool.stamp` (even a malformed one, to be reported, not ignored)."""
    try:
        data = pyproject.read_bytes()
    except OSError:
        return True  # load_config says why it cannot be read
    if b"[tool.stamp" in data:
        return True
    if not _MAYBE_STAMP.search(data):
        return False
    import tomllib  # rare: a line that may be `tool = ...` or `[tool] stamp = ...`

    try:
        tool = tomllib.loads(data.decode("utf-8")).get("tool", {})
    except (ValueError, RecursionError):  # invalid TOML (UnicodeDecodeError is a ValueError)
        return True
    return not isinstance(tool, dict) or "stamp" in tool


def load_config(explicit: Path | None = None, cwd: Path | None = None) -> Config:
    """Load `explicit`, else the nearest config above `cwd`, else the defaults rooted at cwd."""
    cwd = cwd or Path.cwd()
    path = explicit if explicit is not None else find_config(cwd)
    if path is None:
        return Config(root=cwd)
    import tomllib  # only when there is a file to read

    try:
        with path.open("rb") as fp:
            data = fp.read(MAX_CONFIG_BYTES + 1)
        if len(data) > MAX_CONFIG_BYTES:
            raise ConfigError(f"{path} is larger than {MAX_CONFIG_BYTES} bytes: not a config")
        document = tomllib.loads(data.decode("utf-8"))
        resolved = path.resolve()
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except RecursionError:
        raise ConfigError(f"{path} is nested too deeply to be a config") from None
    except (OSError, UnicodeDecodeError, RuntimeError) as exc:  # RuntimeError: symlink loop
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    if path.name != "pyproject.toml":
        return parse_config(document, path=resolved)
    tool = document.get("tool", {})
    if not isinstance(tool, dict):
        raise ConfigError(f"{resolved}: `tool` must be a table")
    table = tool.get("stamp", {})
    if not isinstance(table, dict):
        raise ConfigError(f"{resolved}: `tool.stamp` must be a table (written [tool.stamp])")
    return parse_config(table, path=resolved, prefix="tool.stamp.")


def _check(value: Any, expected: type | tuple[type, ...], key: str, path: Path) -> None:
    # bool is an int in Python; a baud of `true` is still a mistake.
    ok = False if isinstance(value, bool) and expected is not bool else isinstance(value, expected)
    if not ok:
        want = expected.__name__ if isinstance(expected, type) else expected[0].__name__
        raise ConfigError(f"{path}: `{key}` must be {_TOML_NAMES.get(want, want)}")
    if isinstance(value, str):
        _check_text(value, key, path)


def _check_text(value: str, key: str, path: Path) -> None:
    """A string that will become a path, a port or a command: no NUL, not absurdly long."""
    if "\0" in value:
        raise ConfigError(f"{path}: `{key}` holds a NUL byte")
    if len(value.encode("utf-8", "surrogatepass")) > MAX_PATH_BYTES:
        raise ConfigError(f"{path}: `{key}` is longer than {MAX_PATH_BYTES} bytes")
    if key.rpartition(".")[2] in _PATH_KEYS:
        for part in value.replace("\\", "/").split("/"):
            if len(part.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
                raise ConfigError(
                    f"{path}: `{key}` has a path component longer than {MAX_NAME_BYTES} bytes"
                )


_TOML_NAMES = {
    "str": "a string",
    "int": "an integer",
    "bool": "a boolean",
    "list": "a list",
    "dict": "a table",
}


def parse_config(table: dict[str, Any], *, path: Path, prefix: str = "") -> Config:
    """Validate a parsed table into a Config; ConfigError names the bad key and the file."""
    for key, value in table.items():
        if key not in _TOP_KEYS:
            known = ", ".join(sorted(_TOP_KEYS))
            raise ConfigError(f"{path}: unknown key `{prefix}{key}` (known keys: {known})")
        _check(value, _TOP_KEYS[key], prefix + key, path)
    exclude = table.get("exclude", list(DEFAULT_EXCLUDE))
    for item in exclude:
        _check(item, str, f"{prefix}exclude", path)
    template = table.get("template", DEFAULT_TEMPLATE)
    devices = {
        name: _parse_device(name, body, path, f"{prefix}devices.{name}")
        for name, body in table.get("devices", {}).items()
    }
    return Config(
        root=path.parent,
        path=path,
        output_dir=table.get("output_dir", DEFAULT_OUTPUT_DIR),
        template=template,
        state_dir=table.get("state_dir", ""),
        include_untracked=table.get("include_untracked", False),
        exclude=tuple(exclude),
        build_time=table.get("build_time", False),
        api_url=table.get("api_url"),
        devices=devices,
    )


def _parse_device(name: str, body: Any, path: Path, where: str) -> DeviceConfig:
    if not isinstance(body, dict):
        raise ConfigError(f"{path}: `{where}` must be a table")
    for key, value in body.items():
        if key not in _DEVICE_KEYS:
            known = ", ".join(sorted(_DEVICE_KEYS))
            raise ConfigError(f"{path}: unknown key `{where}.{key}` (known keys: {known})")
        _check(value, _DEVICE_KEYS[key], f"{where}.{key}", path)
    if sum(key in body for key in ("serial", "particle", "smp", "gdb")) != 1:
        raise ConfigError(
            f"{path}: `{where}` needs exactly one of `serial`, `particle`, `smp` or `gdb`"
        )
    baud = body.get("baud", 115200)
    if not 0 < baud <= MAX_BAUD:
        raise ConfigError(f"{path}: `{where}.baud` must be an integer from 1 to {MAX_BAUD}")
    for key in ("serial", "particle", "flash_command"):
        if body.get(key) == "":
            raise ConfigError(f"{path}: `{where}.{key}` is empty")
    return DeviceConfig(
        name=name,
        serial=body.get("serial"),
        baud=baud,
        particle=body.get("particle"),
        smp=body.get("smp"),
        flash_command=body.get("flash_command"),
        gdb=body.get("gdb"),
    )
