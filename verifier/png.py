"""Minimal PNG writer for previews of critical images (8-bit gray or RGB, no dependency).

Fingerprint files carry PNG previews a person can open; pulling in an imaging
library for that alone is not worth a dependency.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes for a CHW float image in [0, 1] with 1 or 3 channels (values are clipped)."""
    if image.ndim != 3 or image.shape[0] not in (1, 3):
        raise ValueError(f"expected a CHW image with 1 or 3 channels, got shape {list(image.shape)}")
    pixels = np.round(np.clip(image, 0, 1) * 255).astype(np.uint8).transpose(1, 2, 0)
    height, width, channels = pixels.shape
    rows = b"".join(b"\x00" + pixels[row].tobytes() for row in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0 if channels == 1 else 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(rows, 9))
            + _chunk(b"IEND", b""))
