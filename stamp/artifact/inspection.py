"""What `stamp inspect` shows about one firmware file: `inspect_firmware` and its `Inspection`.

Unlike `stamp.artifact.build`, which refuses a file it cannot vouch for, an
inspection describes whatever it can read (kind, stamp records, build-id, hashes,
Particle module info) and lists what makes the file unusable as a build artifact among
its problems; only a file that is neither an ELF, a module nor a stamped image is an
ArtifactError.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypedDict, Unpack

from stamp.artifact.build import check_module
from stamp.artifact.elf import FoundRecord, single_record
from stamp.artifact.esp import AppDesc, EspImage, elf_app_desc
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
    """"elf", "module" (a Particle module binary), "esp" (an ESP-IDF app image), "mcuboot"
    (an `imgtool sign` image) or "raw" (a plain objcopy image)."""
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
    problems: tuple[str, ...]
    """What makes the file unusable as a build artifact (exit 2 after showing it)."""
    module: ModuleInfo | None = None
    """Particle module info, of the .bin or of the ELF's image."""
    module_patched: bool = False
    """The module info is of the ELF's image with its placeholders patched (app hash predicted)."""
    mcuboot: McubootImage | None = None
    """The MCUboot image, for an `imgtool sign` output."""
    esp: EspImage | None = None
    """The ESP-IDF image (an app .bin) as esptool reads it."""
    esp_app: AppDesc | None = None
    """The ESP-IDF app description, of the .bin or found in the ELF."""

    @property
    def elf_sha256(self) -> str | None:
        """ESP-IDF's identity of the build: the ELF's file SHA-256 (stored in the .bin)."""
        if self.esp is not None:
            return self.esp.elf_sha256
        if self.esp_app is not None:
            return self.firmware.facts.sha256  # the ELF itself: what the .bin will store
        return None

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
            "elf_sha256": self.elf_sha256,
            **_app_fields(self.esp_app),
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
            "esp": _esp_json(self.esp, self.esp_app),
            "mcuboot": self.mcuboot.to_json() if self.mcuboot else None,
            "problems": list(self.problems),
        }


def _app_fields(desc: AppDesc | None) -> dict[str, str | None]:
    """The informational fields of SPEC section 5 that an ESP-IDF app carries."""
    return {
        "app_version": desc.app_version if desc else None,
        "project_name": desc.project_name if desc else None,
        "idf_version": desc.idf_version if desc else None,
        "compile_time": desc.compile_time if desc else None,
    }


def _esp_json(esp: EspImage | None, app: AppDesc | None) -> dict[str, Any] | None:
    if esp is not None:
        return esp.to_json()
    if app is not None:
        return {"app_desc": app.to_json(), "from_elf": True}
    return None


def inspect_firmware(firmware: Firmware) -> Inspection:
    """Describe a file; ArtifactError when it is neither an ELF, a module nor a stamped image."""
    if firmware.elf is not None:
        elf = firmware.elf
        module, patched = elf_module(elf.image)
        found = _Found(elf.records, elf.record_problem, elf.build_id, elf.image, elf.base)
        return found.inspection(
            firmware, "elf", [], module=module, module_patched=patched, esp_app=elf_app_desc(elf)
        )
    if firmware.mcuboot is not None:
        return _inspect_mcuboot(firmware, firmware.mcuboot)
    raw = firmware.bin
    assert raw is not None
    if raw.esp_damage:
        raise ArtifactError(raw.esp_damage)
    if raw.esp is not None:
        problems = raw.esp.problems(firmware.name)
        return _raw_found(firmware, raw.data, None).inspection(
            firmware, "esp", problems, esp=raw.esp, esp_app=raw.esp.app_desc
        )
    if raw.module is None and raw.damaged:
        raise ArtifactError(f"{firmware.name} is a damaged Particle module: {raw.damaged}")
    if raw.module is None and not raw.records and not raw.record_problem:
        raise ArtifactError(
            f"{firmware.name} is neither an ELF file nor a Particle module binary, and "
            "holds no stamp record"
        )
    problems = []
    try:
        check_module(raw, firmware.name)
    except ArtifactError as exc:
        problems.append(exc.message)
    return _raw_found(firmware, raw.data, None).inspection(
        firmware, "module" if raw.module else "raw", problems, module=raw.module
    )


def _inspect_mcuboot(firmware: Firmware, image: McubootImage) -> Inspection:
    """An `imgtool sign` output: stamp records and build-id are looked for in its body."""
    problems = [f"{firmware.name}: {problem}" for problem in image.problems()]
    found = _raw_found(firmware, image.data, image.hex_address)
    return found.inspection(firmware, "mcuboot", problems, mcuboot=image)


class _Detail(TypedDict, total=False):
    """What only some kinds of file have (the `Inspection` fields of the same names)."""

    module: ModuleInfo | None
    module_patched: bool
    esp: EspImage | None
    esp_app: AppDesc | None
    mcuboot: McubootImage | None


@dataclass(frozen=True)
class _Found:
    """What every kind of file is searched for: stamp records, build-id, the loadable image."""

    records: tuple[FoundRecord, ...]
    """The stamp records found."""
    record_problem: str | None
    """Why a record-like block was rejected, when none is valid."""
    build_id: str | None
    """The GNU build-id, when the file has one."""
    image: bytes
    """The bytes that would be flashed (the ELF's loadable image, or the file)."""
    load_address: int | None
    """Where `image` starts in the device's memory, when known."""

    def inspection(
        self, firmware: Firmware, kind: str, problems: list[str], **detail: Unpack[_Detail]
    ) -> Inspection:
        """The `Inspection`, with `detail` (module, esp, mcuboot, ...) as found for `kind`."""
        record = _the_record(self.records, self.record_problem, firmware.name, problems)
        return Inspection(
            firmware=firmware,
            kind=kind,
            records=self.records,
            record=record,
            build_id=self.build_id,
            image=self.image,
            load_address=self.load_address,
            problems=tuple(problems),
            **detail,
        )


def _raw_found(firmware: Firmware, image: bytes, load_address: int | None) -> _Found:
    """A file that is not an ELF: records and build-id are those found in its bytes."""
    raw = firmware.bin
    assert raw is not None
    return _Found(raw.records, raw.record_problem, raw.build_id, image, load_address)


def _the_record(
    records: tuple[FoundRecord, ...], problem: str | None, name: str, problems: list[str]
) -> StampRecord | None:
    """The one stamp record of a file; what is wrong with them goes into `problems`."""
    if problem:
        problems.append(f"{name}: {problem}")
    try:
        return single_record(records, name)
    except ArtifactError as exc:
        problems.append(exc.message)
        return None
