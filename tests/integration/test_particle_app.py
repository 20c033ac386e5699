"""The README's Particle snippet, verbatim, compiled by arm-none-eabi-g++ (issue 11, item 11).

A stand-in `Particle.h` (the few Device OS calls the snippet makes, defined out of line as
Device OS does) and a linker script laid out like a Particle user part (module info first,
then code, read-only data, `.data` stored in flash, the suffix and CRC last) with
`-Wl,--gc-sections` and no KEEP for `.stamp`, as Particle's own scripts have none. The
project has the README's layout: `stamp.toml` at the root, the header in `src/stamp/`.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from stamp.artifact.image import load_file
from tests.support import REPO_ROOT, make_repo, require_tool, run_stamp

README = (REPO_ROOT / "README.md").read_text()
SECTION = README.split("## Particle how-to", 1)[1].split("\n## ", 1)[0]

PARTICLE_H = """\
#pragma once
#include <stddef.h>
class String {
public:
    String(const char *text = "") : text_(text) {}
    void trim();
    bool operator==(const char *other) const;
private:
    const char *text_;
};
enum PublishFlag { PRIVATE };
class USBSerial {
public:
    void begin(long baud);
    int available();
    String readStringUntil(char end);
    size_t println(const char *text);
};
class CloudClass {
public:
    bool variable(const char *name, const char *value);
    bool publish(const char *name, const char *data, PublishFlag flag);
};
extern USBSerial Serial;
extern CloudClass Particle;
"""

DEVICE_OS = """\
#include "Particle.h"
USBSerial Serial;
CloudClass Particle;
const char *volatile sink;
void String::trim() {}
bool String::operator==(const char *other) const { return text_ == other; }
void USBSerial::begin(long) {}
int USBSerial::available() { return 0; }
String USBSerial::readStringUntil(char) { return String(); }
size_t USBSerial::println(const char *text) { sink = text; return 0; }
bool CloudClass::variable(const char *, const char *value) { sink = value; return true; }
bool CloudClass::publish(const char *, const char *data, PublishFlag) { sink = data; return true; }
void setup();
void loop();
extern "C" void module_user_init(void) { setup(); for (;;) { loop(); } }
struct module_info { unsigned start, end; unsigned char rest[16]; };
extern const char link_module_start[], link_module_end[];
__attribute__((section(".module_info"), used))
const module_info user_module_info = {(unsigned)link_module_start, (unsigned)link_module_end, {}};
__attribute__((section(".module_suffix"), used))
const unsigned char module_suffix[36] = {0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
    16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 36, 0};
__attribute__((section(".module_crc"), used))
const unsigned char module_crc[4] = {0x78, 0x56, 0x34, 0x12};
"""

USER_PART_LD = """\
MEMORY {
  APP_FLASH (rx) : ORIGIN = 0x080A0000, LENGTH = 128K
  SRAM (rwx)     : ORIGIN = 0x20000300, LENGTH = 16K
}
ENTRY(module_user_init)
SECTIONS {
  .module_info : { link_module_start = .; KEEP(*(.module_info)) } > APP_FLASH
  .text : { *(.text*) } > APP_FLASH
  .rodata : { *(.rodata*) } > APP_FLASH
  .data : ALIGN(4) { *(.data*) . = ALIGN(4); } > SRAM AT> APP_FLASH
  .module_suffix : ALIGN(4) { KEEP(*(.module_suffix)) } > APP_FLASH
  .module_crc : { link_module_end = .; KEEP(*(.module_crc)) } > APP_FLASH
  .bss (NOLOAD) : { *(.bss*) *(COMMON) } > SRAM
}
"""

FLAGS = ["-mcpu=cortex-m3", "-mthumb", "-Os", "-Wall", "-Wextra", "-Werror", "-fno-exceptions"]
FLAGS += ["-fno-rtti", "-ffunction-sections", "-fdata-sections", "-nostdlib"]


def readme_block(language: str) -> str:
    return re.findall(rf"```{language}\n(.*?)```", SECTION, flags=re.S)[0]


def test_readme_particle_app_keeps_its_record(tmp_path: Path) -> None:
    gpp = require_tool("arm-none-eabi-g++")
    project = make_repo(
        tmp_path / "photon-app",
        {
            "stamp.toml": readme_block("toml"),
            "src/app.cpp": readme_block("cpp"),
            ".gitignore": "build/\ntarget/\n",
        },
    )
    done = run_stamp("header", cwd=project.path)
    assert done.returncode == 0, done.stderr
    assert (project.path / "src/stamp/stamp.h").is_file()  # where the README says, to commit
    (tmp_path / "device-os").mkdir()
    (tmp_path / "device-os/Particle.h").write_text(PARTICLE_H)
    (tmp_path / "device-os/device_os.cpp").write_text(DEVICE_OS)
    (tmp_path / "user.ld").write_text(USER_PART_LD)

    target = project.path / "target"
    target.mkdir()
    elf = target / "app.elf"
    # Only Device OS's own include directory: `stamp/stamp.h` is found beside app.cpp.
    args = [gpp, *FLAGS, f"-I{tmp_path / 'device-os'}", "src/app.cpp"]
    args += [str(tmp_path / "device-os/device_os.cpp"), "-T", str(tmp_path / "user.ld")]
    args += ["-Wl,--gc-sections", "-lgcc", "-o", str(elf)]
    linked = subprocess.run(args, cwd=project.path, capture_output=True, text=True)
    assert linked.returncode == 0, linked.stderr

    image = load_file(elf).elf
    assert image is not None
    (found,) = image.records
    assert (found.record.edit, found.record.git) == (1, project.head)
    sections = {s.name: s for s in image.sections}
    # Inside the module: after its prefix, before the suffix the build patches.
    record_at = sections[".stamp"].lma
    assert sections[".module_info"].lma < record_at < sections[".module_suffix"].lma

    manifest = run_stamp("manifest", "target/app.elf", cwd=project.path)
    assert manifest.returncode == 0, manifest.stderr
    assert "edit 1" in manifest.stdout
