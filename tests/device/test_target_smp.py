"""`--device smp:…` and `[devices.X] smp = …` parse into SmpTargets (a table test)."""

from __future__ import annotations

from pathlib import Path

import pytest

from stamp.config import load_config
from stamp.device.target import SmpTarget, parse_device
from stamp.errors import ConfigError, DeviceError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("smp:serial:/dev/ttyACM0", SmpTarget("serial", "/dev/ttyACM0")),
        ("smp:serial:/dev/ttyACM0?baud=1000000", SmpTarget("serial", "/dev/ttyACM0", 1000000)),
        ("smp:serial:socket://127.0.0.1:4444", SmpTarget("serial", "socket://127.0.0.1:4444")),
        ("smp:udp:192.0.2.1", SmpTarget("udp", "192.0.2.1", port=1337)),
        ("smp:udp:192.0.2.1:8000", SmpTarget("udp", "192.0.2.1", port=8000)),
        ("smp:udp:board.local:1337", SmpTarget("udp", "board.local", port=1337)),
        ("smp:udp:[2001:db8::1]:9", SmpTarget("udp", "2001:db8::1", port=9)),
        ("smp:udp:[2001:db8::1]", SmpTarget("udp", "2001:db8::1", port=1337)),
    ],
)
def test_smp_urls(tmp_path: Path, text: str, expected: SmpTarget) -> None:
    assert parse_device(text, load_config(None, cwd=tmp_path)) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("smp:", "is not an SMP device"),
        ("smp:ble:AA:BB", "is not an SMP device"),
        ("smp:serial:", "names no port"),
        ("smp:serial:/dev/ttyACM0?baud=fast", "bad baud rate"),
        ("smp:udp:", "names no host"),
        ("smp:udp:host:0", "bad port"),
        ("smp:udp:host:99999", "bad port"),
        ("smp:udp:host:12ab", "bad port"),
        ("smp:udp:[::1", "names no host"),
        ("smp:udp:[::1]x", "names no host"),
    ],
)
def test_bad_smp_urls(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(DeviceError) as caught:
        parse_device(text, load_config(None, cwd=tmp_path))
    assert message in caught.value.message


def test_smp_device_from_config(tmp_path: Path) -> None:
    (tmp_path / "stamp.toml").write_text(
        '[devices.nrf]\nsmp = "serial:/dev/ttyACM1"\nbaud = 1000000\n'
        '[devices.wifi]\nsmp = "udp:192.0.2.7"\n'
    )
    config = load_config(None, cwd=tmp_path)
    assert parse_device("nrf", config) == SmpTarget("serial", "/dev/ttyACM1", 1000000, name="nrf")
    assert parse_device("wifi", config) == SmpTarget("udp", "192.0.2.7", name="wifi")


def test_smp_with_serial_in_one_table_is_refused(tmp_path: Path) -> None:
    (tmp_path / "stamp.toml").write_text('[devices.x]\nsmp = "udp:h"\nserial = "/dev/x"\n')
    with pytest.raises(ConfigError, match="exactly one of"):
        load_config(None, cwd=tmp_path)
