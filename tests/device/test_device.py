"""`--device X`: config names and URLs (pure), and the CLI's one-line errors for bad ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from stamp.config import Config, DeviceConfig, load_config
from stamp.device.target import ParticleTarget, SerialTarget, parse_device
from stamp.errors import DeviceError
from tests.support import run_stamp

CONFIG = Config(
    root=Path("/project"),
    path=Path("/project/stamp.toml"),
    devices={
        "bench": DeviceConfig(name="bench", serial="/dev/ttyACM0", baud=57600),
        "garage": DeviceConfig(name="garage", particle="my_photon"),
        "lab": DeviceConfig(name="lab", serial="socket://10.0.0.5:4000?logging=debug"),
        # A name that looks like a URL still resolves as the name: names are looked up first.
        "serial:odd": DeviceConfig(name="serial:odd", serial="/dev/ttyUSB3"),
    },
)

GOOD = [
    ("bench", SerialTarget("/dev/ttyACM0", 57600, name="bench")),
    ("garage", ParticleTarget("my_photon", name="garage")),
    ("lab", SerialTarget("socket://10.0.0.5:4000?logging=debug", 115200, name="lab")),
    ("serial:odd", SerialTarget("/dev/ttyUSB3", 115200, name="serial:odd")),
    ("serial:/dev/ttyACM0", SerialTarget("/dev/ttyACM0", 115200)),
    ("serial:/dev/ttyACM0?baud=9600", SerialTarget("/dev/ttyACM0", 9600)),
    ("serial:socket://127.0.0.1:4444", SerialTarget("socket://127.0.0.1:4444")),
    ("serial:socket://127.0.0.1:4444?baud=9600", SerialTarget("socket://127.0.0.1:4444", 9600)),
    # pyserial's own URL options stay in the port, in order; only baud= is taken out.
    (
        "serial:socket://h:1?logging=debug&baud=9600",
        SerialTarget("socket://h:1?logging=debug", 9600),
    ),
    (
        "serial:rfc2217://h:2217?baud=230400&ign_set_control&timeout=3",
        SerialTarget("rfc2217://h:2217?ign_set_control&timeout=3", 230400),
    ),
    ("serial:loop://", SerialTarget("loop://")),
    ("particle:0123456789abcdef01234567", ParticleTarget("0123456789abcdef01234567")),
    ("particle:my-photon_2", ParticleTarget("my-photon_2")),
]


@pytest.mark.parametrize(("text", "target"), GOOD, ids=[g[0] for g in GOOD])
def test_parse_device(text: str, target: SerialTarget | ParticleTarget) -> None:
    assert parse_device(text, CONFIG) == target


BAD = [
    ("kitchen", "unknown device 'kitchen'"),
    ("/dev/ttyACM0", "a port is written serial:/dev/ttyACM0"),
    ("COM3", "a port is written serial:COM3"),
    ("socket://127.0.0.1:1", "a pyserial URL is written serial:socket://127.0.0.1:1"),
    ("usb:/dev/ttyACM0", "unknown device 'usb:/dev/ttyACM0'"),
    ("serial:", "names no port"),
    ("serial:?baud=9600", "names no port"),
    ("serial:/dev/ttyACM0?baud=fast", "bad baud rate 'fast'"),
    ("serial:/dev/ttyACM0?baud=0", "bad baud rate '0'"),
    ("serial:/dev/ttyACM0?baud=", "bad baud rate ''"),
    ("serial:/dev/ttyACM0?baud=²", "bad baud rate"),
    ("serial:/dev/ttyACM0?parity=E", "a serial device path takes only ?baud=N"),
    ("particle:", "is not a Particle device"),
    ("particle:my photon", "is not a Particle device"),
    ("particle:../../v1/devices", "is not a Particle device"),
]


@pytest.mark.parametrize(("text", "words"), BAD, ids=[b[0] for b in BAD])
def test_bad_device(text: str, words: str) -> None:
    with pytest.raises(DeviceError) as caught:
        parse_device(text, CONFIG)
    message = str(caught.value)
    assert words in message
    assert "\n" not in message
    if not text.startswith(("serial:", "particle:")):
        assert "configured devices: bench, garage, lab, serial:odd" in message


def test_unknown_name_without_config_says_none_are_configured(tmp_path: Path) -> None:
    config = load_config(cwd=tmp_path)
    with pytest.raises(DeviceError, match="no devices are configured"):
        parse_device("bench", config)


def test_cli_unknown_device_is_exit_2_listing_names(tmp_path: Path) -> None:
    (tmp_path / "stamp.toml").write_text(
        '[devices.bench]\nserial = "/dev/ttyACM0"\n\n[devices.garage]\nparticle = "p1"\n'
    )
    done = run_stamp("verify", "--device", "kitchen", cwd=tmp_path)
    assert done.returncode == 2, done
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1
    assert "unknown device 'kitchen'" in done.stderr
    assert "configured devices: bench, garage" in done.stderr
    assert "Traceback" not in done.stderr
