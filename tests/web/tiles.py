"""Tiny PMTiles archives for the base map tests, written with Protomaps' own writer."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

from pmtiles.tile import Compression, TileType, zxy_to_tileid
from pmtiles.writer import Writer


def png(rgb: tuple[int, int, int], size: int = 256) -> bytes:
    """A plain-colour PNG (no imaging library needed)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    row = b"\x00" + bytes(rgb) * size
    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * size))
        + chunk(b"IEND", b"")
    )


def write_pmtiles(
    path: Path,
    tiles: dict[tuple[int, int, int], bytes],
    tile_type: TileType = TileType.PNG,
    compression: Compression = Compression.NONE,
    metadata: dict | None = None,
    bounds: tuple[float, float, float, float] = (-180, -85, 180, 85),
) -> Path:
    zooms = [z for z, _, _ in tiles]
    with path.open("wb") as f:
        writer = Writer(f)
        for zxy, data in sorted(tiles.items(), key=lambda item: zxy_to_tileid(*item[0])):
            writer.write_tile(zxy_to_tileid(*zxy), data)
        writer.finalize(
            {
                "tile_type": tile_type,
                "tile_compression": compression,
                "min_zoom": min(zooms),
                "max_zoom": max(zooms),
                "min_lon_e7": round(bounds[0] * 10_000_000),
                "min_lat_e7": round(bounds[1] * 10_000_000),
                "max_lon_e7": round(bounds[2] * 10_000_000),
                "max_lat_e7": round(bounds[3] * 10_000_000),
                "center_zoom": 0,
                "center_lon_e7": 0,
                "center_lat_e7": 0,
            },
            metadata or {"attribution": "Test tiles"},
        )
    return path
