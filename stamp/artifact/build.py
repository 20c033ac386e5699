"""From loaded firmware to the build's manifest: check the files, then take their identity.

`build_manifest` makes the manifest of a build (SPEC section 5) from its ELF, its .bin
or both: a module's stored checksums must hold (`check_module`), a .bin must hold its
ELF's loadable bytes (`check_agreement`), and exactly one stamp record must name the
build (`stamp_record`). `default_manifest_path` is where the manifest goes.
"""

from __future__ import annotations

from pathlib import Path

from stamp.artifact.elf import ElfImage, FoundRecord, single_record
from stamp.artifact.image import BinImage, Firmware, elf_module
from stamp.artifact.linking import WHERE_IT_GOES, missing_record_reason, placement_problem
from stamp.artifact.manifest import Manifest
from stamp.artifact.memory import memory_layout
from stamp.artifact.particle.format import (
    CRC_SIZE,
    SHA_FROM_END,
    SHA_PLACEHOLDER,
    SUFFIX_SIZE_FROM_END,
)
from stamp.artifact.particle.module import ModuleInfo
from stamp.errors import ArtifactError
from stamp.identity import Identity
from stamp.record import StampRecord

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
    if bin_file.mcuboot is not None:
        data = bin_file.mcuboot.body  # imgtool sign wraps the ELF's bytes in header and TLVs
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
    if firmware.elf is not None:
        misplaced = placement_problem(firmware.elf)
        if misplaced:
            raise ArtifactError(f"{firmware.name} would not boot: {misplaced}; {WHERE_IT_GOES}")
    if record is None and not allow_unstamped:
        if firmware.elf is not None:
            why = missing_record_reason(firmware.elf.image)
        else:
            why = "is the generated stamp.c compiled and linked in?"
        where = "holds no stamp record" if firmware.elf else "holds no stamp record in its bytes"
        raise ArtifactError(
            f"{firmware.name} {where}: {why} (--allow-unstamped writes a manifest without one)"
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
        raw = bin_file.bin
        # objcopy's copy of an ELF that is no module: a module-like tail is chance (a
        # plain Cortex-M .bin often ends in zeros and a small even number), not damage.
        plain_copy = (
            elf is not None and elf.elf is not None and raw.module is None
        ) and raw.data == elf.elf.image
        if bin_file.mcuboot is not None:
            check_mcuboot(bin_file)
            allow_unstamped = True  # its hash TLV identifies the build, as a device reports it
        elif not plain_copy:
            check_module(raw, bin_file.name)
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
    mcuboot = bin_file.mcuboot if bin_file is not None else None
    if mcuboot is not None:
        image_sha256 = mcuboot.image_sha256  # the signed image as flashed (a .hex decoded)
    elif bin_file is not None and bin_file.bin is not None:
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
        identity=Identity(
            edit=record.edit if record else None,
            git=record.git if record else None,
            dirty=record.dirty if record else None,
            build_id=build_id,
            app_hash=app_hash,
            image_sha256=image_sha256,
            mcuboot_hash=mcuboot.mcuboot_hash if mcuboot else None,
        ),
        recorded_at=recorded_at,
        elf=elf.facts.artifact(manifest_dir) if elf else None,
        bin=bin_file.facts.artifact(manifest_dir) if bin_file else None,
        particle=particle,
        image_version=mcuboot.version_text if mcuboot else None,
        mcuboot=mcuboot.to_json() if mcuboot else None,
        memory=memory_layout(elf.elf, record) if elf is not None and elf.elf else None,
    )


def check_mcuboot(firmware: Firmware) -> None:
    """ArtifactError when an MCUboot image's hash TLV does not match (or is missing)."""
    assert firmware.mcuboot is not None
    problems = firmware.mcuboot.problems()
    if problems:
        raise ArtifactError(f"{firmware.name}: {problems[0]}")


def default_manifest_path(firmware: Path) -> Path:
    """NAME.stamp.json beside the firmware file (build/app.elf -> build/app.stamp.json)."""
    return firmware.with_name(f"{firmware.stem}.stamp.json")
