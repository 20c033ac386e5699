"""Hostile configs: every one is exit 2 naming the key and the file, never a traceback
(issue 10 items 9-11), and arbitrary TOML gives nothing but a StampError (Hypothesis)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stamp.config import load_config
from stamp.device.target import parse_device
from stamp.errors import StampError
from tests.support import GitRepo, run_stamp

DEEP_ARRAY = "exclude = " + "[" * 10_000 + "]" * 10_000 + "\n"
LONG = "x" * 5000

# (file name, content, the key the message must name)
CASES = [
    ("pyproject.toml", "[[tool.stamp]]\noutput_dir = 'gen'\n", "tool.stamp"),
    ("pyproject.toml", "tool = 1\n", "tool"),
    ("pyproject.toml", '[tool]\nstamp = "x"\n', "tool.stamp"),
    ("pyproject.toml", "[tool]\nstamp = [1, 2]\n", "tool.stamp"),
    ("stamp.toml", 'output_dir = "gen\\u0000x"\n', "output_dir"),
    ("stamp.toml", 'template = "t\\u0000"\n', "template"),
    ("stamp.toml", 'state_dir = "\\u0000"\n', "state_dir"),
    ("stamp.toml", f'output_dir = "{LONG}"\n', "output_dir"),
    ("stamp.toml", f'state_dir = "a/{"y" * 300}/b"\n', "state_dir"),
    ("stamp.toml", DEEP_ARRAY, "nested too deeply"),
    ("stamp.toml", '[devices.b]\nserial = "/dev/ttyACM0"\nbaud = 2147483648\n', "devices.b.baud"),
    ("stamp.toml", '[devices.b]\nserial = "/dev/ttyACM0"\nbaud = 0\n', "devices.b.baud"),
    ("stamp.toml", '[devices.b]\nserial = ""\n', "devices.b.serial"),
    ("stamp.toml", '[devices.b]\nparticle = ""\n', "devices.b.particle"),
    ("stamp.toml", "[[devices.b]]\nserial = 'x'\n", "devices.b"),
    ("stamp.toml", 'exclude = ["a\\u0000"]\n', "exclude"),
]


@pytest.mark.parametrize(("name", "content", "key"), CASES, ids=[c[2] for c in CASES])
def test_bad_config_names_key_and_file(tmp_path: Path, name: str, content: str, key: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(StampError) as caught:
        load_config(cwd=tmp_path)
    assert caught.value.exit_code == 2
    assert key in caught.value.message
    assert str(path.resolve()) in caught.value.message or str(path) in caught.value.message


@pytest.mark.parametrize(("name", "content", "key"), CASES[:3] + CASES[4:5] + CASES[10:11])
def test_bad_config_whole_process(repo: GitRepo, name: str, content: str, key: str) -> None:
    (repo.path / name).write_text(content)
    done = run_stamp("header", cwd=repo.path)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and key in done.stderr
    assert name in done.stderr


def test_config_symlink_loop(tmp_path: Path) -> None:
    os.symlink("stamp.toml", tmp_path / "stamp.toml")
    with pytest.raises(StampError):
        load_config(tmp_path / "stamp.toml", cwd=tmp_path)


@pytest.mark.parametrize("key", ["output_dir", "state_dir", "template"])
def test_symlink_loop_directories(repo: GitRepo, key: str) -> None:
    os.symlink("loop", repo.path / "loop")
    (repo.path / "stamp.toml").write_text(f'{key} = "loop/x"\n')
    done = run_stamp("header", cwd=repo.path)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and "loop" in done.stderr


def test_output_dir_option_symlink_loop(repo: GitRepo) -> None:
    os.symlink("loop", repo.path / "loop")
    done = run_stamp("header", "--output-dir", "loop", cwd=repo.path)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and "symbolic link" in done.stderr


@pytest.mark.parametrize(
    ("device", "words"),
    [
        ("serial:socket://[::1", "not a valid URL"),
        ("serial:socket://127.0.0.1", "needs a host and a port"),
        ("serial:socket://127.0.0.1:70000", "not a valid URL"),
        ("serial:rfc2217://:4000", "needs a host and a port"),
    ],
)
def test_malformed_serial_url_is_a_usage_error(repo: GitRepo, device: str, words: str) -> None:
    with pytest.raises(StampError) as caught:
        parse_device(device, load_config(cwd=repo.path))
    assert words in caught.value.message and caught.value.exit_code == 2
    done = run_stamp("verify", "--device", device, "--timeout", "1", cwd=repo.path)
    assert done.returncode == 2, done.stderr
    assert words in done.stderr and "Traceback" not in done.stderr


def test_configured_malformed_url(tmp_path: Path) -> None:
    (tmp_path / "stamp.toml").write_text('[devices.b]\nserial = "socket://[::1"\n')
    with pytest.raises(StampError) as caught:
        parse_device("b", load_config(cwd=tmp_path))
    assert "'b'" in caught.value.message and "not a valid URL" in caught.value.message


# -- arbitrary TOML ------------------------------------------------------------------------

_KEYS = st.sampled_from(
    [
        "output_dir",
        "template",
        "state_dir",
        "include_untracked",
        "exclude",
        "build_time",
        "api_url",
        "devices",
        "serial",
        "baud",
        "particle",
        "flash_command",
        "tool",
        "stamp",
        "bench",
    ]
)
_SCALARS = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),
    st.text(max_size=40),
    st.text(alphabet="/\x00a.", max_size=300),
)
_VALUES: st.SearchStrategy[Any] = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_KEYS | st.text(), inner),
    max_leaves=20,
)
_DOCUMENTS = st.dictionaries(_KEYS, _VALUES, max_size=6)
TMP_PATH_REUSED = HealthCheck.function_scoped_fixture
"""Each example overwrites the same file in tmp_path: sharing it is intended."""


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(document=_DOCUMENTS, name=st.sampled_from(["stamp.toml", "pyproject.toml"]))
def test_arbitrary_toml_gives_only_stamp_errors(
    tmp_path: Path, document: dict[str, Any], name: str
) -> None:
    path = tmp_path / name
    try:
        path.write_text(tomli_w.dumps(document))
    except (TypeError, ValueError):  # something TOML cannot say: nothing to test
        return
    try:
        config = load_config(path, cwd=tmp_path)
        for device in config.devices:
            parse_device(device, config)
    except StampError as exc:
        assert exc.exit_code == 2
        assert str(path.resolve()) in exc.message or "device" in exc.message


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=st.text(max_size=200))
def test_arbitrary_text_gives_only_stamp_errors(tmp_path: Path, text: str) -> None:
    path = tmp_path / "stamp.toml"
    path.write_text(text, errors="surrogatepass")
    try:
        load_config(path, cwd=tmp_path)
    except StampError as exc:
        assert exc.exit_code == 2
