"""`stamp inspect`: the identity of any ELF or .bin, for people and scripts (SPEC section 3)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from stamp.cli.app import Settings
from stamp.cli.options import json_option

if TYPE_CHECKING:
    from stamp.artifact.inspection import Inspection
    from stamp.artifact.mcuboot import McubootImage
    from stamp.artifact.particle.module import ModuleInfo


@click.command("inspect")
@click.argument("file", type=click.Path(path_type=Path, readable=False))
@json_option("Print the result as JSON.")
@click.pass_obj
def inspect_cmd(settings: Settings, file: Path, as_json: bool) -> int:
    """Show the identity of an ELF or .bin: stamp record, build-id, hashes, module info.

    For a Particle module binary it shows the prefix, the suffix, and whether the stored
    SHA-256 (the app hash) and CRC32 match the content; a mismatch exits with 2 after
    showing everything.

    \b
    Examples:
      stamp inspect build/app.elf
      stamp inspect build/app.bin --json | jq .particle.app_hash
    """
    from stamp.artifact.image import load_file
    from stamp.artifact.inspection import inspect_firmware
    from stamp.errors import ArtifactError

    result = inspect_firmware(load_file(file))
    if as_json:
        from stamp.cli.terminal import print_json

        print_json(result.to_json())
    else:
        click.echo("\n".join(render(result)))
    if result.problems:
        raise ArtifactError(result.problems[0])
    return 0


def render(result: Inspection) -> list[str]:
    """The human-readable report, one list item per line."""
    facts = result.firmware.facts
    lines = []
    elf = result.firmware.elf
    if elf is not None:
        lines.append(
            f"{facts.path}: ELF {elf.elf_class}-bit {_machine(elf.machine)}, {facts.size} bytes"
        )
    elif result.kind == "module":
        lines.append(f"{facts.path}: Particle module binary, {facts.size} bytes")
    elif result.esp is not None:
        lines.append(f"{facts.path}: ESP-IDF app image for {result.esp.chip}, {facts.size} bytes")
    elif result.mcuboot is not None:
        how = "Intel hex" if result.mcuboot.source_format == "hex" else "binary"
        lines.append(f"{facts.path}: MCUboot image ({how}), {facts.size} bytes")
    else:
        lines.append(f"{facts.path}: raw firmware image, {facts.size} bytes")
    lines.append(_row("file sha256", facts.sha256))

    if not result.records:
        lines.append(_row("stamp record", "none"))
    for found in dict.fromkeys(result.records):
        r = found.record
        dirty = "unknown" if r.dirty is None else "dirty" if r.dirty else "clean"
        lines.append(_row("stamp record", f"edit {r.edit}, git {r.git} ({dirty}) at {found.where}"))
    lines.append(_row("build-id", result.build_id or "none"))
    where = f" at {result.load_address:#010x}" if result.load_address is not None else ""
    lines.append(_row("image", f"{len(result.image)} bytes{where}"))
    lines.append(_row("image sha256", result.image_sha256))
    if elf is not None:
        lines.append(_row("entry", f"{elf.entry:#010x}"))
        for section in elf.sections:
            placed = f"{section.lma:#010x}"
            if section.vma != section.lma:
                placed += f" (runs at {section.vma:#010x})"
            lines.append(_row("section", f"{section.name:<20} {placed}  {section.size} bytes"))
    if result.module is not None:
        lines.extend(_module_lines(result.module, patched=result.module_patched))
    if result.esp_app is not None:
        lines.extend(_esp_lines(result))
    if result.mcuboot is not None:
        lines.extend(_mcuboot_lines(result.mcuboot))
    for problem in result.problems:
        lines.append(_row("PROBLEM", problem))
    return lines


def _module_lines(m: ModuleInfo, *, patched: bool) -> list[str]:
    from stamp.artifact.particle.format import MODULE_FUNCTION_NAMES

    title = "Particle module"
    if patched:
        title += " (the ELF's image, suffix placeholders patched as the build does)"
    platform = f"{m.platform_id} ({m.platform_name or 'unknown to stamp'})"
    function = f"{m.module_function} ({m.module_function_name or 'unknown to stamp'})"
    lines = [
        title,
        _row("platform", platform),
        _row("function", f"{function}, index {m.module_index}, version {m.module_version}"),
        _row(
            "addresses",
            f"{m.start_address:#010x} - {m.end_address:#010x}, prefix at offset "
            f"{m.prefix_offset:#x}, flags {m.flags:#04x}",
        ),
    ]
    for dep in m.dependencies:
        needed = MODULE_FUNCTION_NAMES.get(dep.function, f"function {dep.function} (unknown)")
        lines.append(_row("depends on", f"{needed} {dep.index} version {dep.version}"))
    if m.suffix_size is None:
        lines.append(_row("suffix", "none at the end of the file"))
    else:
        product = "-" if m.product_id is None else str(m.product_id)
        version = "-" if m.product_version is None else str(m.product_version)
        lines.append(
            _row("suffix", f"{m.suffix_size} bytes, product id {product}, version {version}")
        )
        if patched:
            lines.append(_row("app hash", f"{m.app_hash} (what the built .bin holds)"))
            lines.append(_row("SHA-256", "placeholder in the ELF, patched into the .bin"))
            lines.append(_row("CRC32", f"placeholder in the ELF, {m.stored_crc} in the .bin"))
            return lines
        lines.append(_row("app hash", m.app_hash or "none"))
        sha = "ok" if m.sha_ok else f"MISMATCH (content hashes to {m.computed_sha256})"
        lines.append(_row("SHA-256", sha))
    if m.crc_ok:
        lines.append(_row("CRC32", f"ok ({m.stored_crc})"))
    else:
        lines.append(_row("CRC32", f"MISMATCH (stored {m.stored_crc}, content {m.computed_crc})"))
    for problem in m.problems:
        lines.append(_row("note", problem))
    return lines


def _esp_lines(result: Inspection) -> list[str]:
    desc, esp = result.esp_app, result.esp
    assert desc is not None
    title = "ESP-IDF app" if esp is not None else "ESP-IDF app (the ELF's app description)"
    lines = [
        title,
        _row("project", desc.project_name),
        _row("app version", desc.app_version),
        _row("compile time", desc.compile_time),
        _row("ESP-IDF", desc.idf_version),
    ]
    if esp is None:
        lines.append(_row("ELF SHA-256", f"{result.elf_sha256} (this file; the .bin stores it)"))
        return lines
    lines.append(_row("ELF SHA-256", result.elf_sha256 or "none (all zeros: not patched in)"))
    lines.append(_row("chip", f"{esp.chip} (chip id {esp.chip_id}), entry {esp.entry:#010x}"))
    lines.append(_row("segments", str(len(esp.segments))))
    if esp.checksum_ok:
        lines.append(_row("checksum", f"ok ({esp.stored_checksum:#04x})"))
    else:
        lines.append(
            _row(
                "checksum",
                f"BAD (stored {esp.stored_checksum:#04x}, content {esp.computed_checksum:#04x})",
            )
        )
    if esp.digest_ok is None:
        lines.append(_row("validation", "none appended"))
    elif esp.digest_ok:
        lines.append(_row("validation", f"ok ({esp.stored_digest})"))
    else:
        lines.append(_row("validation", f"BAD (content hashes to {esp.computed_digest})"))
    return lines


def _mcuboot_lines(m: McubootImage) -> list[str]:
    flags = f"{m.flags:#x}" + (f" ({', '.join(m.flag_names)})" if m.flag_names else "")
    lines = [
        "MCUboot image",
        _row("version", m.version_text),
        _row(
            "header",
            f"{m.hdr_size} bytes, body {m.img_size} bytes, protected TLVs "
            f"{m.protected_tlv_size} bytes, flags {flags}, load address {m.load_addr:#x}",
        ),
    ]
    for t in m.tlvs:
        where = "protected " if t.protected else ""
        lines.append(_row("TLV", f"{where}{t.name} ({t.type:#x}), {len(t.data)} bytes"))
    if m.stored_hash is None:
        lines.append(_row("hash", "none (no SHA TLV)"))
    else:
        ok = "ok" if m.hash_ok else f"MISMATCH (content hashes to {m.computed_hash})"
        lines.append(_row("hash", f"{m.stored_hash} ({m.hash_type})"))
        lines.append(_row(m.hash_type or "hash", ok))
    if m.key_type is None:
        lines.append(_row("signed", "no"))
    else:
        key = f", public key {m.key_in_image} in the image" if m.key_in_image else ""
        lines.append(_row("signed", f"yes, {m.key_type}{key}"))
    return lines


def _row(label: str, value: str) -> str:
    return f"  {label:<14} {value}"


def _machine(name: str) -> str:
    return {"EM_ARM": "ARM", "EM_X86_64": "x86-64", "EM_386": "x86", "EM_RISCV": "RISC-V"}.get(
        name, name.removeprefix("EM_")
    )
