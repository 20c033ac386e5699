"""The build history: every build this checkout recorded or pulled, in SQLite (SPEC section 10).

`history.sqlite` in the state directory holds one row per build: the manifest JSON, the
note line it arrived as (pulled builds), where it was built, and one
indexed column per identity key plus the recorded time. The columns are derived from
`stamp.identity.KEYS`: a new key becomes a new column (and index) the next time a history
is opened, filled from the stored manifests; no SQL is written per key.

Writers are safe together (`make -j`, parallel CI jobs): WAL, a busy timeout, and every
write in `BEGIN IMMEDIATE`, so a writer waits for the lock instead of failing half-way. A
writer killed at any instant leaves the last committed state (SQLite's journal). A build
is the same build when its known identity keys and artifacts are equal (`build_key`);
recording it again adds nothing.

The JSON-lines history of earlier versions (`history.jsonl`) is imported once, in the
transaction that creates the database; its unreadable lines are counted (the caller says
so once) and the file is left as it is. The temp files its killed writers left behind
(`.history.jsonl.*.tmp`) are removed.

Libraries considered: the standard library's sqlite3 is all this needs; an ORM (SQLAlchemy,
peewee) would add more import time to `stamp manifest` than the whole append takes.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from stamp import logs
from stamp.artifact.history.legacy import (
    BAD_RECORD,
    LEGACY_NAME,
    read_legacy,
    remove_legacy_temps,
)
from stamp.artifact.history.records import (
    Build,
    LegacyImport,
    Origin,
    build_key,
    canonical,
    note_line,
    origin_from_json,
    origin_json,
)
from stamp.artifact.manifest import Manifest
from stamp.errors import HistoryBusy, StateError
from stamp.identity import KEYS, Identity, Kind

DB_NAME = "history.sqlite"
BUSY_TIMEOUT = 30.0
"""Seconds a writer waits for another's transaction before giving up (HistoryBusy)."""
_CANDIDATES = 200
"""Rows sharing a value with a report that are checked, newest first, to name its build."""

_SQL_TYPE = {Kind.COUNTER: "INTEGER", Kind.FLAG: "INTEGER", Kind.COMMIT: "TEXT", Kind.HASH: "TEXT"}
_BASE_SCHEMA = """
CREATE TABLE IF NOT EXISTS builds (
    number INTEGER PRIMARY KEY,
    build_key TEXT NOT NULL UNIQUE,
    recorded_at TEXT NOT NULL,
    manifest TEXT NOT NULL,
    note TEXT,
    origin TEXT,
    pulled_from TEXT,
    pulled_at TEXT
);
CREATE INDEX IF NOT EXISTS builds_recorded_at ON builds (recorded_at);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@contextlib.contextmanager
def _translated(path: Path) -> Iterator[None]:
    """sqlite3's errors as the one sentence a user can act on."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        text = str(exc)
        if "locked" in text or "busy" in text:
            raise HistoryBusy(
                f"build history {path} is locked by another process (waited "
                f"{BUSY_TIMEOUT:g} s): retry when it has finished (`fuser {path}` names it)"
            ) from None
        raise StateError(
            f"cannot use build history {path} ({text}): check that its directory is "
            "writable and the disk is not full"
        ) from None
    except sqlite3.DatabaseError as exc:
        raise StateError(
            f"build history {path} is corrupt ({exc}): move it aside "
            f"(`mv {path} {path}.corrupt`); the next `stamp manifest` starts a new one "
            "and `stamp history pull` brings back what was pushed"
        ) from None


class History:
    """An open build history; use as a context manager (it closes the connection)."""

    def __init__(self, connection: sqlite3.Connection, path: Path) -> None:
        self._db = connection
        self.path = path
        """The database file."""
        self.legacy_import: LegacyImport | None = None
        """Set when this open imported the JSON-lines history (to be reported once)."""

    @classmethod
    def open(cls, state_dir: Path, *, create: bool = True) -> History:
        """Open (creating and migrating as needed) the history in `state_dir`.

        Without `create`, a checkout that has no history yet gets an empty one in memory:
        looking something up (`stamp verify`, `stamp history list`) writes no file.
        """
        path = state_dir / DB_NAME
        target = str(path)
        if not create and not path.exists() and not (state_dir / LEGACY_NAME).exists():
            target = ":memory:"
        else:
            try:
                state_dir.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StateError(
                    f"cannot create the state directory {state_dir}: {exc.strerror or exc}"
                ) from None
        with _translated(path):
            db = sqlite3.connect(target, timeout=BUSY_TIMEOUT, isolation_level=None)
            try:
                history = cls(db, path)
                history._prepare(state_dir / LEGACY_NAME)
            except BaseException:
                db.close()
                raise
        return history

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> History:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken before anything is read (no upgrade deadlock)."""
        with _translated(self.path):
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _prepare(self, legacy: Path) -> None:
        db = self._db
        db.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT * 1000)}")
        if db.execute("PRAGMA journal_mode").fetchone()[0] not in ("wal", "memory"):
            db.execute("PRAGMA journal_mode = WAL")
        if self._missing_columns():
            with self._write():
                for statement in _BASE_SCHEMA.split(";"):
                    if statement.strip():
                        db.execute(statement)  # not executescript: it would COMMIT first
                for key in self._missing_columns():
                    self._add_column(key)
                if db.execute("SELECT 1 FROM meta WHERE key = 'legacy_import'").fetchone() is None:
                    self._import_legacy(legacy)

    def _import_legacy(self, legacy: Path) -> None:
        """Copy the JSON-lines history in, once (the caller holds the write transaction)."""
        found = read_legacy(legacy)
        imported = skipped = 0
        if found is not None:
            manifests, skipped = found
            for manifest in manifests:
                imported += _insert(self._db, manifest, None, None, None, None)
            remove_legacy_temps(legacy)
            self.legacy_import = LegacyImport(legacy, imported, skipped)
        record = {"path": str(legacy), "imported": imported, "skipped": skipped}
        self._db.execute("INSERT INTO meta VALUES ('legacy_import', ?)", (canonical(record),))

    def _missing_columns(self) -> list[str]:
        have = {row[1] for row in self._db.execute("PRAGMA table_info(builds)")}
        if not have:
            return [key.name for key in KEYS]
        return [key.name for key in KEYS if key.name not in have]

    def _add_column(self, name: str) -> None:
        """A new identity key: its column, its index, and its values from the manifests."""
        kind = next(key.kind for key in KEYS if key.name == name)
        assert name.isidentifier(), name  # it is spliced into SQL below
        db = self._db
        db.execute(f'ALTER TABLE builds ADD COLUMN "{name}" {_SQL_TYPE[kind]}')
        db.execute(f'CREATE INDEX IF NOT EXISTS "builds_{name}" ON builds ("{name}")')
        db.execute(f"UPDATE builds SET \"{name}\" = json_extract(manifest, '$.{name}')")

    # -- writing ------------------------------------------------------------------------

    def append(self, manifest: Manifest, origin: Origin | None) -> bool:
        """Record a build made here; False when the same build is already recorded."""
        return self.append_many([manifest], origin) == 1

    def append_many(self, manifests: Iterable[Manifest], origin: Origin | None) -> int:
        """Record builds made here, oldest first, in one transaction; how many were new."""
        remove_legacy_temps(self.path.parent / LEGACY_NAME)
        with self._write() as db:
            return sum(_insert(db, m, None, origin, None, None) for m in manifests)

    def add_pulled(self, lines: Iterable[str], remote: str, pulled_at: str) -> tuple[int, int]:
        """Record the builds of note lines from `remote`: (new builds, unreadable lines)."""
        added = skipped = 0
        with self._write() as db:
            for line in lines:
                try:
                    entry = json.loads(line)
                    manifest = Manifest.from_json(entry.get("manifest"), remote)
                except BAD_RECORD:
                    skipped += 1  # a note another tool or a newer stamp wrote: leave it be
                    continue
                origin = origin_from_json(entry.get("origin"))
                added += _insert(db, manifest, line, origin, remote, pulled_at)
        return added, skipped

    # -- reading ------------------------------------------------------------------------

    def count(self) -> int:
        with _translated(self.path):
            return int(self._db.execute("SELECT count(*) FROM builds").fetchone()[0])

    def newest_local(self) -> Build | None:
        """The last build `stamp manifest` recorded in this checkout."""
        rows = self._select("WHERE pulled_from IS NULL ORDER BY number DESC LIMIT 1")
        return next(iter(rows), None)

    def newest(self, limit: int | None = None) -> list[Build]:
        """Builds, newest recorded first."""
        tail = "ORDER BY recorded_at DESC, number DESC"
        if limit is not None:
            return self._select(tail + " LIMIT ?", (limit,))
        return self._select(tail)

    def highest_local_edit(self) -> int:
        """The highest edit recorded in this checkout (pulled builds count other checkouts)."""
        with _translated(self.path):
            row = self._db.execute("SELECT max(edit) FROM builds WHERE pulled_from IS NULL")
            return int(row.fetchone()[0] or 0)

    def with_edit(self, edit: int) -> list[Build]:
        return self._select("WHERE edit = ? ORDER BY number DESC", (edit,))

    def with_value(self, key: str, value: str) -> list[Build]:
        """Builds whose `key` (an identity key) equals `value`, newest first."""
        _check_key(key)
        return self._select(f'WHERE "{key}" = ? ORDER BY number DESC', (value.lower(),))

    def values_with_prefix(self, prefix: str) -> list[tuple[str, str]]:
        """Distinct (key, value) of hex identity keys starting with `prefix` (lowercase)."""
        prefix = prefix.lower()
        found: list[tuple[str, str]] = []
        with _translated(self.path):
            for key in KEYS:
                if not key.is_hex:
                    continue
                column = f'"{key.name}"'
                query = (
                    f"SELECT DISTINCT {column} FROM builds "
                    f"WHERE {column} >= ? AND {column} < ? LIMIT 20"
                )
                for (value,) in self._db.execute(query, (prefix, prefix + "g")):
                    found.append((key.name, value))
        return found

    def candidates(self, identity: Identity) -> list[Build]:
        """Builds sharing a hash (or git and edit) with `identity`, newest first.

        Hashes are matched by prefix through their index, so a hash a device reports cut
        short (ESP-IDF's boot log) still finds its candidates; the caller decides which one
        the report identifies (stamp.identity's rules, in full).
        """
        known = identity.known()
        clauses: list[str] = []
        params: list[Any] = []
        for key in KEYS:
            value = known.get(key.name)
            if not key.is_hex or not isinstance(value, str):
                continue
            column = f'"{key.name}"'
            if key.kind is Kind.COMMIT:
                if isinstance(known.get("edit"), int):  # a commit names a build only with an edit
                    clauses.append(f"({column} = ? AND edit = ?)")
                    params += [value.lower(), known["edit"]]
                continue
            clauses.append(f"({column} >= ? AND {column} < ?)")
            params += [value.lower(), value.lower() + "g"]
        if not clauses:
            return []
        where = " OR ".join(clauses)
        return self._select(f"WHERE {where} ORDER BY number DESC LIMIT {_CANDIDATES}", params)

    def note_lines(self) -> list[tuple[str, bool, str]]:
        """(commit, dirty, note line) of every build with a known commit, for `stamp history
        push`. A pulled build goes back as the very line it came as, so the union stays free
        of near-duplicates; a build made here gets its line from its manifest and origin.
        """
        query = (
            "SELECT git, dirty, note, manifest, origin FROM builds "
            "WHERE git IS NOT NULL AND git != 'unknown'"
        )
        with _translated(self.path):
            rows = self._db.execute(query).fetchall()
        out: list[tuple[str, bool, str]] = []
        for git, dirty, note, manifest, origin in rows:
            if note is None:
                note = note_line(json.loads(manifest), json.loads(origin) if origin else None)
            out.append((str(git), bool(dirty), str(note)))
        return out

    def _select(self, tail: str, params: Iterable[Any] = ()) -> list[Build]:
        query = "SELECT number, manifest, origin, pulled_from, pulled_at FROM builds " + tail
        with _translated(self.path):
            rows = self._db.execute(query, tuple(params)).fetchall()
        builds = []
        for row in rows:
            try:
                builds.append(_build(row, self.path))
            except BAD_RECORD as exc:  # e.g. written by a newer stamp: it names no build here
                logs.warning("stamp.artifact.history", "build %s skipped: %s", row[0], exc)
        return builds


def _check_key(key: str) -> None:
    if key not in {k.name for k in KEYS}:
        raise ValueError(f"not an identity key: {key}")


def _build(row: tuple[Any, ...], path: Path) -> Build:
    number, manifest, origin, pulled_from, pulled_at = row
    return Build(
        number=int(number),
        manifest=Manifest.from_json(json.loads(manifest), f"{path} (build {number})"),
        origin=origin_from_json(json.loads(origin)) if origin else None,
        pulled_from=pulled_from,
        pulled_at=pulled_at,
    )


def _insert(
    db: sqlite3.Connection,
    manifest: Manifest,
    note: str | None,
    origin: Origin | None,
    pulled_from: str | None,
    pulled_at: str | None,
) -> bool:
    identity = manifest.identity.as_json()
    names = [key.name for key in KEYS]
    columns = ", ".join(f'"{name}"' for name in names)
    marks = ", ".join("?" for _ in names)
    origin_text = canonical(origin_json(origin)) if origin is not None else None
    cursor = db.execute(
        "INSERT OR IGNORE INTO builds (build_key, recorded_at, manifest, note, origin, "
        f"pulled_from, pulled_at, {columns}) VALUES (?, ?, ?, ?, ?, ?, ?, {marks})",
        (
            build_key(manifest),
            manifest.recorded_at,
            canonical(manifest.to_json()),
            note,
            origin_text,
            pulled_from,
            pulled_at,
            *(identity[name] for name in names),
        ),
    )
    return cursor.rowcount == 1
