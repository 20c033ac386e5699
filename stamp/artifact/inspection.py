"""What `stamp inspect` shows about one firmware file: `inspect_firmware` and its `Inspection`.

Unlike `stamp.artifact.build`, which refuses a file it cannot vouch for, an
inspection describes whatever it can read (kind, stamp records, build-id, hashes,
Particle module info) and lists what makes the file unusable as a build artifact among
its problems; only a file that is neither an ELF, a module nor a stamped image is an
ArtifactError.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from stamp.artifact.build import check_module
from stamp.artifact.elf import FoundRecord, single_record
from stamp.artifact.image import Firmware, elf_module
from stamp.artifact.mcuboot import McubootImage
from stamp.artifact.particle.module import ModuleInfo
from stamp.errors import ArtifactError
from stamp.record import StampRecord


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
    """"elf", "module" (a Particle module binary), "mcuboot" (an `imgtool sign` image) or
    "raw" (a plain objcopy image)."""
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
    mcuboot: McubootImage | None = None
    """The MCUboot image, for an `imgtool sign` output."""

    @property
    def image_sha256(self) -> str:
        """SHA-256 of the loadable image."""
        if self.firmware.elf is not None:
            return self.firmware.elf.image_sha256
        if self.mcuboot is not None:
            return self.mcuboot.image_sha256  # the same as the file's, unless it was a .hex
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
            "mcuboot_hash": self.mcuboot.mcuboot_hash if self.mcuboot else None,
            "image_version": self.mcuboot.version_text if self.mcuboot else None,
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
            "mcuboot": self.mcuboot.to_json() if self.mcuboot else None,
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
    elif firmware.mcuboot is not None:
        return _inspect_mcuboot(firmware, firmware.mcuboot)
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


def _inspect_mcuboot(firmware: Firmware, image: McubootImage) -> Inspection:
    """An `imgtool sign` output: stamp records and build-id are looked for in its body."""
    raw = firmware.bin
    assert raw is not None
    problems = [f"{firmware.name}: {problem}" for problem in image.problems()]
    if raw.record_problem:
        problems.append(f"{firmware.name}: {raw.record_problem}")
    try:
        record = single_record(raw.records, firmware.name)
    except ArtifactError as exc:
        problems.append(exc.message)
        record = None
    return Inspection(
        firmware=firmware,
        kind="mcuboot",
        records=raw.records,
        record=record,
        build_id=raw.build_id,
        image=image.data,
        load_address=image.hex_address,
        module=None,
        module_patched=False,
        problems=tuple(problems),
        mcuboot=image,
    )
