"""Every note a transport can make has words, and the words use only the particulars
its `Note` member documents (so a transport that fills those in never breaks a line)."""

from __future__ import annotations

import ast
import re
import string
from pathlib import Path

import stamp.device.transport.base as base
from stamp.cli.heard_words import NOTE_WORDS, heard_text
from stamp.device.report_line import Report
from stamp.device.transport.base import Heard, HeardKind, Note
from stamp.identity import Identity


def _member_docs() -> dict[str, str]:
    tree = ast.parse(Path(base.__file__).read_text())
    note = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Note")
    docs: dict[str, str] = {}
    for first, second in zip(note.body, note.body[1:], strict=False):
        if isinstance(first, ast.Assign) and isinstance(second, ast.Expr):
            target = first.targets[0]
            assert isinstance(target, ast.Name) and isinstance(second.value, ast.Constant)
            docs[target.id] = str(second.value.value)
    return docs


def test_every_note_has_words() -> None:
    assert set(NOTE_WORDS) | {Note.MEMORY_READ} == set(Note)


def test_the_words_use_only_the_documented_particulars() -> None:
    docs = _member_docs()
    for note, template in NOTE_WORDS.items():
        used = {name for _, name, _, _ in string.Formatter().parse(template) if name}
        documented = set(re.findall(r"`(\w+)`", docs[note.name]))
        assert used <= documented, (note, used - documented)


def test_a_note_is_filled_in_and_what_was_heard_stays_as_it_came() -> None:
    assert heard_text(Heard.noted(Note.PORT_OPENED, 1.0, port="/dev/pts/3")) == (
        "port /dev/pts/3 opened"
    )
    halted = Heard.noted(Note.CORE_RESUMED, 1.0, ms=3.4)
    assert heard_text(halted) == "core halted 3 ms while stamp read it, then resumed"
    digest = "ab" * 32
    read = Heard.noted(Note.IMAGE_READ_BACK, 1.0, size=2048, seconds=0.5, rate=4.0, digest=digest)
    assert heard_text(read) == (
        "read back 2048 bytes of the image in 0.50 s (4 KiB/s), sha256 abababab…"
    )
    unnamed = Heard.noted(Note.UNNAMED_EVENT_DISCARDED, 1.0, kind=HeardKind.EVENT, limit=8)
    assert heard_text(unnamed) == "an event: discarded, larger than 8 bytes"
    line = Heard(HeardKind.LINE, "boot: hello", 1.0)
    assert heard_text(line) == "boot: hello"


def test_a_memory_read_names_its_source_and_keys() -> None:
    report = Report(identity=Identity(edit=7, git="1a2b3c4d" + "0" * 32), source="memory at 0x400")
    heard = Heard.noted(Note.MEMORY_READ, 1.0, kind=HeardKind.REPORT, report=report)
    assert heard_text(heard) == "memory at 0x400: edit 7, git 1a2b3c4d"
