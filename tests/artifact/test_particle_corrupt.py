"""Corrupt input for stamp.artifact.particle.module: every truncation, random byte flips, garbage.

The contract (after pyelftools' test_corrupt_files.py): parse_module returns a ModuleInfo
whose checks say what no longer matches, or raises ModuleError; never another exception.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stamp.artifact.particle import locate as particle_locate
from stamp.artifact.particle.build import build_user_part
from stamp.artifact.particle.format import ModuleError
from stamp.artifact.particle.module import ModuleInfo, is_module, parse_module
from tests.support.particle import fixture_bytes, module_image

SMALL = build_user_part(bytes(range(200)))
USER_PART = fixture_bytes("040_user-part.bin")
HYPOTHESIS = settings(
    max_examples=300,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def parse_or_error(data: bytes) -> ModuleInfo | ModuleError:
    """parse_module's result or its ModuleError; any other exception fails the test."""
    try:
        info = parse_module(data)
    except ModuleError as exc:
        assert str(exc) and "\n" not in str(exc)
        assert is_module(data) is False
        return exc
    assert is_module(data) is True
    json.dumps(info.to_json())
    return info


def test_an_empty_file_is_not_a_module() -> None:
    with pytest.raises(ModuleError, match="empty"):
        parse_module(b"")


@pytest.mark.parametrize("image", [SMALL, USER_PART], ids=["built-200", "040-user-part"])
def test_every_truncation_is_a_module_error(image: bytes) -> None:
    for length in range(len(image)):
        result = parse_or_error(image[:length])
        assert isinstance(result, ModuleError), length
        if length >= 24:
            assert str(result).startswith("the module is truncated"), length


@pytest.mark.parametrize(
    "name", ["044_Core_Tinker_P5_V10.bin", "p2-user-part.bin", "tracker-user-part-extensions.bin"]
)
def test_sampled_truncations_of_every_fixture_say_truncated(name: str) -> None:
    image = fixture_bytes(name)
    for length in range(24 + 268, len(image), max(1, len(image) // 400)):
        result = parse_or_error(image[:length])
        assert isinstance(result, ModuleError), length
        assert str(result).startswith("the module is truncated"), length


def test_truncating_a_padded_bootloader() -> None:
    image = module_image(prefix_offset=0x200, function=2, index=0, pad_to=8192)
    module_size = parse_module(image).module_size
    near_the_end = range(module_size - 64, module_size + 64)
    for length in sorted({*range(0, len(image), 7), *near_the_end}):
        result = parse_or_error(image[:length])
        if length >= module_size:  # only padding was cut: still a (padded) module
            assert isinstance(result, ModuleInfo) and result.prefix_offset == 0x200, length
            assert result.suffix_valid == (length == module_size)
        else:
            assert isinstance(result, ModuleError), length


def test_truncation_message_names_both_sizes() -> None:
    with pytest.raises(ModuleError, match=r"says it is 4752 bytes long but the file has only 4000"):
        parse_module(USER_PART[:4000])


@pytest.mark.parametrize(
    "name",
    [
        "040_user-part.bin",
        "044_Core_Tinker_P5_V10.bin",
        "p2-user-part.bin",
        "tracker-user-part-extensions.bin",
    ],
)
def test_cutting_the_front_off_is_not_a_module(name: str) -> None:
    """Shifted real code is full of chance 4- and 5-point prefix matches: none may pass."""
    image = fixture_bytes(name)
    for cut in [*range(1, 300), *range(300, len(image) - 64, max(101, len(image) // 300))]:
        assert isinstance(parse_or_error(image[cut:]), ModuleError), cut


def flip_positions(image: bytes, count: int, seed: int) -> list[tuple[int, int]]:
    rng = random.Random(seed)
    return [(rng.randrange(len(image)), rng.randrange(1, 256)) for _ in range(count)]


@pytest.mark.parametrize(
    ("image", "count"),
    [(SMALL, 2500), (USER_PART, 1500), (fixture_bytes("p2-user-part.bin"), 500)],
    ids=["built-200", "040-user-part", "p2-user-part"],
)
def test_random_byte_flips_never_pass_the_checks(image: bytes, count: int) -> None:
    """CRC32 catches every single-byte change, so no flipped image may look intact."""
    errors = 0
    for position, mask in flip_positions(image, count, seed=20261130):
        damaged = bytearray(image)
        damaged[position] ^= mask
        result = parse_or_error(bytes(damaged))
        if isinstance(result, ModuleError):
            errors += 1
            continue
        assert not result.crc_ok, position
        assert result.problems, position
        if position < len(image) - 6 and result.sha_ok is not None:
            assert result.sha_ok is False, position
    # Most flips land in the payload and leave a readable (but failing) module.
    assert errors < count // 4


def test_flipping_every_byte_of_the_suffix_and_prefix() -> None:
    regions = [*range(24), *range(len(SMALL) - 40, len(SMALL))]
    for position in regions:
        for mask in (0x01, 0x80, 0xFF):
            damaged = bytearray(SMALL)
            damaged[position] ^= mask
            result = parse_or_error(bytes(damaged))
            assert isinstance(result, ModuleError) or not result.crc_ok


@given(st.binary(max_size=4096))
@HYPOTHESIS
def test_arbitrary_bytes(data: bytes) -> None:
    parse_or_error(data)


@st.composite
def damaged_modules(draw: st.DrawFn) -> bytes:
    """A valid module (any suffix form) with a few slices overwritten by arbitrary bytes."""
    payload = draw(st.binary(max_size=600))
    image = bytearray(
        draw(
            st.sampled_from(
                [
                    lambda p: build_user_part(p),
                    lambda p: build_user_part(p, product_id=5, product_version=1),
                    lambda p: build_user_part(p, tlv_suffix=True),
                    lambda p: module_image(prefix_offset=0x200, body=p, pad_to=4096),
                    lambda p: module_image(prefix_offset=0x184, body=p, flags=0x10),
                ]
            )
        )(payload)
    )
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(image) - 1))
        chunk = draw(st.binary(min_size=1, max_size=48))
        image[at : at + len(chunk)] = chunk
    return bytes(image[: draw(st.integers(0, len(image)))])


@given(damaged_modules())
@HYPOTHESIS
def test_damaged_modules(data: bytes) -> None:
    parse_or_error(data)


@st.composite
def extension_soup(draw: st.DrawFn) -> bytes:
    """A module whose suffix or prefix extension area is arbitrary TLV-shaped bytes."""
    records = draw(
        st.lists(
            st.tuples(
                st.sampled_from([0, 1, 2, 3, 0x10, 0x11, 0x12, 0x13, 0x14, 0xFFFF, 7]),
                st.integers(0, 80),
                st.binary(max_size=60),
            ),
            max_size=8,
        )
    )
    area = b"".join(t.to_bytes(2, "little") + n.to_bytes(2, "little") + b for t, n, b in records)
    if draw(st.booleans()):
        return module_image(function=5, suffix_extensions=area)
    return module_image(function=5, flags=0x10, prefix_extensions=area)


@given(extension_soup())
@HYPOTHESIS
def test_arbitrary_extensions(data: bytes) -> None:
    result = parse_or_error(data)
    assert isinstance(result, ModuleInfo) and result.crc_ok and result.sha_ok


def counting(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the prefix candidates parse_module scores (the cost of the offset search)."""
    calls: list[int] = []
    real: Callable[[bytes, int], int] = particle_locate._score_prefix

    def score(data: bytes, offset: int) -> int:
        calls.append(offset)
        return real(data, offset)

    monkeypatch.setattr(particle_locate, "_score_prefix", score)
    return calls


def test_the_prefix_search_is_linear_in_the_8k_window(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = counting(monkeypatch)
    garbage = random.Random(7).randbytes(1024 * 1024)
    with pytest.raises(ModuleError):
        parse_module(garbage)
    assert len(calls) <= 8192 // 4 + len(particle_locate.PREFERRED_PREFIX_OFFSETS)
    assert len(set(calls)) == len(calls)

    calls.clear()
    padded = module_image(prefix_offset=0x200, pad_to=1024 * 1024)
    info = parse_module(padded)
    assert info.prefix_offset == 0x200 and not info.suffix_valid
    assert len(calls) <= 8192 // 4 + len(particle_locate.PREFERRED_PREFIX_OFFSETS)

    calls.clear()
    parse_module(USER_PART)
    assert calls == [0]


def test_large_random_files_are_errors_or_weak_matches() -> None:
    rng = random.Random(11)
    for _ in range(5):
        result = parse_or_error(rng.randbytes(256 * 1024))
        assert isinstance(result, ModuleError) or not result.crc_ok


def test_all_ff_and_all_zero_files() -> None:
    for fill in (b"\xff", b"\x00"):
        for size in (0, 1, 23, 24, 64, 4096):
            assert isinstance(parse_or_error(fill * size), ModuleError)
