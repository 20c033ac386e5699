"""Configuration: discovery, validation, clear errors naming the key and the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from stamp.config import DeviceConfig, find_config, load_config
from stamp.errors import ConfigError


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_defaults_without_config(tmp_path: Path) -> None:
    config = load_config(cwd=tmp_path)
    assert config.path is None and config.output_dir == "build/stamp"
    assert config.template == "default" and config.exclude == ("build/",)


def test_found_upward_and_pyproject(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml", '[project]\nname = "x"\n')
    assert find_config(tmp_path / "a" / "b") is None
    write(tmp_path / "pyproject.toml", '[tool.stamp]\noutput_dir = "gen"\n')
    (tmp_path / "a" / "b").mkdir(parents=True)
    config = load_config(cwd=tmp_path / "a" / "b")
    assert config.output_dir == "gen" and config.root == tmp_path.resolve()
    write(tmp_path / "a" / "stamp.toml", 'template = "header-only"\n')
    assert load_config(cwd=tmp_path / "a" / "b").template == "header-only"


def test_devices(tmp_path: Path) -> None:
    path = write(
        tmp_path / "stamp.toml",
        '[devices.bench]\nserial = "/dev/ttyACM0"\nbaud = 9600\n'
        'flash_command = "particle flash --usb {bin}"\n'
        '[devices.garage]\nparticle = "my_photon"\n',
    )
    config = load_config(path)
    assert config.devices["bench"] == DeviceConfig(
        name="bench",
        serial="/dev/ttyACM0",
        baud=9600,
        flash_command="particle flash --usb {bin}",
    )
    assert config.devices["garage"].particle == "my_photon"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('output-dir = "x"\n', "unknown key `output-dir`"),
        ("include_untracked = 1\n", "`include_untracked` must be a boolean"),
        ('exclude = "build/"\n', "`exclude` must be a list"),
        ("exclude = [1]\n", "`exclude` must be a string"),
        ('[devices.a]\nserial = "/dev/x"\nbaud = "fast"\n', "`devices.a.baud` must be an integer"),
        ('[devices.a]\nserial = "/dev/x"\nspeed = 1\n', "unknown key `devices.a.speed`"),
        ("[devices.a]\nbaud = 1\n", "exactly one of `serial`, `particle`, `smp` or `gdb`"),
        ('[devices.a]\nserial = "/dev/x"\nparticle = "p"\n', "exactly one of"),
        ("output_dir = \n", "is not valid TOML"),
    ],
)
def test_bad_config(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path / "stamp.toml", text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert message in str(err.value) and str(path) in str(err.value)


def test_pyproject_keys_are_named_with_their_table(tmp_path: Path) -> None:
    path = write(tmp_path / "pyproject.toml", "[tool.stamp]\nbogus = 1\n")
    with pytest.raises(ConfigError, match=r"unknown key `tool\.stamp\.bogus`"):
        load_config(path)


def test_missing_explicit_config(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml")
