"""From loaded firmware to the build's manifest: check the files, then take their identity.

`build_manifest` makes the manifest of a build (SPEC section 5) from its ELF, its .bin
or both: a module's stored checksums must hold (`check_module`), a .bin must hold its
ELF's loadable bytes (`check_agreement`), and exactly one stamp record must name the
build (`stamp_record`). `default_manifest_path` is where the manifest goes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from stamp.artifact.elf import ElfImage, FoundRecord, single_record
from stamp.artifact.esp import AppDesc, elf_app_desc
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
    esp = _esp_parts(elf, bin_file)
    if esp is not None:
        return _esp_manifest(elf, bin_file, esp, manifest_dir=manifest_dir, recorded_at=recorded_at)
    if bin_file is not None:
        allow_unstamped = _check_bin(elf, bin_file, allow_unstamped=allow_unstamped)
    if elf is not None and bin_file is not None:
        check_agreement(elf, bin_file)

    source = elf if elf is not None else bin_file
    assert source is not None
    record = stamp_record(source, allow_unstamped=allow_unstamped)

    mcuboot = bin_file.mcuboot if bin_file is not None else None
    module, predicted, image_sha256 = _image(elf, bin_file)
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
            **_record_keys(record),
            build_id=build_id,
            app_hash=app_hash,
            image_sha256=image_sha256,
            mcuboot_hash=mcuboot.mcuboot_hash if mcuboot else None,
            image_version=mcuboot.version_text if mcuboot else None,
        ),
        recorded_at=recorded_at,
        elf=elf.facts.artifact(manifest_dir) if elf else None,
        bin=bin_file.facts.artifact(manifest_dir) if bin_file else None,
        particle=particle,
        mcuboot=mcuboot.to_json() if mcuboot else None,
        memory=memory_layout(elf.elf, record) if elf is not None and elf.elf else None,
    )


def _check_bin(elf: Firmware | None, bin_file: Firmware, *, allow_unstamped: bool) -> bool:
    """Check a .bin on its own (module checksums, MCUboot hash TLV); ArtifactError when it
    cannot be a build. Returns whether an unstamped build is allowed (an MCUboot image's
    hash TLV identifies the build, as a device reports it)."""
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
        return True
    if not plain_copy:
        check_module(raw, bin_file.name)
    if elf is None and raw.module is None and not raw.records and not allow_unstamped:
        raise ArtifactError(
            f"{bin_file.name} is neither an ELF file nor a Particle module binary, "
            "and holds no stamp record"
        )
    return allow_unstamped


def _image(elf: Firmware | None, bin_file: Firmware | None) -> tuple[ModuleInfo | None, bool, str]:
    """The build's Particle module (if any), whether its app hash is predicted from the
    ELF, and the SHA-256 of the image as it is flashed."""
    mcuboot = bin_file.mcuboot if bin_file is not None else None
    if mcuboot is not None:
        return None, False, mcuboot.image_sha256  # the signed image as flashed (.hex decoded)
    if bin_file is not None and bin_file.bin is not None:
        return bin_file.bin.module, False, bin_file.facts.sha256  # the .bin is the image
    assert elf is not None and elf.elf is not None
    module, predicted = elf_module(elf.elf.image)
    return module, predicted, elf.elf.image_sha256


def check_mcuboot(firmware: Firmware) -> None:
    """ArtifactError when an MCUboot image's hash TLV does not match (or is missing)."""
    assert firmware.mcuboot is not None
    problems = firmware.mcuboot.problems()
    if problems:
        raise ArtifactError(f"{firmware.name}: {problems[0]}")


# --- ESP-IDF ------------------------------------------------------------------------------


def _esp_parts(elf: Firmware | None, bin_file: Firmware | None) -> tuple[AppDesc, ...] | None:
    """The app descriptions of an ESP-IDF build's files (.bin first), None for other builds;
    ArtifactError for an ESP-IDF .bin that is damaged or cannot be matched to its ELF."""
    found: list[AppDesc] = []
    raw = bin_file.bin if bin_file is not None else None
    if bin_file is not None and raw is not None:
        if raw.esp_damage:
            raise ArtifactError(raw.esp_damage)
        if raw.esp is not None:
            problems = raw.esp.problems(bin_file.name)
            if problems:
                raise ArtifactError(problems[0])
            assert raw.esp.app_desc is not None  # else a problem
            found.append(raw.esp.app_desc)
    desc = elf_app_desc(elf.elf) if elf is not None and elf.elf is not None else None
    if desc is not None:
        found.append(desc)
    return tuple(found) or None


def check_esp_pair(elf: Firmware, bin_file: Firmware) -> None:
    """ArtifactError unless the ESP-IDF .bin stores the ELF's SHA-256 (it was made from it)."""
    esp = bin_file.bin.esp if bin_file.bin is not None else None
    if esp is None:
        raise ArtifactError(
            f"{elf.name} is an ESP-IDF app but {bin_file.name} is not an ESP-IDF image: "
            "give the .bin that `idf.py build` (esptool elf2image) made from it"
        )
    if elf.elf is None or elf_app_desc(elf.elf) is None:
        raise ArtifactError(
            f"{bin_file.name} is an ESP-IDF image but {elf.name} holds no ESP-IDF app "
            "description: is it the app's ELF?"
        )
    if esp.elf_sha256 != elf.facts.sha256:
        raise ArtifactError(
            f"{bin_file.name} was made from another ELF (it stores ELF SHA-256 "
            f"{esp.elf_sha256}, {elf.name} hashes to {elf.facts.sha256}): a .bin left over "
            f"from an older build; rebuild, or regenerate it from {elf.name}"
        )


def _esp_manifest(
    elf: Firmware | None,
    bin_file: Firmware | None,
    descs: tuple[AppDesc, ...],
    *,
    manifest_dir: Path,
    recorded_at: str,
) -> Manifest:
    """An ESP-IDF build's manifest: `elf_sha256` identifies it, a stamp record is optional
    (the boot log reports the build without one)."""
    if elf is not None and bin_file is not None:
        check_esp_pair(elf, bin_file)
    desc = descs[0]
    esp: dict[str, Any]
    if bin_file is not None and bin_file.bin is not None and bin_file.bin.esp is not None:
        image = bin_file.bin.esp
        elf_sha256, esp = image.elf_sha256, image.to_json()
        image_sha256, build_id = bin_file.facts.sha256, bin_file.bin.build_id
    else:
        assert elf is not None and elf.elf is not None
        elf_sha256, esp = elf.facts.sha256, {"app_desc": desc.to_json(), "from_elf": True}
        image_sha256, build_id = elf.elf.image_sha256, elf.elf.build_id
    if elf is not None and elf.elf is not None:
        build_id = elf.elf.build_id
    source = elf if elf is not None else bin_file
    assert source is not None
    record = stamp_record(source, allow_unstamped=True)
    return Manifest(
        identity=Identity(
            **_record_keys(record),
            build_id=build_id,
            image_sha256=image_sha256,
            elf_sha256=elf_sha256,
            app_version=desc.app_version,
            project_name=desc.project_name,
            idf_version=desc.idf_version,
            compile_time=desc.compile_time,
        ),
        recorded_at=recorded_at,
        elf=elf.facts.artifact(manifest_dir) if elf else None,
        bin=bin_file.facts.artifact(manifest_dir) if bin_file else None,
        esp=esp,
    )


def _record_keys(record: StampRecord | None) -> dict[str, Any]:
    """The identity keys a stamp record gives (none for an unstamped build)."""
    if record is None:
        return {}
    return {"edit": record.edit, "git": record.git, "dirty": record.dirty}


def default_manifest_path(firmware: Path) -> Path:
    """NAME.stamp.json beside the firmware file (build/app.elf -> build/app.stamp.json)."""
    return firmware.with_name(f"{firmware.stem}.stamp.json")
