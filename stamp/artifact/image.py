"""From firmware files to parsed images: read an ELF or a .bin into a `Firmware`.

`load_file` is the one place stamp opens a firmware file: every OSError becomes an
ArtifactError naming the file, FIFOs and devices are refused before they can block, and
a file that shrinks while it is read is noticed. `load_bytes` does the same for bytes in
memory, and `elf_module` reads the Particle module an ELF's image will become. What is
made of a `Firmware` is elsewhere: the manifest in `stamp.artifact.build`, the
report of `stamp inspect` in `stamp.artifact.inspection`.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import stat
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from stamp.artifact.build_id import scan_build_id
from stamp.artifact.elf import (
    MAX_IMAGE_SIZE,
    ElfImage,
    FoundRecord,
    is_elf,
    read_elf,
    scan_image,
)
from stamp.artifact.esp import EspImage, EsptoolMissing, looks_like_esp_image, read_esp_image
from stamp.artifact.manifest import Artifact
from stamp.artifact.particle.build import patch_suffix
from stamp.artifact.particle.format import (
    CRC_PLACEHOLDER,
    CRC_SIZE,
    MIN_SUFFIX_SIZE,
    PREFIX_SIZE,
    RESERVED_FROM_END,
    SHA_FROM_END,
    SHA_PLACEHOLDER,
    SUFFIX_SIZE_FROM_END,
    ModuleError,
    ModuleTruncated,
)
from stamp.artifact.particle.module import ModuleInfo, parse_module
from stamp.errors import ArtifactError
from stamp.fileio import relative_path

if TYPE_CHECKING:
    from stamp.artifact.mcuboot import McubootImage


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
    module_cut: str | None
    """Why it is a cut-off module (a prefix claiming more bytes than the file has), or None."""
    records: tuple[FoundRecord, ...]
    """Stamp records found anywhere in the bytes."""
    record_problem: str | None
    """Why a record-like block was rejected (e.g. a newer layout), when none is valid."""
    build_id: str | None
    """The GNU build-id, when exactly one build-id note is in the image."""
    esp: EspImage | None = None
    """The ESP-IDF (esptool) image parse, when the file starts like one and reads."""
    esp_damage: str | None = None
    """Why a file that starts like an ESP-IDF image cannot be read (cut short, mangled)."""

    @property
    def damaged(self) -> str | None:
        """Why it looks like a module that cannot be trusted (cut short, edited), or None."""
        if self.esp is not None or self.esp_damage is not None:
            return None  # an ESP-IDF image: its damage is esp_damage / EspImage.problems
        if self.module is not None:
            # A padded or combined file has no suffix at its end by design (SPEC section 7).
            if self.module.suffix_valid or self.module.module_size != len(self.data):
                return None
            return "its suffix size field does not fit the file"
        # A perfect prefix claiming more bytes than the file has: a half-written
        # download, not a non-module file.
        if self.module_cut:
            return self.module_cut
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
    """The parsed raw image, when the file is not an ELF (an Intel hex file decoded)."""
    mcuboot: McubootImage | None = None
    """The MCUboot image, when the raw image is one (`imgtool sign` output)."""

    @property
    def name(self) -> str:
        """The path as shown in messages."""
        return str(self.facts.path)


# --- reading ------------------------------------------------------------------------------


def read_bin(data: bytes, name: str = "the image") -> BinImage:
    """Parse a raw image: Particle module or ESP-IDF image info, stamp records and build-id
    (no I/O). ArtifactError only when an ESP-IDF image needs esptool and it is missing."""
    esp, esp_damage = _read_esp(data, name)
    module: ModuleInfo | None = None
    cut: str | None = None
    try:
        module = parse_module(data)
    except ModuleTruncated as exc:
        cut = exc.message
    except ModuleError:
        pass  # not a module: a plain objcopy -O binary
    records, problem = scan_image(data, 0)
    return BinImage(
        data=data,
        module=module,
        module_cut=cut,
        records=records,
        record_problem=problem,
        build_id=scan_build_id(data),
        esp=esp,
        esp_damage=esp_damage,
    )


def _read_esp(data: bytes, name: str) -> tuple[EspImage | None, str | None]:
    if not looks_like_esp_image(data):
        return None, None
    try:
        return read_esp_image(data, name), None
    except EsptoolMissing:
        raise
    except ArtifactError as exc:
        return None, exc.message


def _trailing_suffix_size(data: bytes) -> int | None:
    """The suffix size when the file's tail has a module suffix's shape (zero reserved
    field, an even size that leaves room for a prefix), else None."""
    if len(data) < PREFIX_SIZE + MIN_SUFFIX_SIZE + CRC_SIZE:
        return None
    size = int.from_bytes(data[-SUFFIX_SIZE_FROM_END:-CRC_SIZE], "little")
    reserved = data[-RESERVED_FROM_END:-SHA_FROM_END]
    fits = MIN_SUFFIX_SIZE <= size <= len(data) - PREFIX_SIZE - CRC_SIZE and size % 2 == 0
    return size if fits and reserved == b"\0\0" else None


@contextmanager
def _opened(path: Path) -> Iterator[tuple[io.BufferedReader, os.stat_result]]:
    """`path` open for reading, refusing what is not a regular file; OSError -> ArtifactError."""
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused below. The
        # file object owns the descriptor from the start, so an interrupt at any instant
        # cannot leave it to be closed twice (found by tests/cli/test_demo.py's Ctrl-C).
        fp = open(path, "rb", opener=_nonblocking)  # noqa: SIM115 (closed below or by `with`)
    except OSError as exc:
        raise file_error(path, exc) from None
    try:
        info = os.fstat(fp.fileno())
        if stat.S_ISDIR(info.st_mode):
            raise ArtifactError(f"{path} is a directory, not a firmware file")
        if not stat.S_ISREG(info.st_mode):
            raise ArtifactError(
                f"{path} is not a regular file (a pipe, device or socket): "
                "give the path of the ELF or .bin the build wrote"
            )
    except OSError as exc:
        fp.close()
        raise file_error(path, exc) from None
    except BaseException:
        fp.close()
        raise
    with fp:
        try:
            yield fp, info
        except OSError as exc:
            raise file_error(path, exc) from None


def _nonblocking(path: str, flags: int) -> int:
    return os.open(path, flags | os.O_NONBLOCK | os.O_CLOEXEC)


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
        return _raw_firmware(facts, data)


def _raw_firmware(facts: FileFacts, data: bytes) -> Firmware:
    """A non-ELF file: an Intel hex file is decoded (it must be an MCUboot image)."""
    # Here, not at the top: an ELF (the usual `stamp manifest`) never needs the MCUboot reader.
    from stamp.artifact.mcuboot import decode_intel_hex, is_intel_hex, read_mcuboot

    name = str(facts.path)
    if is_intel_hex(data):
        data, address = decode_intel_hex(data, name)
        mcuboot = read_mcuboot(data, name, source_format="hex", hex_address=address)
        if mcuboot is None:
            raise ArtifactError(
                f"{name} is an Intel hex file but not an MCUboot image (no header magic at "
                f"{address:#x}): give the .bin, or the .hex that imgtool sign wrote"
            )
        return Firmware(facts=facts, bin=read_bin(data, name), mcuboot=mcuboot)
    return Firmware(facts=facts, bin=read_bin(data, name), mcuboot=read_mcuboot(data, name))


def load_bytes(data: bytes, name: str) -> Firmware:
    """`load_file` for bytes already in memory (tests, the simulators)."""
    facts = FileFacts(Path(name), len(data), hashlib.sha256(data).hexdigest(), 0)
    if not data:
        raise ArtifactError(f"{name} is empty")
    if is_elf(data):
        return Firmware(facts=facts, elf=read_elf(io.BytesIO(data), name))
    return _raw_firmware(facts, data)


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


def _relative(path: Path, directory: Path) -> str:
    return relative_path(path, directory, walk_up=True) or str(path.absolute())
