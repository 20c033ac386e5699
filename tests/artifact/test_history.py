"""The SQLite build history: append, look up, migrate, import the old file, survive kill -9."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from stamp.artifact.history import History, Origin, highest_edit
from stamp.artifact.history import db as history_db
from stamp.artifact.history.lookup import LookupStatus, find_builds
from stamp.artifact.manifest import Artifact, Manifest
from stamp.errors import HistoryBusy, StateError
from stamp.identity import Identity
from tests.support import REPO_ROOT

GIT = "1a2b3c4d5e6f" + "0" * 28


def manifest(edit: int, *, git: str = GIT, dirty: bool = False, **hashes: str) -> Manifest:
    """A manifest with a distinct image_sha256 per edit unless one is given."""
    image = hashes.pop("image_sha256", f"{edit:064x}")
    return Manifest(
        identity=Identity(edit=edit, git=git, dirty=dirty, image_sha256=image, **hashes),
        recorded_at=f"2026-01-01T00:{edit // 60 % 60:02d}:{edit % 60:02d}Z",
        bin=Artifact(path=f"app-{edit}.bin", sha256=image, size=100 + edit),
    )


def test_append_dedups_and_finds_by_every_key(tmp_path: Path) -> None:
    with History.open(tmp_path) as history:
        assert history.append(manifest(1), None) is True
        assert history.append(manifest(1), None) is False  # the same build again
        assert history.append(manifest(2, build_id="ab" * 20), Origin("h", "u", False))
        assert history.count() == 2
        newest = history.newest_local()
        assert newest is not None and newest.manifest.identity.edit == 2
        assert newest.origin == Origin("h", "u", False)
        assert [b.manifest.identity.edit for b in history.newest()] == [2, 1]
        reported = Identity(build_id="AB" * 20)  # case does not matter
        assert [b.manifest.identity.edit for b in history.candidates(reported)] == [2]
        by_git = history.candidates(Identity(git=GIT, edit=1))
        assert [b.manifest.identity.edit for b in by_git] == [1]
        assert history.candidates(Identity(git=GIT)) == []  # git alone names no build


def test_no_cap(tmp_path: Path) -> None:
    with History.open(tmp_path) as history:
        assert history.append_many((manifest(n) for n in range(1, 2501)), None) == 2500
        assert history.count() == 2500
        oldest = history.candidates(Identity(image_sha256=f"{1:064x}"))
        assert [b.manifest.identity.edit for b in oldest] == [1]


def test_lookup_edit_full_value_prefix_and_ambiguity(tmp_path: Path) -> None:
    with History.open(tmp_path) as history:
        history.append(manifest(7, image_sha256="abcdef01" + "1" * 56), None)
        history.append(manifest(8, image_sha256="abcdef01" + "2" * 56), None)
        history.append(manifest(9, build_id="5f3a1c2e" + "0" * 32), None)

        found = find_builds(history, "9", edit_numbers=True)
        assert found.status is LookupStatus.FOUND and found.by_edit
        assert [b.manifest.identity.edit for b in found.builds] == [9]
        full = find_builds(history, "ABCDEF01" + "2" * 56, edit_numbers=False)
        assert [b.manifest.identity.edit for b in full.builds] == [8]
        prefix = find_builds(history, "5f3a1c2e", edit_numbers=False)
        assert [b.manifest.identity.edit for b in prefix.builds] == [9]
        ambiguous = find_builds(history, "abcdef01", edit_numbers=False)
        assert ambiguous.status is LookupStatus.AMBIGUOUS
        assert sorted(v for _, v in ambiguous.candidates) == [
            "abcdef01" + "1" * 56,
            "abcdef01" + "2" * 56,
        ]
        assert find_builds(history, "abcdef0", edit_numbers=False).status is (
            LookupStatus.TOO_SHORT
        )
        assert find_builds(history, "xyz", edit_numbers=True).status is LookupStatus.NOT_HEX
        assert find_builds(history, "99999999", edit_numbers=True).status is (
            LookupStatus.NOT_FOUND
        )
        # Every build of a commit, named by the full commit:
        assert len(find_builds(history, GIT, edit_numbers=False).builds) == 3


def test_a_new_identity_key_becomes_a_column_filled_from_the_manifests(tmp_path: Path) -> None:
    """Adding a key needs no SQL for it: a history without the column gets it on open."""
    with History.open(tmp_path) as history:
        history.append(manifest(3, build_id="cd" * 20), None)
    db = sqlite3.connect(tmp_path / history_db.DB_NAME)
    db.execute('DROP INDEX "builds_build_id"')
    db.execute("ALTER TABLE builds DROP COLUMN build_id")  # as a history made before the key
    db.commit()
    db.close()
    with History.open(tmp_path) as history:
        found = history.candidates(Identity(build_id="cd" * 20))
        assert [b.manifest.identity.edit for b in found] == [3]
    db = sqlite3.connect(tmp_path / history_db.DB_NAME)
    indexes = {row[1] for row in db.execute("PRAGMA index_list(builds)")}
    db.close()
    assert "builds_build_id" in indexes


def test_legacy_history_is_imported_once_and_kept(tmp_path: Path) -> None:
    good = [manifest(n).to_json() for n in (4, 5)]
    deep = "[" * 100_000 + "]" * 100_000
    empty_artifact = {**manifest(6).to_json(), "artifacts": {"elf": {}, "bin": None}}
    lines = [
        json.dumps(good[0]),
        '{"schema": 1, "edit": 12, "gi',  # torn by a crash
        deep,
        json.dumps(empty_artifact),  # KeyError: 'path' in issue 10, item 7
        json.dumps(good[1]),
    ]
    legacy = tmp_path / "history.jsonl"
    legacy.write_text("\n".join(lines) + "\n")
    before = legacy.read_bytes()
    leftover = tmp_path / ".history.jsonl.k1ll3d.tmp"  # what a kill -9 of stamp 0.1 left
    leftover.write_text("partial")

    with History.open(tmp_path) as history:
        assert history.legacy_import is not None
        assert (history.legacy_import.imported, history.legacy_import.skipped) == (2, 3)
        assert [b.manifest.identity.edit for b in history.newest()] == [5, 4]
    with History.open(tmp_path) as history:
        assert history.legacy_import is None  # said once
        assert history.count() == 2
    assert legacy.read_bytes() == before
    assert not leftover.exists()


def test_corrupt_database_is_one_sentence_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / history_db.DB_NAME).write_bytes(b"this is not a database, " * 100)
    with pytest.raises(StateError) as caught:
        History.open(tmp_path)
    message = str(caught.value)
    assert str(tmp_path / history_db.DB_NAME) in message and "corrupt" in message
    assert "mv " in message and "\n" not in message
    assert caught.value.exit_code == 2


def test_locked_database_waits_then_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with History.open(tmp_path):
        pass
    holder = sqlite3.connect(tmp_path / history_db.DB_NAME, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    monkeypatch.setattr(history_db, "BUSY_TIMEOUT", 0.2)
    try:
        with pytest.raises(HistoryBusy) as caught, History.open(tmp_path) as history:
            history.append(manifest(1), None)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert "locked by another process" in str(caught.value)
    assert caught.value.exit_code == 3
    with History.open(tmp_path) as history:  # and nothing was lost or left locked
        assert history.append(manifest(1), None)


def test_highest_edit_counts_only_this_checkouts_builds(tmp_path: Path) -> None:
    with History.open(tmp_path) as history:
        history.append(manifest(41), None)
        pulled = json.dumps({"manifest": manifest(500).to_json(), "origin": None})
        assert history.add_pulled([pulled], "origin", "2026-01-02T00:00:00Z") == (1, 0)
    assert highest_edit(tmp_path) == 41
    assert highest_edit(tmp_path / "none") == 0


_WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    sys.path.insert(0, sys.argv[2])
    from tests.artifact.test_history import manifest
    from stamp.artifact.history import History

    with History.open(Path(sys.argv[1])) as history:
        if sys.argv[3] == "one-by-one":
            for n in range(1, 100_000):
                history.append(manifest(n), None)
                print(n, flush=True)
        else:  # one long transaction, killed before it commits
            print("start", flush=True)
            history.append_many((manifest(n) for n in range(10**6, 10**7)), None)
    """
)


@pytest.mark.parametrize("mode", ["one-by-one", "one-transaction"])
def test_kill_9_mid_write_leaves_a_consistent_history(tmp_path: Path, mode: str) -> None:
    with History.open(tmp_path) as history:
        history.append(manifest(0, image_sha256="f" * 64), None)
    writer = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(tmp_path), str(REPO_ROOT), mode],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert writer.stdout is not None
    committed = 0
    try:
        for line in writer.stdout:
            if line.strip().isdigit():
                committed = int(line)
            if committed >= 30 or line.strip() == "start":
                break
        if mode == "one-transaction":
            import time

            time.sleep(0.5)  # well inside the (minutes-long) transaction
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        writer.stdout.close()
    db = sqlite3.connect(tmp_path / history_db.DB_NAME)
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    db.close()
    with History.open(tmp_path) as history:
        count = history.count()
        if mode == "one-by-one":
            assert count >= 1 + committed  # every reported commit survived
        else:
            assert count == 1  # the unfinished transaction left nothing
        assert history.append(manifest(999_999_999), None)  # and it is writable


def test_append_removes_temp_files_killed_writers_of_the_old_history_left(tmp_path: Path) -> None:
    with History.open(tmp_path) as history:
        history.append(manifest(1), None)
        leftover = tmp_path / ".history.jsonl.a1b2c3.tmp"  # issue 10, item 16
        leftover.write_bytes(b"{" * 4096)
        history.append(manifest(2), None)
    assert not leftover.exists()


def test_looking_up_creates_no_file(tmp_path: Path) -> None:
    with History.open(tmp_path / "state", create=False) as history:
        assert history.count() == 0 and history.newest_local() is None
    assert not (tmp_path / "state").exists()


def test_an_unreadable_row_is_skipped_not_fatal(tmp_path: Path) -> None:
    with History.open(tmp_path) as history:
        history.append(manifest(1), None)
        history.append(manifest(2), None)
    db = sqlite3.connect(tmp_path / history_db.DB_NAME)
    db.execute("UPDATE builds SET manifest = '{\"schema\": 99}' WHERE edit = 1")
    db.commit()
    db.close()
    with History.open(tmp_path) as history:
        assert [b.manifest.identity.edit for b in history.newest()] == [2]
