"""The one redaction helper: secrets (the Particle token) never reach any output.

`add_secret` is called wherever a secret is first known (stamp.device.credentials, the
cloud client); `redact` replaces every known secret, in plain and URL-quoted form, and
any `access_token=` query value, in any text. The CLI routes stdout, stderr and logging
through `RedactingStream`, so text from any source — an error message, a device *name*
or event *data* the cloud echoes back, `-vv` debug lines — is scrubbed before it is
written (issue 10).
"""

from __future__ import annotations

import re
import threading
from typing import Any, TextIO
from urllib.parse import quote

MIN_SECRET = 8
"""Shorter strings are not registered: replacing "a" everywhere would garble output."""
MASK = "…"

_QUERY_TOKEN = re.compile(r"(access_token=)[^&\s\"']*")
_lock = threading.Lock()
_secrets: tuple[str, ...] = ()


def add_secret(secret: str) -> None:
    """Never print `secret` from now on (in this process)."""
    global _secrets
    if len(secret) < MIN_SECRET:
        return
    forms = {secret, quote(secret, safe="")}
    with _lock:
        # Longest first, so a quoted form containing the plain one is masked whole.
        _secrets = tuple(sorted(set(_secrets) | forms, key=len, reverse=True))


def redact(text: str) -> str:
    """`text` with every known secret and `access_token=` value masked."""
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    if "access_token=" in text:
        text = _QUERY_TOKEN.sub(r"\1" + MASK, text)
    return text


class RedactingStream:
    """A text stream that redacts what is written to it before passing it on.

    It has no `buffer`, so click cannot go around it to the bytes underneath.
    """

    def __init__(self, inner: TextIO) -> None:
        self.inner = inner

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError("RedactingStream takes text")
        self.inner.write(redact(text))
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        self.inner.flush()

    def isatty(self) -> bool:
        return self.inner.isatty()

    def fileno(self) -> int:
        return self.inner.fileno()

    @property
    def encoding(self) -> str:
        return getattr(self.inner, "encoding", "utf-8") or "utf-8"

    @property
    def errors(self) -> str | None:
        return getattr(self.inner, "errors", None)

    def __getattr__(self, name: str) -> Any:
        if name == "buffer":
            raise AttributeError(name)
        return getattr(self.inner, name)
