"""The README's ESP-IDF how-to, run as shown on Espressif's app-template image.

The board at `serial:/dev/ttyUSB0` is `stamp sim serial` booting the same image (it reboots
every half second, since a pty has no DTR/RTS for `--reset` to toggle).
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
from pathlib import Path

from tests.support import FIXTURES, REPO_ROOT, make_repo, run_stamp, spawn_stamp

README = (REPO_ROOT / "README.md").read_text()
HOWTO = README.split("## ESP-IDF how-to", 1)[1].split("\n## ", 1)[0]


def test_the_esp_idf_transcript(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    (repo.path / "build").mkdir()
    for suffix in (".elf", ".bin"):
        shutil.copyfile(
            FIXTURES / "esp" / f"esp32-app-template{suffix}",
            repo.path / "build" / f"app-template{suffix}",
        )
    transcript = re.findall(r"```console\n(.*?)```", HOWTO, flags=re.S)[0]
    steps = re.findall(r"^\$ (.*)\n((?:(?!\$ ).*\n)*)", transcript, flags=re.M)
    assert [shlex.split(c)[1] for c, _ in steps] == ["inspect", "manifest", "verify"]
    board = spawn_stamp(
        "sim", "serial", "--firmware", "build/app-template.bin", "--reboot-every", "0.5",
        cwd=repo.path,
    )  # fmt: skip
    try:
        assert board.stdout is not None
        device = json.loads(board.stdout.readline())["device"]
        for command, shown in steps:
            args = shlex.split(command.replace("serial:/dev/ttyUSB0", device))[1:]
            done = run_stamp(*args, cwd=repo.path)
            assert done.returncode == 0, done.stderr
            if "  ...\n" in shown:
                head, tail = shown.split("  ...\n")
                assert done.stdout.startswith(head) and done.stdout.endswith(tail), done.stdout
            else:
                assert done.stdout == shown
    finally:
        board.terminate()
        board.communicate(timeout=60)
