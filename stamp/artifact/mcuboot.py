"""MCUboot images (the output of `imgtool sign`, as .bin or Intel .hex): `read_mcuboot`.

An image is a 32-byte header (magic 0x96f3b83d, load address, header size, protected TLV
size, body size, flags, version), the body at `hdr_size`, then an optional protected TLV
area (magic 0x6908) and the TLV area (magic 0x6907). The hash TLV (SHA256, or SHA384/512)
covers everything before the unprotected TLV area: header, body and protected TLVs. That
hash is what a Zephyr device reports per slot over SMP, so it is the image's identity
(`mcuboot_hash`).

Libraries: imgtool (MCUboot's own tool) is the reference. Its constants (IMAGE_MAGIC,
TLV_VALUES, IMAGE_F, the TLV info magics), its hash-TLV table and `get_digest`, and its
`VerifyResult` vocabulary are used here. Its `Image.verify` and `dumpinfo` are not
called: both take a path, stop at the first hash TLV, and raise struct.error or print to
stdout on a truncated file, while stamp has the bytes in memory already and must turn
every truncation into one sentence. So the walk over header and TLVs (bounded by the
data, every length checked) is here; `tests/artifact/test_mcuboot.py` checks it against
`imgtool verify` on images the real imgtool signed. Intel hex is decoded by `intelhex`,
imgtool's own dependency.
"""

from __future__ import annotations

import functools
import hashlib
import io
import struct
from dataclasses import dataclass
from typing import Any

from stamp.errors import ArtifactError

IMAGE_MAGIC = 0x96F3B83D
"""imgtool's IMAGE_MAGIC (checked against imgtool's at import when it is installed)."""
HEADER = struct.Struct("IIHHIIBBHI")
"""The header as imgtool's `add_header` packs it (without its byte-order prefix)."""
TLV_HEADER = struct.Struct("HH")
"""One TLV: type (u16), length (u16), as MCUboot's `struct image_tlv`."""
TLV_INFO = struct.Struct("HH")
"""A TLV area's header: magic (u16), total length including this header (u16)."""
TLV_INFO_MAGIC = 0x6907
TLV_PROT_INFO_MAGIC = 0x6908
INSTALL_HINT = "MCUboot images need imgtool: pip install 'stamp-firmware[smp]'"

# Signature TLVs and the key each one means (imgtool's TLV_VALUES names).
_SIGNATURES = {
    "RSA2048": "RSA-2048",
    "RSA3072": "RSA-3072",
    "ECDSASIG": "ECDSA",
    "ED25519": "Ed25519",
}
_MAX_HEX_SPAN = 64 * 1024 * 1024
"""Largest address span of an Intel hex file decoded to bytes (a firmware image, not 4 GB
of gap filling)."""


class McubootError(ArtifactError):
    """A file that starts like an MCUboot image but is cut short or malformed."""


@dataclass(frozen=True)
class Tlv:
    """One TLV of the image."""

    type: int
    """The TLV type (imgtool's TLV_VALUES)."""
    name: str
    """Its imgtool name ("SHA256", "ECDSASIG", ...), or "0x??" for an unknown type."""
    protected: bool
    """In the protected area (covered by the hash and signature)."""
    offset: int
    """Offset of the TLV's header in the image."""
    data: bytes
    """Its value."""


@dataclass(frozen=True)
class McubootImage:
    """An MCUboot image as read from a file, with its hash TLV checked against the content."""

    data: bytes
    """The image's bytes (an Intel hex file decoded)."""
    source_format: str
    """"bin" or "hex"."""
    hex_address: int | None
    """The address of the first byte in an Intel hex file."""
    endian: str
    """"little" or "big" (imgtool sign -e)."""
    load_addr: int
    """The header's load address (RAM load or ROM-fixed flash address; 0 otherwise)."""
    hdr_size: int
    """Header size: the body starts here."""
    protected_tlv_size: int
    """Size of the protected TLV area (its info header included)."""
    img_size: int
    """Size of the body."""
    flags: int
    """Header flags (imgtool's IMAGE_F)."""
    version: tuple[int, int, int, int]
    """major, minor, revision, build."""
    tlvs: tuple[Tlv, ...]
    """Every TLV, protected first."""
    hash_type: str | None
    """The hash TLV's name ("SHA256", ...), None when the image has none."""
    stored_hash: str | None
    """The hash TLV's value, lowercase hex."""
    computed_hash: str | None
    """The hash of header, body and protected TLVs, with the TLV's algorithm."""
    tlv_end: int
    """Offset just past the TLV area; bytes after it are padding or the boot trailer."""

    @property
    def version_text(self) -> str:
        """The version as imgtool prints it: "1.2.3+4"."""
        return "{}.{}.{}+{}".format(*self.version)

    @property
    def hash_ok(self) -> bool | None:
        """The stored hash matches the content; None without a hash TLV."""
        if self.stored_hash is None:
            return None
        return self.stored_hash == self.computed_hash

    @property
    def mcuboot_hash(self) -> str | None:
        """The image's identity: the hash TLV, when it matches the content."""
        return self.stored_hash if self.hash_ok else None

    @property
    def verify_result(self) -> str:
        """What `imgtool verify` (no key) decides, in imgtool's VerifyResult names."""
        if self.hash_ok:
            return "OK"
        if self.stored_hash is not None:
            return "INVALID_HASH"
        return "INVALID_SIGNATURE"  # imgtool's answer when no TLV settles it

    @property
    def signature(self) -> Tlv | None:
        """The signature TLV, if the image is signed."""
        return next((t for t in self.tlvs if t.name in _SIGNATURES), None)

    @property
    def key_type(self) -> str | None:
        """The signing key's type ("RSA-2048", "ECDSA P-256", "Ed25519"), None unsigned."""
        sig = self.signature
        if sig is None:
            return None
        key = _SIGNATURES[sig.name]
        if key == "ECDSA":
            return "ECDSA P-384" if self.hash_type == "SHA384" else "ECDSA P-256"
        return key

    @property
    def key_in_image(self) -> str | None:
        """ "hash" (KEYHASH TLV) or "full" (PUBKEY TLV): how the public key is named."""
        names = {t.name for t in self.tlvs}
        return "hash" if "KEYHASH" in names else "full" if "PUBKEY" in names else None

    @property
    def flag_names(self) -> tuple[str, ...]:
        """The set header flags by imgtool's names."""
        flags = _require_imgtool().IMAGE_F.items()
        return tuple(name for name, bit in flags if self.flags & bit)

    @property
    def body(self) -> bytes:
        """The firmware itself (what the linker produced)."""
        return self.data[self.hdr_size : self.hdr_size + self.img_size]

    @property
    def image_sha256(self) -> str:
        """SHA-256 of the whole image as flashed (for a .bin: the file's SHA-256)."""
        return hashlib.sha256(self.data).hexdigest()

    def problems(self) -> tuple[str, ...]:
        """Why the image cannot be trusted as a build artifact."""
        if self.stored_hash is None:
            return ("it has no SHA-256 TLV, so MCUboot will not boot it",)
        if not self.hash_ok:
            return (
                f"its stored {self.hash_type} TLV does not match its content (a "
                "half-written or hand-edited file); sign it again",
            )
        return ()

    def to_json(self) -> dict[str, Any]:
        """The `mcuboot` object of `stamp inspect --json`."""
        return {
            "format": self.source_format,
            "hex_address": self.hex_address,
            "endian": self.endian,
            "magic": f"{IMAGE_MAGIC:#010x}",
            "load_addr": self.load_addr,
            "hdr_size": self.hdr_size,
            "protected_tlv_size": self.protected_tlv_size,
            "img_size": self.img_size,
            "flags": self.flags,
            "flag_names": list(self.flag_names),
            "version": self.version_text,
            "hash_type": self.hash_type,
            "hash": self.stored_hash,
            "computed_hash": self.computed_hash,
            "hash_ok": self.hash_ok,
            "verify_result": self.verify_result,
            "signed": self.signature is not None,
            "signature_type": self.signature.name if self.signature else None,
            "key_type": self.key_type,
            "key_in_image": self.key_in_image,
            "tlvs": [
                {
                    "type": t.type,
                    "name": t.name,
                    "protected": t.protected,
                    "offset": t.offset,
                    "len": len(t.data),
                }
                for t in self.tlvs
            ],
            "trailer_size": len(self.data) - self.tlv_end,
        }


# --- reading ------------------------------------------------------------------------------


@functools.cache
def _require_imgtool() -> Any:
    """imgtool's image module, imported only for a file that is an MCUboot image: it pulls
    in `cryptography` (about 75 ms), which `stamp manifest` on any other file never pays."""
    try:
        from imgtool import image
    except ImportError:
        raise ArtifactError(INSTALL_HINT) from None
    assert image.IMAGE_MAGIC == IMAGE_MAGIC
    return image


def is_intel_hex(data: bytes) -> bool:
    """`data` starts with an Intel hex record: `:`, at least 10 hex digits, end of line."""
    line = data[:600].split(b"\n", 1)[0].rstrip(b"\r")
    digits = line[1:]
    return (
        line[:1] == b":"
        and len(digits) >= 10
        and all(c in b"0123456789abcdefABCDEF" for c in digits)
    )


def endian_of(data: bytes) -> str | None:
    """ "little" or "big" when `data` starts with the MCUboot magic, else None."""
    if len(data) < 4:
        return None
    if int.from_bytes(data[:4], "little") == IMAGE_MAGIC:
        return "little"
    if int.from_bytes(data[:4], "big") == IMAGE_MAGIC:
        return "big"
    return None


def decode_intel_hex(text: bytes, name: str) -> tuple[bytes, int]:
    """(bytes, address of the first) of an Intel hex file; McubootError when malformed."""
    _require_imgtool()
    from intelhex import HexRecordError, IntelHex  # imgtool's own dependency

    try:
        hexfile = IntelHex(io.StringIO(text.decode("ascii")))
        start, end = hexfile.minaddr(), hexfile.maxaddr()
        if start is None or end is None:
            raise McubootError(f"{name} is an Intel hex file with no data records")
        if end - start >= _MAX_HEX_SPAN:
            raise McubootError(
                f"{name} is an Intel hex file spanning {end - start + 1} bytes of addresses: "
                "not one firmware image"
            )
        return bytes(hexfile.tobinstr(start=start, end=end)), start
    except (UnicodeDecodeError, HexRecordError, ValueError) as exc:
        raise McubootError(f"{name} is not a valid Intel hex file ({exc})") from None


def read_mcuboot(
    data: bytes, name: str, *, source_format: str = "bin", hex_address: int | None = None
) -> McubootImage | None:
    """The MCUboot image in `data`, None when it does not start with the magic.

    McubootError (exit 2) when it starts like one but is cut short or its TLV areas are
    malformed; a hash TLV that does not match is not an error here (`problems` says it).

    Long because the header, the TLV areas and their bounds are checked in the order
    MCUboot's bootloader reads them; each check names what is cut short.
    """
    endian = endian_of(data)
    if endian is None:
        return None
    tool = _require_imgtool()
    order = "<" if endian == "little" else ">"
    if len(data) < tool.IMAGE_HEADER_SIZE:
        raise McubootError(
            f"{name} is a truncated MCUboot image: {len(data)} bytes, no full header"
        )
    (_, load_addr, hdr_size, prot_size, img_size, flags, major, minor, rev, build) = struct.unpack(
        order + HEADER.format, data[: HEADER.size]
    )
    if hdr_size < tool.IMAGE_HEADER_SIZE:
        raise McubootError(
            f"{name} is a damaged MCUboot image: header size {hdr_size} is too small"
        )
    tlv_off = hdr_size + img_size
    if tlv_off > len(data):
        raise McubootError(
            f"{name} is a truncated MCUboot image: its header claims {tlv_off} bytes of header "
            f"and body, the file has {len(data)}"
        )
    tlvs: list[Tlv] = []
    if prot_size:
        area_end = _read_area(data, tlv_off, TLV_PROT_INFO_MAGIC, True, order, tlvs, name)
        if area_end - tlv_off != prot_size:
            raise McubootError(
                f"{name} is a damaged MCUboot image: the protected TLV area is "
                f"{area_end - tlv_off} bytes, the header says {prot_size}"
            )
        tlv_off = area_end
    hashed_end = tlv_off
    tlv_end = _read_area(data, tlv_off, TLV_INFO_MAGIC, False, order, tlvs, name)
    hash_tlv = next((t for t in tlvs if tool.is_sha_tlv(t.type)), None)
    computed = (
        tool.get_digest(hash_tlv.type, data[:hashed_end]).hex() if hash_tlv is not None else None
    )
    return McubootImage(
        data=data,
        source_format=source_format,
        hex_address=hex_address,
        endian=endian,
        load_addr=load_addr,
        hdr_size=hdr_size,
        protected_tlv_size=prot_size,
        img_size=img_size,
        flags=flags,
        version=(major, minor, rev, build),
        tlvs=tuple(tlvs),
        hash_type=hash_tlv.name if hash_tlv else None,
        stored_hash=hash_tlv.data.hex() if hash_tlv else None,
        computed_hash=computed,
        tlv_end=tlv_end,
    )


def _read_area(
    data: bytes, at: int, magic: int, protected: bool, order: str, out: list[Tlv], name: str
) -> int:
    """Append the TLVs of the area at `at` to `out`; the offset just past the area."""
    if at + TLV_INFO.size > len(data):
        raise McubootError(
            f"{name} is a truncated MCUboot image: it ends at {len(data)} bytes, before its "
            "TLV area"
        )
    found, total = struct.unpack(order + TLV_INFO.format, data[at : at + TLV_INFO.size])
    if found != magic:
        raise McubootError(
            f"{name} is a damaged MCUboot image: no TLV area at offset {at:#x} "
            f"(magic {found:#06x}, expected {magic:#06x})"
        )
    end = at + int(total)
    if end > len(data):
        raise McubootError(
            f"{name} is a truncated MCUboot image: its TLV area ends at {end} bytes, the file "
            f"has {len(data)}"
        )
    names = {value: key for key, value in _require_imgtool().TLV_VALUES.items()}
    off = at + TLV_INFO.size
    while off < end:
        if off + TLV_HEADER.size > end:
            raise McubootError(
                f"{name} is a damaged MCUboot image: a TLV header crosses its area's end"
            )
        kind, length = struct.unpack(order + TLV_HEADER.format, data[off : off + TLV_HEADER.size])
        value_at = off + TLV_HEADER.size
        if value_at + length > end:
            raise McubootError(
                f"{name} is a damaged MCUboot image: TLV {names.get(kind, hex(kind))} at "
                f"{off:#x} runs past its area's end"
            )
        out.append(
            Tlv(
                kind,
                names.get(kind, f"{kind:#04x}"),
                protected,
                off,
                data[value_at : value_at + length],
            )
        )
        off = value_at + length
    return end
