"""C string escaping and the generated C: hostile git names compile and round-trip."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from stamp.header.render import c_string, load_template_set, render_all, write_if_changed
from stamp.record import RECORD_SIZE, StampRecord, find_records
from tests.support import GitRepo, require_tool, run_stamp

HOSTILE = [
    'quote"d',
    "back\\slash",
    "tri??/graph??=x??(",
    "ümlaut-ß-日本",
    "tab\there",
    "nul-ish\\0",
    "hex\\x41-after-octal\x01A",
    "feature/%s%n",
    "*/ comment-closer /*",
]


@pytest.mark.parametrize(
    ("value", "literal"),
    [
        ("plain", '"plain"'),
        ('a"b', '"a\\"b"'),
        ("a\\b", '"a\\\\b"'),
        ("??/", '"\\?\\?/"'),
        ("é", '"\\303\\251"'),
        ("\x01" + "7", '"\\0017"'),
        ("line\nbreak", '"line\\nbreak"'),
    ],
)
def test_c_string_table(value: str, literal: str) -> None:
    assert c_string(value) == literal


DUMP_C = r"""
#include <stdio.h>
#include <string.h>
#include "stamp.h"
int main(void) {
    char buf[256];
    size_t n = stamp_report(buf, sizeof buf);
    fwrite(stamp_branch, 1, strlen(stamp_branch), stdout); putchar(0);
    fwrite(stamp_describe, 1, strlen(stamp_describe), stdout); putchar(0);
    fwrite(buf, 1, n, stdout); putchar(0);
    n = stamp_report(buf, 20);  /* too small: returns 0 and an empty string */
    printf("%u:%s", (unsigned)n, buf);
    return 0;
}
"""


def _compile_and_dump(out: Path, tmp_path: Path) -> list[bytes]:
    gcc = require_tool("gcc")
    (tmp_path / "dump.c").write_text(DUMP_C)
    exe = tmp_path / "dump"
    subprocess.run(
        [
            gcc,
            "-std=c99",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-trigraphs",
            f"-I{out}",
            str(out / "stamp.c"),
            str(tmp_path / "dump.c"),
            "-o",
            str(exe),
        ],
        check=True,
    )
    return subprocess.run([str(exe)], check=True, capture_output=True).stdout.split(b"\0")


@pytest.mark.parametrize("value", HOSTILE)
def test_any_string_compiles_and_round_trips(tmp_path: Path, value: str) -> None:
    """Strings git would refuse as ref names (backslash, ??/) still go through the filter."""
    context = {
        "edit": 7,
        "git": "b" * 40,
        "git_known": True,
        "git_short": "bbbbbbbb",
        "dirty": None,
        "branch": value,
        "describe": value + "-1-gbbbbbbb",
        "commit_time": None,
        "build_time": None,
        "report_json": "{}",
        "record_layout": 1,
        "record_size": 128,
        "stamp_version": "test",
    }
    out = tmp_path / "out"
    for name, data in render_all(load_template_set("default", tmp_path), context).items():
        write_if_changed(out / name, data)
    fields = _compile_and_dump(out, tmp_path)
    assert fields[0] == value.encode()
    assert fields[1] == (value + "-1-gbbbbbbb").encode()
    assert fields[2] == b'@stamp {"edit":7,"git":"' + b"b" * 40 + b'"}'


@pytest.mark.parametrize(
    ("branch", "tag"),
    [
        ('feat/"quoted"', 'v1.0-"rc"'),
        ("ümlaut/日本", "tag-ß"),
        ("fmt/%s%n$HOME", "it's"),
        ("a/#{x}/'q'", "v2/;rm-rf&&echo"),
    ],
)
def test_hostile_git_names_round_trip(repo: GitRepo, tmp_path: Path, branch: str, tag: str) -> None:
    repo.git("checkout", "-q", "-b", branch)
    repo.git("tag", "-a", tag, "-m", "hostile")
    done = run_stamp("header", cwd=repo.path)
    assert done.returncode == 0, done.stderr
    fields = _compile_and_dump(repo.path / "build" / "stamp", tmp_path)
    assert fields[0] == branch.encode()
    assert fields[1] == tag.encode()
    assert fields[2] == f'@stamp {{"edit":1,"git":"{repo.head}","dirty":false}}'.encode()
    assert fields[3] == b"0:"


def test_record_in_object_matches_python_layout(repo: GitRepo, tmp_path: Path) -> None:
    gcc = require_tool("gcc")
    repo.write("main.c", "int changed;\n")
    assert run_stamp("header", cwd=repo.path).returncode == 0
    obj = tmp_path / "stamp.o"
    out = repo.path / "build" / "stamp"
    subprocess.run(
        [gcc, "-c", "-Wall", "-Werror", f"-I{out}", str(out / "stamp.c"), "-o", str(obj)],
        check=True,
    )
    blob = obj.read_bytes()
    records = find_records(blob)
    assert [r for _, r in records] == [StampRecord(edit=1, git=repo.head, dirty=True)]
    offset = records[0][0]
    assert blob[offset : offset + RECORD_SIZE] == StampRecord(1, repo.head, True).pack()
    sections = subprocess.run(["objdump", "-h", str(obj)], capture_output=True, text=True).stdout
    assert " .stamp " in sections


def test_header_only_compiles_with_record_and_json(repo: GitRepo, tmp_path: Path) -> None:
    gcc = require_tool("gcc")
    repo.write("stamp.toml", 'template = "header-only"\n')
    repo.commit("config")
    assert run_stamp("header", cwd=repo.path).returncode == 0
    source = tmp_path / "app.c"
    source.write_text(
        '#define STAMP_DEFINE_RECORD\n#include "stamp.h"\n#include <stdio.h>\n'
        "int main(void) { puts(STAMP_REPORT); puts(STAMP_JSON); return STAMP_EDIT_VERSION; }\n"
    )
    exe = tmp_path / "app"
    out = repo.path / "build" / "stamp"
    subprocess.run(
        [gcc, "-Wall", "-Wextra", "-Werror", f"-I{out}", str(source), "-o", str(exe)], check=True
    )
    run = subprocess.run([str(exe)], capture_output=True, text=True, check=False)
    report = f'{{"edit":1,"git":"{repo.head}","dirty":false}}'
    assert run.returncode == 1
    assert run.stdout == f"@stamp {report}\n{report}\n"
    assert [r for _, r in find_records(exe.read_bytes())] == [StampRecord(1, repo.head, False)]
