"""From firmware files to an identity: read an ELF and/or a .bin, check they agree, and
build the manifest (SPEC sections 5 and 7).

`load_file` is the one place stamp opens a firmware file: every OSError becomes an
ArtifactError naming the file, FIFOs and devices are refused before they can block, and
a file that shrinks while it is read is noticed. Everything else here works on bytes and
parsed images, so tests reach it without a disk.
"""

from __future__ import annotations

import errno
import hashlib
import io
import logging
import os
import re
import stat
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stamp.artifact.elf import (
    LINKER_HINT,
    MAX_IMAGE_SIZE,
    ElfImage,
    FoundRecord,
    is_elf,
    read_elf,
    scan_image,
    single_record,
)
from stamp.artifact.particle import (
    CRC_PLACEHOLDER,
    CRC_SIZE,
    MIN_SUFFIX_SIZE,
    PREFIX_SIZE,
    RESERVED_FROM_END,
    SHA_FROM_END,
    SHA_PLACEHOLDER,
    SUFFIX_SIZE_FROM_END,
    ModuleError,
    ModuleInfo,
    parse_module,
    patch_suffix,
)
from stamp.errors import ArtifactError
from stamp.manifest import Artifact, Manifest
from stamp.record import StampRecord

log = logging.getLogger("stamp.artifact")

# A GNU build-id note as the linker lays it out in a little-endian image: namesz 4, descsz
# (1..64), type 3 (NT_GNU_BUILD_ID), "GNU\0", then the id. When the linker script keeps
# the note in flash (as the example's does) it is in the .bin too.
_BUILD_ID_NOTE = re.compile(rb"\x04\x00\x00\x00([\x01-\x40])\x00\x00\x00\x03\x00\x00\x00GNU\x00")


@dataclass(frozen=True)
class FileFacts:
    """What stamp learned about a file from the file system while reading it."""

    path: Path
    """The path as the user gave it."""
    size: int
    """Its size in bytes."""
    sha256: str
    """SHA-256 of the whole file, lowercase hex."""
    mtime_ns: int
    """Its modification time (to tell a stale .bin from a fresh ELF)."""

    def artifact(self, manifest_dir: Path) -> Artifact:
        """The manifest's record of this file, its path relative to the manifest's directory."""
        return Artifact(path=_relative(self.path, manifest_dir), sha256=self.sha256, size=self.size)


@dataclass(frozen=True)
class BinImage:
    """A raw firmware image: a Particle module binary or a plain objcopy -O binary."""

    data: bytes
    """The file's bytes."""
    module: ModuleInfo | None
    """The Particle module parse; None when the file is not a module."""
    not_module: str | None
    """Why it is not a module (the parser's reason), when module is None."""
    records: tuple[FoundRecord, ...]
    """Stamp records found anywhere in the bytes."""
    record_problem: str | None
    """Why a record-like block was rejected (e.g. a newer layout), when none is valid."""
    build_id: str | None
    """The GNU build-id, when exactly one build-id note is in the image."""

    @property
    def damaged(self) -> str | None:
        """Why it looks like a module that cannot be trusted (cut short, edited), or None."""
        if self.module is not None:
            # A padded or combined file has no suffix at its end by design (SPEC section 7).
            if self.module.suffix_valid or self.module.module_size != len(self.data):
                return None
            return "its suffix size field does not fit the file"
        # particle.parse_module says "truncated" when a perfect prefix claims more bytes
        # than the file has: a half-written download, not a non-module file.
        if "truncated" in (self.not_module or ""):
            return self.not_module
        size = _trailing_suffix_size(self.data)
        if size is not None:
            return (
                f"it ends like a Particle module (suffix of {size} bytes) but has no valid "
                "module prefix"
            )
        return None


@dataclass(frozen=True)
class Firmware:
    """One file read from disk: an ELF or a .bin, with its file facts."""

    facts: FileFacts
    """Size, hash and mtime of the file."""
    elf: ElfImage | None = None
    """The parsed ELF, when the file is one."""
    bin: BinImage | None = None
    """The parsed raw image, when the file is not an ELF."""

    @property
    def name(self) -> str:
        """The path as shown in messages."""
        return str(self.facts.path)


# --- reading ------------------------------------------------------------------------------


def read_bin(data: bytes) -> BinImage:
    """Parse a raw image: Particle module info, stamp records and build-id (no I/O)."""
    module: ModuleInfo | None = None
    reason: str | None = None
    try:
        module = parse_module(data)
    except ModuleError as exc:
        reason = exc.message
    records, problem = scan_image(data, 0)
    return BinImage(
        data=data,
        module=module,
        not_module=reason,
        records=records,
        record_problem=problem,
        build_id=_scan_build_id(data),
    )


def _trailing_suffix_size(data: bytes) -> int | None:
    """The suffix size when the file's tail has a module suffix's shape (zero reserved
    field, an even size that leaves room for a prefix), else None."""
    if len(data) < PREFIX_SIZE + MIN_SUFFIX_SIZE + CRC_SIZE:
        return None
    size = int.from_bytes(data[-SUFFIX_SIZE_FROM_END:-CRC_SIZE], "little")
    reserved = data[-RESERVED_FROM_END:-SHA_FROM_END]
    fits = MIN_SUFFIX_SIZE <= size <= len(data) - PREFIX_SIZE - CRC_SIZE and size % 2 == 0
    return size if fits and reserved == b"\0\0" else None


def _scan_build_id(data: bytes) -> str | None:
    ids = set()
    for match in _BUILD_ID_NOTE.finditer(data):
        desc = data[match.end() : match.end() + match.group(1)[0]]
        if len(desc) == match.group(1)[0]:
            ids.add(desc.hex())
    return ids.pop() if len(ids) == 1 else None


@contextmanager
def _opened(path: Path) -> Iterator[tuple[io.BufferedReader, os.stat_result]]:
    """`path` open for reading, refusing what is not a regular file; OSError -> ArtifactError."""
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused below.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise file_error(path, exc) from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise ArtifactError(f"{path} is a directory, not a firmware file")
        if not stat.S_ISREG(info.st_mode):
            raise ArtifactError(
                f"{path} is not a regular file (a pipe, device or socket): "
                "give the path of the ELF or .bin the build wrote"
            )
        fp = os.fdopen(fd, "rb")
    except OSError as exc:
        os.close(fd)
        raise file_error(path, exc) from None
    except BaseException:
        os.close(fd)
        raise
    with fp:
        try:
            yield fp, info
        except OSError as exc:
            raise file_error(path, exc) from None


def file_error(path: Path, exc: OSError) -> ArtifactError:
    """One sentence for an OSError raised while opening or reading `path`."""
    if isinstance(exc, FileNotFoundError):
        return ArtifactError(f"{path} does not exist: build the firmware first, or check the path")
    if isinstance(exc, PermissionError):
        return ArtifactError(f"cannot read {path}: permission denied")
    if isinstance(exc, IsADirectoryError):
        return ArtifactError(f"{path} is a directory, not a firmware file")
    if exc.errno == errno.ENOTDIR:
        return ArtifactError(f"{path} does not exist (a part of the path is not a directory)")
    reason = exc.strerror or str(exc)
    return ArtifactError(f"cannot read {path}: {reason}", detail=repr(exc))


class _BackgroundDigest:
    """SHA-256 of an open file computed by a thread with pread (the file offset is untouched)."""

    CHUNK = 1024 * 1024

    def __init__(self, fd: int, size: int) -> None:
        self._fd, self._size = fd, size
        self._digest = ""
        self._read = 0
        self._error: OSError | None = None
        self._thread = threading.Thread(target=self._run, name="stamp-sha256", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        sha = hashlib.sha256()
        try:
            while self._read < self._size:
                chunk = os.pread(self._fd, min(self.CHUNK, self._size - self._read), self._read)
                if not chunk:
                    break
                sha.update(chunk)
                self._read += len(chunk)
        except OSError as exc:
            self._error = exc
        self._digest = sha.hexdigest()

    def result(self) -> tuple[str, int]:
        """(hex digest, bytes read); re-raises the thread's OSError."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._digest, self._read


def load_file(path: Path) -> Firmware:
    """Read `path` as an ELF (by its magic number) or else as a raw image."""
    with _opened(path) as (fp, info):
        if info.st_size == 0:
            raise ArtifactError(f"{path} is empty: no firmware in it (did the build fail?)")
        head = fp.read(4)
        if is_elf(head):
            # The whole-file hash reads every byte of a possibly huge ELF (mostly DWARF)
            # while the parse reads only a few sections: do both at once (hashlib and
            # pread release the GIL), so a 60 MB ELF costs little more than its image.
            hasher = _BackgroundDigest(fp.fileno(), info.st_size)
            try:
                elf = read_elf(fp, str(path))
            finally:
                digest, size = hasher.result()
            if size != info.st_size:
                raise ArtifactError(f"{path} changed while it was being read: run stamp again")
            return Firmware(facts=FileFacts(path, size, digest, info.st_mtime_ns), elf=elf)
        if info.st_size > MAX_IMAGE_SIZE:
            raise ArtifactError(
                f"{path} is {info.st_size} bytes: not an ELF file, and far larger than a "
                "firmware image"
            )
        data = head + fp.read()
        if len(data) != info.st_size:
            raise ArtifactError(f"{path} changed while it was being read: run stamp again")
        facts = FileFacts(path, len(data), hashlib.sha256(data).hexdigest(), info.st_mtime_ns)
        return Firmware(facts=facts, bin=read_bin(data))


def load_bytes(data: bytes, name: str) -> Firmware:
    """`load_file` for bytes already in memory (tests, the simulators)."""
    facts = FileFacts(Path(name), len(data), hashlib.sha256(data).hexdigest(), 0)
    if not data:
        raise ArtifactError(f"{name} is empty")
    if is_elf(data):
        return Firmware(facts=facts, elf=read_elf(io.BytesIO(data), name))
    return Firmware(facts=facts, bin=read_bin(data))


# --- the ELF's Particle view --------------------------------------------------------------


def elf_module(image: bytes) -> tuple[ModuleInfo | None, bool]:
    """(module info, patched) for an ELF's loadable image, when that image is a module.

    A Particle app's ELF holds placeholders where the suffix SHA-256 and CRC go; the build
    patches the real values into the .bin, and so does this (patched=True), which is
    how the app hash is known from the ELF alone.
    """
    if len(image) < SHA_FROM_END or not _has_placeholders(image):
        try:
            return parse_module(image), False
        except ModuleError:
            return None, False
    try:
        return parse_module(patch_suffix(image)), True
    except ModuleError:
        return None, False


def _has_placeholders(image: bytes) -> bool:
    sha = image[len(image) - SHA_FROM_END : len(image) - SUFFIX_SIZE_FROM_END]
    return sha == SHA_PLACEHOLDER and image[-CRC_SIZE:] == CRC_PLACEHOLDER


# --- checks -------------------------------------------------------------------------------


def check_module(bin_image: BinImage, name: str) -> None:
    """ArtifactError when a module's stored SHA-256 or CRC32 does not match its content."""
    damage = bin_image.damaged
    if damage:
        raise ArtifactError(f"{name} is a damaged Particle module: {damage}; rebuild it")
    module = bin_image.module
    if module is None or not module.suffix_valid:
        return
    if module.app_hash == SHA_PLACEHOLDER.hex():
        raise ArtifactError(
            f"{name} still holds the ELF's SHA-256/CRC placeholders: it was made by objcopy "
            "but never patched; use the .bin the Particle build writes"
        )
    wrong = [
        what
        for what, ok in (("SHA-256 (app hash)", module.sha_ok), ("CRC32", module.crc_ok))
        if not ok
    ]
    if wrong:
        raise ArtifactError(
            f"{name}'s stored {' and '.join(wrong)} does not match its content: "
            "a half-written or hand-edited file; rebuild it"
        )


def check_agreement(elf: Firmware, bin_file: Firmware) -> None:
    """ArtifactError unless the .bin holds exactly the ELF's loadable bytes.

    A Particle .bin may differ in the suffix SHA-256 and CRC32 that the build patches in
    (their correctness against the .bin's content is `check_module`'s job), and a .bin
    made with `objcopy --gap-fill`/`--pad-to` in the bytes no section covers, as long as
    they are one fill value.
    """
    assert elf.elf is not None and bin_file.bin is not None
    image, data = elf.elf.image, bin_file.bin.data
    if (
        image == data
        or _same_but_suffix(image, data, bin_file.bin.module)
        or _same_but_fill(elf.elf, data)
    ):
        return
    stale = _staleness(elf, bin_file)
    if stale:
        raise ArtifactError(
            f"{bin_file.name} is left over from an older build: {stale}; "
            f"rebuild, or regenerate it from {elf.name}"
        )
    raise ArtifactError(
        f"{bin_file.name} does not hold {elf.name}'s loadable bytes ({_difference(image, data)}): "
        "was it made from another ELF?"
    )


def _same_but_fill(elf: ElfImage, data: bytes) -> bool:
    """The .bin has every section's bytes in place; gaps and any tail hold one fill byte."""
    if len(data) < len(elf.image) or not elf.sections:
        return False
    fillers: list[bytes] = []
    at = 0
    for section in sorted(elf.sections, key=lambda s: s.lma):
        start, end = section.lma - elf.base, section.lma - elf.base + section.size
        if start < at or data[start:end] != elf.image[start:end]:
            return False  # (overlapping sections: only an exact match is trusted)
        fillers.append(data[at:start])
        at = end
    fillers = [chunk for chunk in (*fillers, data[at:]) if chunk]
    if len({chunk[0] for chunk in fillers}) > 1:
        return False
    return all(chunk.count(chunk[0]) == len(chunk) for chunk in fillers)


def _same_but_suffix(image: bytes, data: bytes, module: ModuleInfo | None) -> bool:
    if module is None or not module.suffix_valid or len(image) != len(data):
        return False
    size = len(data)
    sha_at, crc_at = size - SHA_FROM_END, size - CRC_SIZE
    sha_end = size - SUFFIX_SIZE_FROM_END
    return image[:sha_at] == data[:sha_at] and image[sha_end:crc_at] == data[sha_end:crc_at]


def _staleness(elf: Firmware, bin_file: Firmware) -> str | None:
    """Why the .bin looks older than the ELF, or None."""
    assert elf.elf is not None and bin_file.bin is not None
    elf_record = _quiet_record(elf.elf.records)
    bin_record = _quiet_record(bin_file.bin.records)
    if elf_record and bin_record and bin_record.edit < elf_record.edit:
        return f"it holds edit {bin_record.edit} but {elf.name} holds edit {elf_record.edit}"
    if bin_file.facts.mtime_ns < elf.facts.mtime_ns:
        return f"it is older than {elf.name} and its bytes differ"
    return None


def _quiet_record(records: tuple[FoundRecord, ...]) -> StampRecord | None:
    distinct = {found.record for found in records}
    return distinct.pop() if len(distinct) == 1 else None


def _difference(image: bytes, data: bytes) -> str:
    if len(image) != len(data):
        return f"{len(data)} bytes, the ELF's image is {len(image)}"
    first = next(i for i, (a, b) in enumerate(zip(image, data, strict=True)) if a != b)
    return f"first difference at offset {first:#x}"


# --- the manifest -------------------------------------------------------------------------


def stamp_record(firmware: Firmware, *, allow_unstamped: bool) -> StampRecord | None:
    """The firmware's one stamp record; ArtifactError when it is missing, bad or ambiguous."""
    image = firmware.elf or firmware.bin
    assert image is not None
    if image.record_problem:
        raise ArtifactError(f"{firmware.name}: {image.record_problem}")
    record = single_record(image.records, firmware.name)
    if record is None and not allow_unstamped:
        where = "holds no stamp record" if firmware.elf else "holds no stamp record in its bytes"
        raise ArtifactError(
            f"{firmware.name} {where}: {LINKER_HINT} "
            "(--allow-unstamped writes a manifest without one)"
        )
    return record


def build_manifest(
    elf: Firmware | None,
    bin_file: Firmware | None,
    *,
    manifest_dir: Path,
    recorded_at: str,
    allow_unstamped: bool = False,
) -> Manifest:
    """The manifest of a build from its ELF, its .bin, or both (checked against each other)."""
    if elf is None and bin_file is None:
        raise ArtifactError("give the firmware's ELF, its .bin, or both")
    if elf is not None and elf.elf is None:
        raise ArtifactError(f"{elf.name} is not an ELF file")
    if bin_file is not None:
        if bin_file.bin is None:
            raise ArtifactError(
                f"{bin_file.name} is an ELF file, not a .bin: give it as the first argument"
            )
        check_module(bin_file.bin, bin_file.name)
        raw = bin_file.bin
        if elf is None and raw.module is None and not raw.records and not allow_unstamped:
            raise ArtifactError(
                f"{bin_file.name} is neither an ELF file nor a Particle module binary, "
                "and holds no stamp record"
            )
    if elf is not None and bin_file is not None:
        check_agreement(elf, bin_file)

    source = elf if elf is not None else bin_file
    assert source is not None
    record = stamp_record(source, allow_unstamped=allow_unstamped)

    module: ModuleInfo | None = None
    predicted = False
    if bin_file is not None and bin_file.bin is not None:
        module = bin_file.bin.module
        image_sha256 = bin_file.facts.sha256  # the .bin is the image
    else:
        assert elf is not None and elf.elf is not None
        module, predicted = elf_module(elf.elf.image)
        image_sha256 = elf.elf.image_sha256
    app_hash = module.app_hash if module and module.sha_ok else None
    particle = module.to_json() if module else None
    if particle is not None and bin_file is None:
        # Read from the ELF's image; with placeholders patched it is what the .bin will hold.
        particle["from_elf"] = True
        particle["app_hash_predicted"] = predicted

    build_id = None
    if elf is not None and elf.elf is not None:
        build_id = elf.elf.build_id
    elif bin_file is not None and bin_file.bin is not None:
        build_id = bin_file.bin.build_id

    return Manifest(
        edit=record.edit if record else None,
        git=record.git if record else None,
        dirty=record.dirty if record else None,
        build_id=build_id,
        app_hash=app_hash,
        image_sha256=image_sha256,
        recorded_at=recorded_at,
        elf=elf.facts.artifact(manifest_dir) if elf else None,
        bin=bin_file.facts.artifact(manifest_dir) if bin_file else None,
        particle=particle,
    )


def default_manifest_path(firmware: Path) -> Path:
    """NAME.stamp.json beside the firmware file (build/app.elf -> build/app.stamp.json)."""
    return firmware.with_name(f"{firmware.stem}.stamp.json")


def _relative(path: Path, directory: Path) -> str:
    try:
        return os.path.relpath(path.absolute(), directory.absolute())
    except ValueError:
        return str(path.absolute())


def record_json(found: FoundRecord) -> dict[str, Any]:
    """A stamp record for `stamp inspect --json`."""
    r = found.record
    return {"edit": r.edit, "git": r.git, "dirty": r.dirty, "where": found.where}


# --- inspection ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Inspection:
    """Everything `stamp inspect` shows about one file."""

    firmware: Firmware
    """The file as read."""
    kind: str
    """"elf", "module" (a Particle module binary) or "raw" (a plain objcopy image)."""
    records: tuple[FoundRecord, ...]
    """Every stamp record found."""
    record: StampRecord | None
    """The one record they agree on; None when absent or when they differ."""
    build_id: str | None
    """GNU build-id, lowercase hex."""
    image: bytes
    """The loadable image (the ELF's, or the file itself)."""
    load_address: int | None
    """Load address of the image's first byte (ELF only)."""
    module: ModuleInfo | None
    """Particle module info, of the .bin or of the ELF's image."""
    module_patched: bool
    """The module info is of the ELF's image with its placeholders patched (app hash predicted)."""
    problems: tuple[str, ...]
    """What makes the file unusable as a build artifact (exit 2 after showing it)."""

    @property
    def image_sha256(self) -> str:
        """SHA-256 of the loadable image."""
        if self.firmware.elf is not None:
            return self.firmware.elf.image_sha256
        return self.firmware.facts.sha256  # a .bin is its own image

    @property
    def app_hash(self) -> str | None:
        """The app hash when the module's suffix is trustworthy (or predicted from the ELF)."""
        if self.module is None or not self.module.sha_ok:
            return None
        return self.module.app_hash

    def to_json(self) -> dict[str, Any]:
        """`stamp inspect --json`: identity keys at the top (as in a manifest), then detail."""
        record = self.record
        elf = self.firmware.elf
        return {
            "file": {
                "path": str(self.firmware.facts.path),
                "size": self.firmware.facts.size,
                "sha256": self.firmware.facts.sha256,
            },
            "kind": self.kind,
            "edit": record.edit if record else None,
            "git": record.git if record else None,
            "dirty": record.dirty if record else None,
            "build_id": self.build_id,
            "app_hash": self.app_hash,
            "image_sha256": self.image_sha256,
            "image_size": len(self.image),
            "load_address": self.load_address,
            "stamp_records": [record_json(found) for found in self.records],
            "elf": None
            if elf is None
            else {
                "class": elf.elf_class,
                "machine": elf.machine,
                "entry": elf.entry,
                "sections": [
                    {"name": s.name, "lma": s.lma, "vma": s.vma, "size": s.size}
                    for s in elf.sections
                ],
            },
            "particle": self.module.to_json() if self.module else None,
            "particle_from_elf": self.module_patched if self.module else None,
            "problems": list(self.problems),
        }


def inspect_firmware(firmware: Firmware) -> Inspection:
    """Describe a file; ArtifactError when it is neither an ELF, a module nor a stamped image."""
    problems: list[str] = []
    if firmware.elf is not None:
        elf = firmware.elf
        module, patched = elf_module(elf.image)
        records, record_problem = elf.records, elf.record_problem
        kind, image, load_address, build_id = "elf", elf.image, elf.base, elf.build_id
    else:
        raw = firmware.bin
        assert raw is not None
        if raw.module is None and raw.damaged:
            raise ArtifactError(f"{firmware.name} is a damaged Particle module: {raw.damaged}")
        if raw.module is None and not raw.records and not raw.record_problem:
            raise ArtifactError(
                f"{firmware.name} is neither an ELF file nor a Particle module binary, and "
                "holds no stamp record"
            )
        module, patched = raw.module, False
        records, record_problem = raw.records, raw.record_problem
        kind = "module" if module else "raw"
        image, load_address, build_id = raw.data, None, raw.build_id
        try:
            check_module(raw, firmware.name)
        except ArtifactError as exc:
            problems.append(exc.message)
    if record_problem:
        problems.append(f"{firmware.name}: {record_problem}")
    try:
        record = single_record(records, firmware.name)
    except ArtifactError as exc:
        problems.append(exc.message)
        record = None
    return Inspection(
        firmware=firmware,
        kind=kind,
        records=records,
        record=record,
        build_id=build_id,
        image=image,
        load_address=load_address,
        module=module,
        module_patched=patched,
        problems=tuple(problems),
    )
