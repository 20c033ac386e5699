"""Hearing a device through a debug probe: its identity read out of the target's memory.

`GdbTransport` attaches to a GDB server (OpenOCD, pyOCD, J-Link, QEMU's gdbstub) over the
small RSP client of `stamp.device.transport.rsp`, reads the stamp record and the build-id
note at the addresses the manifest recorded at build time (`stamp.artifact.memory`), and
yields them as one `Report` for the usual verdict (`stamp.device.verify`). The record is
decoded by `stamp.record.unpack_record`, the code that reads it from files, and the note
by `stamp.artifact.build_id.build_id_from_notes`.

- `read_image=True` also reads back every loadable region and hashes them as
  `objcopy -O binary` lays them out (zero gaps), reported as `image_sha256`.
- A record missing or garbled at its address: the flash is searched for the record's
  magic (the server's memory map's flash regions, else the image's neighbourhood), so the
  verdict names the build that *is* there ("the flash holds edit 109 at 0x0800_4000").
- The target is left as it was found: every GDB server halts a running core when a
  debugger attaches, so once the reads are done the core is resumed (`c`) before the
  connection closes, whatever went wrong in between, and a STATUS says for how long it
  was halted. Nothing here writes to the target. A core halted by someone else before
  stamp attached is indistinguishable over the protocol, and is resumed too.
"""

from __future__ import annotations

import hashlib
from collections.abc import Generator, Iterator
from dataclasses import dataclass, replace

from stamp.artifact.build_id import build_id_from_notes
from stamp.artifact.memory import MemoryLayout, Region
from stamp.closing import Closing
from stamp.device.report_line import Report
from stamp.device.transport.base import Clock, Heard, HeardKind, Note, monotonic
from stamp.device.transport.rsp import RspClient, TargetMemoryError
from stamp.device.transport.rsp_packets import is_stop_reply
from stamp.errors import ArtifactError, DeviceError, DeviceUnreachable
from stamp.identity import Identity
from stamp.record import find_records, unpack_record

PROGRESS_STEP = 16 * 1024
"""Bytes between two progress items while reading."""
SCAN_ALIGN = 64 * 1024
MAX_SCAN = 16 * 1024 * 1024
"""The most flash searched for a record that moved (a real probe reads ~100 KB/s)."""
NO_LAYOUT = (
    "the manifest records no memory addresses (it was written by an older stamp, or "
    "without the ELF): run `stamp manifest FIRMWARE.elf` again, so that "
    "`stamp verify --device gdb:…` knows where the stamp record is"
)


def address(value: int) -> str:
    """0x0800_4000: hex in groups of four digits, as in a memory map."""
    digits = f"{value:08x}"
    groups = [digits[max(0, i - 4) : i] for i in range(len(digits), 0, -4)]
    return "0x" + "_".join(reversed(groups))


@dataclass(frozen=True)
class Found:
    """What the target's memory says about the build it holds."""

    report: Report | None
    """The identity read, None when no record was found anywhere."""
    notes: tuple[Heard, ...]
    """What was learned on the way, in order (notes, timed when learned)."""


class GdbTransport(Closing):
    """A target's memory, read once through a GDB server; see the module docstring."""

    def __init__(
        self,
        host: str,
        port: int,
        layout: MemoryLayout | None,
        *,
        read_image: bool = False,
        clock: Clock = monotonic,
    ) -> None:
        if layout is None:
            raise ArtifactError(NO_LAYOUT)
        self.host = host
        self.port = port
        self.layout = layout
        self.read_image = read_image
        self.clock = clock
        self._client: RspClient | None = None

    def describe(self) -> str:
        return f"GDB server {self.host}:{self.port}"

    def listen(self, deadline: float) -> Iterator[Heard]:
        client = RspClient(self.host, self.port, deadline=deadline, clock=self.clock)
        self._client = client
        client.connect()
        attached = self.clock()
        yield self._note(Note.GDB_ATTACHED, where=f"{self.host}:{self.port}")
        stopped = client.stop_reason()
        running = is_stop_reply(stopped) and stopped[:1] in (b"S", b"T")
        try:
            found = yield from self._read(client)
        finally:
            halted = self.clock() - attached
            resumed = self._resume(client) if running else False
        if not running:
            yield self._note(Note.TARGET_NOT_RUNNING, reply=stopped[:3].decode("ascii", "replace"))
        else:
            ms = halted * 1000
            yield self._note(Note.CORE_RESUMED if resumed else Note.CORE_NOT_RESUMED, ms=ms)
        yield from found.notes
        if found.report is not None:
            yield Heard.noted(
                Note.MEMORY_READ, self.clock(), kind=HeardKind.REPORT, report=found.report
            )

    def _resume(self, client: RspClient) -> bool:
        try:
            client.resume()
        except DeviceUnreachable:
            return False
        return True

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _note(self, note: Note, *, kind: HeardKind = HeardKind.STATUS, **values: object) -> Heard:
        return Heard(kind, "", self.clock(), note=note, values=values)

    # --- reading ------------------------------------------------------------------------

    def _read(self, client: RspClient) -> Generator[Heard, None, Found]:
        layout = self.layout
        notes: list[Heard] = []
        try:
            raw = client.read_memory(layout.record.address, layout.record.size)
        except TargetMemoryError as exc:
            raise OutsideMemory(exc, layout.record) from None
        report: Report | None
        try:
            record = unpack_record(raw)
        except ArtifactError as exc:
            report = yield from self._search(client, exc.message, notes)
        else:
            identity = Identity(
                edit=record.edit,
                git=record.git,
                dirty=record.dirty,
                build_id=self._build_id(client, notes),
            )
            report = Report(identity=identity, source=f"memory at {address(layout.record.address)}")
        if self.read_image and report is not None:
            image_sha256 = yield from self._image_sha256(client, notes)
            report = replace(report, identity=replace(report.identity, image_sha256=image_sha256))
        return Found(report, tuple(notes))

    def _build_id(self, client: RspClient, notes: list[Heard]) -> str | None:
        note = self.layout.build_id_note
        if note is None:
            return None
        try:
            build_id = build_id_from_notes(client.read_memory(note.address, note.size))
        except (TargetMemoryError, ValueError):
            build_id = None
        if build_id is None:
            notes.append(self._note(Note.NO_BUILD_ID_NOTE, address=address(note.address)))
        return build_id

    def _image_sha256(self, client: RspClient, notes: list[Heard]) -> Generator[Heard, None, str]:
        """Every loadable region read back, laid out as objcopy -O binary does."""
        layout = self.layout
        image = bytearray(layout.end - layout.base)
        started = self.clock()
        total = sum(r.size for r in layout.regions)
        done = 0
        for region in layout.regions:
            at = region.address - layout.base
            try:
                for chunk in self._chunks(client, region):
                    image[at : at + len(chunk)] = chunk
                    at += len(chunk)
                    done += len(chunk)
                    yield self._note(
                        Note.READING_IMAGE, kind=HeardKind.PROGRESS, done=done, total=total
                    )
            except TargetMemoryError as exc:
                raise OutsideMemory(exc, region) from None
        seconds = self.clock() - started
        digest = hashlib.sha256(image).hexdigest()
        rate = total / max(seconds, 1e-6) / 1024
        notes.append(
            self._note(Note.IMAGE_READ_BACK, size=total, seconds=seconds, rate=rate, digest=digest)
        )
        return digest

    def _chunks(self, client: RspClient, region: Region) -> Iterator[bytes]:
        step = max(client.read_chunk, PROGRESS_STEP)
        for offset in range(0, region.size, step):
            yield client.read_memory(region.address + offset, min(step, region.size - offset))

    def _search(
        self, client: RspClient, why: str, notes: list[Heard]
    ) -> Generator[Heard, None, Report | None]:
        """The first valid record anywhere in flash, as a report, with a note saying so."""
        wanted = address(self.layout.record.address)
        searched = 0
        for region in self._scan_regions(client):
            data = bytearray()
            try:
                for chunk in self._chunks(client, region):
                    data += chunk
                    yield self._note(
                        Note.SEARCHING_FLASH, kind=HeardKind.PROGRESS, searched=searched + len(data)
                    )
            except TargetMemoryError:
                pass  # the end of the readable memory: search what was read
            searched += len(data)
            for offset, record in find_records(bytes(data)):
                at = address(region.address + offset)
                notes.append(
                    self._note(
                        Note.RECORD_ELSEWHERE, wanted=wanted, why=why, edit=record.edit, at=at
                    )
                )
                identity = Identity(edit=record.edit, git=record.git, dirty=record.dirty)
                return Report(identity=identity, source=f"flash at {at}")
        notes.append(self._note(Note.NO_RECORD_IN_FLASH, wanted=wanted, why=why, searched=searched))
        return None

    def _scan_regions(self, client: RspClient) -> list[Region]:
        """The server's flash regions, else the image's neighbourhood (QEMU has no map)."""
        blocks = client.memory_map() or []
        regions = [Region(b.start, b.length) for b in blocks]
        if not regions:
            low = self.layout.base // SCAN_ALIGN * SCAN_ALIGN
            high = -(-self.layout.end // SCAN_ALIGN) * SCAN_ALIGN + SCAN_ALIGN
            regions = [Region(low, high - low)]
        out: list[Region] = []
        budget = MAX_SCAN
        for region in regions:
            size = min(region.size, budget)
            if size > 0:
                out.append(Region(region.address, size))
            budget -= size
        return out


class OutsideMemory(DeviceError):
    """The manifest's addresses are not readable on this target (exit 2)."""

    def __init__(self, error: TargetMemoryError, region: Region) -> None:
        super().__init__(
            f"{error.message}: the manifest puts {region.size} bytes at "
            f"{address(region.address)}, outside this target's memory; is it the manifest "
            "of a build for this target?"
        )
