"""The GDB remote protocol pieces, `gdb:` device addresses and the manifest's `memory` (pure)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stamp.artifact.manifest import Manifest
from stamp.artifact.memory import MemoryLayout, Region
from stamp.config import Config, DeviceConfig, parse_config
from stamp.device.target import GdbTarget, parse_device
from stamp.device.transport.gdb import address
from stamp.device.transport.rsp_packets import (
    FlashBlock,
    checksum,
    decode,
    escape,
    frame,
    is_stop_reply,
    parse_memory_map,
)
from stamp.errors import ArtifactError, ConfigError, DeviceError

# Packets as QEMU 7.2's gdbstub sent them to stamp (captured), and GDB's manual examples.
FRAMES = [
    (b"OK", b"$OK#9a"),
    (b"E14", b"$E14#aa"),
    (b"?", b"$?#3f"),
    (b"c", b"$c#63"),
    (b"T05thread:p01.01;", b"$T05thread:p01.01;#06"),
]


@pytest.mark.parametrize(("payload", "framed"), FRAMES, ids=[f[0].decode() for f in FRAMES])
def test_frames_match_what_servers_send(payload: bytes, framed: bytes) -> None:
    assert frame(payload) == framed
    assert checksum(payload) == int(framed[-2:], 16)


@pytest.mark.parametrize(
    ("raw", "decoded"),
    [
        (b"0* ", b"0000"),  # GDB manual: "0* " is four zeros (' ' is 32 = 3 + 29)
        (b"}\x03", b"#"),
        (b"}]", b"}"),
        (b"abc", b"abc"),
    ],
)
def test_decode_undoes_escapes_and_run_lengths(raw: bytes, decoded: bytes) -> None:
    assert decode(raw) == decoded


def test_escape_round_trips_every_byte() -> None:
    data = bytes(range(256)) * 2
    escaped = escape(data)
    assert not any(c in escaped for c in b"#$*")
    assert decode(escaped) == data


@pytest.mark.parametrize(
    ("payload", "stop"),
    [(b"T05thread:01;", True), (b"S02", True), (b"W00", True), (b"OK", False), (b"E14", False)],
)
def test_stop_replies(payload: bytes, stop: bool) -> None:
    assert is_stop_reply(payload) is stop


def test_memory_map_flash_regions() -> None:
    # The form OpenOCD sends for an STM32F4 (gdb's memory-map.dtd).
    document = b"""<?xml version="1.0"?>
<!DOCTYPE memory-map PUBLIC "+//IDN gnu.org//DTD GDB Memory Map V1.0//EN"
    "http://sourceware.org/gdb/gdb-memory-map.dtd">
<memory-map>
<memory type="flash" start="0x08000000" length="0x10000">
<property name="blocksize">0x4000</property></memory>
<memory type="ram" start="0x20000000" length="0x20000"/>
<memory type="flash" start="0x08010000" length="0xf0000">
<property name="blocksize">0x20000</property></memory>
</memory-map>"""
    assert parse_memory_map(document) == [
        FlashBlock(0x0800_0000, 0x10000, 0x4000),
        FlashBlock(0x0801_0000, 0xF0000, 0x20000),
    ]
    assert parse_memory_map(b"<not xml") == []


@pytest.mark.parametrize(
    ("value", "shown"),
    [(0x530, "0x0000_0530"), (0x0800_4000, "0x0800_4000"), (0x1_0000_0000, "0x1_0000_0000")],
)
def test_addresses_are_grouped_by_four(value: int, shown: str) -> None:
    assert address(value) == shown


CONFIG = Config(
    root=Path("/p"),
    path=Path("/p/stamp.toml"),
    devices={"probe": DeviceConfig(name="probe", gdb="localhost:3333")},
)


@pytest.mark.parametrize(
    ("text", "target"),
    [
        ("probe", GdbTarget("localhost", 3333, name="probe")),
        ("gdb:localhost:3333", GdbTarget("localhost", 3333)),
        ("gdb:127.0.0.1:2331", GdbTarget("127.0.0.1", 2331)),
        ("gdb:3333", GdbTarget("localhost", 3333)),
        ("gdb:[::1]:3333", GdbTarget("::1", 3333)),
    ],
)
def test_parse_gdb_device(text: str, target: GdbTarget) -> None:
    assert parse_device(text, CONFIG) == target


@pytest.mark.parametrize("text", ["gdb:", "gdb:localhost", "gdb:h:0", "gdb:h:70000", "gdb:h :1"])
def test_bad_gdb_device(text: str) -> None:
    with pytest.raises(DeviceError, match="is not a GDB server address: write gdb:HOST:PORT"):
        parse_device(text, CONFIG)


def test_config_gdb_key() -> None:
    config = parse_config({"devices": {"probe": {"gdb": "localhost:3333"}}}, path=Path("/s.toml"))
    assert config.devices["probe"].gdb == "localhost:3333"
    with pytest.raises(ConfigError, match="exactly one of `serial`, `particle`, `smp` or `gdb`"):
        parse_config({"devices": {"x": {"gdb": "h:1", "serial": "/dev/x"}}}, path=Path("/s.toml"))
    bad = Config(root=Path("/"), devices={"p": DeviceConfig(name="p", gdb="nowhere")})
    with pytest.raises(DeviceError, match=r"\[devices.p\] gdb = 'nowhere'"):
        parse_device("p", bad)


LAYOUT = MemoryLayout(
    record=Region(0x530, 128),
    build_id_note=Region(0x5B0, 36),
    regions=(Region(0, 0x530), Region(0x530, 128), Region(0x5B0, 36)),
)


def manifest_record(**changes: object) -> dict[str, object]:
    record: dict[str, object] = {
        "schema": 1,
        "edit": 3,
        "git": "a" * 40,
        "dirty": False,
        "image_sha256": "b" * 64,
        "recorded_at": "2026-12-01T00:00:00Z",
        "memory": LAYOUT.to_json(),
    }
    record.update(changes)
    return record


def test_manifest_memory_round_trips() -> None:
    manifest = Manifest.from_json(manifest_record(), "m.json")
    assert manifest.memory == LAYOUT
    assert manifest.memory.base == 0 and manifest.memory.end == 0x5D4
    again = Manifest.from_json(json.loads(json.dumps(manifest.to_json())), "m.json")
    assert again == manifest
    old = manifest_record()
    del old["memory"]
    assert Manifest.from_json(old, "m.json").memory is None


@pytest.mark.parametrize(
    "memory",
    [
        [],
        {"record": None},
        {"record": {"address": -1, "size": 128}},
        {"record": {"address": "0x530", "size": 128}},
        {"record": {"address": 1, "size": True}},
        {"record": {"address": 1, "size": 1}, "regions": {"address": 1}},
    ],
)
def test_a_bad_memory_object_is_a_bad_manifest(memory: object) -> None:
    with pytest.raises(ArtifactError, match=r"m\.json is not a valid stamp manifest"):
        Manifest.from_json(manifest_record(memory=memory), "m.json")
