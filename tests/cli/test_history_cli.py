"""`stamp history` and the history under `stamp manifest` / `stamp verify`, as users run them."""

from __future__ import annotations

import json
import re
import socket
import sqlite3
import subprocess
from pathlib import Path

import pytest

from stamp.artifact.history import DB_NAME, History
from tests.artifact.test_history import manifest
from tests.support import GitRepo, Stamp, make_repo, run_stamp, spawn_stamp
from tests.support.verify import make_build, sim_serial

CI_ENV = {"CI": "true"}


def state(repo: GitRepo) -> Path:
    return repo.path / ".git" / "stamp"


def test_50_concurrent_stamp_manifest_runs_lose_no_build(repo: GitRepo) -> None:
    builds = [make_build(repo.path / "build", edit, repo.head) for edit in range(1, 51)]
    procs = [
        spawn_stamp("manifest", f"build/{b.image.name}", cwd=repo.path, env=CI_ENV) for b in builds
    ]
    results = [(p.wait(timeout=600), *p.communicate()) for p in procs]
    assert [code for code, _, _ in results] == [0] * 50, [err for _, _, err in results if err]
    with History.open(state(repo)) as history:
        assert history.count() == 50
        edits = {b.manifest.identity.edit for b in history.newest()}
    assert edits == set(range(1, 51))
    db = sqlite3.connect(state(repo) / DB_NAME)
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    db.close()


def test_old_history_file_is_imported_once_and_kept(repo: GitRepo) -> None:
    legacy = state(repo) / "history.jsonl"
    legacy.parent.mkdir(parents=True, exist_ok=True)
    good = [json.dumps(manifest(n).to_json()) for n in (3, 4)]
    legacy.write_text(f"{good[0]}\n{{not json\n{good[1]}\n")
    before = legacy.read_bytes()
    first = run_stamp("history", "list", cwd=repo.path)
    assert first.returncode == 0, first.stderr
    assert first.stderr == (
        f"stamp: warning: 1 unreadable line of the old build history {legacy} skipped "
        "(2 builds imported; the file is kept as it is)\n"
    )
    assert [line.split()[3:5] for line in first.stdout.splitlines()] == [
        ["edit", "4,"],
        ["edit", "3,"],
    ]
    again = run_stamp("history", "list", cwd=repo.path)
    assert (again.returncode, again.stderr, again.stdout) == (0, "", first.stdout)
    build = make_build(repo.path / "build", 5, repo.head)
    done = run_stamp("manifest", f"build/{build.image.name}", cwd=repo.path)
    assert (done.returncode, done.stderr) == (0, "")
    assert legacy.read_bytes() == before


def test_stamp_manifest_first_says_what_the_import_skipped(repo: GitRepo) -> None:
    legacy = state(repo) / "history.jsonl"
    legacy.parent.mkdir(parents=True, exist_ok=True)
    legacy.write_text(json.dumps(manifest(3).to_json()) + "\n" + "[" * 50_000 + "\n")
    build = make_build(repo.path / "build", 5, repo.head)
    done = run_stamp("manifest", f"build/{build.image.name}", cwd=repo.path)
    assert done.returncode == 0
    assert "1 unreadable line of the old build history" in done.stderr
    again = run_stamp("manifest", f"build/{build.image.name}", cwd=repo.path)
    assert (again.returncode, again.stderr) == (0, "")
    assert stamp_in(repo, "history", "list").count("edit ") == 2


def test_corrupt_history_loses_no_build(repo: GitRepo) -> None:
    state(repo).mkdir(parents=True, exist_ok=True)
    (state(repo) / DB_NAME).write_bytes(b"garbage " * 1000)
    build = make_build(repo.path / "build", 5, repo.head)
    build.manifest_path.unlink()
    done = run_stamp("manifest", f"build/{build.image.name}", cwd=repo.path)
    assert done.returncode == 2
    (line,) = done.stderr.splitlines()
    assert str(state(repo) / DB_NAME) in line and "corrupt" in line and "mv " in line
    assert "build/app-5.stamp.json was written" in line
    assert build.manifest_path.exists()
    assert "Traceback" not in done.stderr


def test_list_show_find(repo: GitRepo, stamp: Stamp, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(repo.path)
    with History.open(state(repo)) as history:
        history.append(manifest(7, image_sha256="abcdef01" + "1" * 56), None)
        history.append(manifest(8, image_sha256="abcdef01" + "2" * 56, dirty=True), None)
        history.append(manifest(9, build_id="5f3a1c2e" + "0" * 32), None)

    code, out, err = stamp("history", "list", "--limit", "2")
    assert code == 0
    assert [line.split("  ")[-1] for line in out.splitlines()] == [
        "edit 9, git 1a2b3c4d, build-id 5f3a1c2e…, image sha256 00000000…",
        "edit 8, git 1a2b3c4d, dirty, image sha256 abcdef01…",
    ]
    assert err == "stamp: 2 of 3 builds shown (--limit 0 shows all)\n"
    code, out, _ = stamp("history", "list", "--json", "--limit", "0")
    records = json.loads(out)
    assert [r["manifest"]["edit"] for r in records] == [9, 8, 7]
    assert records[0]["pulled_from"] is None

    code, out, _ = stamp("history", "show", "8")
    assert code == 0 and out.startswith("build 2: edit 8, recorded 2026-01-01T00:00:08Z")
    assert f"  image_sha256  abcdef01{'2' * 56}\n" in out and "  dirty         true\n" in out
    code, out, _ = stamp("history", "show", "5F3A1C2E", "--json")
    assert code == 0 and json.loads(out)["manifest"]["edit"] == 9

    code, out, err = stamp("history", "find", "abcdef01")
    assert code == 2 and out == ""
    assert err.splitlines() == [
        "stamp: error: abcdef01 starts 2 different values: give more digits",
        f"  image_sha256 abcdef01{'1' * 56}",
        f"  image_sha256 abcdef01{'2' * 56}",
    ]
    code, out, _ = stamp("history", "find", "abcdef012")
    assert code == 0 and "edit 8" in out and "edit 7" not in out
    assert stamp("history", "find", "abcd")[0] == 2  # too short for a prefix
    assert stamp("history", "find", "nothex!")[0] == 2
    code, _, err = stamp("history", "find", "0123456789")
    assert code == 1 and "no build in the history matches 0123456789" in err
    code, out, _ = stamp("history", "find", "1a2b3c4d5e6f" + "0" * 28)  # a full commit
    assert code == 0 and len(out.splitlines()) == 3


def test_help_has_examples(stamp: Stamp) -> None:
    for args in (["history"], *(["history", c] for c in ("list", "show", "find", "push", "pull"))):
        code, out, _ = stamp(*args, "--help")
        assert code == 0 and "Examples:" in out, args


# -- two clones of a real bare repository ----------------------------------------------


@pytest.fixture
def server(tmp_path: Path) -> Path:
    seed = make_repo(tmp_path / "seed")
    bare = tmp_path / "server.git"
    seed.git("clone", "-q", "--bare", str(seed.path), str(bare))
    return bare


def clone(server: Path, path: Path) -> GitRepo:
    GitRepo(server.parent).git("clone", "-q", str(server), str(path))
    return GitRepo(path)


def stamp_in(repo: GitRepo, *args: str, env: dict[str, str] | None = None) -> str:
    done = run_stamp(*args, cwd=repo.path, env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_ci_build_reaches_another_clone_and_verify_names_it(server: Path, tmp_path: Path) -> None:
    ci, laptop = clone(server, tmp_path / "ci"), clone(server, tmp_path / "laptop")
    released = make_build(ci.path / "build", 214, ci.head)
    stamp_in(ci, "manifest", "build/app-214.bin", env=CI_ENV)
    out = stamp_in(ci, "history", "push")
    assert out == "stamp: origin pushed 1 build (refs/notes/stamp)\n"

    assert stamp_in(laptop, "history", "pull") == (
        "stamp: pulled 1 new build from origin (1 in its notes)\n"
    )
    assert "[from origin, built by CI on host " in stamp_in(laptop, "history", "list")
    mine = make_build(laptop.path / "build", 3, laptop.head)
    stamp_in(laptop, "manifest", "build/app-3.bin")
    with sim_serial(released.image, laptop.path) as device:
        done = run_stamp(
            "verify", "--device", device, "--manifest", "build/app-3.stamp.json",
            "--timeout", "30", cwd=laptop.path,
        )  # fmt: skip
    assert done.returncode == 1, done.stderr
    host = re.escape(socket.gethostname())
    assert re.fullmatch(
        rf"MISMATCH: device runs edit 214 \(git {ci.head[:8]}, built by CI on host {host}, "
        r"(just now|\d+ s ago)\); expected edit 3",
        done.stdout.splitlines()[0],
    ), done.stdout
    assert mine.manifest.identity.edit == 3
    with sim_serial(released.image, laptop.path) as device:
        done = run_stamp(
            "verify", "--device", device, "--manifest", "build/app-3.stamp.json", "--json",
            cwd=laptop.path,
        )  # fmt: skip
    matched = json.loads(done.stdout)["matched_build"]
    assert (matched["edit"], matched["origin"]["ci"]) == (214, True)


def test_concurrent_pushes_from_two_clones_both_survive(server: Path, tmp_path: Path) -> None:
    a, c = clone(server, tmp_path / "a"), clone(server, tmp_path / "c")
    for number, repo in ((1, a), (2, c)):
        make_build(repo.path / "build", number, repo.head)
        stamp_in(repo, "manifest", f"build/app-{number}.bin", env=CI_ENV)
    pushes = [spawn_stamp("history", "push", cwd=r.path) for r in (a, c)]
    outcomes = [(p.wait(timeout=300), *p.communicate()) for p in pushes]
    assert [code for code, _, _ in outcomes] == [0, 0], outcomes
    fresh = clone(server, tmp_path / "fresh")
    stamp_in(fresh, "history", "pull")
    listed = stamp_in(fresh, "history", "list")
    assert "edit 1," in listed and "edit 2," in listed
    note = subprocess.run(
        ["git", "notes", "--ref=refs/notes/stamp", "show", a.head],
        cwd=fresh.path, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert len(note.splitlines()) == 2  # both builds of the one commit, once each
    # Pushing again changes nothing, and pulling again adds nothing.
    assert (
        stamp_in(a, "history", "push") == "stamp: origin already had 1 build (refs/notes/stamp)\n"
    )
    assert "pulled 0 new builds" in stamp_in(fresh, "history", "pull")


def test_the_words_for_a_pulled_build() -> None:
    """`stamp verify`'s sentence names where a pulled build was made, and when."""
    from dataclasses import replace
    from datetime import UTC, datetime

    from stamp.artifact.history import Origin
    from stamp.cli.verdict_words import verdict_message
    from stamp.device.report_line import Report
    from stamp.device.verify import HeardSummary, Verdict, VerdictStatus
    from stamp.identity import Identity, compare

    built = manifest(214)
    expected = manifest(215)
    reported = Report(identity=Identity(edit=214, git=built.identity.git, dirty=False))
    verdict = Verdict(
        status=VerdictStatus.MISMATCH,
        expected=expected,
        reported=reported,
        compared=compare(expected.identity, reported.identity),
        matched_build=built,
        heard=HeardSummary(reports=1),
        elapsed=0.1,
        matched_origin=Origin(host="ci-7", user="runner", ci=True),
    )
    now = datetime(2026, 1, 4, 0, 3, 34, tzinfo=UTC)  # 3 days after it was recorded
    assert verdict_message(verdict, now=now) == (
        "MISMATCH: device runs edit 214 (git 1a2b3c4d, built by CI on host ci-7, 3 days ago); "
        "expected edit 215"
    )
    by_hand = replace(verdict, matched_origin=Origin("laptop", "ana", False))
    assert "built by ana on host laptop, 3 days ago" in verdict_message(by_hand, now=now)


def test_stamp_manifest_runs_killed_at_random_lose_no_finished_build(repo: GitRepo) -> None:
    """kill -9 of `stamp manifest` at any instant: the history stays whole, and every run
    that finished has its build in it."""
    import random
    import signal
    import time

    builds = [make_build(repo.path / "build", edit, repo.head) for edit in range(1, 21)]
    procs = [spawn_stamp("manifest", f"build/{b.image.name}", cwd=repo.path) for b in builds]
    rng = random.Random(12)
    victims = rng.sample(range(20), 10)
    for index in victims:
        time.sleep(rng.uniform(0, 0.05))
        procs[index].send_signal(signal.SIGKILL)
    finished = set()
    for edit, proc in enumerate(procs, start=1):
        code = proc.wait(timeout=600)
        proc.communicate()
        if code == 0:
            finished.add(edit)
    db = sqlite3.connect(state(repo) / DB_NAME)
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    db.close()
    with History.open(state(repo)) as history:
        recorded = {b.manifest.identity.edit for b in history.newest()}
    assert finished <= recorded and len(finished) >= 10
    build = make_build(repo.path / "build", 99, repo.head)  # and the history still takes builds
    assert run_stamp("manifest", f"build/{build.image.name}", cwd=repo.path).returncode == 0
