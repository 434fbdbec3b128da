"""The PNG previews decode to the pixels they were made from."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest

from verifier.png import encode_png


def _decode(data: bytes) -> tuple[int, np.ndarray]:
    """Minimal decoder for our own output (filter type 0 on every row)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, offset = {}, 8
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset:offset + 4])
        kind, body = data[offset + 4:offset + 8], data[offset + 8:offset + 8 + length]
        (crc,) = struct.unpack(">I", data[offset + 8 + length:offset + 12 + length])
        assert crc == zlib.crc32(kind + body)
        chunks[kind] = body
        offset += 12 + length
    width, height, _, colour = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
    channels = 1 if colour == 0 else 3
    rows = zlib.decompress(chunks[b"IDAT"])
    pixels = np.frombuffer(rows, np.uint8).reshape(height, 1 + width * channels)
    assert (pixels[:, 0] == 0).all()
    return colour, pixels[:, 1:].reshape(height, width, channels)


@pytest.mark.parametrize("channels", [1, 3])
def test_round_trip(channels: int):
    image = np.random.default_rng(0).random((channels, 5, 7))
    colour, pixels = _decode(encode_png(image))
    assert colour == (0 if channels == 1 else 2)
    np.testing.assert_array_equal(pixels, np.round(image * 255).astype(np.uint8).transpose(1, 2, 0))


def test_bad_shape():
    with pytest.raises(ValueError, match="1 or 3 channels"):
        encode_png(np.zeros((2, 4, 4)))
