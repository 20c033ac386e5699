"""The one record of a build's identity (SPEC section 5), its hex rules and its comparison.

`Identity` is what a manifest expects and what a device reports; `Manifest` and `Report`
each hold one. Every other list of identity keys in stamp (the manifest's JSON keys, the
report parser, the history's indexed columns, the verdict's labels) is derived from
`KEYS`, so a new key is added here once, as a field with its `Kind`.

The comparison rules:

- Every key both sides carry is compared: hex in full and case-insensitively, never as a
  prefix (ESP-IDF's monitor compares ~9 digits; SPEC section 1).
- A *strong* key (a hash of the build) identifies a build on its own when equal; `git`
  identifies one only together with an equal `edit` and a known commit. `edit` or
  `dirty` alone do not.
- Two identities are the same build when a strong match holds and nothing differs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from enum import Enum
from typing import Any

from stamp.record import GIT_UNKNOWN


class Kind(Enum):
    """How an identity key's values look and compare."""

    COUNTER = "counter"
    """A non-negative integer (the editVersion)."""
    FLAG = "flag"
    """A boolean."""
    COMMIT = "commit"
    """A git commit in hex, or "unknown"; identifies a build only together with `edit`."""
    HASH = "hash"
    """A hash of the build in hex: equal hashes identify the same build."""
    INFO = "info"
    """Informational text (ESP-IDF's app version, …): shown beside the keys, never compared,
    so it never decides a verdict."""


def _key(kind: Kind, *, printed_prefix: int | None = None) -> Any:
    return field(default=None, metadata={"kind": kind, "printed_prefix": printed_prefix})


ESP_PRINTED_DIGITS = 16
"""Fewest digits of `elf_sha256` a device may print and still identify its build: ESP-IDF's
default CONFIG_APP_RETRIEVE_LEN_ELF_SHA (SPEC section 5)."""


@dataclass(frozen=True)
class Identity:
    """What identifies one build; any subset of the keys may be known (None = unknown)."""

    edit: int | None = _key(Kind.COUNTER)
    """The editVersion from the stamp record."""
    git: str | None = _key(Kind.COMMIT)
    """Full commit SHA from the stamp record (lowercase), or "unknown"."""
    dirty: bool | None = _key(Kind.FLAG)
    """The build was made from a tree whose tracked files differed from HEAD."""
    build_id: str | None = _key(Kind.HASH)
    """GNU build-id, lowercase hex."""
    app_hash: str | None = _key(Kind.HASH)
    """Particle app hash (the module suffix SHA-256), lowercase hex."""
    image_sha256: str | None = _key(Kind.HASH)
    """SHA-256 of the loadable image, lowercase hex."""
    mcuboot_hash: str | None = _key(Kind.HASH)
    """MCUboot: the image's SHA-256 TLV (what a Zephyr device reports per slot), lowercase hex."""
    image_version: str | None = _key(Kind.INFO)
    """MCUboot: the image header's version ("1.2.3+4"), as imgtool wrote it or a device prints
    its running slot's."""
    elf_sha256: str | None = _key(Kind.HASH, printed_prefix=ESP_PRINTED_DIGITS)
    """ESP-IDF: SHA-256 of the ELF file, stored in the image's app description (64 hex); an
    ESP-IDF boot log prints only its first CONFIG_APP_RETRIEVE_LEN_ELF_SHA digits."""
    app_version: str | None = _key(Kind.INFO)
    """ESP-IDF: the app description's version (PROJECT_VER)."""
    project_name: str | None = _key(Kind.INFO)
    """ESP-IDF: the app description's project name."""
    idf_version: str | None = _key(Kind.INFO)
    """ESP-IDF: the ESP-IDF version the app was built with."""
    compile_time: str | None = _key(Kind.INFO)
    """ESP-IDF: the app description's compile date and time ("Sep 13 2022 19:46:07")."""

    def known(self) -> dict[str, Any]:
        """The keys whose value is known, in KEYS order."""
        return {key: value for key, value in self.as_json().items() if value is not None}

    def as_json(self) -> dict[str, Any]:
        """Every key, None where unknown, in KEYS order."""
        return {key.name: getattr(self, key.name) for key in KEYS}


@dataclass(frozen=True)
class Key:
    """One identity key and its rules."""

    name: str
    """The key as it appears in manifests, reports and --json."""
    kind: Kind
    """How its values look and compare."""
    printed_prefix: int | None = None
    """A hash that a device may report cut short to its first digits: every reported digit
    is compared, and a match identifies the build only with at least this many digits."""

    @property
    def is_hex(self) -> bool:
        return self.kind in (Kind.COMMIT, Kind.HASH)


KEYS: tuple[Key, ...] = tuple(
    Key(f.name, f.metadata["kind"], f.metadata["printed_prefix"]) for f in fields(Identity)
)
"""Every identity key, in SPEC section 5's order."""
KEY_NAMES: tuple[str, ...] = tuple(key.name for key in KEYS)
HASH_KEYS: tuple[str, ...] = tuple(key.name for key in KEYS if key.kind is Kind.HASH)
"""Keys that identify a build on their own when equal."""
HEX_KEYS: tuple[str, ...] = tuple(key.name for key in KEYS if key.is_hex)
"""Keys whose values are hex digits."""

_HEX = re.compile(r"[0-9a-f]+")


class IdentityError(ValueError):
    """A value that cannot be an identity key's (the message names the key)."""


def parse_identity(obj: Mapping[str, Any], *, empty_is_unknown: bool = False) -> Identity:
    """Validate the identity keys of a decoded JSON object; IdentityError names a bad key.

    Hex is lowercased. `empty_is_unknown` treats "" as an absent hex value (firmware that
    formats an empty build-id when the linker gave none).
    """
    values: dict[str, Any] = {}
    for key in KEYS:
        value = obj.get(key.name)
        if value is None:
            continue
        if key.kind is Kind.COUNTER:
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise IdentityError(f"bad {key.name} {_shown(value)}")
        elif key.kind is Kind.FLAG:
            if not isinstance(value, bool):
                raise IdentityError(f"bad {key.name} {_shown(value)}")
        elif key.kind is Kind.INFO:
            if not isinstance(value, str):
                raise IdentityError(f"bad {key.name} {_shown(value)}")
        else:
            if not isinstance(value, str):
                raise IdentityError(f"bad {key.name} {_shown(value)}")
            if value == "" and empty_is_unknown:
                continue
            lowered = value.lower()
            if not (key.kind is Kind.COMMIT and lowered == GIT_UNKNOWN) and not _HEX.fullmatch(
                lowered
            ):
                raise IdentityError(f"non-hex {key.name} {_shown(value)}")
            value = lowered
        values[key.name] = value
    return Identity(**values)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


# --- comparing ------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyComparison:
    """One identity key, as expected and as reported."""

    key: str
    """The identity key (SPEC section 5)."""
    expected: Any
    """The manifest's value."""
    reported: Any
    """The device's value."""
    match: bool
    """Equal (hex: in full, case-insensitively; a printed prefix: in every printed digit)."""
    digits: int | None = None
    """For a hash a device may print cut short (`elf_sha256`, ESP-IDF's boot log): how many
    of its digits were compared; None for every other key."""
    needed: int | None = None
    """With `digits`: how many matching digits identify the build."""

    @property
    def too_short(self) -> bool:
        """A matching printed prefix with too few digits to identify the build."""
        return (
            self.match
            and self.digits is not None
            and self.needed is not None
            and (self.digits < self.needed)
        )


def compare(expected: Identity, reported: Identity) -> tuple[KeyComparison, ...]:
    """Compare the comparable keys known on both sides, in KEYS order (INFO never is)."""
    out: list[KeyComparison] = []
    for key in KEYS:
        want, got = getattr(expected, key.name), getattr(reported, key.name)
        if want is None or got is None or key.kind is Kind.INFO:
            continue
        if key.printed_prefix is not None and isinstance(want, str) and isinstance(got, str):
            # SPEC section 5's one exception: the device may print only the first digits;
            # every printed one is compared, and how many is part of the comparison.
            if len(got) < len(want):
                match = want.lower().startswith(got.lower())
            else:
                match = _equal(key, want, got)
            out.append(KeyComparison(key.name, want, got, match, len(got), key.printed_prefix))
            continue
        out.append(KeyComparison(key.name, want, got, _equal(key, want, got)))
    return tuple(out)


def _equal(key: Key, want: Any, got: Any) -> bool:
    if key.is_hex:
        return isinstance(want, str) and isinstance(got, str) and want.lower() == got.lower()
    if key.kind is Kind.COUNTER:
        # bool is an int in Python; a `true` edit is not edit 1.
        return type(want) is int and type(got) is int and want == got
    return bool(want == got)


def strong_match(compared: Iterable[KeyComparison]) -> bool:
    """At least one key that identifies a build matched (git counts only with edit)."""
    by_key = {c.key: c for c in compared}
    if any(by_key[k].match and not by_key[k].too_short for k in HASH_KEYS if k in by_key):
        return True
    git, edit = by_key.get("git"), by_key.get("edit")
    return bool(
        git is not None
        and edit is not None
        and git.match
        and edit.match
        and str(git.expected).lower() != GIT_UNKNOWN
    )


def identifies(compared: Sequence[KeyComparison]) -> bool:
    """The compared identities are the same build: a strong match and nothing differing."""
    return strong_match(compared) and all(c.match for c in compared)
