"""Benchmark `stamp manifest` on a big firmware ELF against the shell baseline.

Generates (never commits) a Cortex-M3 firmware of 100,000 functions compiled with `-g` by
arm-none-eabi-gcc: an ELF of more than 50 MB, almost all of it DWARF, with more than
100,000 symbols. Then it times whole processes, interleaved, and reports medians:

    baseline   arm-none-eabi-readelf -n app.elf ; sha256sum app.bin
    stamp      python -m stamp manifest app.elf [--bin app.bin] -o m.json

plus `python -m stamp --version` (the interpreter + click start-up floor every stamp
command pays) and the in-process extraction time without any start-up.

    .venv/bin/python bench/bench_manifest.py                  # build in a temp dir, print
    .venv/bin/python bench/bench_manifest.py --workdir /tmp/b  # keep/reuse the build
    .venv/bin/python bench/bench_manifest.py --write-readme    # update bench/README.md

Before/after a change, in the same run: `--stamp LABEL=SPEC` (twice or more) times each
installation's `stamp` console script instead, interleaved with one baseline
(bench/installs.py: SPEC is a venv, a source tree or a git revision, installed not
editable; each gets its own git checkout under the workdir for its history):

    .venv/bin/python bench/bench_manifest.py --workdir /tmp/b \\
        --stamp before=6b78aa6 --stamp after=.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Job, interleaved, load, ratio_rows
from installs import Install, resolve

FUNCTIONS = 100_000
PER_FILE = 5_000
MIN_ELF_SIZE = 50 * 1000 * 1000
README = Path(__file__).resolve().parent / "README.md"
HEADING = "## stamp manifest"
BASELINE = "baseline: readelf -n app.elf; sha256sum app.bin"
ELF_ONLY = "stamp manifest app.elf"
FLOOR = "floor: stamp --version"
SECTIONS_ONLY = "in-process: the ELF's needed sections only (read_elf)"
FILE_HASH = "in-process: SHA-256 of the whole ELF file (artifacts.elf.sha256)"
CFLAGS = ["-mcpu=cortex-m3", "-mthumb", "-g", "-O0"]

LINKER_SCRIPT = """
MEMORY { FLASH (rx) : ORIGIN = 0x08000000, LENGTH = 64M
         RAM (rwx)  : ORIGIN = 0x20000000, LENGTH = 1M }
ENTRY(Reset_Handler)
SECTIONS {
  .isr_vector : { KEEP(*(.isr_vector)) } > FLASH
  .note.gnu.build-id : { KEEP(*(.note.gnu.build-id)) } > FLASH
  .text : { *(.text*) *(.rodata*) } > FLASH
  .stamp : { KEEP(*(.stamp)) } > FLASH
  .data : { *(.data*) } > RAM AT> FLASH
  .bss (NOLOAD) : { *(.bss*) *(COMMON) } > RAM
}
"""

MAIN = """
#include <stdint.h>
int counter = 1;
void Reset_Handler(void) { for (;;) { counter++; } }
__attribute__((section(".isr_vector"), used))
void (* const vectors[])(void) = {(void (*)(void))0x20001000, Reset_Handler};
"""


def _unit(first: int, count: int) -> str:
    """C source of `count` functions, each with its own struct type (DWARF volume)."""
    parts = []
    for i in range(first, first + count):
        members = " ".join(f"int m{j}_{i};" for j in range(10))
        parts.append(
            f"struct rec_{i} {{ {members} char name_{i}[{i % 13 + 3}]; "
            f"const struct rec_{i} *next_{i}; }};\n"
            f"int fn_{i}(int x, const struct rec_{i} *r) {{\n"
            f"    int acc_{i} = x * {i} + r->m0_{i};\n"
            f"    int tmp_{i} = r->m1_{i} ^ acc_{i};\n"
            f"    int sum_{i} = tmp_{i} + r->m2_{i};\n"
            f"    return acc_{i} + sum_{i} + r->name_{i}[1];\n}}\n"
        )
    return "".join(parts)


def _record_c() -> str:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from stamp.record import StampRecord

    raw = StampRecord(edit=112, git="1a2b3c4d" * 5, dirty=False).pack()
    body = ", ".join(f"0x{b:02x}" for b in raw)
    return (
        '__attribute__((section(".stamp"), used)) '
        f"const unsigned char stamp_record[{len(raw)}] = {{{body}}};\n"
    )


def build(workdir: Path) -> tuple[Path, Path]:
    """Generate, compile and link the firmware (skipped when already built)."""
    elf, binary = workdir / "app.elf", workdir / "app.bin"
    if elf.exists() and binary.exists():
        return elf, binary
    gcc = shutil.which("arm-none-eabi-gcc")
    objcopy = shutil.which("arm-none-eabi-objcopy")
    if gcc is None or objcopy is None:
        sys.exit("bench: arm-none-eabi-gcc and arm-none-eabi-objcopy are needed")
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "main.c").write_text(MAIN + _record_c())
    (workdir / "app.ld").write_text(LINKER_SCRIPT)
    sources = []
    for n, first in enumerate(range(0, FUNCTIONS, PER_FILE)):
        source = workdir / f"gen{n:02d}.c"
        source.write_text(_unit(first, PER_FILE))
        sources.append(source)

    def compile_one(source: Path) -> Path:
        obj = source.with_suffix(".o")
        subprocess.run([gcc, *CFLAGS, "-c", str(source), "-o", str(obj)], check=True)
        return obj

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        objects = list(pool.map(compile_one, sources))
    subprocess.run(
        [gcc, *CFLAGS, "-nostdlib", "-Wl,--build-id", "-T", str(workdir / "app.ld"),
         "-o", str(elf), str(workdir / "main.c"), *map(str, objects)],
        check=True,
    )  # fmt: skip
    subprocess.run([objcopy, "-O", "binary", str(elf), str(binary)], check=True)
    print(f"bench: built {elf} in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    subprocess.run(["git", "init", "-q", str(workdir)], check=True)
    return elf, binary


def _symbols(elf: Path) -> int:
    from elftools.elf.elffile import ELFFile
    from elftools.elf.sections import SymbolTableSection

    with elf.open("rb") as fp:
        symtab = ELFFile(fp).get_section_by_name(".symtab")
        return symtab.num_symbols() if isinstance(symtab, SymbolTableSection) else 0


Commands = dict[str, list[list[str]]]


def _stamp_commands(stamp: list[str], elf: Path, binary: Path, tag: str = "") -> Commands:
    out = f"m{tag}"
    return {
        ELF_ONLY: [[*stamp, "manifest", str(elf), "-o", f"{out}1.json"]],
        "stamp manifest app.elf --bin app.bin": [
            [*stamp, "manifest", str(elf), "--bin", str(binary), "-o", f"{out}2.json"]
        ],
        FLOOR: [[*stamp, "--version"]],
    }


def _baseline(elf: Path, binary: Path) -> Commands:
    readelf = shutil.which("arm-none-eabi-readelf") or "arm-none-eabi-readelf"
    sha256sum = shutil.which("sha256sum") or "sha256sum"
    return {BASELINE: [[readelf, "-n", str(elf)], [sha256sum, str(binary)]]}


def measure(jobs: Mapping[str, Job], runs: int) -> dict[str, list[float]]:
    """Whole-process wall times, interleaved, after two warm-up rounds (page cache, .pyc)."""
    return interleaved(jobs, runs=runs, warm_up=2)


def measure_one(elf: Path, binary: Path, runs: int) -> dict[str, list[float]]:
    """This checkout's stamp (`python -m stamp`) against the baseline."""
    commands = {
        **_baseline(elf, binary),
        **_stamp_commands([sys.executable, "-m", "stamp"], elf, binary),
    }
    return measure({name: (elf.parent, argvs) for name, argvs in commands.items()}, runs)


def measure_installs(
    elf: Path, binary: Path, installs: list[Install], runs: int
) -> dict[str, list[float]]:
    """Each installation's commands and the one baseline, all interleaved in one loop.

    Each installation runs in its own git checkout (WORKDIR/run-LABEL), so their build
    histories stay apart, as two users' would.
    """
    jobs = {name: (elf.parent, argvs) for name, argvs in _baseline(elf, binary).items()}
    for install in installs:
        cwd = elf.parent / f"run-{install.label}"
        if not (cwd / ".git").exists():
            subprocess.run(["git", "init", "-q", str(cwd)], check=True)
        commands = _stamp_commands([str(install.stamp)], elf, binary, install.label)
        jobs.update({f"{install.label}: {name}": (cwd, argvs) for name, argvs in commands.items()})
    return measure(jobs, runs)


def in_process(elf: Path, binary: Path, runs: int) -> dict[str, list[float]]:
    """The work without process start-up, whole and in parts."""
    import hashlib

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from stamp.artifact.build import build_manifest
    from stamp.artifact.elf import read_elf
    from stamp.artifact.image import load_file

    def whole() -> None:
        build_manifest(load_file(elf), load_file(binary), manifest_dir=elf.parent, recorded_at="x")

    def sections_only() -> None:
        with elf.open("rb") as fp:
            read_elf(fp, str(elf))

    def file_hash() -> None:
        with elf.open("rb") as fp:
            hashlib.file_digest(fp, "sha256")

    parts = {
        "in-process: ELF + .bin, all checks (no start-up)": whole,
        SECTIONS_ONLY: sections_only,
        FILE_HASH: file_hash,
    }
    samples: dict[str, list[float]] = {name: [] for name in parts}
    for _ in range(runs):
        for name, work in parts.items():
            started = time.perf_counter()
            work()
            samples[name].append(time.perf_counter() - started)
    return samples


def report(elf: Path, binary: Path, times: dict[str, list[float]]) -> str:
    baseline = statistics.median(times[BASELINE])
    lines = [
        HEADING,
        "",
        f"Generated firmware: {FUNCTIONS:,} functions in {FUNCTIONS // PER_FILE} files, "
        f"arm-none-eabi-gcc {' '.join(CFLAGS)}; ELF {elf.stat().st_size / 1e6:.1f} MB "
        f"with {_symbols(elf):,} symbols, .bin {binary.stat().st_size / 1e6:.2f} MB. "
        f"{len(times[BASELINE])} interleaved runs after 2 warm-up rounds, "
        f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}.",
        "",
        "| command | median | p90 | x baseline |",
        "|---|---:|---:|---:|",
    ]
    for name, samples in times.items():
        median = statistics.median(samples)
        p90 = sorted(samples)[int(0.9 * (len(samples) - 1))]
        lines.append(
            f"| {name} | {median * 1000:.1f} ms | {p90 * 1000:.1f} ms | {median / baseline:.1f} |"
        )
    lines += ["", *_notes(times, baseline)]
    return "\n".join(lines) + "\n"


def _notes(times: dict[str, list[float]], baseline: float) -> list[str]:
    def ms(name: str) -> str:
        return f"{statistics.median(times[name]) * 1000:.0f} ms"

    ratio = statistics.median(times[ELF_ONLY]) / baseline
    floor = statistics.median(times[FLOOR]) / baseline
    verdict = "met" if ratio <= 2 else "not met"
    return [
        f"Measured {time.strftime('%Y-%m-%d')} with `bench/bench_manifest.py` (the firmware "
        "is generated and built by arm-none-eabi-gcc, not host gcc; about 75 s on 2 cores, "
        "never committed). Bytecode caching is on, as in an installed stamp.",
        "",
        f"**Target <= 2x baseline: {verdict}** ({ratio:.1f}x for `stamp manifest app.elf`). "
        f"The floor alone - the interpreter plus click, before stamp does anything - is "
        f"{floor:.1f}x the baseline, so no Python CLI on click reaches 2x against two C tools "
        f"that finish in {baseline * 1000:.0f} ms together. Where the rest goes:",
        "",
        f"- Extraction proper reads only the ELF header, section and program headers, "
        f"`.shstrtab`, the notes, `.stamp` and the allocated sections: {ms(SECTIONS_ONLY)} "
        "for a 62 MB ELF, below the baseline. No symbol or DWARF walk: "
        "`tests/artifact/test_elf.py::test_symbols_and_debug_info_are_never_read` wipes `.symtab`, "
        "`.strtab` and every `.debug_*` section and gets the same identity.",
        f"- The largest single cost is the manifest schema's `artifacts.elf.sha256`: SHA-256 "
        f"of the whole ELF, {ms(FILE_HASH)} (SHA-NI). It runs in a thread beside the parse, "
        "so on 2 idle cores it overlaps the rest of the work.",
        "- Imports stamp needs only for this command (pyelftools about 20 ms, the artifact "
        "modules about 10 ms), `git rev-parse` for the history location, and two fsyncs "
        "(manifest and history are written atomically) make up the remainder.",
        "- Ways to get closer, if it matters: make the whole-ELF hash optional, replace "
        "pyelftools by a 150-line `struct` reader of the few headers stamp reads, and trim "
        "click's start-up. None of them gets below the floor.",
    ]


def write_readme(section: str) -> None:
    """Replace this benchmark's section of bench/README.md, keeping everyone else's."""
    text = README.read_text() if README.exists() else "# Benchmarks\n"
    start = text.find(HEADING + "\n")
    if start == -1:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        end = text.find("\n## ", start + len(HEADING))
        tail = text[end + 1 :] if end != -1 else ""
        text = text[:start] + section + ("\n" + tail if tail else "")
    README.write_text(text)


def compare_report(
    elf: Path, binary: Path, installs: list[Install], times: dict[str, list[float]]
) -> str:
    """Each installation's medians and ratios, all to the baseline measured in this run."""
    floors = {
        name: statistics.median(times[f"{i.label}: {FLOOR}"])
        for i in installs
        for name in times
        if name.startswith(f"{i.label}: ")
    }
    lines = [
        f"Generated firmware: ELF {elf.stat().st_size / 1e6:.1f} MB, .bin "
        f"{binary.stat().st_size / 1e6:.2f} MB. {len(times[BASELINE])} interleaved rounds "
        f"after 2 warm-up rounds, {time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPUs, load "
        f"average {load()} at the end. Whole-process medians of each `stamp` console script.",
        "",
        *[f"- {install.label}: {install.described}" for install in installs],
        "",
        "| command | median | p90 | x baseline | x floor |",
        "|---|---:|---:|---:|---:|",
        *ratio_rows(times, statistics.median(times[BASELINE]), floors),
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, help="build here and keep it (reused if built)")
    parser.add_argument("--runs", type=int, default=21, help="timed runs per command")
    parser.add_argument("--write-readme", action="store_true", help="update bench/README.md")
    parser.add_argument(
        "--stamp",
        action="append",
        default=[],
        metavar="LABEL=SPEC",
        help="compare this installation (a venv, a source tree or a git revision); repeat",
    )
    args = parser.parse_args()
    if args.stamp and args.write_readme:
        parser.error("--write-readme writes this checkout's section; it does not take --stamp")

    temp = None if args.workdir else tempfile.mkdtemp(prefix="stamp-bench-")
    workdir = args.workdir or Path(temp or ".")
    try:
        elf, binary = build(workdir)
        if elf.stat().st_size < MIN_ELF_SIZE:
            sys.exit(f"bench: {elf} is only {elf.stat().st_size} bytes; expected 50 MB or more")
        if args.stamp:
            installs = [resolve(option, workdir / "installs") for option in args.stamp]
            times = measure_installs(elf, binary, installs, args.runs)
            print(compare_report(elf, binary, installs, times))
            return
        times = measure_one(elf, binary, args.runs)
        times.update(in_process(elf, binary, args.runs))
        section = report(elf, binary, times)
        print(section)
        if args.write_readme:
            write_readme(section)
    finally:
        if temp:
            shutil.rmtree(temp, ignore_errors=True)


if __name__ == "__main__":
    main()
