"""What a stored snapshot is: its content type and pixel size, read from its bytes."""

from __future__ import annotations

import struct
from typing import Any

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def image_info(data: bytes, headers: dict[str, Any] | None = None) -> tuple[str, int, int]:
    """(content type, width, height); a header Content-Type wins; size 0 when unknown.

    Reads only the image header (no decoding), so a large snapshot costs nothing.
    """
    value = (headers or {}).get("Content-Type") or ""
    header_type = str(value[0] if isinstance(value, list) and value else value or "")
    if data.startswith(PNG_MAGIC) and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return header_type or "image/png", width, height
    if data.startswith(b"\xff\xd8"):
        width, height = _jpeg_size(data)
        return header_type or "image/jpeg", width, height
    return header_type or "application/octet-stream", 0, 0


def _jpeg_size(data: bytes) -> tuple[int, int]:
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return 0, 0
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if marker in JPEG_SOF and pos + 9 <= len(data):
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return width, height
        pos += 2 + length
    return 0, 0
