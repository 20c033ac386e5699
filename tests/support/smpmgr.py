"""Intercreate's smpmgr CLI (PyPI smpmgr, in the test extra), run as a whole process, and
what it prints read back: rich's repr of smp's `ImageState` models, and image group errors."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

SMPMGR_TIMEOUT = "30"
"""smpmgr's own per-request wait (its --timeout, 2 s by default): generous on a busy machine.
No request is sent while the simulated device is in reset."""
SMPMGR_ENV = {"PATH": "/usr/bin:/bin", "NO_COLOR": "1", "TERM": "dumb"}
"""No colour; COLUMNS is set per run (rich wraps a long hash on a narrow one)."""


def smpmgr_path() -> Path:
    """The smpmgr installed beside this Python (the test extra installs it); fails loudly."""
    path = Path(sys.executable).parent / "smpmgr"
    if not path.exists():
        pytest.fail("smpmgr is not installed: pip install -e '.[test,smp]' (make test does)", False)
    return path


def run_smpmgr(
    transport: list[str], *args: str | Path, columns: int = 200
) -> subprocess.CompletedProcess[str]:
    """`smpmgr TRANSPORT --timeout 30 ARGS` as a whole process, on a terminal `columns` wide."""
    return subprocess.run(
        [smpmgr_path(), *transport, "--timeout", SMPMGR_TIMEOUT, *map(str, args)],
        capture_output=True,
        text=True,
        env={**SMPMGR_ENV, "COLUMNS": str(columns)},
        stdin=subprocess.DEVNULL,
        timeout=120,
        check=False,
    )


def smpmgr(transport: list[str], *args: str | Path, columns: int = 200) -> str:
    """Run smpmgr; its stdout, after asserting it exited 0."""
    done = run_smpmgr(transport, *args, columns=columns)
    assert done.returncode == 0, f"smpmgr {' '.join(map(str, args))}:\n{done.stdout}{done.stderr}"
    return done.stdout


def smpmgr_fails(transport: list[str], *args: str | Path) -> str:
    """Run smpmgr, which must fail; what it printed (stdout and stderr)."""
    done = run_smpmgr(transport, *args)
    assert done.returncode != 0, f"smpmgr {' '.join(map(str, args))} succeeded:\n{done.stdout}"
    return done.stdout + done.stderr


_FIELD = re.compile(r"(\w+)=(HashBytes\('([0-9A-Fa-f]*)'\)|'([^']*)'|([\w.-]+))")


def parse_states(out: str) -> list[dict[str, Any]]:
    """The slots smpmgr's `image state-read` printed (rich's repr of each `ImageState(...)`):
    one dict per slot, hash in lowercase hex, absent flags False."""
    flat = re.sub(r"\s+", "", out)
    slots = []
    for chunk in flat.split("ImageState(")[1:]:
        fields: dict[str, Any] = {}
        for name, _whole, hash_hex, text, word in _FIELD.findall(chunk):
            if hash_hex:
                fields[name] = hash_hex.lower()
            elif text or word == "":
                fields[name] = text
            elif word.isdigit():
                fields[name] = int(word)
            else:
                fields[name] = {"True": True, "False": False, "None": None}.get(word, word)
        slots.append(fields)
    assert slots, f"smpmgr printed no ImageState:\n{out}"
    return slots


_RC = re.compile(r"rc=<IMG_MGMT_ERR\.(\w+):\d+>")


def refusal(out: str) -> str | None:
    """The image group error smpmgr printed (it exits 0 after a refused state-write)."""
    found = _RC.findall(re.sub(r"\s+", "", out))
    return found[0] if found else None
