"""Particle Cloud credentials: the token and API URL, found where particle-cli keeps them.

Order (SPEC section 4): `PARTICLE_ACCESS_TOKEN`; else particle-cli's settings, where
`~/.particle/profile.json` names the profile (`{"name": "..."}`, default "particle") and
`~/.particle/<profile>.config.json` holds `access_token` and optionally `apiUrl`.

The token is a secret: no message, log line or exception raised here contains it, not
even in part (a JSON error on a config file names the file and the position only).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from stamp.errors import AuthError, ConfigError
from stamp.redact import add_secret

log = logging.getLogger("stamp.device.credentials")

TOKEN_ENV = "PARTICLE_ACCESS_TOKEN"
API_URL_ENV = "PARTICLE_API_URL"
DEFAULT_API_URL = "https://api.particle.io"
DEFAULT_PROFILE = "particle"
PARTICLE_DIR = ".particle"
PROFILE_FILE = "profile.json"

_PROFILE_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
NO_TOKEN_HINT = (
    "no Particle access token: set PARTICLE_ACCESS_TOKEN, or log in once with "
    "`particle login` (particle-cli saves the token in ~/.particle)"
)


def find_token(env: Mapping[str, str], home: Path) -> str:
    """The access token to send; AuthError (exit 2) saying how to get one when none."""
    token = env.get(TOKEN_ENV, "").strip()
    if token:
        log.debug("Particle token from $%s", TOKEN_ENV)
        add_secret(token)
        return token
    path, settings = _profile_settings(home)
    value = settings.get("access_token")
    if isinstance(value, str) and value.strip():
        log.debug("Particle token from %s", path)
        add_secret(value.strip())
        return value.strip()
    raise AuthError(NO_TOKEN_HINT)


def find_api_url(env: Mapping[str, str], home: Path, config_api_url: str | None) -> str:
    """The API base URL: $PARTICLE_API_URL, config `api_url`, the profile's apiUrl, default."""
    from_env = env.get(API_URL_ENV, "").strip()
    if from_env:
        return _check_url(from_env, f"${API_URL_ENV}")
    if config_api_url and config_api_url.strip():
        return _check_url(config_api_url.strip(), "`api_url` in the config")
    path, settings = _profile_settings(home)
    value = settings.get("apiUrl")
    if value is None or value == "":
        return DEFAULT_API_URL
    if not isinstance(value, str):
        raise ConfigError(f"`apiUrl` in particle-cli settings {path} is not a string")
    return _check_url(value.strip(), str(path))


def _check_url(url: str, where: str) -> str:
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in ("http", "https") or not rest.strip("/"):
        raise ConfigError(
            f"the Particle API URL from {where} must start with https:// or http://, "
            "e.g. https://api.particle.io"
        )
    if "@" in rest.split("/", 1)[0]:
        # user:password@host would put a secret in every URL stamp logs.
        raise ConfigError(f"the Particle API URL from {where} must not hold credentials")
    return url.rstrip("/")


def _profile_settings(home: Path) -> tuple[Path, dict[str, Any]]:
    """particle-cli's active profile settings (empty when it has none), and their path."""
    base = home / PARTICLE_DIR
    profile = DEFAULT_PROFILE
    profile_doc = _read_json(base / PROFILE_FILE)
    if profile_doc is not None:
        name = profile_doc.get("name")
        if isinstance(name, str) and name:
            if not _PROFILE_NAME.fullmatch(name):
                raise ConfigError(f"{base / PROFILE_FILE} names an invalid profile {name!r}")
            profile = name
    path = base / f"{profile}.config.json"
    return path, _read_json(path) or {}


def _read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object from `path`, None when the file does not exist."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8"
        raise ConfigError(f"cannot read particle-cli settings {path}: {reason}") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        # exc.msg and the position only: the document may hold the token.
        raise ConfigError(
            f"particle-cli settings {path} are not valid JSON "
            f"({exc.msg} at line {exc.lineno} column {exc.colno}): fix or delete the file"
        ) from None
    if not isinstance(document, dict):
        raise ConfigError(f"particle-cli settings {path} are not a JSON object")
    return document
