"""Finding a build by what a person types: an edit number, or any identity value in hex.

`stamp verify` never uses this: it compares identities in full (stamp.identity). A person
typing a hash may give a unique prefix of at least MIN_PREFIX digits instead.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

from stamp.artifact.history.db import History
from stamp.artifact.history.records import Build
from stamp.identity import KEYS

MIN_PREFIX = 8
"""Hex digits a prefix must have: fewer would match builds by accident."""
_HEX_DIGITS = frozenset("0123456789abcdef")


class LookupStatus(Enum):
    """How a lookup ended."""

    FOUND = "found"
    """One value (or one edit number) matched; `builds` are the builds carrying it."""
    NOT_FOUND = "not_found"
    """Nothing in the history matches."""
    AMBIGUOUS = "ambiguous"
    """The prefix starts several values; `candidates` lists them."""
    TOO_SHORT = "too_short"
    """A prefix shorter than MIN_PREFIX that is no full value either."""
    NOT_HEX = "not_hex"
    """Neither an edit number nor hex digits."""


@dataclass(frozen=True)
class Lookup:
    """The outcome of `find_builds`."""

    status: LookupStatus
    """How it ended."""
    query: str
    """What was looked for (lowercased)."""
    builds: tuple[Build, ...] = ()
    """The matching builds, newest first."""
    candidates: tuple[tuple[str, str], ...] = ()
    """(key, value) pairs an ambiguous prefix starts."""
    by_edit: bool = False
    """The query was taken as an edit number."""


def find_builds(history: History, text: str, *, edit_numbers: bool) -> Lookup:
    """The builds `text` names: with `edit_numbers`, a short decimal is an edit number;
    otherwise any identity value in full, or a unique prefix of at least MIN_PREFIX digits."""
    query = text.strip().lower()
    if edit_numbers and query.isdigit() and len(query) < MIN_PREFIX:
        builds = tuple(history.with_edit(int(query)))
        status = LookupStatus.FOUND if builds else LookupStatus.NOT_FOUND
        return Lookup(status, query, builds, by_edit=True)
    if not query or not set(query) <= _HEX_DIGITS:
        return Lookup(LookupStatus.NOT_HEX, query)
    exact: dict[int, Build] = {}
    for key in KEYS:
        if key.is_hex:
            for build in history.with_value(key.name, query):
                exact.setdefault(build.number, build)
    if exact:
        return Lookup(LookupStatus.FOUND, query, _newest_first(exact.values()))
    if len(query) < MIN_PREFIX:
        return Lookup(LookupStatus.TOO_SHORT, query)
    values = history.values_with_prefix(query)
    if not values:
        return Lookup(LookupStatus.NOT_FOUND, query)
    if len({value for _, value in values}) > 1:
        return Lookup(LookupStatus.AMBIGUOUS, query, candidates=tuple(values))
    found: dict[int, Build] = {}
    for name, value in values:
        for build in history.with_value(name, value):
            found.setdefault(build.number, build)
    return Lookup(LookupStatus.FOUND, query, _newest_first(found.values()))


def _newest_first(builds: Iterable[Build]) -> tuple[Build, ...]:
    return tuple(sorted(builds, key=lambda b: b.number, reverse=True))
