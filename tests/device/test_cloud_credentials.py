"""Finding the Particle token and API URL where particle-cli keeps them (SPEC section 4)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stamp.device.credentials import DEFAULT_API_URL, find_api_url, find_token
from stamp.errors import EXIT_USAGE, AuthError, ConfigError

TOKEN = "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678"


def particle_home(
    home: Path, *, profile: str | None = None, settings: dict[str, object] | None = None
) -> Path:
    """~/.particle as particle-cli leaves it: profile.json and <profile>.config.json."""
    base = home / ".particle"
    base.mkdir(parents=True)
    if profile is not None:
        (base / "profile.json").write_text(json.dumps({"name": profile}))
    if settings is not None:
        (base / f"{profile or 'particle'}.config.json").write_text(json.dumps(settings))
    return home


def test_the_environment_wins(tmp_path: Path) -> None:
    home = particle_home(tmp_path, settings={"access_token": "from-file"})
    assert find_token({"PARTICLE_ACCESS_TOKEN": f"  {TOKEN}\n"}, home) == TOKEN


def test_the_default_profile_file(tmp_path: Path) -> None:
    home = particle_home(tmp_path, settings={"access_token": TOKEN, "username": "me@example"})
    assert find_token({}, home) == TOKEN
    assert find_token({"PARTICLE_ACCESS_TOKEN": ""}, home) == TOKEN  # empty = unset


def test_the_profile_named_in_profile_json(tmp_path: Path) -> None:
    home = particle_home(
        tmp_path, profile="staging", settings={"access_token": TOKEN, "apiUrl": "https://x.test"}
    )
    (home / ".particle" / "particle.config.json").write_text('{"access_token": "other"}')
    assert find_token({}, home) == TOKEN
    assert find_api_url({}, home, None) == "https://x.test"


@pytest.mark.parametrize(
    "settings",
    [None, {}, {"access_token": ""}, {"access_token": None}, {"username": "me"}],
)
def test_no_token_anywhere_is_an_auth_error_saying_what_to_do(
    tmp_path: Path, settings: dict[str, object] | None
) -> None:
    home = particle_home(tmp_path, settings=settings)
    with pytest.raises(AuthError) as caught:
        find_token({}, home)
    assert "PARTICLE_ACCESS_TOKEN" in str(caught.value)
    assert "particle login" in str(caught.value)
    assert caught.value.exit_code == EXIT_USAGE


def test_no_particle_directory_at_all(tmp_path: Path) -> None:
    with pytest.raises(AuthError):
        find_token({}, tmp_path)
    assert find_api_url({}, tmp_path, None) == DEFAULT_API_URL == "https://api.particle.io"


def test_a_corrupt_settings_file_names_the_file_but_not_its_content(tmp_path: Path) -> None:
    home = particle_home(tmp_path)
    path = home / ".particle" / "particle.config.json"
    path.write_text('{"access_token": "' + TOKEN + '", oops}')
    with pytest.raises(ConfigError) as caught:
        find_token({}, home)
    assert str(path) in str(caught.value)
    assert TOKEN not in str(caught.value)
    assert TOKEN not in (caught.value.detail or "")


@pytest.mark.parametrize("document", ['["a list"]', '{"name": "../../etc/passwd"}'])
def test_a_strange_profile_json_is_a_config_error(tmp_path: Path, document: str) -> None:
    home = particle_home(tmp_path)
    (home / ".particle" / "profile.json").write_text(document)
    with pytest.raises(ConfigError):
        find_token({}, home)


@pytest.mark.parametrize(
    ("env", "config", "profile_url", "expected"),
    [
        ({"PARTICLE_API_URL": "http://127.0.0.1:9/"}, "https://c.test", "https://p.test",
         "http://127.0.0.1:9"),
        ({}, "https://c.test/", "https://p.test", "https://c.test"),
        ({}, None, "https://p.test", "https://p.test"),
        ({}, None, None, DEFAULT_API_URL),
        ({"PARTICLE_API_URL": " "}, None, None, DEFAULT_API_URL),
    ],
)  # fmt: skip
def test_api_url_precedence(
    tmp_path: Path,
    env: dict[str, str],
    config: str | None,
    profile_url: str | None,
    expected: str,
) -> None:
    settings: dict[str, object] = {"access_token": TOKEN}
    if profile_url:
        settings["apiUrl"] = profile_url
    home = particle_home(tmp_path, settings=settings)
    assert find_api_url(env, home, config) == expected


@pytest.mark.parametrize(
    "url", ["api.particle.io", "ftp://x", "https://", "https://user:pw@api.particle.io"]
)
def test_a_bad_api_url_is_a_config_error(tmp_path: Path, url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        find_api_url({"PARTICLE_API_URL": url}, tmp_path, None)
    assert "PARTICLE_API_URL" in str(caught.value)
    assert "pw" not in str(caught.value)
