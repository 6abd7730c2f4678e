"""What a file is, from its first bytes: seized media has wrong or no extensions."""

from __future__ import annotations

from typing import Literal

Kind = Literal["image", "video", "zip", "tar", "compressed", "other"]

#: How many leading bytes ``identify`` needs.
HEAD = 512

_IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"II*\x00", b"MM\x00*")
_VIDEO_MAGIC = (
    b"\x1a\x45\xdf\xa3",  # Matroska / WebM
    b"FLV\x01",
    b"\x30\x26\xb2\x75\x8e\x66\xcf\x11",  # ASF / WMV
    b"\x00\x00\x01\xba",  # MPEG program stream
    b"\x00\x00\x01\xb3",  # MPEG-1/2 video
)
#: ISO base media brands that are still images (HEIF/AVIF), not video.
_IMAGE_BRANDS = {b"heic", b"heix", b"hevc", b"heim", b"heis", b"mif1", b"msf1", b"avif", b"avis"}
_QUICKTIME_ATOMS = {b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"}
_COMPRESSED_MAGIC = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00")


def identify(head: bytes) -> Kind:
    """Classify by magic bytes; ``head`` is at least the first HEAD bytes (or the whole file)."""
    if head.startswith(_IMAGE_MAGIC) or (head[:2] == b"BM" and len(head) >= 26):
        return "image"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image"
    if len(head) >= 3 and head[0:1] == b"P" and head[1:2] in b"123456" and head[2:3] in b" \t\r\n#":
        return "image"
    if head[4:8] == b"ftyp":
        return "image" if head[8:12] in _IMAGE_BRANDS else "video"
    if head[4:8] in _QUICKTIME_ATOMS or head.startswith(_VIDEO_MAGIC):
        return "video"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "video"
    if head[:1] == b"\x47" and len(head) > 376 and head[188:189] == b"\x47" and head[376:377] == b"\x47":
        return "video"  # MPEG transport stream: a sync byte every 188 bytes
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return "zip"
    if head[257:262] == b"ustar":
        return "tar"
    if head.startswith(_COMPRESSED_MAGIC):
        return "compressed"
    return "other"
