"""MCUboot images made by the real imgtool (`imgtool keygen` / `imgtool sign`) in the test."""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from stamp.record import StampRecord
from tests.support.cloud import GIT_A

KEY_TYPES = {
    "rsa-2048": "RSA-2048",
    "rsa-3072": "RSA-3072",
    "ecdsa-p256": "ECDSA P-256",
    "ecdsa-p384": "ECDSA P-384",
    "ed25519": "Ed25519",
}
"""imgtool keygen -t TYPE -> the key type stamp reports."""


def imgtool_path() -> str:
    """The imgtool installed beside this Python (`make test` installs the smp extra)."""
    path = Path(sys.executable).parent / "imgtool"
    if not path.exists():
        pytest.fail(
            "imgtool is not installed: pip install -e '.[test,smp]' (make test does)", False
        )
    return str(path)


def imgtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [imgtool_path(), *map(str, args)], capture_output=True, text=True, timeout=120, check=False
    )


def keygen(directory: Path, key_type: str) -> Path:
    key = directory / f"{key_type}.pem"
    if not key.exists():
        done = imgtool("keygen", "-k", key, "-t", key_type)
        assert done.returncode == 0, done.stderr
    return key


def app_body(edit: int = 7, git: str = GIT_A, *, size: int = 3000) -> bytes:
    """A firmware body that carries a stamp record (as a Zephyr app with stamp.c would)."""
    record = StampRecord(edit=edit, git=git, dirty=False).pack()
    body = b"\x00\x10\x00\x20" + bytes(range(256)) * 4 + record
    return body + b"\xa5" * max(0, size - len(body))


def sign(
    directory: Path,
    body: bytes,
    out_name: str,
    *,
    key: Path | None = None,
    version: str = "1.2.3+4",
    extra: tuple[str, ...] = (),
) -> Path:
    """`imgtool sign` `body` into directory/out_name (.hex gets --hex-addr 0x8000)."""
    source = directory / f"{out_name}.body"
    source.write_bytes(body)
    out = directory / out_name
    args: list[str | Path] = ["sign", "-v", version, "-H", "0x200", "--pad-header", "-S", "0x20000"]
    if key is not None:
        args += ["-k", key]
    if out_name.endswith(".hex"):
        args += ["--hex-addr", "0x8000"]
    done = imgtool(*args, *extra, source, out)
    assert done.returncode == 0, done.stderr + done.stdout
    return out


@dataclass(frozen=True)
class ImgtoolVerify:
    """What `imgtool verify [-k KEY] FILE` said."""

    ok: bool
    version: str | None
    digest: str | None
    output: str


def imgtool_verify(path: Path, key: Path | None = None) -> ImgtoolVerify:
    done = imgtool("verify", *(["-k", key] if key else []), path)
    out = done.stdout + done.stderr
    version = re.search(r"Image version: (\S+)", out)
    digest = re.search(r"Image digest: ([0-9a-f]+)", out)
    return ImgtoolVerify(
        ok=done.returncode == 0,
        version=version.group(1) if version else None,
        digest=digest.group(1) if digest else None,
        output=out,
    )
